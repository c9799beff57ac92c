"""Feedback for a hand-in that could not be graded.

nbgrader writes feedback from an autograded notebook; a hand-in that is not a
notebook, or whose grading was stopped (time or memory limit, a crash), has
none, so its student would get no feedback file at all and learn nothing about
the 0. This page says what was wrong and what to do, in the place and under the
name nbgrader's feedback would have (``feedback/<student>/<a>/<a>.html``).
"""

from __future__ import annotations

import html
from pathlib import Path

from dlcourse.runner.course import Course
from dlcourse.runner.nbgrader_plugins import hide_machine_paths, machine_paths

#: What to do, by what the reason says (first match); the last entry is the default.
ADVICE: tuple[tuple[tuple[str, ...], str], ...] = (
    (("not a valid notebook", "not JSON", "no notebook", "missing"),
     "The file is not a notebook the grader can open (cut off, corrupted, renamed or missing). "
     "Open your notebook in JupyterLab, save it, check it with <code>course validate {notebook}</code>, "
     "and hand in that file, unchanged in name."),
    (("time limit",),
     "Your notebook ran longer than grading allows. When it is graded it must not train: load the model "
     "you handed in instead (the notebook shows how), and keep other cells quick. "
     "<code>course validate {notebook}</code> runs it the way the grader does."),
    (("memory limit", "out of memory", "died"),
     "Your notebook used more memory than grading allows, or its kernel crashed. Look for very large "
     "arrays or models, and do not train when graded. <code>course validate {notebook}</code> runs it "
     "the way the grader does."),
    (("grader error", "cannot confine", "grading process", "no record"),
     "The problem was on the grading side, not in your work. Your hand-in will be graded again; "
     "you need not do anything."),
    ((), "Check your notebook with <code>course validate {notebook}</code>, and ask your teaching "
         "assistant if the reason is not clear."),
)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{assignment}: not graded</title>
<style>body {{ font-family: sans-serif; max-width: 48em; margin: 2em auto; line-height: 1.5; }}
.reason {{ background: #fdecea; border-left: 4px solid #c62828; padding: 0.5em 1em; }}</style></head>
<body>
<h1>{assignment}: your hand-in could not be graded</h1>
<p>Score: 0 / {max_score}. The tests did not run, so this page cannot say which of them pass.</p>
<h2>What was wrong</h2>
<p class="reason">{reason}</p>
<h2>What to do</h2>
<p>{advice}</p>
<p>If there is still time before the deadline, hand in again; otherwise contact your teaching assistant.</p>
</body>
</html>
"""


def advice_for(reason: str, notebook: str) -> str:
    """The "what to do" paragraph (HTML) for a failure ``reason``."""
    lowered = reason.lower()
    for needles, text in ADVICE:
        if not needles or any(n.lower() in lowered for n in needles):
            return text.format(notebook=html.escape(notebook))
    raise AssertionError("ADVICE ends with a default")


def write(course: Course, assignment: str, student: str, reason: str, max_score: float | None = None) -> Path:
    """Write the feedback page of a hand-in that could not be graded; returns its path.

    The reason can quote a submission's file names (escaped here) and name the
    grading machine's folders (made relative, as in every feedback page).
    """
    shown = hide_machine_paths(reason, machine_paths([str(course.root.resolve())]))
    notebook = f"{assignment}.ipynb"
    page = PAGE.format(assignment=html.escape(assignment), reason=html.escape(shown),
                       advice=advice_for(shown, notebook),
                       max_score="?" if max_score is None else f"{max_score:g}")
    folder = course.feedback / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{assignment}.html"
    path.write_text(page, encoding="utf-8")
    return path
