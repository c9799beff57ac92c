"""Warm grading processes: what does not depend on the student stays loaded between submissions.

Each grading slot (a thread of `course grade`, or a Dask worker's thread) keeps an *autograde
worker*: a trusted process, unconfined, with nbgrader and the course's configuration imported
once. It runs nbgrader's autograde of one private course at a time. No student code runs in
it: the student's kernel is started confined, in a fresh sandbox per notebook
(:mod:`dlcourse.runner.kernel_sandbox`), and the hidden tests are repeated outside the kernel by
the worker's own warm repeat servers (:mod:`dlcourse.runner.repeat`, kept between submissions
too), whose jobs are isolated from each other and from the servers. Both are limited by the
notebook's budget inside the worker (:mod:`dlcourse.runner.limits`); the parent only keeps an
outer deadline and starts a fresh worker when one dies or stops answering.

Run as a module it is the autograde worker: ``python -m dlcourse.runner.warm autograde``.
:class:`WarmProcess` is the parent's handle on any such process (the feedback writer,
:mod:`dlcourse.runner.feedback`, is another).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dlcourse.runner import limits, nbgrader_api, trusted
from dlcourse.runner.course import Course

#: How long a warm process may take to start (importing TensorFlow on a busy machine).
START_SECONDS = 180.0
#: How long to wait for a warm process to answer after its student processes were killed.
GRACE_SECONDS = 60.0
#: Lines from the warm processes to the parent start with this; other output is log text.
REPLY = "DLCOURSE-WARM "
#: Warm processes started by this process, by kind ("autograde"): how warm grading stayed.
STARTS: Counter[str] = Counter()


class WarmProcessDied(RuntimeError):
    """A warm process ended or stopped answering; the next job starts a fresh one."""


# ----------------------------------------------------------------- parent side


class WarmProcess:
    """A long-lived child that answers one request line with one reply line."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, log: Path, wait: bool = True) -> None:
        self.log = log
        self._log_file = open(log, "w")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log_file, text=True, bufsize=1, start_new_session=True)
        self._replies: list[str] = []
        self._arrived = threading.Condition()
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        self.starting = True
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Until the process has loaded what it keeps warm (WarmProcessDied if it cannot)."""
        if self.starting:
            self.reply(START_SECONDS)
            self.starting = False

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            if line.startswith(REPLY):
                with self._arrived:
                    self._replies.append(line[len(REPLY):].strip())
                    self._arrived.notify_all()
        with self._arrived:
            self._replies.append("")  # end of output: the process is gone
            self._arrived.notify_all()

    def send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise WarmProcessDied(f"{self.describe()} is gone ({exc})") from None

    def answered(self) -> bool:
        with self._arrived:
            return bool(self._replies)

    def reply(self, timeout: float) -> str:
        """The next reply; WarmProcessDied if the process ended or said nothing in time."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._replies, timeout):
                self.close()
                raise WarmProcessDied(f"{self.describe()} did not answer within {timeout:g} s")
            value = self._replies.pop(0)
        if not value:
            raise WarmProcessDied(f"{self.describe()} ended: {self.last_log_line()}")
        return value

    def alive(self) -> bool:
        return self.proc.poll() is None

    def last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log.read_text(errors="replace").strip().splitlines()
            if lines:
                return lines[-1][:200]
        return f"exit {self.proc.poll()}"

    def describe(self) -> str:
        return type(self).__name__

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log_file.close()


class AutogradeWorker(WarmProcess):
    """nbgrader, loaded once; autogrades one private course per request."""

    def __init__(self, env: dict[str, str], home: Path, wait: bool = True) -> None:
        super().__init__([sys.executable, "-m", "dlcourse.runner.warm", "autograde"], env, home,
                         home / "autograde-worker.log", wait)

    def submit(self, root: Path, assignment: str, student: str, timeout: float | None,
               memory_bytes: int | None) -> None:
        self.send(json.dumps({"root": str(root), "assignment": assignment, "student": student,
                              "timeout": timeout, "memory_gb": memory_bytes / 2**30 if memory_bytes else None}))

    def result(self, timeout: float) -> dict:
        try:
            answer = json.loads(self.reply(timeout))
        except ValueError:
            self.close()
            raise WarmProcessDied("the autograde worker's reply is not JSON") from None
        if not isinstance(answer, dict):
            self.close()
            raise WarmProcessDied("the autograde worker's reply is not a JSON object")
        return answer


@dataclass(frozen=True)
class SlotKey:
    """What the warm worker was started for: a job with another key starts a fresh one."""

    env: tuple[tuple[str, str], ...]


class Slot:
    """The warm worker of one grading thread, started on first use and again after a death."""

    def __init__(self) -> None:
        self.key: SlotKey | None = None
        self.home: Path | None = None
        self.autograde: AutogradeWorker | None = None

    def start(self, env: dict[str, str], wait: bool = True) -> None:
        """Start the worker if it is not running (for another key: afresh, with a new home)."""
        key = SlotKey(tuple(sorted(env.items())))
        if key != self.key:
            self.close()
            self.key = key
            self.home = Path(tempfile.mkdtemp(prefix="dlcourse-warm-"))
        if self.autograde is None or not self.autograde.alive():
            if self.autograde is not None:
                self.autograde.close()
            self.autograde = AutogradeWorker({**os.environ, **env}, self.home, wait)
            STARTS["autograde"] += 1

    def prepare(self, env: dict[str, str]) -> AutogradeWorker:
        """The warm worker for a job, started if need be and ready."""
        self.start(env)
        self.autograde.wait_ready()
        return self.autograde

    def close(self) -> None:
        if self.autograde is not None:
            self.autograde.close()
        self.autograde = None
        self.key = None  # the next job starts afresh, with a new home
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None


_SLOTS: dict[int, Slot] = {}
_SLOTS_LOCK = threading.Lock()
_SPARE: list[Slot] = []


def prestart(count: int, env: dict[str, str]) -> None:
    """Start ``count`` workers now, without waiting: they load while the batch is being planned,
    and the first threads that grade take them."""
    for _ in range(count):
        spare = Slot()
        spare.start(env, wait=False)
        with _SLOTS_LOCK:
            _SPARE.append(spare)


def slot() -> Slot:
    """This thread's warm worker (a prestarted one, if one is waiting)."""
    with _SLOTS_LOCK:
        ident = threading.get_ident()
        if ident not in _SLOTS:
            _SLOTS[ident] = _SPARE.pop(0) if _SPARE else Slot()
        return _SLOTS[ident]


def close_all() -> None:
    """Stop every warm process of this process (end of a batch, or exit)."""
    with _SLOTS_LOCK:
        slots = list(_SLOTS.values()) + _SPARE
        _SLOTS.clear()
        _SPARE.clear()
    for each in slots:
        each.close()


atexit.register(close_all)


# ----------------------------------------------------------------- the warm processes


def send_reply(value: str) -> None:
    """One reply line to the parent (in a warm process)."""
    sys.stdout.write(REPLY + value + "\n")
    sys.stdout.flush()


def serve_autograde() -> int:
    """The autograde worker: one JSON request per line, one JSON reply per line.

    Requests come only from the parent; the student's kernel and the repeat's jobs are started
    with other standard streams and cannot write here (:mod:`dlcourse.runner.kernel_sandbox`).
    """
    die_with_parent()
    nbgrader_api.environment_bin_on_path()
    trusted.prewarm()
    send_reply("ready")
    for line in sys.stdin:
        request = json.loads(line)
        # Once every cell has run and its outputs are in, the kernel is stopped at once: a graceful
        # shutdown waits for a kernel whose outputs nobody needs any more (about 1 s per notebook).
        api = nbgrader_api.api(Course(Path(request["root"])),
                               StartTrusted={"timeout": request["timeout"], "memory_gb": request["memory_gb"]},
                               Execute={"shutdown_kernel": "immediate"})
        key = (request["student"], request["assignment"], request["assignment"])
        try:
            result = api.autograde(request["assignment"], request["student"], force=True, create=True)
            answer = {"success": bool(result["success"]),
                      "reason": "" if result["success"] else nbgrader_api.failure_reason(result)}
        except Exception as exc:  # nbgrader itself failed: this submission only
            answer = {"success": False, "reason": f"nbgrader failed: {type(exc).__name__}: {exc}"}
        trusted.abandon()
        decided = trusted.RESULTS.pop(key, {})
        spent = limits.LAST[0] if limits.LAST else None
        if spent is not None and spent.limit:
            answer.update(success=False, reason=spent.limit, limit=spent.limit)
        answer.update(verdicts=decided.get("verdicts", []), peak_memory=spent.peak if spent else 0,
                      seconds=round(spent.seconds(), 2) if spent else 0.0,
                      unavailable=bool(trusted.UNAVAILABLE))
        trusted.RESULTS.clear()
        trusted.UNAVAILABLE.clear()
        send_reply(json.dumps(answer))
    return 0


def die_with_parent() -> None:
    """A grading thread's process that dies (a killed Dask worker) takes its warm worker along,
    and the worker's confined kernel with it (bubblewrap's --die-with-parent)."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def main(argv: list[str]) -> int:
    if argv[:1] == ["autograde"]:
        return serve_autograde()
    print("usage: python -m dlcourse.runner.warm autograde", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
