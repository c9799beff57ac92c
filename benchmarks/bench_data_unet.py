"""Is the cardiac set learnable in a practical's time budget?

Trains a small U-Net (depth 3, 16 base filters, Adam, Dice + cross-entropy)
on the bundled training split for a fixed wall-clock budget on the CPU and
reports the Dice of each class on the reserved test split (the hidden file,
when this is the instructor's repository; otherwise the validation split).
The network is written here on purpose: the students' ``build_unet`` is the
assignment, not a library function.

    python benchmarks/bench_data_unet.py [--runs 3] [--budget 120] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HIDDEN_TEST = REPO / "solutions" / "unet" / "hidden_cardiac_test.npz"
NUM_CLASSES = 4


def build_small_unet(size: int, depth: int = 3, base: int = 16):
    """Plain U-Net; per-image standardisation is the first layer (raw intensities in)."""
    import keras
    from keras import layers

    def block(x, filters):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        return x

    inputs = keras.Input((size, size, 1))
    x = layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False)(inputs)
    skips = []
    for level in range(depth):
        x = block(x, base * 2**level)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = block(x, base * 2**depth)
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(base * 2**level, 2, strides=2)(x)
        x = layers.Concatenate()([x, skips[level]])
        x = block(x, base * 2**level)
    outputs = layers.Conv2D(NUM_CLASSES, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def dice_ce_loss(y_true, y_pred):
    """Soft Dice over the four classes (batch-wise) plus cross-entropy."""
    from keras import ops

    onehot = ops.one_hot(ops.cast(y_true, "int32"), NUM_CLASSES)
    inter = ops.sum(onehot * y_pred, axis=(0, 1, 2))
    denom = ops.sum(onehot + y_pred, axis=(0, 1, 2))
    dice = ops.mean((2.0 * inter + 1.0) / (denom + 1.0))
    ce = ops.mean(ops.sparse_categorical_crossentropy(y_true, y_pred))
    return (1.0 - dice) + ce


class _Budget:
    """Stops training once the wall-clock budget is spent (checked every batch)."""

    def __init__(self, seconds: float) -> None:
        import keras

        budget = self

        class Stop(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if time.perf_counter() - budget.start > seconds:
                    self.model.stop_training = True

        self.callback = Stop()
        self.start = time.perf_counter()


def train_unet(images, masks, budget_s: float, seed: int, batch: int = 16, lr: float = 3e-3):
    """Train from scratch for ``budget_s`` seconds; returns the model, seconds and epochs."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_small_unet(images.shape[1])
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=int(budget_s * 6))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=dice_ce_loss)
    budget = _Budget(budget_s)
    history = model.fit(images, masks, batch_size=batch, epochs=1000, shuffle=True,
                        callbacks=[budget.callback], verbose=0)
    return model, time.perf_counter() - budget.start, len(history.history["loss"])


def dice_per_class(model, images, masks) -> np.ndarray:
    """Hard Dice of each class over all pixels of the split."""
    pred = model.predict(images, batch_size=64, verbose=0).argmax(-1)
    scores = []
    for k in range(NUM_CLASSES):
        t, p = masks == k, pred == k
        scores.append(2.0 * np.logical_and(t, p).sum() / max(t.sum() + p.sum(), 1))
    return np.array(scores)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="training runs (median reported)")
    parser.add_argument("--budget", type=float, default=120.0, help="training seconds per run")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for TensorFlow")
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from dlcourse.data import CARDIAC_CLASS_NAMES, load_cardiac

    x_train, y_train = load_cardiac("train")
    if HIDDEN_TEST.is_file():
        x_test, y_test = load_cardiac("test", path=HIDDEN_TEST)
        test_name = "test (hidden)"
    else:
        x_test, y_test = load_cardiac("val")
        test_name = "val (no hidden file here)"
    print(f"train {x_train.shape}, evaluated on {test_name} {x_test.shape}; "
          f"budget {args.budget:.0f} s on {args.threads} CPU threads")

    rows = []
    for run in range(args.runs):
        model, seconds, epochs = train_unet(x_train, y_train, args.budget, seed=run)
        dice = dice_per_class(model, x_test, y_test)
        rows.append((seconds, epochs, dice))
        print(f"  run {run}: {seconds:6.1f} s, {epochs} epochs, foreground Dice "
              + " ".join(f"{d:.3f}" for d in dice[1:]) + f", mean {dice[1:].mean():.3f}")

    names = CARDIAC_CLASS_NAMES[1:]
    header = f"{'runs':>4} {'train s':>8} {'epochs':>6} " + " ".join(f"{n:>16}" for n in names)
    print("\nmedian over runs")
    print(header + f" {'mean fg Dice':>13}")
    med = [statistics.median(r[2][k] for r in rows) for k in range(NUM_CLASSES)]
    mean_fg = statistics.median(float(r[2][1:].mean()) for r in rows)
    print(f"{len(rows):>4} {statistics.median(r[0] for r in rows):>8.1f} "
          f"{statistics.median(r[1] for r in rows):>6} " + " ".join(f"{d:>16.3f}" for d in med[1:])
          + f" {mean_fg:>13.3f}")
    return 0 if mean_fg >= 0.85 else 1


if __name__ == "__main__":
    sys.exit(main())
