"""Is the PPG beat-detection task learnable by a small LSTM in a practical's time?

Trains a one-layer LSTM (32 units, return_sequences, per-window
standardisation as the first layer) for a few epochs and reports, on the
reserved test split (or validation when the hidden file is absent): per-sample
accuracy and F1 of the "beat" class, and beat-level sensitivity and positive
predictive value (a predicted beat is the centre of a run of "beat" samples,
matched to a reference beat within +-3 samples). Also split by source on
the validation split: synthetic subjects versus the real heartpy recordings.

    python benchmarks/bench_data_lstm.py [--runs 1] [--epochs 6] [--threads 2]
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
HIDDEN_TEST = REPO / "solutions" / "lstm" / "hidden_signal_test.npz"


def build_lstm(window: int, units: int = 32):
    import keras
    from keras import layers

    inputs = keras.Input((window, 1))
    x = layers.LayerNormalization(axis=1, center=False, scale=False)(inputs)  # per-window z-score
    x = layers.LSTM(units, return_sequences=True)(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def beat_scores(y_true: np.ndarray, y_pred: np.ndarray, tolerance: int = 3) -> dict[str, float]:
    """Per-sample F1 of the beat class and beat-level sensitivity / PPV."""
    from dlcourse.data.plots import beat_centres

    tp = np.logical_and(y_true == 1, y_pred == 1).sum()
    f1 = 2 * tp / max((y_true == 1).sum() + (y_pred == 1).sum(), 1)
    hits = refs = found = correct = 0
    for t, p in zip(y_true, y_pred, strict=True):
        ref, det = beat_centres(t), beat_centres(p)
        refs += len(ref)
        found += len(det)
        hits += sum(np.any(np.abs(det - r) <= tolerance) for r in ref)
        correct += sum(np.any(np.abs(ref - d) <= tolerance) for d in det)
    return {"accuracy": float((y_true == y_pred).mean()), "f1": float(f1),
            "sensitivity": hits / max(refs, 1), "ppv": correct / max(found, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from dlcourse.data import SOURCES, load_signals

    x_train, y_train = load_signals("train")
    x_val, y_val, src_val = load_signals("val", return_source=True)
    if HIDDEN_TEST.is_file():
        x_test, y_test = load_signals("test", path=HIDDEN_TEST)
        test_name = "test (hidden)"
    else:
        x_test, y_test = x_val, y_val
        test_name = "val (no hidden file here)"
    print(f"train {x_train.shape}, evaluated on {test_name} {x_test.shape}; "
          f"beat samples {y_train.mean():.1%} of train")

    rows = []
    for run in range(args.runs):
        keras.utils.set_random_seed(run)
        model = build_lstm(x_train.shape[1])
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
        start = time.perf_counter()
        model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, verbose=0)
        seconds = time.perf_counter() - start
        test = beat_scores(y_test, model.predict(x_test, verbose=0).argmax(-1))
        pred_val = model.predict(x_val, verbose=0).argmax(-1)
        real = src_val > 0
        by_source = {
            "val synthetic": beat_scores(y_val[~real], pred_val[~real]),
            "val real (" + "+".join(sorted({SOURCES[s] for s in src_val[real]})) + ")":
                beat_scores(y_val[real], pred_val[real]),
        }
        rows.append((seconds, test, by_source))

    print(f"\n{'evaluated on':<28} {'runs':>4} {'train s':>8} {'acc':>6} {'F1':>6} {'sens':>6} {'PPV':>6}  (medians)")

    def line(name, pick):
        scores = [pick(r) for r in rows]
        med = {k: statistics.median(s[k] for s in scores) for k in scores[0]}
        print(f"{name:<28} {len(rows):>4} {statistics.median(r[0] for r in rows):>8.1f} "
              f"{med['accuracy']:>6.3f} {med['f1']:>6.3f} {med['sensitivity']:>6.3f} {med['ppv']:>6.3f}")

    line(test_name, lambda r: r[1])
    for name in rows[0][2]:
        line(name, lambda r, name=name: r[2][name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
