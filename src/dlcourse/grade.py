"""`course grade`: import, autograde every submission, feedback, CSV and a table."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dlcourse import nbgrader_api
from dlcourse.autograde import Outcome, autograde_student
from dlcourse.course import Course
from dlcourse.errors import CourseError
from dlcourse.reports import StudentScore, collect_scores, write_csvs
from dlcourse.submissions import ImportReport, import_folder

DEFAULT_TIMEOUT = 1800.0


@dataclass
class GradeResult:
    assignment: str
    questions: list[str]
    rows: list[StudentScore]
    csv_path: Path
    questions_csv_path: Path
    imported: ImportReport | None


def db_url(course: Course) -> str:
    return nbgrader_api.load_config(course).CourseDirectory.db_url


def grade(
    course: Course,
    assignment: str,
    source: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Callable[[int, int, Outcome], None] | None = None,
) -> GradeResult:
    """Grade every submission of ``assignment`` in the course's submitted/ folder."""
    course.require_assignment(assignment)
    if timeout <= 0:
        raise CourseError(f"--timeout must be positive, got {timeout:g}")
    imported = import_folder(course, assignment, source) if source is not None else None
    students = course.student_ids(assignment)
    if not students:
        raise CourseError(
            f"no submissions of {assignment} in {course.submitted} (import some with --from PATH)"
        )
    url = db_url(course)
    # Register the assignment (notebooks, grade cells, points) in the gradebook
    # without touching assignments/.
    with tempfile.TemporaryDirectory(prefix="dlcourse-register-") as tmp:
        nbgrader_api.generate_assignment(course, assignment, release_dir=Path(tmp), db_url=url)

    outcomes = []
    for index, student in enumerate(students, start=1):
        outcome = autograde_student(course, assignment, student, timeout)
        outcomes.append(outcome)
        if progress:
            progress(index, len(students), outcome)

    feedback_api = nbgrader_api.api(course)
    for outcome in outcomes:
        if outcome.ok:
            result = feedback_api.generate_feedback(assignment, outcome.student, force=True)
            if not result["success"]:
                outcome.reason = "feedback failed: " + nbgrader_api.failure_reason(result)

    questions, rows = collect_scores(url, assignment, outcomes)
    totals, per_question = write_csvs(course.grades, assignment, questions, rows)
    return GradeResult(assignment, questions, rows, totals, per_question, imported)
