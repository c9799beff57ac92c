"""Small experiment helpers the practicals share (kept out of the notebooks' cells)."""

from __future__ import annotations

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
