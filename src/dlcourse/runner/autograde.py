"""Grade one submission in a private working folder.

For each submission the trusted parent builds a throw-away folder holding a minimal nbgrader
course (configuration, the assignment's source notebook and hidden files, a copy of the
submission and a private gradebook) and hands it to this thread's warm autograde worker
(:mod:`dlcourse.runner.warm`). The worker runs nbgrader's autograde: the kernel confined in a
sandbox of its own, the hidden tests decided outside it by the trusted side
(:mod:`dlcourse.runner.trusted`), all of the student's code under one time and memory budget.
Nothing here writes to the course; :mod:`dlcourse.runner.grade` merges the results.
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
from dlcourse.runner.nbgrader_plugins import hidden_files
from dlcourse.runner.notebooks import read_notebook
from dlcourse.runner.repeat import Verdict
from dlcourse.runner.tamper import restore_deleted_tests, scan_submission
from dlcourse.runtime import GRADING_VARIABLE

#: Environment of the grading worker, and so of the student's kernel and the repeat.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    # oneDNN's fused CPU kernels change round-off from run to run and print a
    # notice at import; grading wants neither.
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
    GRADING_VARIABLE: "autograde",
}
#: Seconds the parent waits for the worker beyond the submission's own time limit (nbgrader's
#: own work before and after the student's code: sanitising, saving grades).
GRACE_SECONDS = 300.0
#: Who is to blame for a submission that was not graded: its own content, or the grader.
FAULT_SUBMISSION = "submission"
FAULT_GRADER = "grader"


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
    #: for a submission not graded: FAULT_SUBMISSION (its own doing: a limit, not a notebook)
    #: or FAULT_GRADER (the machine or the grader failed; a rerun grades it again)
    fault: str = ""

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
    """The private course: configuration, source notebook and hidden files, the submission, a gradebook."""
    private = workdir / "course"
    (private / "solutions" / assignment).mkdir(parents=True)
    shutil.copyfile(course.root / CONFIG_NAME, private / CONFIG_NAME)
    source = course.solutions / assignment
    shutil.copyfile(course.source_notebook(assignment), private / "solutions" / assignment / f"{assignment}.ipynb")
    for path in hidden_files(source):
        target = private / "solutions" / assignment / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    submitted = course.submitted / student / assignment
    shutil.copytree(submitted, private / "submitted" / student / assignment, symlinks=True,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copyfile(template_db, private / "gradebook.db")
    notebook = private / "submitted" / student / assignment / f"{assignment}.ipynb"
    nb = read_notebook(notebook)
    if restore_deleted_tests(nb, read_notebook(course.source_notebook(assignment))):
        nbformat.write(nb, notebook)


def grade_submission(course: Course, assignment: str, student: str, template_db: Path, workdir: Path,
                     limits: Limits) -> Outcome:
    """Autograde one submission in ``workdir`` on this thread's warm worker; never raises for a
    bad submission."""
    submitted = course.submitted / student / assignment
    reason = precheck(submitted / f"{assignment}.ipynb", assignment)
    if reason:
        return Outcome(student, False, reason, fault=FAULT_SUBMISSION)
    findings = scan_submission(submitted / f"{assignment}.ipynb", course.source_notebook(assignment))
    try:
        device = sandbox.resolve_device(limits.device)
    except ValueError as exc:
        return Outcome(student, False, f"{exc} (graded on {socket.gethostname()})", fault=FAULT_GRADER)
    prepare(course, assignment, student, template_db, workdir)
    outcome = Outcome(student, False, findings=findings, workdir=workdir, device=device)
    try:
        result = _autograde(workdir / "course", assignment, student, limits, device)
    except warm.WarmProcessDied as exc:
        # Once more on a fresh worker: a worker that dies twice on the same submission died of it.
        try:
            result = _autograde(workdir / "course", assignment, student, limits, device)
        except warm.WarmProcessDied:
            outcome.reason = f"the grading process died each time this submission was graded ({exc})"
            outcome.fault = FAULT_SUBMISSION
            return outcome
    outcome.seconds = float(result.get("seconds") or 0.0)
    outcome.peak_memory = int(result.get("peak_memory") or 0)
    outcome.verdicts = [Verdict(**v) for v in result.get("verdicts", [])]
    outcome.ok = bool(result.get("success"))
    outcome.reason = str(result.get("reason", ""))
    if not outcome.ok:
        outcome.fault = FAULT_GRADER if result.get("unavailable") else FAULT_SUBMISSION
    return outcome


def _autograde(private: Path, assignment: str, student: str, limits: Limits, device: str) -> dict:
    """nbgrader's autograde of the private course, on this thread's warm worker."""
    slot = warm.slot()
    try:
        worker = slot.prepare(warm_env(limits, device))
        worker.submit(private, assignment, student, limits.timeout, limits.memory_bytes)
        return worker.result(limits.timeout + GRACE_SECONDS)
    except warm.WarmProcessDied:
        slot.close()  # the next try starts a fresh worker
        raise


def warm_env(limits: Limits, device: str) -> dict[str, str]:
    """What the warm worker of a batch runs with (and so the student's kernel and the repeat)."""
    return {**QUIET_ENV, **sandbox.device_env(device), **sandbox.confinement_env(limits.isolation)}


def prestart(limits: Limits, count: int) -> None:
    """Start the warm workers of ``count`` grading threads before the batch's first job."""
    try:
        device = sandbox.resolve_device(limits.device)
    except ValueError:
        return  # each job says why
    warm.prestart(count, warm_env(limits, device))
