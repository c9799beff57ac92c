"""The repeat outside the notebook: what its jobs carry, and what a framework-free job allows.

- No job carries an expected output, an inner-layer output or a label: only inputs and weights.
- The reference that stands in for the student's ``lstm_cell_forward`` is in the job that grades
  ``lstm_forward`` and in no other.
- Functions to be written in NumPy are graded where Keras is not installed: the student side's
  own reference step (Keras's cell) and Keras's layers cannot answer for them there, however
  the in-notebook guards are undone.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from dlcourse.harness import answer
from dlcourse.runner import repeat, sandbox
from dlcourse.runner.course import Course
from dlcourse.runner.notebooks import cells_by_grade_id, read_notebook, strip_markers


def _members(job: repeat.Job) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(job.data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.fixture(scope="module")
def lstm_plan(repo_course: Course) -> repeat.Plan:
    source = read_notebook(repo_course.source_notebook("lstm"))
    model = (repo_course.solutions / "lstm" / "lstm_model.keras").read_bytes()
    plan = repeat.plan("lstm", repo_course.solutions / "lstm", source, source, None)
    # the hand-in job as if the reference model had been handed in
    handin = next(j for j in plan.jobs if j.kind == "handin")
    from dlcourse.grading.lstm import HANDIN

    plan.jobs[plan.jobs.index(handin)] = repeat.handin_job(HANDIN, repo_course.solutions / "lstm", model)
    return plan


def test_no_job_carries_an_expected_output_or_a_label(repo_course, lstm_plan):
    from dlcourse.grading.lstm import HANDIN
    from dlcourse.grading.references import load_cases

    _inputs, labels = HANDIN.load_split(str(repo_course.solutions / "lstm" / HANDIN.data_file))
    stored = load_cases(repo_course.solutions / "lstm" / "hidden_lstm_refs.npz")
    for job in lstm_plan.jobs:
        members = _members(job)
        assert "labels" not in json.dumps(sorted(members))
        if answer.CASES_FILE in members:
            with np.load(io.BytesIO(members[answer.CASES_FILE])) as data:
                for key in data.files:
                    if key.endswith("/expected") or "/probes/" in key:
                        assert data[key].size == 0, key
                    else:
                        name = key.split("/")[0]
                        assert name in stored
        for name, data in members.items():
            if name.endswith(".npy"):
                array = np.load(io.BytesIO(data), allow_pickle=False)
                assert array.shape != labels.shape or not np.array_equal(array, labels), name


def test_the_reference_step_goes_only_into_the_job_that_grades_its_caller(lstm_plan):
    shipped = {job.name: json.loads(_members(job)[answer.JOB_FILE]).get("stand_ins", [])
               for job in lstm_plan.jobs if job.kind == "function"}
    assert [s[0] for s in shipped["lstm_forward"]] == ["lstm_cell_forward"]
    assert all(not stand_ins for name, stand_ins in shipped.items() if name != "lstm_forward")
    servers = {job.name: job.server for job in lstm_plan.jobs}
    assert servers["lstm_cell_forward"] == servers["lstm_forward"] == "numpy"
    assert servers["lstm_model.keras"] == "framework"


CHEATS = {
    "Keras's own cell": '''
def lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    import keras
    cell = keras.layers.LSTMCell(h_prev.shape[-1])
    cell.build(x_t.shape)
    cell.set_weights([kernel, recurrent_kernel, bias])
    h, (h2, c) = cell(x_t, [h_prev, c_prev])
    return np.asarray(h), np.asarray(c)
''',
    "the course's reference step, guards undone": '''
def lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    import dlcourse.grading.lstm as L
    import dlcourse.grading.spec as S
    L._REFERENCE_RUNNING[0] += 1
    S._STANDING_IN.set(frozenset({"lstm_cell_forward"}))
    return L.reference_lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias)
''',
}


@pytest.mark.slow
@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_a_numpy_function_cannot_borrow_a_framework(repo_course, cheat):
    if sandbox.detect().kind != "bubblewrap":
        pytest.fail(f"the repeat needs bubblewrap: {sandbox.detect().warning}")
    from dlcourse.grading.lstm import LSTM_CELL_FORWARD
    from dlcourse.grading.references import load_cases

    source = read_notebook(repo_course.source_notebook("lstm"))
    cells = cells_by_grade_id(source)
    answers = [[gid, strip_markers(cells[gid].source)] for gid in ("sigmoid",)] + \
        [["lstm_cell_forward", CHEATS[cheat]]]
    setup = strip_markers(cells["setup"].source)
    cases = load_cases(repo_course.solutions / "lstm" / LSTM_CELL_FORWARD.reference_file)
    job = repeat.function_job(LSTM_CELL_FORWARD, cases, setup, answers)
    honest = repeat.function_job(LSTM_CELL_FORWARD, cases, setup,
                                 [[gid, strip_markers(cells[gid].source)] for gid in ("sigmoid", "lstm_cell_forward")])
    env = {"NBGRADER_EXECUTION": "autograde"}
    [cheated] = repeat.run_job(job, "cpu", env, None)
    [passed] = repeat.run_job(honest, "cpu", env, None)
    assert passed.passed, passed.message
    assert not cheated.passed
    assert "graded without Keras or TensorFlow" in cheated.message or "not available here" in cheated.message
