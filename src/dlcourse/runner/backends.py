"""Where the jobs of a grading run run.

A job grades one submission from bytes to bytes (:func:`dlcourse.runner.jobs.run_job`), so it
can run anywhere the course's Python environment and bubblewrap are installed. A
:class:`Backend` runs the jobs of a batch and says which of their failures mean that the
machine under a job went away rather than that grading failed:

- :class:`LocalThreads`: threads of this process, each with its warm autograde worker
  (:mod:`dlcourse.runner.warm`), started while the batch is planned;
- :class:`DaskCluster`: the workers of an existing Dask scheduler (``--cluster ADDRESS``).

Another place (a pod per submission, a batch scheduler's array job) is one more subclass: an
executor of :func:`~dlcourse.runner.jobs.run_job`, and :meth:`Backend.worker_lost` for its own
kind of lost machine.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from dlcourse.errors import CourseError
from dlcourse.runner import autograde, jobs, warm
from dlcourse.runner.autograde import FAULT_GRADER, FAULT_SUBMISSION, Limits


@dataclass(frozen=True)
class Session:
    """A backend, connected: where jobs are submitted, and how the bundle travels to them."""

    executor: Executor
    #: the assignment's bundle as each job is given it (the bytes, or a handle on a copy the
    #: workers fetch once)
    share: Callable[[bytes], Any]

    def submit(self, bundle: Any, submission: bytes, assignment: str, student: str, limits: Limits) -> Future:
        """Grade one submission there; the future's result is :func:`~dlcourse.runner.jobs.run_job`'s."""
        return self.executor.submit(jobs.run_job, bundle, submission, assignment, student, limits)


class Backend(ABC):
    """Where the jobs of one grading run run."""

    #: Jobs run on this machine: the device is resolved here, once for the batch (elsewhere
    #: each worker resolves it on its own machine).
    local: bool = True

    def prestart(self, limits: Limits, count: int) -> None:  # noqa: B027 - optional for subclasses
        """Start what the first ``count`` jobs need while the batch is planned (nothing by default)."""

    def release(self) -> None:  # noqa: B027 - optional for subclasses
        """End what :meth:`prestart` started when no job came (nothing by default)."""

    @abstractmethod
    def connect(self) -> contextlib.AbstractContextManager[Session]:
        """The backend, ready to take jobs until the context ends; CourseError if it cannot be."""

    def worker_lost(self, error: BaseException | None) -> bool:
        """The job has no result because the machine under it went away (not a grading error)."""
        return False

    def failure(self, error: BaseException) -> tuple[str, str]:
        """Why a job produced no result, in the words of the table, and whose fault that is: the
        submission's when every worker it was given died, else the grader's (the next run grades
        it again)."""
        if self.worker_lost(error):
            return "the grading worker died each time this submission was graded", FAULT_SUBMISSION
        return f"grader error: {type(error).__name__}: {error}", FAULT_GRADER


class LocalThreads(Backend):
    """``workers`` grading threads here, each with a warm autograde worker of its own."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def prestart(self, limits: Limits, count: int) -> None:
        autograde.prestart(limits, min(self.workers, count))

    def release(self) -> None:
        warm.close_all()

    @contextlib.contextmanager
    def connect(self) -> Iterator[Session]:
        try:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                yield Session(pool, lambda data: data)
        finally:
            warm.close_all()  # the threads' warm processes end with the batch


class DaskCluster(Backend):
    """The workers of an existing Dask scheduler at ``address``.

    The bundle travels once per worker, not with every submission. A worker that dies has its
    jobs run again elsewhere, up to the scheduler's ``allowed-failures``; after that Dask gives
    up on the job (:class:`distributed.KilledWorker`), or cancels the jobs whose data went down
    with it.
    """

    local = False
    #: Seconds to wait for the scheduler before saying it cannot be reached.
    connect_timeout: float = 20

    def __init__(self, address: str) -> None:
        self.address = address

    @contextlib.contextmanager
    def connect(self) -> Iterator[Session]:
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - pinned in requirements.txt
            raise CourseError("--cluster needs Dask's 'distributed' package (see requirements.txt)") from None
        try:
            client = Client(self.address, timeout=self.connect_timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CourseError(f"--cluster: cannot reach a Dask scheduler at {self.address!r}: {first}") from None
        try:
            # A task, not scattered data: if every worker holding the bundle dies, the scheduler
            # makes it again from the graph instead of cancelling the jobs that need it.
            yield Session(client.get_executor(pure=False), lambda data: client.submit(_same, data, pure=False))
        finally:
            client.close()

    def worker_lost(self, error: BaseException | None) -> bool:
        """Dask gave up on the job because the workers it was given to died, or cancelled it when
        data it needed went down with them (``distributed``'s FutureCancelledError is a
        :class:`concurrent.futures.CancelledError`, which a cancelled job's future raises too)."""
        if error is None:
            return False
        from distributed import KilledWorker

        return isinstance(error, KilledWorker | concurrent.futures.CancelledError)

    def failure(self, error: BaseException) -> tuple[str, str]:
        reason, fault = super().failure(error)
        return (f"{reason} (Dask KilledWorker)" if self.worker_lost(error) else reason), fault


def _same(data: bytes) -> bytes:
    return data
