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


def _remove_submission(url: str, assignment: str, student: str) -> None:
    """Forget an earlier grading of this submission (in its own session, so the new one starts clean)."""
    _quiet()
    with Gradebook(url) as gb:
        gb.update_or_create_student(student)
        with contextlib.suppress(MissingEntry):
            gb.remove_submission(assignment, student)


def trusted_grades(main_url: str, assignment: str, notebook: Path) -> dict[str, float | None]:
    """Each grade cell's automatic score, from the autograded notebook and the course's gradebook.

    The private gradebook was writable while the student's code ran, so none of
    its numbers are used: points, solution flags and checksums come from the
    course's gradebook, and nbgrader's own rule (``determine_grade``) is applied
    to the outputs nbgrader wrote after every student process had stopped.
    None means "to be graded by hand"; a grade cell missing from the notebook
    scores 0.
    """
    import copy

    from nbgrader.utils import determine_grade

    from dlcourse.notebooks import grade_id, read_notebook

    nb = read_notebook(notebook)
    with Gradebook(main_url) as gb:
        row = gb.find_notebook(notebook.stem, assignment)
        points = {c.name: float(c.max_score) for c in row.grade_cells}
        solutions = {c.name for c in row.solution_cells}
        checksums = {c.name: c.checksum for c in row.source_cells}
        locked = {c.name: bool(c.locked) for c in row.source_cells}
    scores: dict[str, float | None] = dict.fromkeys(points, 0.0)
    for cell in nb.cells:
        name = grade_id(cell)
        if name not in points:
            continue
        trusted = copy.deepcopy(cell)
        trusted.metadata["nbgrader"] = {"grade": True, "solution": name in solutions, "grade_id": name,
                                        "points": points[name], "checksum": checksums.get(name),
                                        "locked": locked.get(name, False)}
        score, _max = determine_grade(trusted)
        scores[name] = None if score is None else min(float(score), points[name])
    return scores


def merge_submission(private_url: str, main_url: str, assignment: str, student: str,
                     scores: dict[str, dict[str, float | None]], overrides: list[Override],
                     flagged: bool) -> None:
    """Record one autograded submission in the course's gradebook.

    ``scores`` maps notebook name -> :func:`trusted_grades`; only the
    submission time is read from the private gradebook.
    """
    _quiet()
    with Gradebook(private_url) as src:
        timestamp = src.find_submission(assignment, student).timestamp
    _remove_submission(main_url, assignment, student)
    by_cell = {o.cell: o for o in overrides}
    notes = [f"{o.cell}: {o.why}" for o in overrides]
    with Gradebook(main_url) as dst:
        submission = dst.add_submission(assignment, student, timestamp=timestamp)
        for target_nb in submission.notebooks:
            target_nb.flagged = flagged
            nb_scores = scores.get(target_nb.name, {})
            for grade in target_nb.grades:
                score = nb_scores.get(grade.name, 0.0)
                if grade.name in by_cell:
                    score = by_cell[grade.name].score
                grade.auto_score = score
                grade.manual_score = None
                grade.needs_manual_grade = score is None
            for comment in target_nb.comments:
                comment.auto_comment = ("Grader: " + "; ".join(notes)) if notes else None
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
