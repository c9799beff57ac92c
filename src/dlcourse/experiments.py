"""Small experiment helpers the practicals share (kept out of the notebooks' cells)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np


def gradient_norms(model, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """L2 norm of the loss gradient for every convolution kernel, in layer order.

    Measured on one batch at initialisation, it shows whether the training signal
    reaches the first layers of a deep network or fades on the way down.
    """
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    kernels = [layer.kernel for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    names = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, kernels)
    return {name: float(tf.norm(g)) if g is not None else 0.0 for name, g in zip(names, grads, strict=True)}


def plot_plain_vs_residual(norms: dict[str, dict[str, float]], losses: dict[str, list[float]]):
    """Two panels: gradient norm per conv layer at initialisation, training loss per epoch."""
    import matplotlib.pyplot as plt

    fig, (ax_grad, ax_loss) = plt.subplots(1, 2, figsize=(11, 3.8))
    for label, per_layer in norms.items():
        ax_grad.semilogy(range(1, len(per_layer) + 1), list(per_layer.values()), marker="o", label=label)
    ax_grad.set(xlabel="convolution layer (input side → output side)", ylabel="gradient norm (log)",
                title="gradient reaching each layer at initialisation")
    for label, curve in losses.items():
        ax_loss.plot(range(1, len(curve) + 1), curve, marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    ax_grad.legend()
    ax_loss.legend()
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------
# Repeated runs: a comparison of two models is only as good as its spread
# --------------------------------------------------------------------------

T = TypeVar("T")


def over_seeds(run: Callable[[int], T], seeds: Sequence[int]) -> list[T]:
    """Call ``run(seed)`` once per seed, reseeding every generator first.

    Lecture comparisons ("LSTM vs dilated CNN", "with vs without augmentation")
    repeat each training over a few seeds so that a difference can be set
    against the spread between runs of the same model.
    """
    from dlcourse.runtime import set_seed

    results = []
    for seed in seeds:
        set_seed(seed)
        results.append(run(seed))
    return results


def spread(values: Sequence[float], fmt: str = ".3f") -> str:
    """``mean (min-max, n runs)`` of repeated measurements, as one short string."""
    arr = np.asarray(values, dtype=float)
    return (f"{arr.mean():{fmt}} (range {arr.min():{fmt}}-{arr.max():{fmt}}, "
            f"{arr.size} seeds)")


def fit_over_seeds(
    build: Callable[[], Any],
    compile_kwargs: dict[str, Any],
    train: Callable[[Any], T],
    seeds: Sequence[int],
) -> list[T]:
    """Train one architecture from several seeds, tracing its training step only once.

    For small networks, TensorFlow's tracing of ``fit`` costs more than a few
    epochs of training. Here the first model is compiled and kept; for every
    seed a freshly initialised copy (``build()`` after reseeding) lends its
    weights, and the optimizer's state is put back to where it started. The
    result equals training a new model per seed, at a fraction of the time.
    ``train(model)`` fits the model and returns whatever should be kept.
    """
    from dlcourse.runtime import set_seed

    model = None
    start_state: list[np.ndarray] = []
    results = []
    for seed in seeds:
        set_seed(seed)
        fresh = build()
        if model is None:
            model = fresh
            model.compile(**compile_kwargs)
            model.optimizer.build(model.trainable_variables)
            start_state = [v.numpy() for v in model.optimizer.variables]
        else:
            model.set_weights(fresh.get_weights())
            for variable, value in zip(model.optimizer.variables, start_state, strict=True):
                variable.assign(value)
        results.append(train(model))
    return results


# --------------------------------------------------------------------------
# Segmentation losses for the lecture's loss comparison
# --------------------------------------------------------------------------


def sparse_soft_dice_loss(
    num_classes: int, first_class: int = 1, eps: float = 1.0
) -> Callable[[Any, Any], Any]:
    """A soft Dice loss (Milletari et al., 2016) for integer label maps, as a Keras loss.

    ``loss(y_true, y_pred)`` takes labels ``(batch, H, W)`` and softmax
    probabilities ``(batch, H, W, num_classes)``. Each class ``c`` from
    ``first_class`` on scores ``(2 sum p t + eps) / (sum p + sum t + eps)``, its
    sums taken over every pixel of the batch; the loss is 1 minus the mean of
    these scores. ``first_class=1`` leaves the background (label 0) out, so
    every structure weighs the same and the easy, dominant background adds
    nothing; ``first_class=0`` averages over all classes.
    """
    from keras import ops

    def soft_dice_loss(y_true: Any, y_pred: Any) -> Any:
        labels = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
        target = ops.one_hot(labels, num_classes, dtype=y_pred.dtype)
        axes = tuple(range(len(y_pred.shape) - 1))
        overlap = ops.sum(target * y_pred, axis=axes)
        total = ops.sum(target, axis=axes) + ops.sum(y_pred, axis=axes)
        scores = (2.0 * overlap + eps) / (total + eps)
        return 1.0 - ops.mean(scores[first_class:])

    return soft_dice_loss
