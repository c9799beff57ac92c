"""The `lstm` checks: messages name the mistake, Keras's recurrent layers are blocked,
and the hand-in metric rejects a model that never finds a beat."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import pytest

from dlcourse.grading import GradingFailure
from dlcourse.grading.lstm import (
    HANDIN,
    LSTM_CELL_FORWARD,
    LSTM_FORWARD,
    REFERENCE_FILE,
    SIGMOID,
    FromScratchViolation,
    beat_f1,
    keras_recurrent_blocked,
    produce_lstm_cell_forward,
    produce_lstm_forward,
)
from dlcourse.grading.references import load_cases
from dlcourse.runner.notebooks import cells_by_grade_id, read_notebook, strip_markers

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from dlcourse.authoring.practical import catalogue_path, load_catalogue_module  # noqa: E402
from dlcourse.runner.course import Course  # noqa: E402

IMPLEMENTATIONS = load_catalogue_module(catalogue_path(Course(REPO), "lstm")).IMPLEMENTATIONS

SOURCE = REPO / "solutions" / "lstm"

EXPECTED = {
    "gate order i, f, o, c": "order i, f, o, c",
    "gate order i, c, f, o": "order i, c, f, o",
    "forget and input gates swapped": "forget and input gates swapped",
    "missing tanh on the cell": "missing tanh",
    "sigmoid candidate": "candidate uses a sigmoid",
    "returns (c, h)": "h_t and c_t are swapped",
    "no forget gate": "forget gate is missing",
    "h_prev ignored": "h_prev is ignored",
    "bias missing": "bias is missing",
    "no output gate": "output gate is missing",
    "h from the previous cell state": "c_t is right but h_t is not",
    "uses keras.layers.LSTM": "write the LSTM from scratch",
    "state not carried between steps": "state is not carried between steps",
    "cell state not carried": "cell state is not carried",
    "returns the cell state": "the cell state c is returned",
    "always the last step": "only the last step is returned",
    "first step instead of the last": "first step's output is returned",
    "always all steps": "all steps are returned",
    "runs backwards in time": "runs backwards in time",
    "time-major stacking": "time and batch axes are swapped",
}


def _solution_namespace() -> dict:
    import keras

    cells = cells_by_grade_id(read_notebook(SOURCE / "lstm.ipynb"))
    namespace = {"keras": keras, "np": np}
    exec("\n\n".join(strip_markers(cells[g].source) for g in ("sigmoid", "lstm_cell_forward", "lstm_forward")),
         namespace)
    return namespace


@pytest.fixture(scope="module")
def cases():
    return load_cases(SOURCE / REFERENCE_FILE)


@pytest.fixture(scope="module")
def solution():
    return _solution_namespace()


def test_solution_passes(cases, solution) -> None:
    SIGMOID.check(solution["sigmoid"], cases)
    LSTM_CELL_FORWARD.check(solution["lstm_cell_forward"], cases)
    LSTM_FORWARD.check(solution["lstm_forward"], cases)


def test_a_wrong_step_costs_no_marks_in_the_layer(cases, solution) -> None:
    """lstm_forward calls the student's lstm_cell_forward; while it is tested a reference step stands in."""
    namespace = _solution_namespace()
    exec(next(i.source for i in IMPLEMENTATIONS if i.name == "gate order i, f, o, c"), namespace)
    with pytest.raises(GradingFailure, match="order i, f, o, c"):
        LSTM_CELL_FORWARD.check(namespace["lstm_cell_forward"], cases)
    LSTM_FORWARD.check(namespace["lstm_forward"], cases)
    # the student's own step is back afterwards, and the reference is of no use outside the test
    assert namespace["lstm_cell_forward"].__name__ == "lstm_cell_forward"
    with LSTM_FORWARD.isolated(namespace["lstm_forward"]):
        stand_in = namespace["lstm_cell_forward"]
    with pytest.raises(GradingFailure, match="only available while"):
        stand_in(*(np.zeros(s) for s in ((1, 1), (1, 1), (1, 1), (1, 4), (1, 4), (4,))))


def test_the_reference_step_is_no_answer(cases) -> None:
    """Imported as a student's own lstm_cell_forward, the reference step refuses to run."""
    from dlcourse.grading.lstm import reference_lstm_cell_forward

    with pytest.raises(GradingFailure, match="runs only in place of your lstm_cell_forward"):
        LSTM_CELL_FORWARD.check(reference_lstm_cell_forward, cases)


def test_a_wrong_sigmoid_costs_no_marks_in_the_step(cases) -> None:
    namespace = _solution_namespace()
    exec("def sigmoid(z):\n    return np.tanh(z)\n", namespace)
    with pytest.raises(GradingFailure):
        SIGMOID.check(namespace["sigmoid"], cases)
    LSTM_CELL_FORWARD.check(namespace["lstm_cell_forward"], cases)
    LSTM_FORWARD.check(namespace["lstm_forward"], cases)


def test_an_overflowing_sigmoid_is_named(cases) -> None:
    with pytest.raises(GradingFailure, match="overflowed"):
        SIGMOID.check(lambda z: 1 / (1 + np.exp(-np.asarray(z, dtype=float))), cases)


def test_cases_cover_the_issue(cases) -> None:
    forward = [c for c in cases.values() if c.name.startswith("forward")]
    assert {c.meta["return_sequences"] for c in forward} == {True, False}
    assert len({c.inputs.shape[0] for c in forward}) >= 3  # batch sizes
    assert len({c.inputs.shape[1] for c in forward}) >= 3  # lengths
    assert len({c.meta["units"] for c in forward}) >= 3
    for case in (c for c in cases.values() if c.name.startswith("cell")):
        h_prev, c_prev = case.weights["state"]
        assert np.abs(h_prev).min() > 0 and np.abs(c_prev).min() > 0, "a step from a non-zero state"


@pytest.mark.parametrize("impl", [i for i in IMPLEMENTATIONS if i.name in EXPECTED
                                  and i.grade_id in ("lstm_cell_forward", "lstm_forward")],
                         ids=lambda i: f"{i.grade_id}: {i.name}")
def test_mutant_message_names_the_mistake(impl, cases) -> None:
    namespace = _solution_namespace()
    exec(impl.source, namespace)
    spec = LSTM_CELL_FORWARD if impl.grade_id == "lstm_cell_forward" else LSTM_FORWARD
    with pytest.raises(GradingFailure) as failure:
        spec.check(namespace[impl.grade_id], cases)
    assert EXPECTED[impl.name] in str(failure.value), str(failure.value)


def test_every_numpy_mutant_has_an_expected_message() -> None:
    names = {i.name for i in IMPLEMENTATIONS
             if not i.correct and i.grade_id in ("lstm_cell_forward", "lstm_forward")}
    assert names <= set(EXPECTED), names - set(EXPECTED)


def test_guard_blocks_keras_recurrent_layers() -> None:
    import keras
    import tensorflow as tf

    x = np.zeros((1, 3, 2), np.float32)
    built = keras.layers.LSTM(2)  # made outside the guard, called inside
    built(x)
    attempts = [lambda: keras.layers.LSTM(2), lambda: keras.layers.LSTMCell(2), lambda: keras.layers.GRU(2),
                lambda: keras.layers.SimpleRNN(2), lambda: keras.layers.RNN(keras.layers.LSTMCell(2)),
                lambda: tf.keras.layers.LSTM(2), lambda: built(x)]
    for attempt in attempts:
        with keras_recurrent_blocked("test"), pytest.raises(FromScratchViolation):
            attempt()
    # everything is restored afterwards
    assert keras.layers.LSTM(2, return_sequences=True)(x).shape == (1, 3, 2)
    assert built(x).shape == (1, 2)


def test_guard_catches_a_swallowed_exception(cases) -> None:
    import keras

    def sneaky(x, kernel, recurrent_kernel, bias, return_sequences=False):
        with contextlib.suppress(Exception):
            keras.layers.LSTM(recurrent_kernel.shape[0])
        return np.zeros((x.shape[0], x.shape[1], recurrent_kernel.shape[0]) if return_sequences
                        else (x.shape[0], recurrent_kernel.shape[0]))

    case = next(c for c in cases.values() if c.name.startswith("forward"))
    with pytest.raises(FromScratchViolation, match="from scratch"):
        produce_lstm_forward(sneaky, case)


def test_produce_reports_structural_problems(cases, solution) -> None:
    cell = next(c for c in cases.values() if c.name.startswith("cell"))
    assert produce_lstm_cell_forward(solution["lstm_cell_forward"], cell).output.shape == cell.expected.shape
    with pytest.raises(GradingFailure, match="must return a pair"):
        produce_lstm_cell_forward(lambda *a: a[1], cell)
    with pytest.raises(GradingFailure, match="raised ZeroDivisionError"):
        produce_lstm_cell_forward(lambda *a: 1 / 0, cell)
    # the student's function gets copies: changing them in place changes no case
    before = cell.inputs.copy()

    def vandal(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
        x_t[:] = 0
        return solution["lstm_cell_forward"](x_t, h_prev, c_prev, kernel, recurrent_kernel, bias)

    produce_lstm_cell_forward(vandal, cell)
    assert np.array_equal(cell.inputs, before)


def test_beat_f1_rejects_trivial_predictions() -> None:
    labels = np.zeros((4, 200), np.uint8)
    labels[:, ::25] = 1
    never = np.stack([np.ones((4, 200)), np.zeros((4, 200))], axis=-1)
    always = never[..., ::-1]
    perfect = np.stack([1 - labels, labels], axis=-1).astype(float)
    assert beat_f1(never, labels) == 0.0
    assert beat_f1(always, labels) < 0.2
    assert beat_f1(perfect, labels) == 1.0


def test_handin_rejects_an_all_background_model(tmp_path, capsys) -> None:
    import keras

    from dlcourse.data import load_signals

    x, y = load_signals("val")
    inputs = keras.Input((200, 1))
    logits = keras.layers.Dense(2, kernel_initializer="zeros",
                                bias_initializer=keras.initializers.Constant([5.0, -5.0]))(inputs)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    path = tmp_path / "lstm_model.keras"
    model.save(path)
    assert (model.predict(x[:8], verbose=0).argmax(-1) == y[:8]).mean() > 0.8  # "accurate"...
    passed, message = HANDIN.judge(HANDIN.produce(path, x), y)
    assert not passed and message.startswith("beat F1 on the test split 0.000"), message


def test_handin_contract(tmp_path) -> None:
    import keras

    inputs = keras.Input((200, 1))
    pooled = keras.layers.GlobalAveragePooling1D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled))
    path = tmp_path / "lstm_model.keras"
    model.save(path)
    with pytest.raises(GradingFailure, match=r"\(200, 2\)"):
        HANDIN.produce(path, np.zeros((2, 200, 1), np.float32))


def test_reference_model_passes(capsys) -> None:
    HANDIN.check(SOURCE)
    assert "beat F1 on the test split" in capsys.readouterr().out


def test_lecture_gate_traces_agree_with_the_equations(solution) -> None:
    """figures' gate traces (measured on Keras's cell) equal the gates of the solution's equations."""
    import keras

    from dlcourse import figures

    layer = keras.layers.LSTM(3, return_sequences=True)
    x = np.random.default_rng(5).normal(size=(12, 2)).astype(np.float32)
    layer(x[None])
    kernel, recurrent, bias = layer.get_weights()
    traces = figures._lstm_gate_traces(layer, x)
    sigmoid, h, c = solution["sigmoid"], np.zeros((1, 3)), np.zeros((1, 3))
    for t, x_t in enumerate(x):
        z = x_t[None] @ kernel + h @ recurrent + bias
        i, f, o = sigmoid(z[:, :3]), sigmoid(z[:, 3:6]), sigmoid(z[:, 9:])
        h, c = solution["lstm_cell_forward"](x_t[None], h, c, kernel, recurrent, bias)
        for key, value in (("input", i), ("forget", f), ("output", o), ("cell", c)):
            np.testing.assert_allclose(traces[key][t], value[0], atol=1e-5, err_msg=f"{key} at step {t}")
