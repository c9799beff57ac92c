"""Checks for the `lstm` assignment: an LSTM cell and layer in NumPy, and the beat detector.

Reference outputs come from ``keras.layers.LSTM`` with the case's weights, never
from a NumPy LSTM: this package is installed on students' machines, so it holds
no from-scratch LSTM. The outputs of typical mistakes, which the diagnostics
recognise, are stored as *probes* in the hidden reference file; they too are
made with Keras (permuted or pinned weights, single steps, a cell loop).

Case layout (``dlcourse.grading.references.Case``):

* ``cell_*``: one step of ``lstm_cell_forward``. ``inputs`` is ``x_t`` (batch,
  input_dim); ``weights["lstm"]`` is ``[kernel, recurrent_kernel, bias]`` and
  ``weights["state"]`` is ``[h_prev, c_prev]``; ``expected`` is ``h_t`` and
  ``c_t`` concatenated along the last axis, (batch, 2 * units).
* ``forward_*``: ``lstm_forward`` from zero states. ``inputs`` is ``x`` (batch,
  time, features), ``weights["lstm"]`` as above, ``meta["return_sequences"]``;
  ``expected`` is Keras's output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from dlcourse.grading.compare import GradingFailure
from dlcourse.grading.policy import TOLERANCE, relative_error
from dlcourse.grading.references import Case
from dlcourse.grading.spec import (
    AssignmentSpec,
    FunctionSpec,
    HandinContract,
    Produced,
    StandIn,
    require_stand_in,
)

REFERENCE_FILE = "hidden_lstm_refs.npz"
WINDOW_SHAPE = (200, 1)

#: sigmoid cases: (case, values, dtype); the scalar case checks that a scalar stays a scalar.
SIGMOID_CASES = (
    ("sigmoid_grid32", "grid", "float32"),
    ("sigmoid_grid64", "grid", "float64"),
    ("sigmoid_extreme", "extreme", "float64"),
    ("sigmoid_scalar", "scalar", "float32"),
)

# (case, batch, input_dim, units, seed)
CELL_CASES = (
    ("cell_small", 2, 3, 2, 700),
    ("cell_wide", 4, 5, 6, 701),
    ("cell_single", 1, 1, 3, 702),
)
# (case, batch, time, features, units, return_sequences, seed)
FORWARD_CASES = (
    ("forward_last_b3", 3, 7, 4, 5, False, 800),
    ("forward_seq_b3", 3, 7, 4, 5, True, 801),
    ("forward_last_b1", 1, 12, 2, 3, False, 802),
    ("forward_seq_b5", 5, 9, 3, 8, True, 803),
    ("forward_seq_t1", 2, 1, 3, 4, True, 804),
    ("forward_last_b2_u1", 2, 6, 1, 1, False, 805),
)

#: probe name -> what the mistake is (for lstm_cell_forward).
CELL_MISTAKES = {
    "order_ifoc": "the gates are taken in the order i, f, o, c; Keras's columns are [i | f | c | o] "
                  "(candidate third, output gate last)",
    "order_icfo": "the gates are taken in the order i, c, f, o; Keras's columns are [i | f | c | o]",
    "order_fico": "forget and input gates swapped: the first block of columns is the input gate i, "
                  "the second the forget gate f, and c_t = f * c_prev + i * tanh(candidate)",
    "no_cell_tanh": "missing tanh on the cell state (h_t = o * c_t): h_t = o * tanh(c_t)",
    "sigmoid_candidate": "the candidate uses a sigmoid: it is tanh(x W_c + h U_c + b_c), in (-1, 1)",
    "swap_hc": "h_t and c_t are swapped: return (h_t, c_t) in that order",
    "c_not_h": "both outputs are the cell state: h_t = o * tanh(c_t)",
    "no_forget": "the forget gate is missing (c_t = c_prev + i * candidate): multiply c_prev by f",
    "no_input_gate": "the input gate is missing: the candidate is scaled by i before it is added",
    "no_output_gate": "the output gate is missing: h_t = o * tanh(c_t)",
    "no_recurrence": "h_prev is ignored: every gate also gets h_prev @ recurrent_kernel",
    "no_bias": "the bias is missing: add bias to the pre-activations of all four gates",
    "no_c_prev": "c_prev is ignored: c_t = f * c_prev + i * candidate",
}

#: probe name -> what the mistake is (for lstm_forward).
FORWARD_MISTAKES = {
    "no_state_carry": "the state is not carried between steps: every step starts from zeros again; "
                      "feed each step's (h, c) into the next",
    "c_reset": "the cell state is not carried between steps (only h is): keep both h and c",
    "h_reset": "the hidden state is not carried between steps (only c is): keep both h and c",
    "cell_state": "the cell state c is returned; the LSTM's output is the hidden state h",
    "first_step": "the first step's output is returned; with return_sequences=False it is the last step's",
    "reversed": "the sequence runs backwards in time: start at t = 0",
}


# ---------------------------------------------------------------------------
# Guard: the from-scratch functions must not call Keras's recurrent layers.
#
# Inside the student's notebook this guard only tells an honest student early: code in the
# same process can undo it. What decides the grade is the repeat outside the notebook, where
# lstm_cell_forward and lstm_forward run in a process without Keras or TensorFlow at all
# (FunctionSpec.frameworks=False, dlcourse.harness.frameworks).
# ---------------------------------------------------------------------------

class FromScratchViolation(GradingFailure):
    """The student's NumPy function called a built-in recurrent layer."""


def _recurrent_targets() -> list[tuple[object, str]]:
    """(owner, attribute) pairs to block: recurrent layer classes and op-level LSTMs (none where
    Keras is not installed: the repeat outside the notebook grades these functions without it)."""
    try:
        return _keras_recurrent_targets()
    except ImportError:
        return []


def _keras_recurrent_targets() -> list[tuple[object, str]]:
    import keras

    names = ("LSTM", "LSTMCell", "GRU", "GRUCell", "SimpleRNN", "SimpleRNNCell", "RNN",
             "StackedRNNCells", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Bidirectional")
    classes = []
    for module in (keras.layers, getattr(keras.src.layers, "rnn", None)):
        classes += [getattr(module, n) for n in names if module is not None and hasattr(module, n)]
    try:
        import tensorflow as tf

        classes += [getattr(tf.keras.layers, n) for n in names if hasattr(tf.keras.layers, n)]
        cells = tf.compat.v1.nn.rnn_cell
        classes += [getattr(cells, n) for n in ("LSTMCell", "BasicLSTMCell", "GRUCell", "BasicRNNCell")
                    if hasattr(cells, n)]
    except ImportError:  # pragma: no cover - TensorFlow is the course's backend
        pass
    targets: list[tuple[object, str]] = []
    for cls in dict.fromkeys(classes):  # unique, in order
        targets += [(cls, attr) for attr in ("__init__", "call", "__call__") if attr in vars(cls)]
    for module in (keras.ops, getattr(keras.src, "backend", None)):
        for name in ("lstm", "gru", "rnn"):
            if module is not None and callable(getattr(module, name, None)):
                targets.append((module, name))
    try:
        from keras.src.backend.tensorflow import rnn as tf_rnn

        targets += [(tf_rnn, n) for n in ("lstm", "gru", "rnn", "cudnn_lstm") if hasattr(tf_rnn, n)]
    except ImportError:  # pragma: no cover
        pass
    return targets


def _label(owner: object, attr: str) -> str:
    """How a blocked target is named in the message, e.g. keras.layers.LSTM or keras.ops.lstm."""
    if isinstance(owner, type):
        module = owner.__module__
        prefix = "keras.layers" if module.startswith("keras") else \
            "tf.compat.v1.nn.rnn_cell" if "rnn_cell" in module else module
        return f"{prefix}.{owner.__name__}"
    return f"{getattr(owner, '__name__', owner)}.{attr}"


#: > 0 while the reference LSTM step (a stand-in, see below) runs: it may use Keras's cell.
_REFERENCE_RUNNING = [0]


@contextlib.contextmanager
def keras_recurrent_blocked(what: str) -> Iterator[list[str]]:
    """Within the block, Keras's recurrent layers (and TensorFlow's LSTM cells) raise.

    Yields a list that records every blocked call, so a student function that
    swallows the exception is caught too. The reference step that stands in for
    the student's ``lstm_cell_forward`` while ``lstm_forward`` is tested is let through.
    """
    calls: list[str] = []
    saved = []
    for owner, attr in _recurrent_targets():
        original = getattr(owner, attr)
        label = _label(owner, attr)

        def blocked(self=None, *args, _label=label, _original=original, **kwargs):  # `self` first: Keras inspects __init__
            if _REFERENCE_RUNNING[0]:
                return _original(*(() if self is None else (self,)), *args, **kwargs)
            calls.append(_label)
            raise FromScratchViolation(
                f"{what} used {_label}: write the LSTM from scratch in NumPy, without Keras's recurrent layers")

        saved.append((owner, attr, original))
        setattr(owner, attr, blocked)
    try:
        yield calls
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


def _call_student(fn: Callable, args: tuple, kwargs: dict, what: str):
    """Call a student function under the guard; its exceptions become GradingFailures naming the call."""
    with keras_recurrent_blocked(what) as blocked:
        try:
            result = fn(*args, **kwargs)
        except FromScratchViolation:
            raise
        except Exception as exc:
            raise GradingFailure(f"{what} raised {type(exc).__name__}: {exc}") from exc
    if blocked:
        raise FromScratchViolation(f"{what} used {blocked[0]}: write the LSTM from scratch in NumPy, "
                                   "without Keras's recurrent layers")
    return result


def _as_array(value, what: str, part: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except Exception as exc:
        raise GradingFailure(f"{what}: {part} is not a NumPy array ({type(value).__name__}: {exc})") from None
    if array.dtype == object:
        raise GradingFailure(f"{what}: {part} is not a numeric array")
    return array


# ---------------------------------------------------------------------------
# sigmoid
# ---------------------------------------------------------------------------

def _sigmoid_what(case: Case) -> str:
    z = case.inputs
    return f"sigmoid(a {z.dtype} scalar)" if z.ndim == 0 else f"sigmoid(a {z.dtype} array of shape {z.shape})"


def produce_sigmoid(sigmoid: Callable, case: Case) -> Produced:
    """The student's sigmoid of the case's values; an overflow (or invalid value) is a failure."""
    what = _sigmoid_what(case)
    z = case.inputs.copy() if case.inputs.ndim else case.inputs.dtype.type(case.inputs)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        try:
            result = sigmoid(z)
        except FloatingPointError as exc:
            raise GradingFailure(f"{what} overflowed ({exc}): let exp see only arguments <= 0, e.g. "
                                 "exp(-|z|)") from None
        except Exception as exc:
            raise GradingFailure(f"{what} raised {type(exc).__name__}: {exc}") from exc
    got = _as_array(result, what, "the output")
    if got.shape != np.shape(z):
        raise GradingFailure(f"{what} returned shape {got.shape}: the output has the input's shape"
                             + (" (a scalar in, a scalar out)" if np.ndim(z) == 0 else ""))
    return Produced(got)


def _diagnose_sigmoid(case: Case) -> Callable[[np.ndarray, np.ndarray], list[str]]:
    def diagnose(got: np.ndarray, expected: np.ndarray) -> list[str]:
        if got.shape == expected.shape and np.allclose(got, 1 - expected, atol=1e-6):
            return ["this is sigmoid(-z): the two branches are swapped"]
        if not np.all(np.isfinite(got)):
            return ["the output has NaN or infinity: exp overflowed or 0/0 appeared"]
        return ["sigmoid(z) = 1 / (1 + exp(-z)) for z >= 0 and exp(z) / (1 + exp(z)) for z < 0"]
    return diagnose


def reference_sigmoid(z):
    """Stand-in for the student's ``sigmoid`` while other functions are tested (SciPy's expit)."""
    from scipy.special import expit

    return expit(z)


# ---------------------------------------------------------------------------
# lstm_cell_forward
# ---------------------------------------------------------------------------

def _cell_call(case: Case) -> str:
    x = case.inputs
    u = case.weights["state"][0].shape[-1]
    return (f"lstm_cell_forward(x_t {x.shape}, h_prev ({x.shape[0]}, {u}), c_prev ({x.shape[0]}, {u}), "
            f"kernel {case.weights['lstm'][0].shape}, recurrent_kernel {case.weights['lstm'][1].shape}, "
            f"bias {case.weights['lstm'][2].shape})")


def produce_lstm_cell_forward(lstm_cell_forward: Callable, case: Case) -> Produced:
    """The student's ``(h_t, c_t)`` for a ``cell_*`` case, concatenated along the last axis.

    Keras's recurrent layers are blocked during the call; copies of the inputs
    are passed, so a function that modifies its arguments cannot change the case.
    """
    what = _cell_call(case)
    kernel, recurrent, bias = (np.array(w) for w in case.weights["lstm"])
    h_prev, c_prev = (np.array(s) for s in case.weights["state"])
    result = _call_student(lstm_cell_forward, (np.array(case.inputs), h_prev, c_prev, kernel, recurrent, bias),
                           {}, what)
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise GradingFailure(f"{what} must return a pair (h_t, c_t), not {type(result).__name__}"
                             + (f" of length {len(result)}" if isinstance(result, tuple | list) else ""))
    h, c = (_as_array(v, what, part) for v, part in zip(result, ("h_t", "c_t"), strict=True))
    shape = case.weights["state"][0].shape
    for value, part in ((h, "h_t"), (c, "c_t")):
        if value.shape != shape:
            raise GradingFailure(f"{what}: {part} has shape {value.shape}, expected {shape} (batch, units)")
    return Produced(np.concatenate([h, c], axis=-1).astype(np.float32))


def _matching(got: np.ndarray, case: Case, mistakes: dict[str, str]) -> list[str]:
    return [message for name, message in mistakes.items()
            if name in case.probes and case.probes[name].shape == got.shape
            and relative_error(got, case.probes[name]) <= TOLERANCE]


def _diagnose_cell(case: Case) -> Callable[[np.ndarray, np.ndarray], list[str]]:
    units = case.weights["state"][0].shape[-1]

    def diagnose(got: np.ndarray, expected: np.ndarray) -> list[str]:
        hints = _matching(got, case, CELL_MISTAKES)
        if hints or got.shape != expected.shape:
            return hints
        h_ok = relative_error(got[..., :units], expected[..., :units]) <= TOLERANCE
        c_ok = relative_error(got[..., units:], expected[..., units:]) <= TOLERANCE
        if c_ok and not h_ok:
            return ["c_t is right but h_t is not: look at the output gate (last block of columns) and "
                    "h_t = o * tanh(c_t)"]
        return ["c_t is wrong: check the pre-activations x_t @ kernel + h_prev @ recurrent_kernel + bias, "
                "the split into the four blocks [i | f | c | o] of `units` columns each, sigmoid on i, f, o "
                "and tanh on the candidate"]
    return diagnose


def reference_lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    """Stand-in for the student's ``lstm_cell_forward`` while ``lstm_forward`` is tested.

    One step of Keras's own ``LSTMCell`` (not a from-scratch LSTM: this package
    is installed on students' machines), let through the recurrent-layer guard. It
    refuses to run as anyone's own ``lstm_cell_forward``.
    """
    require_stand_in("lstm_cell_forward")
    weights = [np.asarray(w, dtype=np.float32) for w in (kernel, recurrent_kernel, bias)]
    _REFERENCE_RUNNING[0] += 1
    try:
        return _keras_cell(np.asarray(x_t, np.float32), weights, np.asarray(h_prev, np.float32),
                           np.asarray(c_prev, np.float32))
    finally:
        _REFERENCE_RUNNING[0] -= 1


# ---------------------------------------------------------------------------
# lstm_forward
# ---------------------------------------------------------------------------

def _forward_call(case: Case) -> str:
    return (f"lstm_forward(x {case.inputs.shape}, kernel {case.weights['lstm'][0].shape}, "
            f"recurrent_kernel {case.weights['lstm'][1].shape}, bias {case.weights['lstm'][2].shape}, "
            f"return_sequences={bool(case.meta['return_sequences'])})")


def produce_lstm_forward(lstm_forward: Callable, case: Case) -> Produced:
    """The student's ``lstm_forward`` output for a ``forward_*`` case (Keras's layers blocked)."""
    what = _forward_call(case)
    kernel, recurrent, bias = (np.array(w) for w in case.weights["lstm"])
    result = _call_student(lstm_forward, (np.array(case.inputs), kernel, recurrent, bias),
                           {"return_sequences": bool(case.meta["return_sequences"])}, what)
    if isinstance(result, tuple | list):
        raise GradingFailure(f"{what} must return one array (the hidden states), not a {type(result).__name__}")
    return Produced(_as_array(result, what, "the output").astype(np.float32))


def _diagnose_forward(case: Case) -> Callable[[np.ndarray, np.ndarray], list[str]]:
    seq = bool(case.meta["return_sequences"])
    batch, time = case.inputs.shape[:2]

    def diagnose(got: np.ndarray, expected: np.ndarray) -> list[str]:
        if got.shape != expected.shape:
            if not seq and got.shape == (batch, time, expected.shape[-1]):
                return ["all steps are returned; with return_sequences=False return only the last step's h"]
            if seq and got.shape == (batch, expected.shape[-1]):
                return ["only the last step is returned; with return_sequences=True return h at every step, "
                        "(batch, time, units)"]
            if got.shape == (time, batch, expected.shape[-1]):
                return ["time and batch axes are swapped: the output is (batch, time, units)"]
            return []
        hints = _matching(got, case, FORWARD_MISTAKES)
        if hints:
            return hints
        if seq and time > 1 and relative_error(got[:, :1], expected[:, :1]) <= TOLERANCE:
            return ["the first step is right and later steps are not: check how (h, c) are passed on "
                    "from one step to the next"]
        return ["already the first step differs, although your lstm_cell_forward was replaced by a "
                "reference step for this test: apply the step to x[:, t] with zero initial states"]
    return diagnose


SIGMOID_STAND_IN = StandIn("sigmoid", reference_sigmoid)

SIGMOID = FunctionSpec(
    function="sigmoid", select="sigmoid", produce=produce_sigmoid, describe=_sigmoid_what,
    diagnose=_diagnose_sigmoid, tolerance=1e-6, test_cell="test_sigmoid")
LSTM_CELL_FORWARD = FunctionSpec(
    function="lstm_cell_forward", select="cell", produce=produce_lstm_cell_forward,
    describe=lambda case: _cell_call(case) + " -> (h_t, c_t)", diagnose=_diagnose_cell,
    stand_ins=(SIGMOID_STAND_IN,), frameworks=False)
LSTM_FORWARD = FunctionSpec(
    function="lstm_forward", select="forward", produce=produce_lstm_forward, describe=_forward_call,
    diagnose=_diagnose_forward,
    stand_ins=(SIGMOID_STAND_IN, StandIn("lstm_cell_forward", reference_lstm_cell_forward)), frameworks=False)


# ---------------------------------------------------------------------------
# Reference cases, from Keras (instructor side: `course references lstm`)
# ---------------------------------------------------------------------------

def _weights(rng: np.random.Generator, features: int, units: int) -> list[np.ndarray]:
    kernel = rng.normal(0, 0.8, (features, 4 * units))
    recurrent = rng.normal(0, 0.8, (units, 4 * units))
    bias = rng.normal(0, 0.5, 4 * units)
    return [np.asarray(w, dtype=np.float32) for w in (kernel, recurrent, bias)]


def _keras_lstm(x: np.ndarray, weights: list[np.ndarray], state=None, return_sequences=False,
                go_backwards=False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras's LSTM on ``x``: (output, final h, final c)."""
    import keras

    layer = keras.layers.LSTM(weights[1].shape[0], return_sequences=return_sequences, return_state=True,
                              go_backwards=go_backwards)
    layer.build((None, *x.shape[1:]))
    layer.set_weights(weights)
    out = layer(x, initial_state=None if state is None else [keras.ops.convert_to_tensor(s) for s in state])
    return tuple(np.asarray(keras.ops.convert_to_numpy(o), dtype=np.float32) for o in out)


def _keras_cell(x_t: np.ndarray, weights: list[np.ndarray], h: np.ndarray, c: np.ndarray,
                **options) -> tuple[np.ndarray, np.ndarray]:
    """One step of Keras's LSTMCell: (h_t, c_t)."""
    import keras

    cell = keras.layers.LSTMCell(weights[1].shape[0], **options)
    cell.build((None, x_t.shape[-1]))
    cell.set_weights(weights)
    _, (h_t, c_t) = cell(x_t, [h, c])
    return tuple(np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float32) for v in (h_t, c_t))


def _blocks(weights: list[np.ndarray], order: tuple[int, ...]) -> list[np.ndarray]:
    """Weights whose gate blocks are permuted: new block k is old block order[k]."""
    units = weights[1].shape[0]
    index = np.concatenate([np.arange(units) + units * k for k in order])
    return [w[..., index] for w in weights]


def _pinned(weights: list[np.ndarray], gate: int, value: float = 60.0) -> list[np.ndarray]:
    """Weights with one gate pinned open (its sigmoid is 1): zero inputs, large bias."""
    units = weights[1].shape[0]
    kernel, recurrent, bias = (w.copy() for w in weights)
    block = slice(gate * units, (gate + 1) * units)
    kernel[:, block], recurrent[:, block], bias[block] = 0, 0, value
    return [kernel, recurrent, bias]


def _cell_case(name: str, batch: int, features: int, units: int, seed: int) -> Case:
    rng = np.random.default_rng(seed)
    weights = _weights(rng, features, units)
    x = rng.normal(0, 1, (batch, features)).astype(np.float32)
    h_prev = rng.uniform(-0.9, 0.9, (batch, units)).astype(np.float32)
    c_prev = rng.normal(0, 1.5, (batch, units)).astype(np.float32)
    _, h, c = _keras_lstm(x[:, None, :], weights, state=(h_prev, c_prev))
    zeros = np.zeros_like(weights[1])

    def step(w=weights, hp=h_prev, cp=c_prev, **options):
        return np.concatenate(_keras_cell(x, w, hp, cp, **options), axis=-1)

    h_sig, c_sig = _keras_cell(x, weights, h_prev, c_prev, activation="sigmoid")
    probes = {
        "order_ifoc": step(_blocks(weights, (0, 1, 3, 2))),
        "order_icfo": step(_blocks(weights, (0, 2, 1, 3))),
        "order_fico": step(_blocks(weights, (1, 0, 2, 3))),
        "swap_hc": np.concatenate([c, h], axis=-1),
        "c_not_h": np.concatenate([c, c], axis=-1),
        "no_forget": step(_pinned(weights, 1)),
        "no_input_gate": step(_pinned(weights, 0)),
        "no_output_gate": step(_pinned(weights, 3)),
        "no_recurrence": step([weights[0], zeros, weights[2]]),
        "no_bias": step([weights[0], weights[1], np.zeros_like(weights[2])]),
        "no_c_prev": step(cp=np.zeros_like(c_prev)),
    }
    # h = o * c instead of o * tanh(c): o = h / tanh(c) from Keras's own step.
    with np.errstate(divide="ignore", invalid="ignore"):
        gate_o = np.where(np.abs(np.tanh(c)) > 1e-6, h / np.tanh(c), 0.0)
    probes["no_cell_tanh"] = np.concatenate([gate_o * c, c], axis=-1)
    # sigmoid candidate: Keras's `activation` also replaces the tanh on the cell; undo that part.
    with np.errstate(divide="ignore", invalid="ignore"):
        o_sig = h_sig / (1 / (1 + np.exp(-c_sig.astype(np.float64))))
    probes["sigmoid_candidate"] = np.concatenate([o_sig * np.tanh(c_sig), c_sig], axis=-1)
    probes = {k: np.asarray(v, dtype=np.float32) for k, v in probes.items()}
    return Case(name, {"units": units}, x, np.concatenate([h, c], axis=-1),
                {"lstm": weights, "state": [h_prev, c_prev]}, probes)


def _cell_loop(x: np.ndarray, weights: list[np.ndarray], reset: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Keras's LSTMCell step by step; ``reset`` names states zeroed before each step. Returns (hs, cs)."""
    batch, units = x.shape[0], weights[1].shape[0]
    h = c = np.zeros((batch, units), np.float32)
    hs, cs = [], []
    for t in range(x.shape[1]):
        if "h" in reset:
            h = np.zeros_like(h)
        if "c" in reset:
            c = np.zeros_like(c)
        h, c = _keras_cell(x[:, t], weights, h, c)
        hs.append(h)
        cs.append(c)
    return np.stack(hs, axis=1), np.stack(cs, axis=1)


def _forward_case(name: str, batch: int, time: int, features: int, units: int, seq: bool, seed: int) -> Case:
    rng = np.random.default_rng(seed)
    weights = _weights(rng, features, units)
    x = rng.normal(0, 1, (batch, time, features)).astype(np.float32)
    expected = _keras_lstm(x, weights, return_sequences=seq)[0]
    full = _keras_lstm(x, weights, return_sequences=True)[0]

    def pick(sequence: np.ndarray) -> np.ndarray:
        return sequence if seq else sequence[:, -1]

    hs_c_reset, _ = _cell_loop(x, weights, reset="c")
    hs_h_reset, _ = _cell_loop(x, weights, reset="h")
    _, cs = _cell_loop(x, weights)
    backwards = _keras_lstm(x[:, ::-1], weights, return_sequences=True)[0]
    probes = {
        "no_state_carry": pick(_cell_loop(x, weights, reset="hc")[0]),
        "c_reset": pick(hs_c_reset),
        "h_reset": pick(hs_h_reset),
        "cell_state": pick(cs),
        "reversed": pick(backwards[:, ::-1]) if seq else backwards[:, -1],
    }
    if not seq:
        probes["first_step"] = full[:, 0]
    if time == 1:  # one step: carrying the state makes no difference
        probes = {k: v for k, v in probes.items() if k in ("cell_state",)}
    return Case(name, {"return_sequences": seq, "units": units}, x, expected, {"lstm": weights},
                {k: np.asarray(v, dtype=np.float32) for k, v in probes.items()})


def _sigmoid_case(name: str, kind: str, dtype: str, seed: int) -> Case:
    if kind == "grid":
        z = np.random.default_rng(seed).normal(0, 30, (4, 5, 6))
    elif kind == "extreme":
        z = np.array([-1000.0, -89.5, -50.0, -1e-3, 0.0, 1e-3, 50.0, 89.5, 1000.0])
    else:
        z = np.array(-100.0)
    z = z.astype(dtype)
    return Case(name, {"kind": kind}, z, reference_sigmoid(z.astype(np.float64)))


def make_cases(sigmoid: Callable | None = None, lstm_cell_forward: Callable | None = None,
               lstm_forward: Callable | None = None) -> list[Case]:
    """Reference cases whose expected outputs come from SciPy's expit and ``keras.layers.LSTM``.

    When the solution's functions are given, they must reproduce every case
    (a sanity check of the solution, not the source of the references).
    """
    from dlcourse.grading.policy import grading_mode

    grading_mode()
    cases = [_sigmoid_case(name, kind, dtype, 900 + i) for i, (name, kind, dtype) in enumerate(SIGMOID_CASES)]
    cases += [_cell_case(*spec) for spec in CELL_CASES] + [_forward_case(*spec) for spec in FORWARD_CASES]
    by_name = {c.name: c for c in cases}
    for spec, function in ((SIGMOID, sigmoid), (LSTM_CELL_FORWARD, lstm_cell_forward),
                           (LSTM_FORWARD, lstm_forward)):
        if function is not None:
            spec.check(function, by_name)
    return cases


# ---------------------------------------------------------------------------
# The handed-in beat detector
# ---------------------------------------------------------------------------

def beat_f1(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """F1 score of the 'beat' class over all time steps (argmax of the probabilities).

    A model that never predicts a beat scores 0, however accurate it is per step.
    """
    predicted = np.asarray(probabilities).argmax(axis=-1) == 1
    truth = np.asarray(labels) == 1
    total = predicted.sum() + truth.sum()
    return float(2 * (predicted & truth).sum() / total) if total else 1.0


def load_test_split(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The reserved test windows (x, y) from the hidden file."""
    from dlcourse.data import load_signals

    return load_signals("test", path=path)


HANDIN = HandinContract(
    grade_id="test_sequence_models_handin", model_file="lstm_model.keras", data_file="hidden_signal_test.npz",
    load_split=load_test_split, num_classes=2, metric="beat F1", score=beat_f1, threshold=0.72,
    output_shape=lambda input_shape: (input_shape[0], 2),
    output_meaning="probabilities of (no beat, beat) at every time step")

ASSIGNMENT = AssignmentSpec(
    assignment="lstm", module=__name__, reference_file=REFERENCE_FILE,
    functions=(SIGMOID, LSTM_CELL_FORWARD, LSTM_FORWARD), make_cases=make_cases, handin=HANDIN)
