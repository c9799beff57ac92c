"""Fast unit tests of the library pieces behind `course`."""

from __future__ import annotations

import nbformat
import pytest
from nbfactory import cell, make_course, notebook
from nbformat.v4 import new_output

from dlcourse.errors import CourseError
from dlcourse.runner.course import Course
from dlcourse.runner.nbgrader_api import failure_reason
from dlcourse.runner.nbgrader_plugins import AutogradeFileCopier, StderrIsNotFailure, is_hidden
from dlcourse.runner.notebooks import (
    fill_solutions,
    find_leaks,
    read_notebook,
    replace_cell_sources,
    solution_namespace,
    strip_markers,
)
from dlcourse.runner.submissions import import_folder, import_submissions

SOURCE = notebook([
    cell("code", "import math", "setup", locked=True),
    cell("code", "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION", "f", solution=True),
    cell("code", "assert f(2) == 4\n### BEGIN HIDDEN TESTS\nassert f(3) == 6\n### END HIDDEN TESTS",
         "test_f", grade=True, locked=True, points=1),
])


def test_strip_markers_keeps_code_and_indentation():
    assert strip_markers(SOURCE.cells[1].source) == "def f(x):\n    return 2 * x"


def test_fill_solutions_puts_solution_code_into_the_release():
    release = nbformat.from_dict(SOURCE)
    release.cells[1].source = "def f(x):\n    raise NotImplementedError()"
    filled = fill_solutions(release, SOURCE)
    assert filled.cells[1].source == "def f(x):\n    return 2 * x"
    assert release.cells[1].source.endswith("NotImplementedError()"), "input changed"
    assert filled.cells[2].source == release.cells[2].source, "test cells untouched"


def test_replace_cell_sources_names_unknown_ids():
    with pytest.raises(CourseError, match="no cell with grade_id nope"):
        replace_cell_sources(SOURCE, {"nope": ""})


def test_solution_namespace_runs_solution_cells(tmp_path):
    nbformat.write(SOURCE, tmp_path / "a.ipynb")
    assert solution_namespace(tmp_path / "a.ipynb", ["setup", "f"])["f"](5) == 10


def test_read_notebook_errors_are_one_line(tmp_path):
    with pytest.raises(CourseError, match="notebook not found"):
        read_notebook(tmp_path / "missing.ipynb")
    (tmp_path / "cut.ipynb").write_text('{"cells": [')
    with pytest.raises(CourseError, match="not JSON"):
        read_notebook(tmp_path / "cut.ipynb")
    (tmp_path / "bad.ipynb").write_text('{"cells": 3}')
    with pytest.raises(CourseError, match="not a valid notebook"):
        read_notebook(tmp_path / "bad.ipynb")


def test_find_leaks(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ok.ipynb").write_text("{}")
    assert find_leaks(tmp_path) == []
    (tmp_path / "a" / "hidden_refs.npz").write_bytes(b"x")
    (tmp_path / "a" / "x.ipynb").write_text("### BEGIN HIDDEN TESTS")
    leaks = find_leaks(tmp_path)
    assert any("hidden_refs.npz: hidden file" in leak for leak in leaks)
    assert any("x.ipynb: contains 'BEGIN HIDDEN TESTS'" in leak for leak in leaks)


def test_is_hidden():
    assert is_hidden("hidden_refs.npz") and not is_hidden("refs_hidden.npz")


def test_stderr_policy_only_touches_cells_that_did_not_raise():
    quiet = nbformat.v4.new_code_cell("x")
    quiet.outputs = [new_output("stream", name="stderr", text="W log line\n")]
    failed = nbformat.v4.new_code_cell("y")
    failed.outputs = [new_output("stream", name="stderr", text="noise\n"),
                      new_output("error", ename="AssertionError", evalue="", traceback=[])]
    nb = notebook([quiet, failed])
    nb, _ = StderrIsNotFailure().preprocess(nb, {})
    assert nb.cells[0].outputs[0].name == "stdout"
    assert nb.cells[0].outputs[0].text == "W log line\n"
    assert nb.cells[1].outputs[0].name == "stderr"


def test_file_copier_puts_the_students_own_model_beside_the_notebook_and_no_hidden_file(tmp_path):
    (tmp_path / "solutions" / "a").mkdir(parents=True)
    (tmp_path / "solutions" / "a" / "hidden_x.npz").write_bytes(b"ref")
    (tmp_path / "solutions" / "a" / "visible.txt").write_text("v")
    (tmp_path / "solutions" / "a" / "a_model.keras").write_bytes(b"reference model")
    (tmp_path / "secret.txt").write_text("TA-ONLY")
    nb_path = tmp_path / "submitted" / "s1" / "a" / "a.ipynb"
    nb_path.parent.mkdir(parents=True)
    (nb_path.parent / "a_model.keras").write_bytes(b"student model")
    (nb_path.parent / "b_model.keras").symlink_to(tmp_path / "secret.txt")  # a link is not a hand-in
    AutogradeFileCopier("solutions", "autograded")(assignment="a", student="s1", notebooks=[str(nb_path)])
    graded = tmp_path / "autograded" / "s1" / "a"
    assert sorted(p.name for p in graded.iterdir()) == ["a_model.keras"], "no reference beside the notebook"
    assert (graded / "a_model.keras").read_bytes() == b"student model"


def test_failure_reason_prefers_the_root_exception():
    log = ("[ERROR] There was an error processing assignment\n"
           "    FileNotFoundError: [Errno 2] No such file or directory: 'alembic'\n"
           "nbgrader.converters.base.NbGraderException: Please see the above traceback\n")
    assert failure_reason({"log": log}) == "FileNotFoundError: [Errno 2] No such file or directory: 'alembic'"
    assert failure_reason({"log": "[ERROR] disk full"}) == "disk full"


def test_import_folder_maps_names_and_reports_leftovers(tmp_path):
    course = make_course(tmp_path / "course", {"a": SOURCE})
    incoming = tmp_path / "in"
    (incoming / "s1").mkdir(parents=True)
    (incoming / "s1" / "my work (1).ipynb").write_text("{}")
    (incoming / "s1" / "a_model.keras").write_bytes(b"m")
    (incoming / "s2").mkdir()
    (incoming / "s2" / "a.ipynb").write_text("{}")
    (incoming / "s2" / "draft.ipynb").write_text("{}")
    (incoming / "stray.txt").write_text("x")
    report = import_folder(course, "a", incoming)
    assert report.students == ["s1", "s2"]
    assert report.renamed == ["s1/my work (1).ipynb -> a.ipynb"]
    assert "s2/draft.ipynb: extra notebook, not graded" in report.unplaced
    assert "stray.txt: not inside a student folder" in report.unplaced
    assert (course.submitted / "s1" / "a" / "a.ipynb").is_file()
    assert (course.submitted / "s1" / "a" / "a_model.keras").read_bytes() == b"m"
    assert (incoming / "s1" / "my work (1).ipynb").exists(), "original moved"


def test_import_folder_rejects_empty_and_missing(tmp_path):
    course = make_course(tmp_path / "course", {"a": SOURCE})
    (tmp_path / "empty").mkdir()
    with pytest.raises(CourseError, match="holds no <student>/ folders"):
        import_folder(course, "a", tmp_path / "empty")
    with pytest.raises(CourseError, match="does not exist"):
        import_submissions(course, "a", tmp_path / "nope")


def test_course_lists_assignments_and_rejects_unknown(tmp_path):
    course = make_course(tmp_path / "course", {"a": SOURCE, "b": SOURCE})
    (course.solutions / "notes").mkdir()
    assert course.assignment_ids() == ["a", "b"]
    with pytest.raises(CourseError, match="unknown assignment 'c' \\(known: a, b\\)"):
        course.require_assignment("c")
    assert Course.find(course.solutions / "a").root == course.root


def test_runtime_setup_seeds_and_disables_tf32():
    import numpy as np
    import tensorflow as tf

    import dlcourse.runtime

    dlcourse.runtime.setup(seed=3)
    first = np.random.rand(3)
    dlcourse.runtime.setup(seed=3)
    assert np.array_equal(first, np.random.rand(3))
    assert tf.config.experimental.tensor_float_32_execution_enabled() is False
