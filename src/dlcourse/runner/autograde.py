"""Grade one submission in a private, confined working folder.

For each submission the trusted parent builds a throw-away folder holding a
minimal nbgrader course (configuration, the assignment's hidden files, a copy
of the submission and a private gradebook) and, beside it, a *challenge* for
:mod:`dlcourse.runner.verify`. Two confined children run side by side under one
wall-clock deadline and one memory budget: nbgrader's autograde of the
notebook, and the repetition of the hidden tests outside the kernel. Nothing
here writes to the course; :mod:`dlcourse.runner.grade` merges the results.

Run as a module it is the autograde child (inside the confinement).
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import nbformat

from dlcourse.errors import CourseError
from dlcourse.runner import sandbox
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


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        return value if isinstance(value, dict) else None
    return None


def grade_submission(course: Course, assignment: str, student: str, template_db: Path, workdir: Path,
                     limits: Limits) -> Outcome:
    """Autograde and verify one submission in ``workdir``; never raises for a bad submission."""
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
    # Unconfined (--unconfined) means unconfined: the kernel manager of plain nbgrader would
    # otherwise confine the kernel on its own (dlcourse.runner.kernel_sandbox).
    unconfined = {} if limits.isolation.kind == "bubblewrap" else {"DLCOURSE_UNCONFINED": "1"}
    env = sandbox.child_env(workdir, {**QUIET_ENV, **sandbox.device_env(device), **unconfined})
    python = sys.executable
    jobs = [(sandbox.confined([python, "-m", "dlcourse.runner.autograde", str(private), assignment, student],
                              private, limits.isolation, device), private)]
    repeat = bool(verified_test_ids(assignment))
    if repeat:
        jobs.append((sandbox.confined([python, "-m", "dlcourse.runner.verify", str(verify_dir)], verify_dir,
                                      limits.isolation, device), verify_dir))
    finished = sandbox.run_limited(jobs, env, limits.timeout, limits.memory_bytes)
    graded = finished[0]
    outcome = Outcome(student, False, seconds=max(f.seconds for f in finished),
                      peak_memory=graded.peak_memory, findings=findings, workdir=workdir, device=device)
    if graded.limit:
        outcome.reason = graded.limit
        return outcome
    result = _last_json(graded.stdout)
    if result is None:
        tail = (graded.stderr.strip().splitlines() or ["no output"])[-1]
        outcome.reason = f"grading process died (exit {graded.returncode}): {tail[:200]}"
        return outcome
    outcome.ok = bool(result.get("success"))
    outcome.reason = str(result.get("reason", ""))
    outcome.verdicts = judge_outputs(course, assignment, verify_dir) if repeat else []
    return outcome


def _worker(root: str, assignment: str, student: str) -> int:
    from dlcourse.runner import nbgrader_api

    course = Course(Path(root))
    result = nbgrader_api.api(course).autograde(assignment, student, force=True, create=True)
    reason = "" if result["success"] else nbgrader_api.failure_reason(result)
    print(json.dumps({"success": bool(result["success"]), "reason": reason}))
    return 0


if __name__ == "__main__":
    sys.exit(_worker(*sys.argv[1:4]))
