"""The two nbgrader traps of this course, proven on real nbgrader runs.

(a) nbgrader zeroes a test cell that wrote anything to stderr; log noise must
    not cost a passing cell its points.
(b) hidden_* files beside a source notebook stay out of the release, the folder
    of the notebook being graded and the feedback (only the grader's trusted side
    reads them), and a student's file of the same name changes nothing.
"""

from __future__ import annotations

import nbformat
import pytest
from nbfactory import cell, make_course, notebook

from dlcourse.authoring.release import release
from dlcourse.runner import nbgrader_api
from dlcourse.runner.grade import grade
from dlcourse.runner.notebooks import fill_solutions, find_leaks, read_notebook

NOISE = '''
import os, sys, warnings
import numpy as np
warnings.warn("a Keras-style UserWarning", UserWarning)
print("2026-11-25 W tensorflow/core: a log line", file=sys.stderr)
os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on.\\n")
np.exp(np.float32(1000.0))  # NumPy overflow RuntimeWarning
'''

SOURCE = notebook([
    cell("code", "import sys", "setup", locked=True),
    cell("code", "def answer():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION",
         "answer", solution=True),
    cell("code", NOISE + "assert answer() == 42", "test_answer_noisy", grade=True, locked=True, points=2),
    cell("code", 'print("noise", file=sys.stderr)\nassert answer() == 43, "deliberately failing"',
         "test_answer_fails", grade=True, locked=True, points=1),
    cell("code", "### BEGIN HIDDEN TESTS\n"
         "assert answer() == 42, 'the hidden answer'\n"
         "### END HIDDEN TESTS", "test_answer_hidden", grade=True, locked=True, points=2),
])


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The noisy assignment released and its solution autograded through `course grade`."""
    root = tmp_path_factory.mktemp("traps")
    course = make_course(root / "course", {"noisy": SOURCE},
                         {"noisy": {"hidden_expected.txt": b"42\n"}})
    release(course)
    perfect = fill_solutions(read_notebook(course.release_notebook("noisy")), SOURCE)
    incoming = root / "incoming"
    for student in ("alice", "mallory"):
        (incoming / student).mkdir(parents=True)
        nbformat.write(perfect, incoming / student / "noisy.ipynb")
    # mallory hands in her own "hidden" file, hoping it replaces the real one
    (incoming / "mallory" / "hidden_expected.txt").write_text("43\n")
    result = grade(course, "noisy", incoming, timeout=300)
    return course, {row.student: row for row in result.rows}


@pytest.mark.slow
def test_log_noise_does_not_cost_points(graded):
    _, rows = graded
    assert rows["alice"].questions["test_answer_noisy"] == 2
    assert rows["alice"].questions["test_answer_fails"] == 0


@pytest.mark.slow
def test_noise_would_cost_points_under_plain_nbgrader_policy(graded, tmp_path):
    """Control: without the course's policy the same passing cell scores 0."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import Execute, SaveAutoGrades

    course, _ = graded
    plain = [Execute, ClearMetadataPreprocessor, SaveAutoGrades]
    api = nbgrader_api.api(course, Autograde={"autograde_preprocessors": plain})
    result = api.autograde("noisy", "alice", force=True, create=True)
    assert result["success"], result["log"][-2000:]
    from nbgrader.api import Gradebook

    with Gradebook(nbgrader_api.load_config(course).CourseDirectory.db_url) as gb:
        grade_row = gb.find_grade("test_answer_noisy", "noisy", "noisy", "alice")
        assert grade_row.auto_score == 0
    # put the course's own verdict back for the other tests of this module
    assert nbgrader_api.api(course).autograde("noisy", "alice", force=True, create=True)["success"]


@pytest.mark.slow
def test_hidden_file_stays_with_the_grader(graded):
    course, rows = graded
    assert rows["alice"].questions["test_answer_hidden"] == 2
    assert not list(course.assignments.rglob("hidden_*")), "hidden file released"
    assert not find_leaks(course.assignments)
    assert not list(course.autograded.rglob("hidden_*")), "hidden file beside a notebook being graded"
    assert (course.feedback / "alice" / "noisy" / "noisy.html").is_file()
    assert not list(course.feedback.rglob("hidden_*")), "hidden file copied into feedback"


@pytest.mark.slow
def test_submitted_fake_hidden_file_is_ignored(graded):
    course, rows = graded
    assert rows["mallory"].questions["test_answer_hidden"] == 2
    assert not (course.autograded / "mallory" / "noisy" / "hidden_expected.txt").exists()
    # the original hand-in is untouched
    assert (course.submitted / "mallory" / "noisy" / "hidden_expected.txt").read_text() == "43\n"
