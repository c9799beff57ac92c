"""Feedback for students: nbgrader's feedback HTML, written again whenever the scores or
comments behind it change, and honest about scores that are not final.

:func:`refresh_feedback` writes the feedback of every graded student whose gradebook state
moved since it was written (a regrade, a TA's hand grading in formgrader). During `course grade`
a :class:`FeedbackWriter` does this for each submission as soon as it is graded, in a process of
its own (``python -m dlcourse.runner.feedback ROOT ASSIGNMENT DB_URL``), while the others are
still being graded; the run ends with one more :func:`refresh_feedback` for what is still stale.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from dlcourse.runner import gradebook, nbgrader_api, records, warm
from dlcourse.runner.course import Course
from dlcourse.runner.gradebook import NOT_GRADED
from dlcourse.runner.nbgrader_plugins import name_feedback_summary


def refresh_feedback(course: Course, assignment: str, students: list[str], main_url: str) -> tuple[list[str], str]:
    """Write the feedback of every graded student whose scores or comments changed since it was
    written (a regrade, or a TA's hand grading in formgrader). Returns the students and the
    first problem, if any."""
    feedback_api = nbgrader_api.api(course, CourseDirectory={"db_url": main_url})
    written, problem = [], ""
    for student in students:
        record = records.read(course, assignment, student)
        if record is None or not record.outcome.ok:
            continue
        state = gradebook.grading_state(main_url, assignment, student)
        html = course.feedback / student / assignment
        if record.feedback == state and html.is_dir() and any(html.glob("*.html")):
            continue
        result = feedback_api.generate_feedback(assignment, student, force=True)
        if not result["success"]:
            problem = problem or f"feedback for {student} failed: {nbgrader_api.failure_reason(result)}"
            continue
        mark_provisional(course, assignment, student, main_url)
        for page in html.glob("*.html"):  # the summary names each graded cell, not only its kind
            page.write_text(name_feedback_summary(page.read_text()))
        records.note_feedback(course, assignment, student, state)
        written.append(student)
    return written, problem


def mark_provisional(course: Course, assignment: str, student: str, main_url: str) -> None:
    """Written answers waiting for a TA read "not graded yet" in the feedback, the total provisional."""
    for notebook, pending in gradebook.pending_cells(main_url, assignment, student).items():
        path = course.feedback / student / assignment / f"{notebook}.html"
        if pending and path.is_file():
            path.write_text(mark_pending(path.read_text(), notebook, pending))


def mark_pending(html: str, notebook: str, pending: dict[str, str]) -> str:
    """Feedback HTML that tells the student which scores are not final.

    nbgrader's feedback template prints ``Score: 0.0 / 2.0`` for a written
    answer no TA has graded yet, and a total that looks final. ``pending`` maps
    grade_id -> :data:`~dlcourse.runner.gradebook.NOT_GRADED` or
    :data:`~dlcourse.runner.gradebook.UNDER_REVIEW`; those cells say so instead
    of a score, and the total is called provisional.
    """
    if not pending:
        return html
    for gid, state in pending.items():
        anchor = re.escape(gid)
        html = re.sub(rf'(<a href="#{anchor}">[^<]*</a>) \(Score: [-\d.]+ / ([\d.]+)\)',
                      rf"\1 ({state}; out of \2)", html)
        if state == NOT_GRADED:
            html = re.sub(rf'(<a name="{anchor}"></a>.{{0,400}}?)Score: [-\d.]+ / ([\d.]+)',
                          r"\1Not graded yet (out of \2)", html, count=1, flags=re.DOTALL)
        else:
            html = re.sub(rf'(<a name="{anchor}"></a>.{{0,400}}?)(Score: [-\d.]+ / [\d.]+)',
                          rf"\1\2 ({state})", html, count=1, flags=re.DOTALL)
    waiting = sum(state == NOT_GRADED for state in pending.values())
    why = f"{waiting} answer(s) not graded yet" if waiting else "a score is under review"
    return re.sub(rf"<h4>{re.escape(notebook)} \(Score: ([-\d.]+) / ([\d.]+)\)</h4>",
                  rf"<h4>{notebook} (Provisional score: \1 / \2; {why})</h4>", html, count=1)


class FeedbackWriter(warm.WarmProcess):
    """The TA's side: writes one student's feedback per request while others are still graded.

    A process of its own, not a thread: nbgrader's converters change the working directory of
    the process they run in.
    """

    def __init__(self, root: Path, assignment: str, db_url: str, log: Path) -> None:
        super().__init__([sys.executable, "-m", "dlcourse.runner.feedback", str(root), assignment, db_url],
                         dict(os.environ), root, log, wait=False)  # it loads while grading starts
        self.pending = 0

    def submit(self, student: str) -> None:
        self.send(student)
        self.pending += 1

    def results(self, timeout: float) -> list[tuple[list[str], str]]:
        """(students written, first problem) per request, once all are done."""
        answers = []
        self.wait_ready()
        while self.pending:
            self.pending -= 1
            answers.append(tuple(json.loads(self.reply(timeout))))
        return answers


def serve(root: Path, assignment: str, db_url: str) -> int:
    """The feedback writer's loop: a student id per line; replies ``[written, problem]``."""
    warm.die_with_parent()
    course = Course(root)
    warm.send_reply("ready")
    for line in sys.stdin:
        try:
            answer = refresh_feedback(course, assignment, [line.strip()], db_url)
        except Exception as exc:  # the final pass in the parent writes what is missing
            answer = ([], f"feedback for {line.strip()} failed: {type(exc).__name__}: {exc}")
        warm.send_reply(json.dumps(answer))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m dlcourse.runner.feedback ROOT ASSIGNMENT DB_URL", file=sys.stderr)
        return 2
    return serve(Path(argv[0]), argv[1], argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
