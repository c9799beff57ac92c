"""The NumPy LSTM of the `lstm` practical against keras.layers.LSTM, same weights, same sequences.

The NumPy ``lstm_forward`` is taken from the solution notebook (it is not part
of the installed package). Keras is timed twice: calling the layer eagerly,
as a notebook does, and through a compiled ``tf.function`` (what ``fit`` and
``predict`` run). Each entry is the median of ``--runs`` timed calls after one
warm-up call; outputs are checked to agree.

    python benchmarks/bench_lstm_numpy_vs_keras.py [--runs 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# (batch, time, features, units)
SIZES = ((1, 200, 1, 16), (32, 200, 1, 32), (256, 200, 1, 32), (32, 200, 16, 128), (64, 50, 32, 256))


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up: tracing, caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads (0: default)")
    args = parser.parse_args()

    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    from dlcourse.runner.notebooks import solution_namespace

    ns = solution_namespace(REPO / "solutions" / "lstm" / "lstm.ipynb",
                            ("setup", "sigmoid", "lstm_cell_forward", "lstm_forward"))
    lstm_forward = ns["lstm_forward"]

    print(f"median of {args.runs} runs, {args.threads or 'default'} threads, return_sequences=True")
    header = (f"{'batch':>5} {'time':>5} {'feat':>5} {'units':>5} {'NumPy (ms)':>11} {'Keras eager (ms)':>17} "
              f"{'Keras compiled (ms)':>20} {'NumPy / compiled':>17}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for batch, steps, features, units in SIZES:
        x = rng.normal(size=(batch, steps, features)).astype(np.float32)
        layer = keras.layers.LSTM(units, return_sequences=True)
        layer.build((None, steps, features))
        weights = layer.get_weights()
        compiled = tf.function(lambda inputs, _layer=layer: _layer(inputs), reduce_retracing=True)
        mine = lstm_forward(x, *weights, return_sequences=True)
        assert np.allclose(mine, np.asarray(compiled(x)), atol=1e-4), "NumPy and Keras disagree"
        t_numpy = median_seconds(lambda x=x, w=weights: lstm_forward(x, *w, return_sequences=True), args.runs)
        t_eager = median_seconds(lambda x=x, layer=layer: layer(x), args.runs)
        t_compiled = median_seconds(lambda x=x, fn=compiled: fn(x), args.runs)
        print(f"{batch:>5} {steps:>5} {features:>5} {units:>5} {1e3 * t_numpy:>11.1f} {1e3 * t_eager:>17.1f} "
              f"{1e3 * t_compiled:>20.1f} {t_numpy / t_compiled:>17.2f}")


if __name__ == "__main__":
    main()
