"""Grading a class: `course grade` (local workers and a Dask cluster) against plain `nbgrader autograde`.

The batch: N submissions per assignment (default 10, so 40 in all), cycling
through the bundled examples perfect / partly_wrong / untouched (with the
reference model where the example hands one in). Runs, on this machine:

- raw: each notebook executed with nbclient alone (autograde mode, hidden files
  and model beside it, hidden tests inside the kernel, unconfined): the floor any
  grader pays, and what an unprotected grader does;
- plain nbgrader: `nbgrader autograde ASSIGNMENT` for the whole class, serially,
  with the course's configuration as a TA gets it: the kernel confined, the hidden
  tests decided outside it by the warm repeat servers;
- course grade --workers 1 / --workers 2: warm workers (the same autograde, in
  parallel), limits, the tampering scan, feedback, CSVs;
- course grade --cluster: the same on a Dask scheduler with two single-threaded
  workers on loopback.

Before any time is compared, every run's total per student must equal plain
nbgrader's (a baseline that grades wrongly is no baseline). Prints wall time,
seconds per submission, throughput relative to plain nbgrader, overhead over raw
execution and peak memory per worker (proportional set size of the worker's
processes: warm processes, kernel and repeat child, shared pages counted once),
then a projection for 2,000 submissions. Targets: --workers 2 at least 1.5x plain
nbgrader; --workers 1 at most 30% over raw; the cluster within 10% of --workers 2;
at most 2 GiB per worker. To measure what a change to the grader costs, run the
script of both versions on the same machine (results/grading_throughput.txt keeps
such a comparison).

Usage: .venv/bin/python benchmarks/bench_grading_throughput.py [--per-assignment N] [--no-cluster]
       [ASSIGNMENT ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

from dlcourse.authoring.examples import submissions_dir
from dlcourse.runner import gradebook, nbgrader_api
from dlcourse.runner.autograde import QUIET_ENV
from dlcourse.runner.course import Course, scratch_course
from dlcourse.runner.grade import grade, register
from dlcourse.runner.nbgrader_plugins import hidden_files

KINDS = ("perfect", "partly_wrong", "untouched")
PROJECT_TO = 2000
CORES = (2, 16, 64, 256)


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


class MemorySampler(threading.Thread):
    """Peak summed proportional set size of the processes ``roots()`` names and their descendants."""

    def __init__(self, roots: Callable[[], list[psutil.Process]]) -> None:
        super().__init__(daemon=True)
        self.roots, self.peak, self.stop = roots, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            seen, total = set(), 0
            for root in self.roots():
                with contextlib.suppress(psutil.Error):
                    for proc in [root, *root.children(recursive=True)]:
                        if proc.pid in seen:
                            continue
                        seen.add(proc.pid)
                        with contextlib.suppress(psutil.Error):
                            total += proc.memory_full_info().pss
            self.peak = max(self.peak, total)


@contextlib.contextmanager
def sampled(roots: Callable[[], list[psutil.Process]]) -> Iterator[MemorySampler]:
    sampler = MemorySampler(roots)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop.set()
        sampler.join()


def my_children() -> list[psutil.Process]:
    """The warm processes (and what they run) of an in-process `course grade`."""
    return psutil.Process().children()


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


def totals(url: str, assignment: str) -> dict[str, float]:
    return {s: round(t.score, 4) for s, t in gradebook.totals(url, assignment).items()}


def plain_nbgrader(course: Course, folders: dict[str, Path], root: Path) -> tuple[float, dict]:
    """Whole-class `nbgrader autograde` per assignment; wall time and totals per student."""
    scratch = scratch_course(course, root)
    url = nbgrader_api.load_config(scratch).CourseDirectory.db_url
    for assignment, folder in folders.items():
        for student in folder.iterdir():
            shutil.copytree(student, scratch.submitted / student.name / assignment)
        register(scratch, assignment, url)
    api = nbgrader_api.api(scratch)
    start = time.perf_counter()
    for assignment in folders:
        nbgrader_api.checked(api.autograde(assignment, "*", force=True, create=True), "autograde")
    wall = time.perf_counter() - start
    return wall, {a: totals(url, a) for a in folders}


def course_grade(course: Course, folders: dict[str, Path], root: Path, workers: int = 1,
                 cluster: str | None = None) -> tuple[float, dict, float]:
    """Wall time of the batch, totals per student, median seconds of one submission."""
    scratch = scratch_course(course, root)
    url = nbgrader_api.load_config(scratch).CourseDirectory.db_url
    seconds: list[float] = []
    scores = {}
    start = time.perf_counter()
    for assignment, folder in folders.items():
        result = grade(scratch, assignment, folder, timeout=900, workers=workers, cluster=cluster)
        bad = [(r.student, r.status) for r in result.rows if not r.status.startswith("graded")]
        if bad:
            raise SystemExit(f"course grade failed submissions: {bad}")
        for path in (scratch.grades / "records" / assignment).glob("*.json"):
            record = json.loads(path.read_text())
            seconds.append(record["seconds"])
        scores[assignment] = totals(url, assignment)
    return time.perf_counter() - start, scores, statistics.median(seconds)


@contextlib.contextmanager
def dask_cluster(workers: int) -> Iterator[tuple[str, list[psutil.Process]]]:
    """`dask scheduler` and ``workers`` single-threaded `dask worker`s on loopback."""
    dask = str(Path(sys.executable).parent / "dask")
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        scheduler_file = Path(tmp) / "scheduler.json"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
        procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], **quiet)]
        try:
            while not scheduler_file.is_file():
                time.sleep(0.2)
            address = json.loads(scheduler_file.read_text())["address"]
            for i in range(workers):
                procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--name", f"w{i}",
                                               "--no-dashboard", "--memory-limit", "0", "--host", "127.0.0.1"],
                                              **quiet))
            from distributed import Client

            with Client(address, timeout=30) as client:
                client.wait_for_workers(workers, timeout=120)
            yield address, [psutil.Process(p.pid) for p in procs[1:]]
        finally:
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-assignment", type=int, default=10)
    parser.add_argument("--no-cluster", action="store_true", help="leave out the Dask run")
    parser.add_argument("assignments", nargs="*")
    args = parser.parse_args()
    os.environ.update(QUIET_ENV)
    course = Course.find(Path(__file__).parent)
    assignments = args.assignments or course.assignment_ids()
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        tmp = Path(tmp)
        folders = make_batch(course, assignments, args.per_assignment, tmp / "batch")
        count = sum(len(list(f.iterdir())) for f in folders.values())
        print(f"{count} submissions ({args.per_assignment} per assignment: {', '.join(assignments)}), "
              f"{os.cpu_count()} CPU cores", flush=True)
        raw_each = [raw_seconds(course, a, s) for a, f in folders.items() for s in f.iterdir()]
        raw = sum(raw_each)
        plain, expected = plain_nbgrader(course, folders, tmp / "plain")
        runs: list[tuple[str, float, float | None, int | None]] = [
            ("raw nbclient execution", raw, statistics.median(raw_each), None),
            ("plain nbgrader autograde", plain, None, None)]
        for workers in (1, 2):
            with sampled(my_children) as memory:
                wall, scores, median = course_grade(course, folders, tmp / f"w{workers}", workers)
            if scores != expected:
                raise SystemExit(f"--workers {workers} scores differ from plain nbgrader: {scores} != {expected}")
            runs.append((f"course grade --workers {workers}", wall, median, memory.peak // workers))
        if not args.no_cluster:
            with dask_cluster(2) as (address, dask_workers), sampled(lambda: dask_workers) as memory:
                wall, scores, median = course_grade(course, folders, tmp / "dask", cluster=address)
            if scores != expected:
                raise SystemExit(f"--cluster scores differ from plain nbgrader: {scores} != {expected}")
            runs.append(("course grade --cluster (2x1)", wall, median, memory.peak // 2))
    print("every run gives plain nbgrader's totals for all "
          f"{count} submissions (a correct baseline: hidden files in place, scores checked)\n")
    print(f"{'run':<30} {'wall (s)':>9} {'s/submission':>13} {'median one (s)':>15} "
          f"{'throughput vs nbgrader':>23} {'over raw':>9} {'peak/worker':>12}")
    for label, wall, median, peak in runs:
        print(f"{label:<30} {wall:9.1f} {wall / count:13.2f} {'' if median is None else f'{median:.1f}':>15} "
              f"{plain / wall:22.2f}x {wall / raw - 1:8.0%} "
              f"{'' if peak is None else f'{peak / 2**30:.2f} GiB':>12}")
    by_label = {label: wall for label, wall, _m, _p in runs}
    w1, w2 = by_label["course grade --workers 1"], by_label["course grade --workers 2"]
    print("\ntargets:")
    print(f"  --workers 2 >= 1.50x plain nbgrader: {plain / w2:.2f}x")
    if plain / w2 < 1.5:
        print(f"    missed by {1 - plain / w2 / 1.5:.0%}: besides nbgrader's work, course grade scans each "
              "notebook and writes each student's feedback; on 2 cores that work competes with the "
              "kernels and the repeat, and plain nbgrader's one kernel already uses both cores for "
              "TensorFlow's operations part of the time")
    print(f"  --workers 1 <= +30% over raw execution: {w1 / raw - 1:+.0%}")
    if "course grade --cluster (2x1)" in by_label:
        print(f"  cluster of 2x1 within 10% of --workers 2: {by_label['course grade --cluster (2x1)'] / w2 - 1:+.0%}")
    print(f"  <= 2 GiB per worker: {max(p for *_r, p in runs if p) / 2**30:.2f} GiB")
    per_core = w2 * 2 / count  # core-seconds per submission with both cores busy
    print(f"\nPROJECTION (not measured): {PROJECT_TO} submissions at {per_core:.1f} core-seconds each "
          "(measured with --workers 2 on 2 cores), one single-threaded worker per core, "
          "memory as above per worker; the merge and feedback, which run on the TA's machine one "
          "submission at a time, are assumed to keep pace:")
    for cores in CORES:
        hours = PROJECT_TO * per_core / cores / 3600
        print(f"  {cores:>4} cores: {hours:6.2f} h ({hours * 60:6.0f} min)")


if __name__ == "__main__":
    main()
