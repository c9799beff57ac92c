"""Gradebook bookkeeping for parallel, confined grading.

Each submission is autograded against a private copy of a *template*
gradebook (SQLite, holding only the assignment), so workers never share a
database file. The trusted parent then copies the result into the course's
gradebook -- nbgrader's SQLite by default, or a server database such as
PostgreSQL (``--db``) -- one submission at a time.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from nbgrader.api import Grade, Gradebook, MissingEntry, SubmittedAssignment
from nbgrader.utils import determine_grade
from sqlalchemy.exc import SAWarning

from dlcourse.runner.notebooks import grade_id, read_notebook
from dlcourse.runner.untrusted import for_name

#: What a cell whose score is not final says instead of a score (:func:`pending_cells`).
NOT_GRADED = "not graded yet"  # no score from anyone yet
UNDER_REVIEW = "under review"  # a hand grade whose automatic outcome changed


def _quiet() -> None:
    """nbgrader's add_submission trips SQLAlchemy's autoflush warnings; they are harmless here."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=SAWarning)


def trusted_grades(main_url: str, assignment: str, notebook: Path) -> dict[str, float | None]:
    """Each grade cell's automatic score, from the autograded notebook and the course's gradebook.

    The private gradebook was writable while the student's code ran, so none of
    its numbers are used: points, solution flags and checksums come from the
    course's gradebook, and the outputs are those nbgrader wrote after every
    student process had stopped. A test cell scores full marks if and only if no
    output of it is an error: nbgrader's ``determine_grade`` stops at the first
    ``execute_result`` and reads it as a partial score, which student code can
    emit before the cell raises. Answer cells follow nbgrader's rule. None means
    "to be graded by hand"; a grade cell missing from the notebook scores 0, and
    one that appears twice scores the lower of the two.
    """
    nb = read_notebook(notebook)
    with Gradebook(main_url) as gb:
        row = gb.find_notebook(notebook.stem, assignment)
        points = {c.name: float(c.max_score) for c in row.grade_cells}
        solutions = {c.name for c in row.solution_cells}
        checksums = {c.name: c.checksum for c in row.source_cells}
        locked = {c.name: bool(c.locked) for c in row.source_cells}
    scores: dict[str, float | None] = dict.fromkeys(points, 0.0)
    seen: set[str] = set()
    for cell in nb.cells:
        name = grade_id(cell)
        if name not in points:
            continue
        if cell.cell_type == "code" and name not in solutions:
            raised = any(out.get("output_type") == "error" for out in cell.get("outputs", []))
            score: float | None = 0.0 if raised else points[name]
        else:
            trusted = copy.deepcopy(cell)
            trusted.metadata["nbgrader"] = {"grade": True, "solution": name in solutions, "grade_id": name,
                                            "points": points[name], "checksum": checksums.get(name),
                                            "locked": locked.get(name, False)}
            score, _max = determine_grade(trusted)
            score = None if score is None else min(float(score), points[name])
        if name in seen and scores[name] is not None:
            score = scores[name] if score is None else min(score, scores[name])
        scores[name] = score
        seen.add(name)
    return scores


def _same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-9)


def _submission(gb: Gradebook, assignment: str, student: str, timestamp: datetime | None) -> SubmittedAssignment:
    """The student's submission, created with every grade cell if it is new; hand grading kept."""
    gb.update_or_create_student(student)
    try:
        submission = gb.find_submission(assignment, student)
    except MissingEntry:
        return gb.add_submission(assignment, student, timestamp=timestamp)
    submission.timestamp = timestamp
    return submission


def _set_auto_score(grade: Grade, score: float | None, resubmitted: bool) -> bool:
    """nbgrader's SaveAutoGrades rule, narrowed: a hand grade stays, and is marked for review
    only where the automatic outcome changed or the student handed in something new.
    Returns True when a hand grade was marked for review."""
    changed = not _same(grade.auto_score, score)
    grade.auto_score = score
    if grade.manual_score is not None:
        review = changed or resubmitted
        grade.needs_manual_grade = grade.needs_manual_grade or review
        return review
    grade.needs_manual_grade = score is None
    return False


def merge_submission(private_url: str, main_url: str, assignment: str, student: str,
                     scores: dict[str, dict[str, float | None]], flagged: bool,
                     resubmitted: bool = False) -> list[str]:
    """Record one autograded submission in the course's gradebook, keeping all hand grading.

    ``scores`` maps notebook name -> :func:`trusted_grades`; only the
    submission time is read from the private gradebook. Manual scores, manual
    comments and extra credit are never touched (removing and re-adding the
    submission would erase them). Returns the hand-graded cells marked for
    review again.
    """
    _quiet()
    with Gradebook(private_url) as src:
        timestamp = src.find_submission(assignment, student).timestamp
    review = []
    with Gradebook(main_url) as dst:
        submission = _submission(dst, assignment, student, timestamp)
        for target_nb in submission.notebooks:
            target_nb.flagged = flagged
            nb_scores = scores.get(target_nb.name, {})
            for grade in target_nb.grades:
                if _set_auto_score(grade, nb_scores.get(grade.name, 0.0), resubmitted):
                    review.append(grade.name)
            for comment in target_nb.comments:
                comment.auto_comment = None  # a failure's reason, from an earlier run, is gone
        dst.db.commit()
    return review


def record_failure(main_url: str, assignment: str, student: str, reason: str,
                   timestamp: datetime | None = None) -> None:
    """A submission that could not be graded: every automatic score 0, the reason in each comment,
    flagged; hand grading entered earlier stays (and is marked for review where it changed)."""
    _quiet()
    with Gradebook(main_url) as gb:
        submission = _submission(gb, assignment, student, timestamp)
        for notebook in submission.notebooks:
            notebook.flagged = True
            for grade in notebook.grades:
                _set_auto_score(grade, 0.0, resubmitted=False)
            for comment in notebook.comments:
                comment.auto_comment = f"Not graded: {reason}"
        gb.db.commit()


@dataclass(frozen=True)
class Total:
    """A submission's total as the gradebook has it now."""

    score: float
    max_score: float
    pending: bool  # some cell still waits for a TA (ungraded, or marked for review)


def totals(url: str, assignment: str) -> dict[str, Total]:
    """Every submission's total of ``assignment`` (none if the assignment is not in the gradebook)."""
    with Gradebook(url) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            return {}
        # One joined query (nbgrader's submission_dicts), not several per submission.
        return {s["student"]: Total(float(s["score"] or 0.0), float(s["max_score"] or 0.0),
                                    bool(s["needs_manual_grade"]))
                for s in gb.submission_dicts(assignment)}


def pending_cells(url: str, assignment: str, student: str) -> dict[str, dict[str, str]]:
    """Per notebook, the cells whose score is not final: :data:`NOT_GRADED` (no score from
    anyone) or :data:`UNDER_REVIEW` (a hand grade whose automatic outcome changed)."""
    with Gradebook(url) as gb:
        submission = gb.find_submission(assignment, student)
        return {nb.name: {g.name: NOT_GRADED if g.manual_score is None else UNDER_REVIEW
                          for g in nb.grades if g.needs_manual_grade}
                for nb in submission.notebooks}


def grading_state(url: str, assignment: str, student: str) -> str:
    """A fingerprint of every score and comment of one submission: feedback is stale when it moves."""
    with Gradebook(url) as gb:
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            return ""
        parts = [(nb.name, g.name, g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade)
                 for nb in submission.notebooks for g in nb.grades]
        parts += [(nb.name, c.name, c.auto_comment, c.manual_comment)
                  for nb in submission.notebooks for c in nb.comments]
    return hashlib.sha256(repr(sorted(parts, key=repr)).encode()).hexdigest()


def grading_inputs(url: str, assignment: str) -> str:
    """A fingerprint of what the gradebook holds of the assignment that can change a grade:
    grade cells and their points, and the source of every cell nbgrader restores or checks
    (test cells with their hidden tests, locked cells, released answer cells). Prose elsewhere
    in the source notebook is not part of it."""
    with Gradebook(url) as gb:
        parts = []
        for nb in gb.find_assignment(assignment).notebooks:
            parts += [("grade", nb.name, c.name, c.cell_type, float(c.max_score)) for c in nb.grade_cells]
            parts += [("solution", nb.name, c.name) for c in nb.solution_cells]
            parts += [("source", nb.name, c.name, c.cell_type, c.source, c.checksum, bool(c.locked))
                      for c in nb.source_cells]
    return hashlib.sha256(repr(sorted(parts, key=repr)).encode()).hexdigest()


def set_names(url: str, names: dict[str, tuple[str, str]], replace: bool) -> None:
    """First and last names for formgrader, with nbgrader's own update_or_create_student.

    ``replace`` False only fills students who have no name yet (a file name from an
    LMS zip must not overwrite the roster's name). Names come from files students can
    influence and formgrader shows them unescaped: they are made plain first."""
    _quiet()
    with Gradebook(url) as gb:
        for student, (first, last) in names.items():
            try:
                known = gb.find_student(student)
            except MissingEntry:
                known = None
            if known is not None and not replace and (known.first_name or known.last_name):
                continue
            gb.update_or_create_student(student, first_name=for_name(first), last_name=for_name(last))


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
