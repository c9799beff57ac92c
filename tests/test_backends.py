"""Where grading jobs run is a backend: its options, its lost workers, and the runner's use of it.

No grading runs here: a fake backend answers the jobs, which shows that another place to run
them is one class (tests/test_grading_cluster.py grades on a real Dask cluster).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from pathlib import Path

import pytest
from distributed import KilledWorker
from distributed.client import FutureCancelledError

from dlcourse.errors import CourseError
from dlcourse.runner import backends, grade, jobs
from dlcourse.runner.archives import zip_bytes
from dlcourse.runner.autograde import FAULT_GRADER, FAULT_SUBMISSION, Limits
from dlcourse.runner.backends import Backend, DaskCluster, LocalThreads, Session
from dlcourse.runner.grade import GradeOptions
from dlcourse.runner.records import Inputs
from dlcourse.runner.sandbox import Isolation


class KilledWorkerLookalike(Exception):
    """Named like Dask's, but not Dask's: a job's own exception must not pass for a dead worker."""


KilledWorkerLookalike.__name__ = "KilledWorker"


def test_dask_failures_are_recognised_by_type():
    dask = DaskCluster("tcp://127.0.0.1:9")
    killed = KilledWorker("job-1", None, 1)
    assert dask.worker_lost(killed)
    assert dask.worker_lost(FutureCancelledError("job-1", "lost"))
    assert dask.worker_lost(concurrent.futures.CancelledError())
    assert not dask.worker_lost(KilledWorkerLookalike())
    assert not dask.worker_lost(RuntimeError("grader bug"))
    assert not dask.worker_lost(None)
    assert dask.failure(killed) == ("the grading worker died each time this submission was graded "
                                    "(Dask KilledWorker)", FAULT_SUBMISSION)
    assert dask.failure(RuntimeError("boom")) == ("grader error: RuntimeError: boom", FAULT_GRADER)


def test_local_threads_lose_no_worker():
    local = LocalThreads(2)
    assert local.local and not DaskCluster("x").local
    assert not local.worker_lost(KilledWorker("job", None, 1))
    assert local.failure(ValueError("bad")) == ("grader error: ValueError: bad", FAULT_GRADER)


def test_the_options_choose_the_backend_and_are_checked():
    assert isinstance(GradeOptions(workers=3).backend(), LocalThreads)
    assert GradeOptions(workers=3).backend().workers == 3
    cluster = GradeOptions(cluster="tcp://10.0.0.1:8786").backend()
    assert isinstance(cluster, DaskCluster) and cluster.address == "tcp://10.0.0.1:8786"
    GradeOptions().check()
    for bad, message in [(GradeOptions(timeout=0), "--timeout"), (GradeOptions(workers=0), "--workers"),
                         (GradeOptions(memory_gb=-1), "--memory"),
                         (GradeOptions(canvas_column="Lab 1"), "--canvas-column needs")]:
        with pytest.raises(CourseError, match=message):
            bad.check()


def test_an_unreachable_scheduler_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(DaskCluster, "connect_timeout", 2)
    with pytest.raises(CourseError, match=r"--cluster: cannot reach a Dask scheduler at 'tcp://127\.0\.0\.1:9'"), \
            DaskCluster("tcp://127.0.0.1:9").connect():
        pass


class LostMachine(Exception):
    """How the fake backend's machines go away."""


class _Answers(Executor):
    """Answers each job at once: a lost machine for students in ``lose`` (once each, or always
    for ``always``), else a graded outcome."""

    def __init__(self, lose: set[str], always: set[str]) -> None:
        self.lose, self.always, self.calls = lose, always, []

    def submit(self, fn, /, *args, **kwargs) -> Future:
        assert fn is jobs.run_job
        student = args[3]
        self.calls.append(student)
        future: Future = Future()
        if student in self.always or student in self.lose:
            self.lose.discard(student)
            future.set_exception(LostMachine(student))
        else:
            outcome = {"student": student, "ok": False, "reason": "fake", "fault": FAULT_SUBMISSION}
            future.set_result(zip_bytes({jobs.OUTCOME: json.dumps(outcome).encode()}))
        return future


class OnePodPerSubmission(Backend):
    """A third place to run jobs, in one class."""

    local = False

    def __init__(self, answers: _Answers) -> None:
        self.answers = answers
        self.shared = 0

    @contextlib.contextmanager
    def connect(self) -> Iterator[Session]:
        def share(data: bytes) -> bytes:
            self.shared += 1
            return data

        yield Session(self.answers, share)

    def worker_lost(self, error: BaseException | None) -> bool:
        return isinstance(error, LostMachine)


def test_a_third_backend_is_one_class_and_lost_jobs_run_again_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "make_bundle", lambda *a: b"bundle")
    monkeypatch.setattr(jobs, "pack_submission", lambda *a: b"submission")
    recorded = []
    monkeypatch.setattr(grade, "_record", lambda course, assignment, plan, outcome, url: recorded.append(outcome)
                        or grade.Graded(outcome))
    students = ["ann", "bob", "cat"]
    plan = grade._Plan(students, [], {s: Inputs() for s in students}, set())
    answers = _Answers(lose={"bob"}, always={"cat"})
    backend = OnePodPerSubmission(answers)
    limits = Limits(60.0, None, Isolation("none"))
    done = grade._grade_all(None, "tiny", plan, Path("template.db"), tmp_path, limits, "sqlite://", backend, None)
    assert sorted(g.outcome.student for g in done) == students
    assert sorted(answers.calls) == ["ann", "bob", "bob", "cat", "cat"]
    assert backend.shared == 2  # once for the batch, once afresh for the jobs run again
    by_student = {o.student: o for o in recorded}
    assert by_student["bob"].reason == "fake"
    assert (by_student["cat"].reason, by_student["cat"].fault) == (
        "the grading worker died each time this submission was graded", FAULT_SUBMISSION)
    assert backends.Backend.prestart is OnePodPerSubmission.prestart  # nothing else to write
