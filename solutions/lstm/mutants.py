"""Typical mistakes (mutants) and alternative correct solutions for `lstm`."""

from dlcourse.authoring.mutants import alternative as _correct
from dlcourse.authoring.mutants import mutant as _mutant

_CELL = '''
def lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    z = {z}
    z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
    i, f, o = sigmoid({zi}), sigmoid({zf}), sigmoid(z_o)
    candidate = {candidate}
    c_t = {c_t}
    h_t = {h_t}
    return {ret}
'''
_CELL_PARTS = {
    "z": "x_t @ kernel + h_prev @ recurrent_kernel + bias",
    "zi": "z_i", "zf": "z_f",
    "candidate": "np.tanh(z_c)",
    "c_t": "f * c_prev + i * candidate",
    "h_t": "o * np.tanh(c_t)",
    "ret": "h_t, c_t",
}


def _cell(**changes):
    return _CELL.format(**{**_CELL_PARTS, **changes})


_FORWARD = '''
def lstm_forward(x, kernel, recurrent_kernel, bias, return_sequences=False):
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    h = np.zeros((batch, units), dtype=x.dtype)
    c = np.zeros((batch, units), dtype=x.dtype)
    outputs = []
    for t in {steps}:
        {reset}h, c = lstm_cell_forward(x[:, t], h, c, kernel, recurrent_kernel, bias)
        outputs.append({out})
    return {ret}
'''
_FORWARD_PARTS = {
    "steps": "range(steps)", "reset": "", "out": "h",
    "ret": "np.stack(outputs, axis=1) if return_sequences else outputs[-1]",
}


def _forward(**changes):
    return _FORWARD.format(**{**_FORWARD_PARTS, **changes})


IMPLEMENTATIONS = [
    # --- sigmoid --------------------------------------------------------------------
    _mutant("literal formula (overflows)", "sigmoid", '''
def sigmoid(z):
    return 1 / (1 + np.exp(-np.asarray(z, dtype=float)))
'''),
    _mutant("sign flipped", "sigmoid", '''
def sigmoid(z):
    z = np.asarray(z)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, e / (1 + e), 1 / (1 + e))
'''),
    _correct("tanh identity", "sigmoid", '''
def sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * np.asarray(z)))
'''),
    _correct("scipy.special.expit", "sigmoid", '''
from scipy.special import expit

def sigmoid(z):
    return expit(z)
'''),
    _correct("boolean masks into a preallocated array", "sigmoid", '''
def sigmoid(z):
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1 / (1 + np.exp(-z[positive]))
    e = np.exp(z[~positive])
    out[~positive] = e / (1 + e)
    return out
'''),
    # --- lstm_cell_forward ----------------------------------------------------------
    _mutant("gate order i, f, o, c", "lstm_cell_forward", '''
def lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    z = x_t @ kernel + h_prev @ recurrent_kernel + bias
    z_i, z_f, z_o, z_c = np.split(z, 4, axis=-1)
    c_t = sigmoid(z_f) * c_prev + sigmoid(z_i) * np.tanh(z_c)
    return sigmoid(z_o) * np.tanh(c_t), c_t
'''),
    _mutant("gate order i, c, f, o", "lstm_cell_forward", '''
def lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    z = x_t @ kernel + h_prev @ recurrent_kernel + bias
    z_i, z_c, z_f, z_o = np.split(z, 4, axis=-1)
    c_t = sigmoid(z_f) * c_prev + sigmoid(z_i) * np.tanh(z_c)
    return sigmoid(z_o) * np.tanh(c_t), c_t
'''),
    _mutant("forget and input gates swapped", "lstm_cell_forward", _cell(zi="z_f", zf="z_i")),
    _mutant("missing tanh on the cell", "lstm_cell_forward", _cell(h_t="o * c_t")),
    _mutant("sigmoid candidate", "lstm_cell_forward", _cell(candidate="sigmoid(z_c)")),
    _mutant("returns (c, h)", "lstm_cell_forward", _cell(ret="c_t, h_t")),
    _mutant("no forget gate", "lstm_cell_forward", _cell(c_t="c_prev + i * candidate")),
    _mutant("h_prev ignored", "lstm_cell_forward", _cell(z="x_t @ kernel + bias")),
    _mutant("bias missing", "lstm_cell_forward", _cell(z="x_t @ kernel + h_prev @ recurrent_kernel")),
    _mutant("h from the previous cell state", "lstm_cell_forward", _cell(h_t="o * np.tanh(c_prev)")),
    _mutant("no output gate", "lstm_cell_forward", _cell(h_t="np.tanh(c_t)")),
    _mutant("uses keras.layers.LSTM", "lstm_cell_forward", '''
def lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    layer = keras.layers.LSTM(recurrent_kernel.shape[0], return_state=True)
    layer.build((None, 1, x_t.shape[-1]))
    layer.set_weights([kernel, recurrent_kernel, bias])
    _, h, c = layer(np.asarray(x_t, "float32")[:, None], initial_state=[h_prev, c_prev])
    return np.asarray(h), np.asarray(c)
'''),
    _correct("four separate products per gate", "lstm_cell_forward", '''
def lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    u = recurrent_kernel.shape[0]

    def gate(k):
        cols = slice(k * u, (k + 1) * u)
        return x_t @ kernel[:, cols] + h_prev @ recurrent_kernel[:, cols] + bias[cols]

    i, f, g, o = sigmoid(gate(0)), sigmoid(gate(1)), np.tanh(gate(2)), sigmoid(gate(3))
    c = f * c_prev + i * g
    return o * np.tanh(c), c
'''),
    _correct("float64 and one stacked product", "lstm_cell_forward", '''
def lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    inputs = np.concatenate([np.asarray(x_t, np.float64), np.asarray(h_prev, np.float64)], axis=-1)
    weights = np.concatenate([kernel, recurrent_kernel], axis=0).astype(np.float64)
    z = inputs @ weights + bias
    u = z.shape[-1] // 4
    i, f, o = sigmoid(z[:, :u]), sigmoid(z[:, u:2 * u]), sigmoid(z[:, 3 * u:])
    c = f * c_prev + i * np.tanh(z[:, 2 * u:3 * u])
    return o * np.tanh(c), c
'''),
    _correct("einsum and reshape into (batch, 4, units)", "lstm_cell_forward", '''
def lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    z = np.einsum("bi,ij->bj", x_t, kernel) + np.einsum("bu,uj->bj", h_prev, recurrent_kernel) + bias
    gates = z.reshape(z.shape[0], 4, -1)
    c_t = sigmoid(gates[:, 1]) * c_prev + sigmoid(gates[:, 0]) * np.tanh(gates[:, 2])
    h_t = sigmoid(gates[:, 3]) * np.tanh(c_t)
    return h_t, c_t
'''),
    # --- lstm_forward ---------------------------------------------------------------
    _mutant("state not carried between steps", "lstm_forward",
            _forward(reset="h, c = np.zeros_like(h), np.zeros_like(c)\n        ")),
    _mutant("cell state not carried", "lstm_forward", _forward(reset="c = np.zeros_like(c)\n        ")),
    _mutant("returns the cell state", "lstm_forward", _forward(out="c")),
    _mutant("always the last step", "lstm_forward", _forward(ret="outputs[-1]")),
    _mutant("first step instead of the last", "lstm_forward",
            _forward(ret="np.stack(outputs, axis=1) if return_sequences else outputs[0]")),
    _mutant("always all steps", "lstm_forward", _forward(ret="np.stack(outputs, axis=1)")),
    _mutant("runs backwards in time", "lstm_forward", _forward(steps="reversed(range(steps))")),
    _mutant("time-major stacking", "lstm_forward",
            _forward(ret="np.stack(outputs, axis=0) if return_sequences else outputs[-1]")),
    _mutant("uses keras.layers.LSTM", "lstm_forward", '''
def lstm_forward(x, kernel, recurrent_kernel, bias, return_sequences=False):
    layer = keras.layers.LSTM(recurrent_kernel.shape[0], return_sequences=return_sequences)
    layer.build(x.shape)
    layer.set_weights([kernel, recurrent_kernel, bias])
    return keras.ops.convert_to_numpy(layer(x))
'''),
    _correct("preallocated outputs, float64", "lstm_forward", '''
def lstm_forward(x, kernel, recurrent_kernel, bias, return_sequences=False):
    x = np.asarray(x, dtype=np.float64)
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    out = np.empty((batch, steps, units))
    h = np.zeros((batch, units))
    c = np.zeros((batch, units))
    for t in range(steps):
        h, c = lstm_cell_forward(x[:, t, :], h, c, kernel, recurrent_kernel, bias)
        out[:, t, :] = h
    return out if return_sequences else out[:, -1, :]
'''),
    _correct("self-contained loop with input products hoisted", "lstm_forward", '''
def lstm_forward(x, kernel, recurrent_kernel, bias, return_sequences=False):
    projected = np.einsum("btf,fj->btj", x, kernel) + bias  # all input products at once
    u = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[0], u))
    c = np.zeros((x.shape[0], u))
    hs = []
    for z_x in np.moveaxis(projected, 1, 0):
        z = z_x + h @ recurrent_kernel
        c = sigmoid(z[:, u:2 * u]) * c + sigmoid(z[:, :u]) * np.tanh(z[:, 2 * u:3 * u])
        h = sigmoid(z[:, 3 * u:]) * np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1) if return_sequences else h
'''),
    # --- sequence_models ------------------------------------------------------------
    _mutant("bidirectional LSTM (not causal)", "sequence_models", '''
def build_lstm_model(x_train, units=16):
    normalise = keras.layers.Normalization(axis=None)
    normalise.adapt(x_train)
    inputs = keras.Input(x_train.shape[1:])
    h = keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=True))(normalise(inputs))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))


def build_tcn_model(x_train, dilations=(1, 2, 4, 8, 16), filters=16, kernel_size=3):
    normalise = keras.layers.Normalization(axis=None)
    normalise.adapt(x_train)
    inputs = keras.Input(x_train.shape[1:])
    h = normalise(inputs)
    for d in dilations:
        h = keras.layers.Conv1D(filters, kernel_size, dilation_rate=d, padding="causal", activation="relu")(h)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))
'''),
    _mutant("same padding in the TCN (not causal)", "sequence_models", '''
def build_lstm_model(x_train, units=16):
    normalise = keras.layers.Normalization(axis=None)
    normalise.adapt(x_train)
    inputs = keras.Input(x_train.shape[1:])
    h = keras.layers.LSTM(units, return_sequences=True)(normalise(inputs))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))


def build_tcn_model(x_train, dilations=(1, 2, 4, 8, 16), filters=16, kernel_size=3):
    normalise = keras.layers.Normalization(axis=None)
    normalise.adapt(x_train)
    inputs = keras.Input(x_train.shape[1:])
    h = normalise(inputs)
    for d in dilations:
        h = keras.layers.Conv1D(filters, kernel_size, dilation_rate=d, padding="same", activation="relu")(h)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))
'''),
]

#: Nothing builds on another graded function here without a reference version standing in:
#: lstm_cell_forward is tested with a reference sigmoid, lstm_forward with a reference step.
DEPENDS_ON: dict[str, set[str]] = {}
SKIP = ("speed", "memory", "train", "test_sequence_models_handin")
