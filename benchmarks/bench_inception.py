"""Timing of the `inception` practical on this machine.

1. The solution notebook end to end (training included), as a student runs it.
2. Autograding one submission that hands in its model file (`course grade`).

Targets (2 CPU cores): (1) at most 180 s, (2) at most 60 s.
Usage: .venv/bin/python benchmarks/bench_inception.py [--repeat N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from dlcourse.course import Course, scratch_course
from dlcourse.examples import submissions_dir
from dlcourse.grade import grade

ASSIGNMENT = "inception"


def run_solution(course: Course) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / ASSIGNMENT
        shutil.copytree(course.solutions / ASSIGNMENT, folder)
        nb = nbformat.read(folder / f"{ASSIGNMENT}.ipynb", as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(folder)}}).execute()
        return time.perf_counter() - start


def grade_one(course: Course) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        scratch = scratch_course(course, Path(tmp) / "course")
        incoming = Path(tmp) / "incoming"
        shutil.copytree(submissions_dir(course, ASSIGNMENT) / "perfect", incoming / "perfect")
        start = time.perf_counter()
        result = grade(scratch, ASSIGNMENT, incoming, timeout=900)
        seconds = time.perf_counter() - start
        assert result.rows[0].status.startswith("graded"), result.rows[0].status
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    course = Course.find(Path(__file__).parent)
    rows = [("solution notebook end to end (s)", run_solution, 180.0),
            ("autograde one submission with its model (s)", grade_one, 60.0)]
    print(f"{'measurement':<46} {'median':>8} {'min':>8} {'max':>8} {'target':>8}  runs")
    for label, fn, target in rows:
        times = [fn(course) for _ in range(args.repeat)]
        print(f"{label:<46} {statistics.median(times):8.1f} {min(times):8.1f} {max(times):8.1f} "
              f"{target:8.0f}  {args.repeat}", flush=True)


if __name__ == "__main__":
    main()
