"""The numeric policy of grading, in one place.

* Everything in float32.
* TF32 (and its JAX/PyTorch equivalents) switched off while grading, so a GPU
  multiplies in full float32 like the CPU that made the references.
* One error measure: the largest absolute deviation divided by the largest
  magnitude of the expected output. Scaling by the output keeps the tolerance
  meaningful for logits and probabilities alike.
* ``TOLERANCE`` leaves a wide margin over TF32-style rounding (10 mantissa
  bits, relative steps of about 5e-4 per operation) so a correct model on a
  GPU runtime that ignores the switch still passes, while the typical
  mistakes err by 1e-1 or more. ``tests/test_grading_policy.py`` simulates
  TF32 on the CPU to prove both margins.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

TOLERANCE = 5e-3
DTYPE = "float32"


def relative_error(got, expected) -> float:
    """max |got - expected| / max |expected| (shapes must agree)."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected))) if expected.size else 0.0, 1e-6)
    return float(np.max(np.abs(got - expected))) / scale if expected.size else 0.0


def disable_tf32() -> None:
    """Switch TF32 off in every framework that is already imported."""
    import sys

    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(False)
    if "jax" in sys.modules:
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")
    if "torch" in sys.modules:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def grading_mode() -> None:
    """Call before building student models in a test: float32 and no TF32."""
    import keras

    keras.config.set_floatx(DTYPE)
    disable_tf32()


def round_to_tf32(array: np.ndarray) -> np.ndarray:
    """Round float32 values to TF32's 10-bit mantissa (round half to even).

    Applied to a layer's inputs and weights it mimics what a GPU in TF32 mode
    does to the operands of every matrix product.
    """
    bits = np.asarray(array, dtype=np.float32).view(np.uint32).astype(np.uint64)
    drop = 13  # float32 has 23 mantissa bits, TF32 keeps 10
    half = np.uint64(1 << (drop - 1))
    lsb = (bits >> np.uint64(drop)) & np.uint64(1)
    rounded = (bits + half - np.uint64(1) + lsb) >> np.uint64(drop) << np.uint64(drop)
    return rounded.astype(np.uint32).view(np.float32)


@contextlib.contextmanager
def tf32_simulation():
    """Within the block, Conv2D and Dense layers round operands to TF32 precision.

    Used only by tests: a CPU stand-in for a GPU that multiplies in TF32.
    """
    import keras

    patched = []
    for cls in (keras.layers.Conv2D, keras.layers.Dense, keras.layers.Conv2DTranspose,
                keras.layers.Conv1D, keras.layers.Conv3D):
        original = cls.call

        def call(self, inputs, *args, _original=original, **kwargs):
            saved = [w.numpy() for w in self.weights]
            for w, value in zip(self.weights, saved, strict=True):
                w.assign(round_to_tf32(value))
            try:
                rounded = keras.ops.convert_to_tensor(round_to_tf32(keras.ops.convert_to_numpy(inputs)))
                return _original(self, rounded, *args, **kwargs)
            finally:
                for w, value in zip(self.weights, saved, strict=True):
                    w.assign(value)

        cls.call = call
        patched.append((cls, original))
    try:
        yield
    finally:
        for cls, original in patched:
            cls.call = original
