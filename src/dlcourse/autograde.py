"""Autograde one submission in a child process, with a wall-clock limit.

A child process per submission keeps one student's crash or hang from
stopping the batch: the whole process group (nbgrader and its kernel) is
killed when the limit is reached. Run as a module it is that child.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dlcourse.course import Course
from dlcourse.errors import CourseError
from dlcourse.notebooks import read_notebook

#: Environment of the grading process and so of the student's kernel.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    # oneDNN's fused CPU kernels change round-off from run to run and print a
    # notice at import; grading wants neither.
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
    "NBGRADER_EXECUTION": "autograde",
}


@dataclass
class Outcome:
    student: str
    ok: bool
    reason: str = ""
    seconds: float = 0.0


def precheck(course: Course, assignment: str, student: str) -> str | None:
    """A reason the submission cannot be graded at all, found without running it."""
    notebook = course.submitted / student / assignment / f"{assignment}.ipynb"
    if not notebook.exists():
        return f"no {assignment}.ipynb in the submission"
    try:
        read_notebook(notebook)
    except CourseError as exc:
        return str(exc).replace(str(notebook), f"{assignment}.ipynb")
    return None


def autograde_student(course: Course, assignment: str, student: str, timeout: float) -> Outcome:
    """Autograde one student's submission; never raises for a bad submission."""
    start = time.monotonic()
    reason = precheck(course, assignment, student)
    if reason:
        return Outcome(student, False, reason, 0.0)
    cmd = [sys.executable, "-m", "dlcourse.autograde", str(course.root), assignment, student]
    env = {**os.environ, **QUIET_ENV}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env=env, cwd=course.root,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Outcome(student, False, f"time limit of {timeout:g} s exceeded", timeout)
    seconds = time.monotonic() - start
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (err.strip().splitlines() or ["no output"])[-1]
        return Outcome(student, False, f"grading process died (exit {proc.returncode}): {tail}", seconds)
    return Outcome(student, bool(result["success"]), result.get("reason", ""), seconds)


def _worker(root: str, assignment: str, student: str) -> int:
    from dlcourse import nbgrader_api

    course = Course(Path(root))
    result = nbgrader_api.api(course).autograde(assignment, student, force=True, create=True)
    reason = "" if result["success"] else nbgrader_api.failure_reason(result)
    print(json.dumps({"success": bool(result["success"]), "reason": reason}))
    return 0


if __name__ == "__main__":
    sys.exit(_worker(*sys.argv[1:4]))
