"""`course grade --cluster`: a real Dask scheduler and two workers on loopback grade a class.

One worker is killed while it grades an honest submission (its nanny starts a new one): the job
runs again elsewhere, nothing is lost or counted twice. A submission whose worker dies every time
it is graded (here the test kills whichever worker takes it) is recorded as failed with the
reason once the scheduler gives up on it. Every other score equals local grading's.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from nbfactory import tiny_course, tiny_submission

from dlcourse.runner.grade import grade

pytestmark = pytest.mark.slow

HONEST = {"good": None, "wrong": "def double(x):\n    return x + 1", "good2": None, "untouched": ""}
DEADLY = "deadly"


def _dask(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "dask"), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.fixture
def cluster(tmp_path):
    """`dask scheduler` and two single-threaded `dask worker`s on loopback; the scheduler gives
    up on a task when a second worker it was given to dies (the grader then runs it again alone)."""
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}
    scheduler_file = tmp_path / "scheduler.json"
    procs = [_dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                   "--scheduler-file", str(scheduler_file), env=env)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for name in ("w1", "w2"):
            procs.append(_dask("worker", address, "--nthreads", "1", "--name", name, "--no-dashboard",
                               "--memory-limit", "0", "--host", "127.0.0.1", env=env))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()


class WorkerKiller(threading.Thread):
    """Kills the Dask worker process that grades a given student: once for ``once``, every time for
    ``always``. A worker is found by the bubblewrap process of the student's kernel, which runs
    below it, started in the student's folder (``.../autograded/<student>/...``)."""

    def __init__(self, once: str, always: str) -> None:
        super().__init__(daemon=True)
        self.once, self.always, self.killed = once, always, []
        self.stop = threading.Event()

    def _worker_of(self, student: str) -> psutil.Process | None:
        """The worker process (the nanny's child) above the student's kernel."""
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            grading = False
            with contextlib.suppress(psutil.Error):
                grading = bool(cmdline) and cmdline[0].endswith("bwrap") and \
                    f"/autograded/{student}/" in proc.cwd() + "/"
            if grading:
                with contextlib.suppress(psutil.Error):
                    chain = [proc, *proc.parents()]
                    for child, parent in itertools.pairwise(chain):
                        command = parent.cmdline()
                        if "worker" in command and any(part.endswith("dask") for part in command):
                            return child
        return None

    def run(self) -> None:
        while not self.stop.is_set():
            for student in ([self.once] if self.once not in self.killed else []) + [self.always]:
                worker = self._worker_of(student)
                if worker is not None:
                    with contextlib.suppress(psutil.Error):
                        worker.kill()
                        self.killed.append(student)
            time.sleep(0.1)


def _class(root: Path) -> tuple:
    course = tiny_course(root / "course")
    incoming = root / "incoming"
    for student, body in {**HONEST, DEADLY: None}.items():
        (incoming / student).mkdir(parents=True)
        nbformat.write(tiny_submission(course, body), incoming / student / "tiny.ipynb")
    return course, incoming


def test_cluster_grades_like_local_and_survives_dead_workers(cluster, tmp_path):
    course, incoming = _class(tmp_path / "local")
    local = {r.student: r.score for r in grade(course, "tiny", incoming, timeout=120, workers=2).rows}

    remote_course, _ = _class(tmp_path / "remote")
    seen: list[str] = []
    killer = WorkerKiller(once="good", always=DEADLY)
    killer.start()
    try:
        result = grade(remote_course, "tiny", incoming, timeout=120, cluster=cluster,
                       progress=lambda i, n, graded: seen.append(graded.outcome.student))
    finally:
        killer.stop.set()
        killer.join()
    rows = {r.student: r for r in result.rows}
    assert "good" in killer.killed, "the honest submission's worker was never killed: nothing was tested"
    assert killer.killed.count(DEADLY) >= 1
    assert sorted(seen) == sorted([*HONEST, DEADLY]), "every submission is reported exactly once"
    assert {s: rows[s].score for s in HONEST} == {s: local[s] for s in HONEST}, {s: rows[s].status for s in rows}
    assert local["good"] == 2 and local["wrong"] == 0
    assert rows[DEADLY].score == 0 and "worker died" in rows[DEADLY].status, rows[DEADLY].status
    records = sorted(p.stem for p in (remote_course.grades / "records" / "tiny").glob("*.json"))
    assert records == sorted([*HONEST, DEADLY])
