"""The `course` command: right answers, and one-line errors for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbfactory import tiny_course, tiny_submission

from dlcourse.runner.course import Course

REPO = Path(__file__).resolve().parents[1]
COURSE = Path(sys.executable).parent / "course"


def run(*args: str, cwd: Path = REPO, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("DLCOURSE_ROOT", None)
    return subprocess.run([str(COURSE), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("course: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("args, needles", [
    (["grade", "nosuch"], ["unknown assignment 'nosuch'", "inception"]),
    (["grade", "inception", "--from", "/no/such/folder"], ["/no/such/folder", "does not exist"]),
    (["grade", "inception", "--from", "pyproject.toml"], ["is a file"]),
    (["grade", "inception", "--timeout", "-5"], ["--timeout must be positive"]),
    (["grade", "inception", "--timeout", "soon"], ["invalid float value: 'soon'"]),
    (["grade", "inception", "--workers", "0"], ["--workers must be at least 1"]),
    (["grade", "inception", "--memory", "0"], ["--memory must be positive"]),
    (["grade", "inception", "--from", "README.md"], ["is a file but not a .zip"]),
    (["references", "nosuch"], ["unknown assignment 'nosuch'"]),
    (["release", "nosuch"], ["unknown assignment 'nosuch'"]),
    (["validate", "missing.ipynb"], ["notebook not found: missing.ipynb"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    ([], ["required: command"]),
])
def test_bad_arguments_give_one_line(args, needles):
    assert_one_line_error(run(*args), *needles)


def test_outside_a_course(tmp_path):
    assert_one_line_error(run("release", "--check", cwd=tmp_path), "no course found")


def test_validate_broken_notebook(tmp_path):
    broken = tmp_path / "inception.ipynb"
    broken.write_text('{"cells": [')
    assert_one_line_error(run("validate", str(broken)), "not a valid notebook", "not JSON")


def test_release_check_passes_on_the_repository():
    proc = run("release", "--check")
    assert proc.returncode == 0, proc.stderr
    for assignment in Course(REPO).assignment_ids():
        assert f"{assignment}: up to date" in proc.stdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_course(tmp_path_factory.mktemp("cli") / "course")


def _write(tmp_path, nb) -> Path:
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    return tmp_path / "tiny.ipynb"


@pytest.mark.slow
def test_validate_reports_failing_cells_by_grade_id(tiny, tmp_path):
    proc = run("validate", str(_write(tmp_path, tiny_submission(tiny, ""))))
    assert proc.returncode == 1
    assert "FAIL    test_double: NotImplementedError" in proc.stdout
    assert "FAIL    question_double: not answered yet" in proc.stdout
    assert "not ready to submit" in proc.stdout


@pytest.mark.slow
def test_validate_shows_the_assertion_message(tiny, tmp_path):
    proc = run("validate", str(_write(tmp_path, tiny_submission(tiny, "def double(x):\n    return x + 1"))))
    assert proc.returncode == 1
    assert "FAIL    test_double: AssertionError: double(2) should be 4" in proc.stdout


@pytest.mark.slow
def test_validate_passes_a_complete_notebook(tiny, tmp_path):
    nb = tiny_submission(tiny)
    nb.cells[-1].source = "It multiplies by two."
    proc = run("validate", str(_write(tmp_path, nb)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok      test_double" in proc.stdout
    assert "all visible tests pass" in proc.stdout


@pytest.mark.slow
def test_validate_notices_an_edited_test_cell(tiny, tmp_path):
    nb = tiny_submission(tiny)
    for c in nb.cells:
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "test_double":
            c.source = "pass"
    proc = run("validate", str(_write(tmp_path, nb)))
    assert proc.returncode == 1
    assert "CHANGED test_double: test cell was edited" in proc.stdout


@pytest.mark.slow
def test_validate_checks_handed_in_models(tiny, tmp_path):
    import keras

    from dlcourse.errors import CourseError
    from dlcourse.validate import check_handin

    nb = tiny_submission(tiny)
    nb.cells[-1].source = "It multiplies by two."
    nb.metadata["dlcourse"] = {"handin": ["tiny_model.keras"]}
    path = _write(tmp_path, nb)
    proc = run("validate", str(path))
    assert proc.returncode == 1
    assert "MISSING tiny_model.keras is missing: save it next to the notebook" in proc.stdout
    (tmp_path / "tiny_model.keras").write_bytes(b"")  # there, but not a model: not "missing"
    proc = run("validate", str(path))
    assert proc.returncode == 1
    assert "INVALID tiny_model.keras is empty" in proc.stdout and "MISSING" not in proc.stdout
    x = keras.Input((3,))
    keras.Model(x, keras.layers.Dense(2, activation="softmax")(x)).save(tmp_path / "tiny_model.keras")
    assert check_handin(tmp_path, "tiny_model.keras") == \
        "tiny_model.keras: loads in safe mode; input (None, 3), output (None, 2)"
    keras.Model(x, keras.layers.Dense(2)(x)).save(tmp_path / "logits_model.keras")
    with pytest.raises(CourseError, match="outputs are not class probabilities"):
        check_handin(tmp_path, "logits_model.keras")
    (tmp_path / "tiny_model.keras").write_bytes(b"not a zip")
    with pytest.raises(CourseError, match="does not load as a Keras model in safe mode"):
        check_handin(tmp_path, "tiny_model.keras")
