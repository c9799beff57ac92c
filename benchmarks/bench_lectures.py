"""How long each lecture notebook takes to run top to bottom.

Every lecture must run in at most three minutes on two CPU cores (issue 16). This runs each
notebook (without saving it) ``--repeat`` times in a fresh kernel and prints
the median, the spread and the budget check:

    .venv/bin/python benchmarks/bench_lectures.py [--repeat 3] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
LECTURES = ROOT / "lectures"
BUDGET_S = 180.0


def run_once(path: Path) -> float:
    """Execute a notebook in a fresh kernel; seconds from kernel start to last cell."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="time the lecture notebooks")
    parser.add_argument("notebooks", nargs="*", help="default: every lecture notebook")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--load", action="store_true",
                        help="also print the load average, since other jobs slow the timings")
    args = parser.parse_args(argv)
    paths = [Path(n) for n in args.notebooks] or sorted(LECTURES.glob("[0-9][0-9]_*.ipynb"))
    print(f"lecture notebooks, {args.repeat} runs each, {os.cpu_count()} CPU cores visible")
    if args.load and hasattr(os, "getloadavg"):
        print("load average at start (1, 5, 15 min): "
              + ", ".join(f"{v:.1f}" for v in os.getloadavg()))
    print(f"{'notebook':36s} {'median s':>9s} {'min s':>7s} {'max s':>7s}  budget {BUDGET_S:.0f} s")
    over = 0
    for path in paths:
        times = [run_once(path) for _ in range(args.repeat)]
        median = statistics.median(times)
        ok = "ok" if median <= BUDGET_S else "OVER"
        over += median > BUDGET_S
        print(f"{path.name:36s} {median:9.1f} {min(times):7.1f} {max(times):7.1f}  {ok}",
              flush=True)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
