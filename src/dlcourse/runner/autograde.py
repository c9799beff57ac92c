"""Grade one submission in a private working folder, student code confined.

For each submission the trusted parent builds a throw-away folder holding a
minimal nbgrader course (configuration, the assignment's hidden files, a copy
of the submission and a private gradebook) and, beside it, a *challenge* for
:mod:`dlcourse.runner.verify`. Two warm processes of this thread
(:mod:`dlcourse.runner.warm`) take them side by side: nbgrader's autograde of
the notebook (its kernel confined) and the repetition of the hidden tests
outside the kernel (in a confined child). The student's processes of both
share one wall-clock deadline and one memory budget. Nothing here writes to
the course; :mod:`dlcourse.runner.grade` merges the results.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path

import nbformat

from dlcourse.errors import CourseError
from dlcourse.runner import sandbox, warm
from dlcourse.runner.course import CONFIG_NAME, Course
from dlcourse.runner.nbgrader_plugins import handin_files, hidden_files
from dlcourse.runner.notebooks import read_notebook
from dlcourse.runner.tamper import restore_deleted_tests, scan_notebook
from dlcourse.runner.verify import Verdict, judge_outputs, verified_test_ids, write_challenge
from dlcourse.runtime import GRADING_VARIABLE

#: Environment of the grading children and so of the student's kernel.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    # oneDNN's fused CPU kernels change round-off from run to run and print a
    # notice at import; grading wants neither.
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
    GRADING_VARIABLE: "autograde",
}


@dataclass
class Limits:
    timeout: float
    memory_bytes: int | None
    isolation: sandbox.Isolation
    device: str = "cpu"  # cpu, gpu or auto: resolved on the machine that grades


@dataclass
class Outcome:
    student: str
    ok: bool
    reason: str = ""
    seconds: float = 0.0
    peak_memory: int = 0
    findings: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    workdir: Path | None = None  # private folder with the autograded notebook and gradebook
    device: str = ""  # where the student's code ran: cpu or gpu ("" when it did not run)

    @property
    def private_course(self) -> Path | None:
        return self.workdir / "course" if self.workdir else None

    @classmethod
    def from_json(cls, data: dict) -> Outcome:
        """An outcome as written to JSON (a record, a job's result): other keys are ignored."""
        names = {f.name for f in fields(cls)} - {"workdir"}
        values = {k: v for k, v in data.items() if k in names}
        values["verdicts"] = [Verdict(**v) for v in data.get("verdicts", [])]
        return cls(**values)


def precheck(notebook: Path, assignment: str) -> str | None:
    """A reason the submission cannot be graded at all, found without running it."""
    if not notebook.exists():
        return f"no {assignment}.ipynb in the submission"
    try:
        read_notebook(notebook)
    except CourseError as exc:
        return str(exc).replace(str(notebook), f"{assignment}.ipynb")
    return None


def prepare(course: Course, assignment: str, student: str, template_db: Path, workdir: Path) -> None:
    """The private course (config, hidden files, the submission, a gradebook) and the challenge."""
    private = workdir / "course"
    (private / "solutions" / assignment).mkdir(parents=True)
    shutil.copyfile(course.root / CONFIG_NAME, private / CONFIG_NAME)
    source = course.solutions / assignment
    for path in hidden_files(source):
        target = private / "solutions" / assignment / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    submitted = course.submitted / student / assignment
    shutil.copytree(submitted, private / "submitted" / student / assignment,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copyfile(template_db, private / "gradebook.db")
    notebook = private / "submitted" / student / assignment / f"{assignment}.ipynb"
    nb = read_notebook(notebook)
    if restore_deleted_tests(nb, read_notebook(course.source_notebook(assignment))):
        nbformat.write(nb, notebook)
    write_challenge(course, assignment, submitted / f"{assignment}.ipynb", handin_files(submitted),
                    workdir / "verify")


def grade_submission(course: Course, assignment: str, student: str, template_db: Path, workdir: Path,
                     limits: Limits) -> Outcome:
    """Autograde and verify one submission in ``workdir``; never raises for a bad submission.

    The work goes to this thread's warm processes (:mod:`dlcourse.runner.warm`):
    the autograde worker and the repeat server run side by side, and the
    student's processes of both (the kernel, the forked child) share one
    deadline and one memory budget.
    """
    submitted = course.submitted / student / assignment
    reason = precheck(submitted / f"{assignment}.ipynb", assignment)
    if reason:
        return Outcome(student, False, reason)
    findings = scan_notebook(read_notebook(submitted / f"{assignment}.ipynb"),
                             read_notebook(course.source_notebook(assignment)))
    try:
        device = sandbox.resolve_device(limits.device)
    except ValueError as exc:
        return Outcome(student, False, f"{exc} (graded on {socket.gethostname()})")
    prepare(course, assignment, student, template_db, workdir)
    private, verify_dir = workdir / "course", workdir / "verify"
    repeat = bool(verified_test_ids(assignment))
    outcome = Outcome(student, False, findings=findings, workdir=workdir, device=device)
    try:
        watched, result = _run_warm(private, verify_dir, assignment, student, limits, device, repeat)
    except warm.WarmProcessDied as exc:
        outcome.reason = f"grading process died: {exc}"
        return outcome
    outcome.seconds, outcome.peak_memory = watched.seconds, watched.peak_memory
    if watched.limit:
        outcome.reason = watched.limit
        return outcome
    outcome.ok = bool(result.get("success"))
    outcome.reason = str(result.get("reason", ""))
    outcome.verdicts = judge_outputs(course, assignment, verify_dir) if repeat else []
    return outcome


def warm_env(limits: Limits, device: str) -> dict[str, str]:
    """What the warm processes of a batch run with (and so the student's kernel and child)."""
    # Unconfined (--unconfined) means unconfined: the kernel manager would otherwise confine the
    # kernel on its own (dlcourse.runner.kernel_sandbox).
    unconfined = {} if limits.isolation.kind == "bubblewrap" else {"DLCOURSE_UNCONFINED": "1"}
    return {**QUIET_ENV, **sandbox.device_env(device), **unconfined}


def prestart(limits: Limits, assignment: str, count: int) -> None:
    """Start the warm processes of ``count`` grading threads before the batch's first job."""
    try:
        device = sandbox.resolve_device(limits.device)
    except ValueError:
        return  # each job says why
    warm.prestart(count, limits.isolation, device, warm_env(limits, device), bool(verified_test_ids(assignment)))


def _run_warm(private: Path, verify_dir: Path, assignment: str, student: str, limits: Limits, device: str,
              repeat: bool) -> tuple[sandbox.Watched, dict]:
    """Both halves on this thread's warm processes, under the limits; the repeat is tried again
    once on a fresh server if its server died (a submission that kills it fails both times)."""
    env = warm_env(limits, device)
    slot = warm.slot()
    worker, server = slot.prepare(limits.isolation, device, env, repeat)
    job = server.submit(verify_dir) if server else None
    worker.submit(private, assignment, student)

    def students() -> list:
        return worker.student_processes() + (server.student_processes() if server else [])

    def finished() -> bool:
        return worker.answered() and (server is None or server.answered())

    watched = sandbox.watch(students, finished, limits.timeout, limits.memory_bytes)
    if watched.limit:
        sandbox.kill(students())
    try:
        result = worker.result(warm.GRACE_SECONDS)
    except warm.WarmProcessDied:
        slot.close()  # the repeat's answer is not wanted any more: both start afresh
        raise
    if server is not None:
        try:
            server.collect(job, verify_dir, warm.GRACE_SECONDS)
        except warm.WarmProcessDied:
            if watched.limit:
                return watched, result
            server = slot.restart_repeat(limits.isolation, device, env)
            job = server.submit(verify_dir)
            again = sandbox.watch(server.student_processes, server.answered,
                                  max(limits.timeout - watched.seconds, 1.0), limits.memory_bytes)
            if again.limit:
                sandbox.kill(server.student_processes())
            server.collect(job, verify_dir, warm.GRACE_SECONDS)
            watched = sandbox.Watched(again.limit, watched.seconds + again.seconds,
                                      max(watched.peak_memory, again.peak_memory))
    return watched, result
