"""`course release`: deterministic, complete, and `--check` notices drift."""

from __future__ import annotations

import nbformat
from nbfactory import cell, make_course, notebook

from dlcourse.authoring.release import release
from dlcourse.runner.notebooks import find_leaks, read_notebook

SOURCE = notebook([
    cell("code", "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION", "f", solution=True),
    cell("code", "assert f() == 1\n### BEGIN HIDDEN TESTS\nassert f() != 2\n### END HIDDEN TESTS",
         "test_f", grade=True, locked=True, points=1),
    cell("markdown", "Answer key: because.", "question_why", grade=True, solution=True, points=2),
])


def test_release_strips_solutions_and_hidden_files_and_is_deterministic(tmp_path):
    course = make_course(tmp_path / "c", {"a": SOURCE},
                         {"a": {"hidden_ref.npz": b"secret", "data.txt": b"public"}})
    assert release(course)["a"] == ["missing a.ipynb", "missing data.txt"]
    released = read_notebook(course.release_notebook("a"))
    assert "raise NotImplementedError()" in released.cells[0].source
    assert "assert f() != 2" not in released.cells[1].source
    assert released.cells[2].source == "YOUR ANSWER HERE"
    assert (course.assignments / "a" / "data.txt").read_bytes() == b"public"
    assert not (course.assignments / "a" / "hidden_ref.npz").exists()
    assert find_leaks(course.assignments) == []
    first = (course.assignments / "a" / "a.ipynb").read_bytes()
    assert release(course, check=True) == {"a": []}
    assert release(course) == {"a": []}
    assert (course.assignments / "a" / "a.ipynb").read_bytes() == first


def test_check_reports_drift_and_stale_releases_without_changing_them(tmp_path):
    course = make_course(tmp_path / "c", {"a": SOURCE})
    release(course)
    edited = read_notebook(course.source_notebook("a"))
    edited.cells[1].source = edited.cells[1].source.replace("== 1", "== 1  # checked")
    nbformat.write(edited, course.source_notebook("a"))
    (course.assignments / "old").mkdir()
    before = (course.assignments / "a" / "a.ipynb").read_bytes()
    report = release(course, check=True)
    assert report == {"a": ["outdated a.ipynb"], "old": ["no source in solutions/ (stale release)"]}
    assert (course.assignments / "a" / "a.ipynb").read_bytes() == before
    assert (course.assignments / "old").exists()
    release(course)
    assert release(course, check=True) == {"a": []}
    assert not (course.assignments / "old").exists()
