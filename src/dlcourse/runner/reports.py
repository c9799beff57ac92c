"""Scores out of the gradebook: CSV files for the LMS and a table for the TA."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from dlcourse.runner.autograde import Outcome
from dlcourse.runner.gradebook import assignment_scores
from dlcourse.runner.untrusted import for_csv, for_terminal


@dataclass
class StudentScore:
    student: str
    score: float = 0.0
    max_score: float = 0.0
    needs_manual: bool = False
    status: str = "graded"
    questions: dict[str, float | None] = field(default_factory=dict)
    question_max: dict[str, float] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)  # suspected tampering, from the static scan
    hidden_failed: list[str] = field(default_factory=list)  # hidden tests that failed (in and outside the notebook)
    #: why each failed hidden test failed, as the repeat outside the notebook (and the feedback) says it
    hidden_messages: dict[str, str] = field(default_factory=dict)


def collect_scores(db_url: str, assignment: str, outcomes: list[Outcome]) -> tuple[list[str], list[StudentScore]]:
    """Per-question and total scores for each graded student, in outcome order.

    A submission that could not be graded scores 0 with its reason as status.
    Manually graded questions that are not graded yet count as None.
    """
    rows: list[StudentScore] = []
    questions: list[str] = []
    maxima: dict[str, float] = {}
    with Gradebook(db_url) as gb:
        assignment_row = gb.find_assignment(assignment)
        max_score = float(assignment_row.max_score)
        for notebook in assignment_row.notebooks:
            for cell in notebook.grade_cells:
                questions.append(cell.name)
                maxima[cell.name] = float(cell.max_score)
        for outcome in outcomes:
            row = StudentScore(outcome.student, max_score=max_score, question_max=maxima)
            rows.append(row)
            if not outcome.ok:
                row.status = f"not graded: {outcome.reason}"
                row.questions = dict.fromkeys(questions, 0.0)
                continue
            try:
                submission = gb.find_submission(assignment, outcome.student)
            except MissingEntry:
                row.status = "not graded: no submission in the gradebook"
                continue
            for nb in submission.notebooks:
                for grade in nb.grades:
                    if grade.needs_manual_grade:
                        row.needs_manual = True
                        row.questions[grade.name] = None
                    else:
                        row.questions[grade.name] = float(grade.score)
            row.score = float(submission.score)
            if row.needs_manual:
                row.status = "graded, manual pending"
    return questions, rows


def write_csvs(folder: Path, assignment: str, questions: list[str], rows: list[StudentScore]) -> tuple[Path, Path]:
    """``<assignment>.csv`` (one line per student) and ``<assignment>_questions.csv``.

    Every cell goes through :func:`for_csv`: student ids come from file names,
    statuses, messages and findings quote what a submission did, so none may
    start a formula; the scores stay numbers.
    """
    folder.mkdir(parents=True, exist_ok=True)
    totals = folder / f"{assignment}.csv"
    with totals.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student_id", "assignment", "score", "max_score", "status", "hidden_tests_failed_in",
                         "tampering", "hidden_test_messages"])
        for row in rows:
            messages = " | ".join(f"{test}: {message}" for test, message in row.hidden_messages.items())
            writer.writerow([for_csv(cell) for cell in (
                row.student, assignment, row.score, row.max_score, row.status, " ".join(row.hidden_failed),
                " | ".join(row.findings), messages)])
    per_question = folder / f"{assignment}_questions.csv"
    with per_question.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student_id", *questions, "score", "max_score"])
        for row in rows:
            cells = [row.questions.get(q) for q in questions]
            writer.writerow([for_csv(cell) for cell in (row.student, *cells, row.score, row.max_score)])
    return totals, per_question


def write_lms_csv(folder: Path, db_url: str) -> Path:
    """``grades.csv``: one row per student, score and maximum of every assignment, for an LMS import."""
    assignments, scores = assignment_scores(db_url)
    path = folder / "grades.csv"
    folder.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student_id", *(c for name, _ in assignments for c in (name, f"{name} max"))])
        for student in sorted(scores):
            cells = []
            for name, maximum in assignments:
                value = scores[student].get(name)
                cells += ["" if value is None else f"{value:g}", f"{maximum:g}"]
            writer.writerow([for_csv(student), *cells])
    return path


def score_table(assignment: str, questions: list[str], rows: list[StudentScore], detail_limit: int = 8):
    """A rich renderable: per-question points (students across, when few) and totals.

    Questions run down the rows so the table stays readable in an 80-column
    terminal; for a whole class only the totals table is shown (the per-question
    CSV has the rest). Student ids and statuses are a submission's text: shown
    as plain text (no rich markup), escaped by :func:`for_terminal`.
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def plain(text: str) -> Text:
        return Text(for_terminal(text))

    parts = []
    if len(rows) <= detail_limit:
        detail = Table(title=f"{assignment}: points per question ('?' = to be graded by hand)",
                       title_justify="left")
        detail.add_column("question")
        detail.add_column("max", justify="right")
        for row in rows:
            detail.add_column(plain(row.student), justify="right")
        maxima = rows[0].question_max if rows else {}
        for q in questions:
            cells = []
            for row in rows:
                value = row.questions.get(q)
                graded = row.status.startswith("graded")
                cells.append("?" if value is None and graded else "-" if not graded else f"{value:g}")
            detail.add_row(plain(q), f"{maxima.get(q, 0):g}", *cells)
        detail.add_row("total", f"{rows[0].max_score:g}" if rows else "",
                       *(f"{row.score:g}" for row in rows), style="bold")
        parts.append(detail)
    totals = Table(title=f"{assignment}: totals", title_justify="left")
    totals.add_column("student")
    totals.add_column("score", justify="right")
    totals.add_column("status", overflow="fold")
    for row in rows:
        status = row.status
        if row.hidden_failed:
            status += "; hidden tests failed in: " + ", ".join(row.hidden_failed)
        if row.findings:
            status += f"; {len(row.findings)} tampering finding(s)"
        totals.add_row(plain(row.student), f"{row.score:g}/{row.max_score:g}", plain(status))
    parts.append(totals)
    return Group(*parts)
