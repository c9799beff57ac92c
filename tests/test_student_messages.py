"""Smaller things people read, each true (issue 27, item 8).

Names from an LMS file name in formgrader, the feedback summary's entries, the
wording for a failed hidden part of a visible test cell, the Colab setup cell when
the course has not set its location, a hand-in that is there but unusable, and a
file given as a Canvas export that is not one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_feedback_summary_names_each_graded_cell():
    from dlcourse.runner.nbgrader_plugins import name_feedback_summary

    page = ('<li><a href="#test_sigmoid">Test cell</a> (Score: 2.0 / 2.0)</li>\n'
            '<li><a href="#question_forget_bias">Written response</a> (Score: 0.0 / 2.0)</li>\n'
            '<li><a href="#comment-question_forget_bias">Comment</a></li>')
    named = name_feedback_summary(page)
    assert '<a href="#test_sigmoid">test_sigmoid</a> (test) (Score: 2.0 / 2.0)' in named
    assert '<a href="#question_forget_bias">question_forget_bias</a> (written answer)' in named
    assert "Test cell" not in named and '<a href="#comment-question_forget_bias">Comment</a>' in named


def test_a_name_from_a_file_name_reads_without_a_dangling_comma():
    from dlcourse.runner.grade import FILE_NAME_NOTE

    # formgrader shows "last_name, first_name"
    assert f"jansenanna, {FILE_NAME_NOTE}" == "jansenanna, (from file name)"


def test_failed_hidden_parts_are_named_as_cells_not_as_hidden_tests():
    import importlib
    import inspect

    for name in ("dlcourse.cli.main", "dlcourse.runner.reports"):  # the progress line and the table
        text = inspect.getsource(importlib.import_module(name))
        assert "hidden test failed:" not in text and "hidden tests failed in: " in text, name


def test_the_colab_cell_without_a_location_does_not_blame_the_student():
    from dlcourse.colab import SETUP_CELL

    raised = next(line for line in SETUP_CELL.splitlines() if "raise RuntimeError" in line)
    assert "COURSE_EDITION is empty" in raised and "instructor" in raised
    assert "open the notebooks" not in raised
    for notebook in [*REPO.glob("lectures/*.ipynb"), *REPO.glob("assignments/*/*.ipynb")]:
        first = "".join(json.loads(notebook.read_text())["cells"][0]["source"])
        assert first == SETUP_CELL.format(location=""), notebook


@pytest.mark.parametrize("text", ["Student,ID,SIS User ID,lstm (1234)\n", "Student,ID\nSmith,\n"])
def test_a_canvas_export_without_students_is_refused(tmp_path, text):
    from dlcourse.errors import CourseError
    from dlcourse.runner import canvas

    path = tmp_path / "export.csv"
    path.write_text(text)
    with pytest.raises(CourseError, match="lists no student"):
        canvas.read_export(path)


def test_validate_tells_missing_from_invalid():
    from dlcourse.validate import Verdict

    assert Verdict("INVALID", "tiny_model.keras is empty").problem
    assert Verdict("MISSING", "tiny_model.keras is missing").problem
    assert Verdict("INVALID", "x").line() == "  INVALID x"
