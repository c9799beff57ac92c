"""Grading a class: `course grade --workers 1|2` against plain `nbgrader autograde`.

The batch: N submissions per assignment (default 10, so 40 in all), cycling
through the bundled examples perfect / partly_wrong / untouched (with the
reference model where the example hands one in). Measured on this machine:

- raw: each notebook executed with nbclient alone (autograde mode, hidden files
  and model beside it): the floor any grader pays;
- nbgrader: plain `nbgrader autograde` of every assignment, serially;
- workers=1 / workers=2: `course grade` (confined, limits, repeat outside the
  kernel, feedback, CSVs).

Prints wall time, throughput relative to plain nbgrader, overhead over raw
execution, and the peak resident memory of one submission (autograde and
verification together). Targets: workers=2 at least 1.5x nbgrader's throughput;
workers=1 at most 15% over raw; at most 2 GiB per worker.

Usage: .venv/bin/python benchmarks/bench_grading_throughput.py [--per-assignment N] [ASSIGNMENT ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from dlcourse.authoring.examples import submissions_dir
from dlcourse.runner import nbgrader_api
from dlcourse.runner.autograde import QUIET_ENV
from dlcourse.runner.course import Course, scratch_course
from dlcourse.runner.grade import grade, register
from dlcourse.runner.nbgrader_plugins import hidden_files

KINDS = ("perfect", "partly_wrong", "untouched")


def make_batch(course: Course, assignments: list[str], per_assignment: int, dest: Path) -> dict[str, Path]:
    """``dest/<assignment>/<student>/`` folders; returns the folder per assignment."""
    folders = {}
    for assignment in assignments:
        examples = submissions_dir(course, assignment)
        for i in range(per_assignment):
            kind = KINDS[i % len(KINDS)]
            shutil.copytree(examples / kind, dest / assignment / f"{kind}{i:02d}")
        folders[assignment] = dest / assignment
    return folders


def raw_seconds(course: Course, assignment: str, student_folder: Path) -> float:
    """Execute one submission's notebook with nbclient only, as autograde would."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(student_folder, work, dirs_exist_ok=True)
        for path in hidden_files(course.solutions / assignment):
            shutil.copyfile(path, work / path.name)
        nb = nbformat.read(work / f"{assignment}.ipynb", as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(work)}}).execute()
        return time.perf_counter() - start


def plain_nbgrader(course: Course, folders: dict[str, Path], root: Path) -> float:
    scratch = scratch_course(course, root)
    for assignment, folder in folders.items():
        for student in folder.iterdir():
            shutil.copytree(student, scratch.submitted / student.name / assignment)
        register(scratch, assignment, nbgrader_api.load_config(scratch).CourseDirectory.db_url)
    api = nbgrader_api.api(scratch)
    start = time.perf_counter()
    for assignment in folders:
        nbgrader_api.checked(api.autograde(assignment, "*", force=True, create=True), "autograde")
    return time.perf_counter() - start


def course_grade(course: Course, folders: dict[str, Path], root: Path,
                 workers: int) -> tuple[float, int, float]:
    """Wall time of the batch, peak memory of one submission, median seconds of one submission."""
    scratch = scratch_course(course, root)
    peak = 0
    seconds: list[float] = []
    start = time.perf_counter()
    for assignment, folder in folders.items():
        result = grade(scratch, assignment, folder, timeout=900, workers=workers)
        bad = [r for r in result.rows if not r.status.startswith("graded") and "not a valid" not in r.status]
        assert not bad, [(r.student, r.status) for r in bad]
        records = scratch.grades / "records" / assignment
        for path in records.glob("*.json"):
            record = json.loads(path.read_text())
            peak = max(peak, record["peak_memory"])
            if record["ok"]:
                seconds.append(record["seconds"])
    return time.perf_counter() - start, peak, statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-assignment", type=int, default=10)
    parser.add_argument("assignments", nargs="*")
    args = parser.parse_args()
    os.environ.update(QUIET_ENV)
    course = Course.find(Path(__file__).parent)
    assignments = args.assignments or course.assignment_ids()
    header = (f"{'run':<26} {'wall (s)':>9} {'s/submission':>13} {'median one (s)':>15} "
              f"{'throughput vs nbgrader':>23} {'over raw':>9} {'peak/worker':>12}")
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        tmp = Path(tmp)
        folders = make_batch(course, assignments, args.per_assignment, tmp / "batch")
        count = sum(len(list(f.iterdir())) for f in folders.values())
        print(f"{count} submissions ({args.per_assignment} per assignment: {', '.join(assignments)}), "
              f"{os.cpu_count()} CPU cores", flush=True)
        print(header, flush=True)
        raw_each = [raw_seconds(course, a, s) for a, f in folders.items() for s in f.iterdir()]
        raw = sum(raw_each)
        plain = plain_nbgrader(course, folders, tmp / "plain")

        def row(label: str, wall: float, peak: int | None = None, median: float | None = None) -> None:
            print(f"{label:<26} {wall:9.1f} {wall / count:13.2f} {'' if median is None else f'{median:.1f}':>15} "
                  f"{plain / wall:22.2f}x {wall / raw - 1:8.0%} "
                  f"{'' if peak is None else f'{peak / 2**30:.2f} GiB':>12}", flush=True)

        row("raw nbclient execution", raw, median=statistics.median(raw_each))
        row("plain nbgrader autograde", plain)
        row("course grade --workers 1", *course_grade(course, folders, tmp / "w1", 1))
        row("course grade --workers 2", *course_grade(course, folders, tmp / "w2", 2))
    print("targets: workers 2 >= 1.50x nbgrader; workers 1 <= +15% over raw; <= 2 GiB per worker")


if __name__ == "__main__":
    main()
