"""The warm repeat servers of this process: confined :mod:`dlcourse.harness.zygote` processes
that keep TensorFlow (or NumPy alone) loaded and run the jobs of :mod:`dlcourse.runner.repeat`,
one freshly namespaced child per job.

:func:`pool` holds them, started on first use and again after a death. They run no student code
themselves, so the autograde step that stops a notebook's leftover processes leaves them alone
(:class:`dlcourse.runner.nbgrader_plugins.StopStudentProcesses` asks :meth:`Pool.process_ids`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import psutil

from dlcourse.harness import frames
from dlcourse.runner import limits, sandbox

#: How long a server may take to start (importing TensorFlow on a busy machine).
START_SECONDS = 180.0
#: A job's answer: what :mod:`dlcourse.harness.zygote` lets through, and a little framing.
MAX_ANSWER_BYTES = 80 << 20
#: Time a job gets when the notebook has no deadline of its own.
DEFAULT_JOB_SECONDS = 1800.0


class RepeatUnavailable(RuntimeError):
    """The repeat could not run for reasons of the grading machine, not of the submission."""


class RepeatServer:
    """A warm, confined :mod:`dlcourse.harness.zygote` (``framework`` or ``numpy``)."""

    def __init__(self, kind: str, device: str, env: dict[str, str], log: Path, confined: bool = True) -> None:
        self.kind, self.device = kind, device
        layout = sandbox.Layout(device=device, frameworks=kind == "framework", tmp_bytes=64 << 20,
                                shm_bytes=16 << 20)
        cmd = [sys.executable, "-m", "dlcourse.harness.zygote", kind]
        cmd = sandbox.command(cmd, layout) if confined else [*cmd, "--unconfined"]
        self.log = log
        self._busy = threading.Lock()  # one job at a time, whoever asks
        self._log_file = open(log, "ab")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(cmd, env=sandbox.environment(env), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log_file, start_new_session=True)
        self._frames: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.server: psutil.Process | None = None
        self.ready = False

    def _read(self) -> None:
        try:
            while True:
                frame = frames.read_frame(self.proc.stdout, MAX_ANSWER_BYTES)
                self._frames.put(frame)
                if frame is None:
                    return
        except (frames.FrameError, OSError, ValueError) as exc:
            self._frames.put(exc)

    def _next(self, timeout: float) -> tuple[dict, list[bytes]]:
        try:
            frame = self._frames.get(timeout=timeout)
        except queue.Empty:
            raise RepeatUnavailable(f"{self.kind} repeat server did not answer within {timeout:g} s") from None
        if frame is None or isinstance(frame, Exception):
            raise RepeatUnavailable(f"{self.kind} repeat server ended: {frame or self.last_log_line()}")
        return frame

    def wait_ready(self) -> None:
        if self.ready:
            return
        header, _ = self._next(START_SECONDS)
        if not header.get("ready"):
            raise RepeatUnavailable(f"{self.kind} repeat server cannot run jobs: {header.get('problem')}")
        root = psutil.Process(self.proc.pid)
        found = [p for p in sandbox.tree(root) if "dlcourse.harness.zygote" in " ".join(_cmdline(p))]
        self.server = found[-1] if found else root
        self.ready = True

    def alive(self) -> bool:
        return self.proc.poll() is None

    def last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log.read_text(errors="replace").strip().splitlines()
            if lines:
                return lines[-1][:200]
        return f"exit {self.proc.poll()}"

    def job_processes(self) -> list[psutil.Process]:
        """The running job's processes (the server's descendants; the server is not the student's)."""
        with contextlib.suppress(psutil.Error, AttributeError):
            return self.server.children(recursive=True)
        return []

    def job_stored(self) -> int:
        with contextlib.suppress(psutil.Error, AttributeError):
            return sum(sandbox.stored_bytes(child.pid, ("/tmp",)) for child in self.server.children())
        return 0

    def run(self, job: bytes, budget: limits.Budget | None) -> tuple[dict, bytes, bytes]:
        """Send ``job`` (its zip), watched by ``budget``; the server's reply (status, outputs, log)."""
        with self._busy:
            return self._run(job, budget)

    def _run(self, job: bytes, budget: limits.Budget | None) -> tuple[dict, bytes, bytes]:
        self.wait_ready()
        left = budget.left() if budget is not None else None
        timeout = DEFAULT_JOB_SECONDS if left is None else max(left, 1.0)
        job_id = uuid.uuid4().hex
        key = budget.add(self.job_processes, self.job_stored) if budget is not None else None
        try:
            try:
                frames.write_frame(self.proc.stdin.fileno(), {"job": job_id, "timeout": timeout,
                                                             "tmp_bytes": sandbox.TMP_BYTES}, job)
            except OSError as exc:
                raise RepeatUnavailable(f"{self.kind} repeat server is gone ({exc})") from None
            header, payloads = self._next(timeout + 60.0)
        finally:
            if key is not None:
                budget.remove(key)
        if header.get("job") != job_id or len(payloads) != 2:
            raise RepeatUnavailable(f"{self.kind} repeat server answered another job")
        return header, payloads[0], payloads[1]

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, 9)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._log_file.close()


def _cmdline(proc: psutil.Process) -> list[str]:
    with contextlib.suppress(psutil.Error):
        return proc.cmdline()
    return []


class Pool:
    """This process's warm repeat servers, started on first use and again after a death."""

    def __init__(self) -> None:
        self._servers: dict[tuple, RepeatServer] = {}
        self._lock = threading.Lock()
        self._home = Path(tempfile.mkdtemp(prefix="dlcourse-repeat-"))
        self.starts = 0

    def server(self, kind: str, device: str, env: dict[str, str]) -> RepeatServer:
        confined = sandbox.confinement_wanted()[0]
        key = (kind, device, confined, tuple(sorted(env.items())))
        with self._lock:
            found = self._servers.get(key)
            if found is None or not found.alive():
                if found is not None:
                    found.close()
                found = RepeatServer(kind, device, env, self._home / f"{kind}-{device}.log", confined)
                self._servers[key] = found
                self.starts += 1
            return found

    def process_ids(self) -> set[int]:
        """Every process of the servers (and of the jobs they run): not the kernel's."""
        with self._lock:
            servers = list(self._servers.values())
        pids: set[int] = set()
        for each in servers:
            with contextlib.suppress(psutil.Error):
                pids |= {p.pid for p in sandbox.tree(psutil.Process(each.proc.pid))}
        return pids

    def discard(self, server: RepeatServer) -> None:
        with self._lock:
            for key, value in list(self._servers.items()):
                if value is server:
                    del self._servers[key]
        server.close()

    def close(self) -> None:
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for each in servers:
            each.close()


_POOL: list[Pool] = []


def pool() -> Pool:
    """This process's pool (one per process: the servers are shared by its grading threads)."""
    if not _POOL:
        _POOL.append(Pool())
        atexit.register(_POOL[0].close)
    return _POOL[0]
