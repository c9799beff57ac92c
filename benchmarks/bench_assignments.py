"""Timing of the practicals on this machine.

1. Each solution notebook end to end (training included), as a student runs it.
2. Autograding one submission that hands in its model file (`course grade`).

Targets (2 CPU cores): (1) at most 180 s (unet, which trains a U-Net: 240 s), (2) at most 60 s.
Usage: .venv/bin/python benchmarks/bench_assignments.py [--repeat N] [ASSIGNMENT ...]
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

from dlcourse.authoring.examples import submissions_dir
from dlcourse.runner.course import Course, scratch_course
from dlcourse.runner.grade import grade


def run_solution(course: Course, assignment: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / assignment
        shutil.copytree(course.solutions / assignment, folder)
        nb = nbformat.read(folder / f"{assignment}.ipynb", as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(folder)}}).execute()
        return time.perf_counter() - start


def grade_one(course: Course, assignment: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        scratch = scratch_course(course, Path(tmp) / "course")
        incoming = Path(tmp) / "incoming"
        shutil.copytree(submissions_dir(course, assignment) / "perfect", incoming / "perfect")
        start = time.perf_counter()
        result = grade(scratch, assignment, incoming, timeout=900)
        seconds = time.perf_counter() - start
        assert result.rows[0].status.startswith("graded"), result.rows[0].status
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("assignments", nargs="*")
    args = parser.parse_args()
    course = Course.find(Path(__file__).parent)
    rows = [("solution notebook end to end (s)", run_solution, 180.0),
            ("autograde one submission with its model (s)", grade_one, 60.0)]
    longer = {("unet", "solution notebook end to end (s)"): 240.0}
    print(f"{'assignment':<11} {'measurement':<46} {'median':>7} {'min':>7} {'max':>7} {'target':>7}  runs")
    for assignment in args.assignments or course.assignment_ids():
        for label, fn, target in rows:
            target = longer.get((assignment, label), target)
            times = [fn(course, assignment) for _ in range(args.repeat)]
            print(f"{assignment:<11} {label:<46} {statistics.median(times):7.1f} {min(times):7.1f} "
                  f"{max(times):7.1f} {target:7.0f}  {args.repeat}", flush=True)


if __name__ == "__main__":
    main()
