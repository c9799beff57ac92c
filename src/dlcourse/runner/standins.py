"""Reference versions of graded functions that must never be importable where student code runs.

While ``lstm_forward`` is graded, the student's ``lstm_cell_forward`` is replaced by a
reference step, so that one mistake costs marks once. The student side's reference step
(:func:`dlcourse.grading.lstm.reference_lstm_cell_forward`, used by the visible tests inside
the notebook) is Keras's own cell, and the job that grades ``lstm_forward`` runs without Keras
(the LSTM must be written in NumPy). So the trusted repeat ships the NumPy step below, as
source, in that one job only: it is the answer to another graded function, and this module is
on the TA side, which no sandbox can see. Each function here must be self-contained (NumPy is
``np``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np


def lstm_cell_step(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    """One LSTM step in Keras's layout (gates i, f, c, o), in float64 like the student's."""
    z = np.asarray(x_t) @ np.asarray(kernel) + np.asarray(h_prev) @ np.asarray(recurrent_kernel) + np.asarray(bias)
    z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)

    def sigmoid(v):
        e = np.exp(-np.abs(v))
        return np.where(v >= 0, 1 / (1 + e), e / (1 + e))

    c_t = sigmoid(z_f) * np.asarray(c_prev) + sigmoid(z_i) * np.tanh(z_c)
    return sigmoid(z_o) * np.tanh(c_t), c_t


#: Graded function name -> its reference, where the student side's cannot serve the repeat.
TRUSTED: dict[str, Callable] = {"lstm_cell_forward": lstm_cell_step}


def shipped(names: list[str]) -> list[list[str]]:
    """``[name, function name, source]`` of the trusted references among ``names``."""
    return [[name, TRUSTED[name].__name__, inspect.getsource(TRUSTED[name])] for name in names if name in TRUSTED]
