"""How long does loading each bundled data set take (checksum verification included)?

The target is under 2 s per set on a laptop; a timed test would be flaky on
shared CI machines, so this is a benchmark that prints a table instead.

    python benchmarks/bench_data_load.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from dlcourse.data import load_cardiac, load_ct_slices, load_recordings, load_signals
    from dlcourse.data.checksums import registry

    cases = [
        ("cardiac train", lambda: load_cardiac("train"), "data/cardiac_train.npz"),
        ("cardiac val", lambda: load_cardiac("val"), "data/cardiac_val.npz"),
        ("ct train", lambda: load_ct_slices("train"), "data/ct_train.npz"),
        ("ct val", lambda: load_ct_slices("val"), "data/ct_val.npz"),
        ("signals train", lambda: load_signals("train"), "data/signals_train.npz"),
        ("signals val", lambda: load_signals("val"), "data/signals_val.npz"),
        ("ppg recordings", load_recordings, "data/ppg_recordings.npz"),
    ]
    hidden = {
        "cardiac test (hidden)": ("solutions/unet/hidden_cardiac_test.npz", load_cardiac),
        "ct test (hidden)": ("solutions/inception/hidden_ct_test.npz", load_ct_slices),
        "signals test (hidden)": ("solutions/lstm/hidden_signal_test.npz", load_signals),
    }
    for name, (rel, loader) in hidden.items():
        if (REPO / rel).is_file():
            cases.append((name, lambda loader=loader, rel=rel: loader("test", path=REPO / rel), rel))

    print(f"{'data set':<24} {'MB':>6} {'median s':>9} {'max s':>7}  (over {args.repeats} loads)")
    worst = 0.0
    total_bytes = 0
    for name, load, rel in cases:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            load()
            times.append(time.perf_counter() - start)
        size = (REPO / rel).stat().st_size
        total_bytes += size
        worst = max(worst, statistics.median(times))
        print(f"{name:<24} {size / 1e6:>6.2f} {statistics.median(times):>9.3f} {max(times):>7.3f}")
    entries = registry()["datasets"].values()
    all_bytes = sum(e["bytes"] * len(e["files"]) for e in entries)
    print(f"\nloaded here: {total_bytes / 1e6:.2f} MB; all registered files incl. hidden copies: "
          f"{all_bytes / 1e6:.2f} MB (limit 30 MB)")
    print(f"slowest median load {worst:.3f} s (target < {TARGET_S} s)")
    return 0 if worst < TARGET_S and all_bytes <= 30e6 else 1


if __name__ == "__main__":
    sys.exit(main())
