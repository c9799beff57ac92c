"""Checks on handed-in trained models: they load safely, keep the contract, score."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlcourse.grading.compare import GradingFailure


def load_handin(path: str | Path, input_shape: tuple[int, ...], num_classes: int):
    """Load an untrusted ``.keras`` file in safe mode and check the model contract.

    Contract: input is the raw image as ``dlcourse.data`` loads it, output is
    class probabilities of shape (batch, ..., num_classes).
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise GradingFailure(f"{path.name} not found: train the model and save it next to the notebook")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        raise GradingFailure(f"{path.name} does not load in safe mode ({type(exc).__name__}: {exc})") from None
    if tuple(model.input_shape[1:]) != tuple(input_shape):
        raise GradingFailure(f"{path.name}: input shape {model.input_shape[1:]}, the contract says "
                             f"{tuple(input_shape)} (raw images; preprocessing belongs inside the model)")
    outputs = model.outputs if isinstance(model.outputs, list) else [model.outputs]
    if len(outputs) != 1:
        raise GradingFailure(f"{path.name} has {len(outputs)} outputs; hand in the main head only")
    if model.output_shape[-1] != num_classes:
        raise GradingFailure(f"{path.name}: {model.output_shape[-1]} output channels, expected {num_classes}")
    return model


def predict_probabilities(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    probs = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float64)
    if not np.allclose(probs.sum(axis=-1), 1.0, atol=1e-3) or probs.min() < -1e-6:
        raise GradingFailure("the model's outputs are not probabilities (end with a softmax)")
    return probs


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Share of items whose most probable class is the label."""
    return float(np.mean(np.asarray(probabilities).argmax(axis=-1) == labels))


def load_ct_test(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The reserved CT test split (slices, labels) from its hidden file."""
    from dlcourse.data import load_ct_slices

    return load_ct_slices("test", path=path)
