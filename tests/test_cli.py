"""The `course` command: right answers, and one-line errors for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from dlcourse.course import Course
from dlcourse.examples import submissions_dir
from dlcourse.notebooks import read_notebook

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
    (["grade", "nosuch"], ["unknown assignment 'nosuch'", "warmup"]),
    (["grade", "warmup", "--from", "/no/such/folder"], ["/no/such/folder", "does not exist"]),
    (["grade", "warmup", "--from", "pyproject.toml"], ["is a file"]),
    (["grade", "warmup", "--timeout", "-5"], ["--timeout must be positive"]),
    (["grade", "warmup", "--timeout", "soon"], ["invalid float value: 'soon'"]),
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
    broken = tmp_path / "warmup.ipynb"
    broken.write_text('{"cells": [')
    assert_one_line_error(run("validate", str(broken)), "not a valid notebook", "not JSON")


def test_release_check_passes_on_the_repository():
    proc = run("release", "--check")
    assert proc.returncode == 0, proc.stderr
    assert "warmup: up to date" in proc.stdout


@pytest.mark.slow
def test_validate_reports_failing_cells_by_grade_id(tmp_path):
    nb = read_notebook(submissions_dir(Course(REPO), "warmup") / "untouched" / "warmup.ipynb")
    nbformat.write(nb, tmp_path / "warmup.ipynb")
    proc = run("validate", str(tmp_path / "warmup.ipynb"))
    assert proc.returncode == 1
    assert "FAIL    test_conv_params: NotImplementedError" in proc.stdout
    assert "FAIL    test_small_cnn: NotImplementedError" in proc.stdout
    assert "not ready to submit" in proc.stdout


@pytest.mark.slow
def test_validate_passes_a_complete_notebook(tmp_path):
    nb = read_notebook(submissions_dir(Course(REPO), "warmup") / "perfect" / "warmup.ipynb")
    nbformat.write(nb, tmp_path / "warmup.ipynb")
    proc = run("validate", str(tmp_path / "warmup.ipynb"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok      test_conv_params" in proc.stdout
    assert "ok      test_small_cnn" in proc.stdout
    assert "all visible tests pass" in proc.stdout


@pytest.mark.slow
def test_validate_notices_an_edited_test_cell(tmp_path):
    nb = read_notebook(submissions_dir(Course(REPO), "warmup") / "perfect" / "warmup.ipynb")
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "test_small_cnn":
            cell.source = "pass"
    nbformat.write(nb, tmp_path / "warmup.ipynb")
    proc = run("validate", str(tmp_path / "warmup.ipynb"))
    assert proc.returncode == 1
    assert "CHANGED test_small_cnn was edited" in proc.stdout
