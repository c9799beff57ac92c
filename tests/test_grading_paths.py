"""Every path that grades gives an honest submission the same scores.

Paths: `course grade`; plain `nbgrader autograde A` for the whole class (nbgrader then calls the
course's pre-convert hook with student ``*``); plain `nbgrader autograde A --student S`; and
formgrader's Autograde button, which calls nbgrader's ``NbGraderAPI.autograde``. Each runs real
nbgrader on two students of a small course with a hidden test (decided outside the notebook) and
a hidden file, of which one student hands in a forged copy. The four practicals go through the whole-class path in
``tests/test_mutants.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbfactory import make_course
from test_nbgrader_traps import SOURCE

from dlcourse.authoring.release import release
from dlcourse.runner import nbgrader_api
from dlcourse.runner.course import Course
from dlcourse.runner.grade import grade
from dlcourse.runner.notebooks import fill_solutions, read_notebook

pytestmark = pytest.mark.slow

STUDENTS = ("alice", "mallory")
#: What an honest, complete submission earns on every path (the noisy cell keeps its points,
#: the deliberately failing one gets none, the hidden test passes).
EXPECTED = {"test_answer_noisy": 2.0, "test_answer_fails": 0.0, "test_answer_hidden": 2.0}


def _course(root: Path) -> Course:
    """The `noisy` course, released, with both students' submissions in submitted/."""
    course = make_course(root, {"noisy": SOURCE}, {"noisy": {"hidden_expected.txt": b"42\n"}})
    release(course)
    perfect = fill_solutions(read_notebook(course.release_notebook("noisy")), SOURCE)
    for student in STUDENTS:
        folder = course.submitted / student / "noisy"
        folder.mkdir(parents=True)
        nbformat.write(perfect, folder / "noisy.ipynb")
    (course.submitted / "mallory" / "noisy" / "hidden_expected.txt").write_text("43\n")
    return course


def _nbgrader(course: Course, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course.root, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def _scores(course: Course) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(nbgrader_api.load_config(course).CourseDirectory.db_url) as gb:
        return {student: {g.name: g.score for g in gb.find_submission_notebook("noisy", "noisy", student).grades}
                for student in STUDENTS}


def _whole_class(course: Course) -> None:
    _nbgrader(course, "generate_assignment", "noisy", "--force")
    _nbgrader(course, "autograde", "noisy", "--create")


def _per_student(course: Course) -> None:
    _nbgrader(course, "generate_assignment", "noisy", "--force")
    for student in STUDENTS:
        _nbgrader(course, "autograde", "noisy", "--student", student, "--create")


def _formgrader(course: Course) -> None:
    """What formgrader's Autograde button runs for one submission."""
    api = nbgrader_api.api(course)
    assert api.generate_assignment("noisy", force=True, create=True)["success"]
    for student in STUDENTS:
        result = api.autograde("noisy", student, force=True, create=True)
        assert result["success"], result["log"][-2000:]


def _course_grade(course: Course) -> None:
    grade(course, "noisy", timeout=300)


@pytest.mark.parametrize("path", [_whole_class, _per_student, _formgrader, _course_grade],
                         ids=["nbgrader whole class", "nbgrader per student", "formgrader", "course grade"])
def test_honest_submissions_score_the_same_on_every_path(tmp_path, path):
    course = _course(tmp_path / "course")
    path(course)
    scores = _scores(course)
    for student in STUDENTS:
        assert scores[student] == EXPECTED, (student, scores[student])
        hidden = course.autograded / student / "noisy" / "hidden_expected.txt"
        assert not hidden.exists(), f"{student}'s notebook was graded beside a hidden file"
    assert not (course.autograded / "*").exists()
    assert (course.submitted / "mallory" / "noisy" / "hidden_expected.txt").read_text() == "43\n"
