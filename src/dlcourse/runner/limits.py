"""One time and memory budget per notebook being autograded, shared by all of its sandboxes.

While nbgrader autogrades a notebook, student code runs in several sandboxes at once: the
notebook's kernel (:mod:`dlcourse.runner.kernel_sandbox`) and the jobs that repeat its hidden
tests outside it (:mod:`dlcourse.runner.repeat`). They share one deadline and one memory
budget: resident memory of all their processes plus what they store in their tmpfs. A watchdog
thread samples them (:func:`dlcourse.runner.sandbox.watch`'s rule) and, past a limit, kills
every one of them and says which limit was passed. The budget of the notebook being graded is
this process's :func:`current` one (nbgrader grades one notebook at a time per process).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from dlcourse.runner import sandbox


@dataclass
class _Sandbox:
    processes: Callable[[], list[psutil.Process]]
    stored: Callable[[], int]


class Budget:
    """Limits of one notebook's student code (``None``: no limit of that kind)."""

    def __init__(self, timeout: float | None, memory_bytes: int | None) -> None:
        self.timeout, self.memory_bytes = timeout, memory_bytes
        self.start = time.monotonic()
        self.limit = ""  # the limit that was passed ("" while none was)
        self.stopped = False  # grading of the notebook ended early (its kernel died, say)
        self.peak = 0
        self._sandboxes: dict[int, _Sandbox] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="grading-budget", daemon=True)
        self._thread.start()

    def seconds(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float | None:
        """Seconds left before the deadline (None without one)."""
        return None if self.timeout is None else max(self.timeout - self.seconds(), 0.0)

    def add(self, processes: Callable[[], list[psutil.Process]], stored: Callable[[], int] = lambda: 0) -> int:
        """Watch a sandbox from now on; the key to :meth:`remove` it."""
        with self._lock:
            key = max(self._sandboxes, default=0) + 1
            self._sandboxes[key] = _Sandbox(processes, stored)
        if self.limit:  # too late: the budget is spent
            sandbox.kill(processes())
        return key

    def remove(self, key: int) -> None:
        with self._lock:
            self._sandboxes.pop(key, None)

    def _all(self) -> list[_Sandbox]:
        with self._lock:
            return list(self._sandboxes.values())

    def _used(self) -> int:
        total = 0
        for each in self._all():
            with contextlib.suppress(psutil.Error, OSError):
                total += sandbox._rss(each.processes()) + each.stored()
        return total

    def _watch(self) -> None:
        while not self._stop.wait(sandbox.POLL_SECONDS):
            used = self._used()
            self.peak = max(self.peak, used)
            if self.timeout is not None and self.seconds() > self.timeout:
                self.spend(f"time limit of {self.timeout:g} s exceeded")
            elif self.memory_bytes and used > self.memory_bytes:
                self.spend(f"memory limit of {self.memory_bytes / 2**30:g} GB exceeded ({used / 2**30:.1f} GB "
                           "resident or stored in files)")

    def spend(self, why: str) -> None:
        """Past a limit (or an output cap): kill every sandbox of this notebook."""
        if not self.limit:
            self.limit = why
        for each in self._all():
            with contextlib.suppress(psutil.Error, OSError):
                sandbox.kill(each.processes())

    def stop(self) -> None:
        """The notebook's grading ended early: kill what is left, without blaming a limit."""
        self.stopped = True
        for each in self._all():
            with contextlib.suppress(psutil.Error, OSError):
                sandbox.kill(each.processes())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


_CURRENT: list[Budget] = []
_CURRENT_LOCK = threading.Lock()
#: The budget most recently ended: how the last notebook's student code fared.
LAST: list[Budget] = []


def begin(timeout: float | None, memory_bytes: int | None) -> Budget:
    """The budget of the notebook whose grading starts now (the previous one is closed)."""
    with _CURRENT_LOCK:
        for old in _CURRENT:
            old.stop()
            old.close()
        _CURRENT[:] = [Budget(timeout, memory_bytes)]
        LAST.clear()
        return _CURRENT[0]


def current() -> Budget | None:
    with _CURRENT_LOCK:
        return _CURRENT[0] if _CURRENT else None


def end() -> Budget | None:
    """Close and return the budget of the notebook just graded."""
    with _CURRENT_LOCK:
        done = _CURRENT.pop() if _CURRENT else None
        if done is not None:
            LAST[:] = [done]
    if done is not None:
        done.close()
    return done
