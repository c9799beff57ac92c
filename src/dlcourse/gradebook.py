"""Gradebook bookkeeping for parallel, confined grading.

Each submission is autograded against a private copy of a *template*
gradebook (SQLite, holding only the assignment), so workers never share a
database file. The trusted parent then copies the result into the course's
gradebook -- nbgrader's SQLite by default, or a server database such as
PostgreSQL (``--db``) -- one submission at a time.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry


@dataclass(frozen=True)
class Override:
    """A grade the trusted side sets instead of what the kernel reported."""

    cell: str
    score: float
    why: str


def _quiet() -> None:
    """nbgrader's add_submission trips SQLAlchemy's autoflush warnings; they are harmless here."""
    import warnings

    from sqlalchemy.exc import SAWarning

    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=SAWarning)


def ensure_student(gb: Gradebook, student: str) -> None:
    try:
        gb.find_student(student)
    except MissingEntry:
        gb.add_student(student)


def _remove_submission(url: str, assignment: str, student: str) -> None:
    """Forget an earlier grading of this submission (in its own session, so the new one starts clean)."""
    _quiet()
    with Gradebook(url) as gb:
        ensure_student(gb, student)
        with contextlib.suppress(MissingEntry):
            gb.remove_submission(assignment, student)


def merge_submission(private_url: str, main_url: str, assignment: str, student: str,
                     overrides: list[Override], flagged: bool) -> None:
    """Copy one autograded submission from a private gradebook into the main one."""
    _quiet()
    _remove_submission(main_url, assignment, student)
    with Gradebook(private_url) as src, Gradebook(main_url) as dst:
        graded = src.find_submission(assignment, student)
        dst.add_submission(assignment, student, timestamp=graded.timestamp)
        by_cell = {o.cell: o for o in overrides}
        for notebook in graded.notebooks:
            target_nb = dst.find_submission_notebook(notebook.name, assignment, student)
            target_nb.flagged = flagged
            for grade in notebook.grades:
                target = dst.find_grade(grade.name, notebook.name, assignment, student)
                target.auto_score = grade.auto_score
                target.manual_score = grade.manual_score
                target.extra_credit = grade.extra_credit
                target.needs_manual_grade = grade.needs_manual_grade
                if grade.name in by_cell:
                    target.auto_score = by_cell[grade.name].score
                    target.manual_score = None
                    target.needs_manual_grade = False
            for comment in notebook.comments:
                target = dst.find_comment(comment.name, notebook.name, assignment, student)
                target.auto_comment = comment.auto_comment
                target.manual_comment = comment.manual_comment
            notes = [f"{o.cell}: {o.why}" for o in overrides]
            if notes:
                for comment in target_nb.comments:
                    comment.auto_comment = "Grader: " + "; ".join(notes)
        dst.db.commit()


def record_failure(main_url: str, assignment: str, student: str, reason: str) -> None:
    """A submission that could not be graded: every cell 0, the reason in each comment, flagged."""
    _quiet()
    _remove_submission(main_url, assignment, student)
    with Gradebook(main_url) as gb:
        submission = gb.add_submission(assignment, student)
        for notebook in submission.notebooks:
            notebook.flagged = True
            for grade in notebook.grades:
                grade.auto_score = 0.0
                grade.manual_score = None
                grade.needs_manual_grade = False
            for comment in notebook.comments:
                comment.auto_comment = f"Not graded: {reason}"
        gb.db.commit()


def copy_template(template: Path, dest: Path) -> str:
    """A private gradebook for one worker; returns its URL."""
    dest.write_bytes(template.read_bytes())
    return f"sqlite:///{dest}"


def assignment_scores(main_url: str) -> tuple[list[tuple[str, float]], dict[str, dict[str, float]]]:
    """(assignment, max score) for every assignment, and each student's score per assignment."""
    with Gradebook(main_url) as gb:
        assignments = [(a.name, float(a.max_score)) for a in gb.assignments]
        scores: dict[str, dict[str, float]] = {}
        for name, _ in assignments:
            for submission in gb.find_assignment(name).submissions:
                scores.setdefault(submission.student.id, {})[name] = float(submission.score)
    return assignments, scores
