"""Warm grading processes: what does not depend on the student stays loaded between submissions.

Each grading slot (a thread of `course grade`, or a Dask worker's thread) keeps two
long-lived processes:

- an *autograde worker*: trusted, unconfined, with nbgrader and the course's
  configuration imported once. It runs nbgrader's autograde of one private
  course at a time; the student's kernel is started confined, in a fresh
  bubblewrap sandbox per notebook (:mod:`dlcourse.runner.kernel_sandbox`), so
  no student code runs in the worker.
- a *repeat server*: confined in bubblewrap once, with TensorFlow, Keras and the
  grading specs imported once. For each submission it forks a child that
  answers the challenge of :mod:`dlcourse.runner.verify` (the student's
  functions on the hidden inputs). The child is a copy of the server: modules,
  attributes and environment it changes die with it. After the child the
  server kills every other process in its PID namespace, removes the System V
  IPC objects of its IPC namespace and empties every folder it can write to
  (its spool, ``/tmp``, ``/dev/shm``), so nothing of one student reaches the
  next. The server is not dumpable: its children cannot read or write its
  memory.

The parent watches only the student's processes (the kernel, the forked child)
against the time and memory limits (:func:`dlcourse.runner.sandbox.watch`).

Run as a module it is one of the two processes: ``python -m dlcourse.runner.warm
autograde``, ``... repeat SPOOL [--confined]`` or, on the TA's side, ``... feedback ROOT
ASSIGNMENT DB_URL`` (feedback of each graded submission while the others are still graded).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

from dlcourse.runner import sandbox

#: Imported once by the repeat server: what the challenge's setup cells and the specs use.
PRELOAD = ("numpy", "matplotlib", "matplotlib.pyplot", "tensorflow", "keras", "dlcourse.runtime",
           "dlcourse.architectures", "dlcourse.data", "dlcourse.experiments", "dlcourse.figures",
           "dlcourse.grading.registry", "dlcourse.runner.verify")
#: How long a warm process may take to start (importing TensorFlow on a busy machine).
START_SECONDS = 180.0
#: How long to wait for a warm process to answer after its student processes were killed.
GRACE_SECONDS = 60.0
#: Lines from the warm processes to the parent start with this; other output is log text.
REPLY = "DLCOURSE-WARM "
#: Writable places of the repeat server's sandbox, emptied between students.
SCRATCH = ("/tmp", "/dev/shm")
_JOB_NAME = re.compile(r"^[0-9a-f]{32}$")
#: Warm processes started by this process, by kind ("autograde", "repeat"): how warm grading stayed.
STARTS: Counter[str] = Counter()


class WarmProcessDied(RuntimeError):
    """A warm process ended or stopped answering; the next job starts a fresh one."""


# ----------------------------------------------------------------- parent side


class _WarmProcess:
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


class AutogradeWorker(_WarmProcess):
    """nbgrader, loaded once; autogrades one private course per request."""

    def __init__(self, env: dict[str, str], home: Path, wait: bool = True) -> None:
        super().__init__([sys.executable, "-m", "dlcourse.runner.warm", "autograde"], env, home,
                         home / "autograde-worker.log", wait)

    def submit(self, root: Path, assignment: str, student: str) -> None:
        self.send(json.dumps({"root": str(root), "assignment": assignment, "student": student}))

    def result(self, timeout: float) -> dict:
        return json.loads(self.reply(timeout))

    def student_processes(self) -> list[psutil.Process]:
        """The confined kernel and all it started: the worker's children."""
        with contextlib.suppress(psutil.Error):
            return psutil.Process(self.proc.pid).children(recursive=True)
        return []


class RepeatServer(_WarmProcess):
    """TensorFlow and the grading specs, loaded once in a confined server that forks per student."""

    def __init__(self, env: dict[str, str], home: Path, isolation: sandbox.Isolation, device: str,
                 wait: bool = True) -> None:
        self.spool = home / "spool"
        self.spool.mkdir()
        self.server: psutil.Process | None = None
        confined = isolation.kind == "bubblewrap"
        cmd = [sys.executable, "-m", "dlcourse.runner.warm", "repeat", str(self.spool),
               *(["--confined"] if confined else [])]
        super().__init__(sandbox.confined(cmd, self.spool, isolation, device), env, self.spool,
                         home / "repeat-server.log", wait)

    def wait_ready(self) -> None:
        super().wait_ready()
        if self.server is None:
            # The server itself (bubblewrap runs it as a child), found before it has children.
            root = psutil.Process(self.proc.pid)
            found = [p for p in [root, *root.children(recursive=True)]
                     if "dlcourse.runner.warm" in " ".join(_cmdline(p)) and not _children(p)]
            self.server = found[0] if found else root

    def submit(self, challenge: Path) -> str:
        name = uuid.uuid4().hex
        shutil.copytree(challenge, self.spool / name)
        self.send(name)
        return name

    def collect(self, name: str, dest: Path, timeout: float) -> None:
        """Wait for the child answering ``name``; its outputs into ``dest``."""
        try:
            reply = self.reply(timeout)
            if reply.split()[:1] != [name]:
                raise WarmProcessDied(f"repeat server answered {reply!r} for job {name}")
            from dlcourse.runner.verify import ERRORS, OUTPUTS

            # Only what the trusted side reads (and the child's own log), only plain files.
            for kept in (OUTPUTS, ERRORS, ".stdout", ".stderr"):
                path = self.spool / name / kept
                if path.is_file() and not path.is_symlink():
                    shutil.copyfile(path, dest / kept)
        finally:
            shutil.rmtree(self.spool / name, ignore_errors=True)

    def student_processes(self) -> list[psutil.Process]:
        """The forked child answering the challenge, and all it started."""
        with contextlib.suppress(psutil.Error, AttributeError):
            return self.server.children(recursive=True)
        return []


class FeedbackWriter(_WarmProcess):
    """The TA's side: writes one student's feedback per request while others are still graded.

    A process of its own, not a thread: nbgrader's converters change the working directory of
    the process they run in.
    """

    def __init__(self, root: Path, assignment: str, db_url: str, log: Path) -> None:
        super().__init__([sys.executable, "-m", "dlcourse.runner.warm", "feedback", str(root), assignment,
                          db_url], dict(os.environ), root, log, wait=False)  # it loads while grading starts
        self.pending = 0

    def submit(self, student: str) -> None:
        self.send(student)
        self.pending += 1

    def results(self, timeout: float) -> list[tuple[list[str], str]]:
        """(students written, first problem) per request, once all are done."""
        answers = []
        self.wait_ready()
        while self.pending:
            self.pending -= 1
            answers.append(tuple(json.loads(self.reply(timeout))))
        return answers


def _children(proc: psutil.Process) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return proc.children()
    return []


def _cmdline(proc: psutil.Process) -> list[str]:
    with contextlib.suppress(psutil.Error):
        return proc.cmdline()
    return []


@dataclass(frozen=True)
class SlotKey:
    """What the warm processes were started for: a job with another key starts fresh ones."""

    confined: bool
    device: str
    env: tuple[tuple[str, str], ...]


class Slot:
    """The warm processes of one grading thread, started on first use and again after a death."""

    def __init__(self) -> None:
        self.key: SlotKey | None = None
        self.home: Path | None = None
        self.autograde: AutogradeWorker | None = None
        self.repeat: RepeatServer | None = None

    def start(self, isolation: sandbox.Isolation, device: str, env: dict[str, str], repeat: bool,
              wait: bool = True) -> None:
        """Start what is not running (for another key: everything afresh)."""
        key = SlotKey(isolation.kind == "bubblewrap", device, tuple(sorted(env.items())))
        if key != self.key:
            self.close()
            self.key = key
            self.home = Path(tempfile.mkdtemp(prefix="dlcourse-warm-"))
        if self.autograde is None or not self.autograde.alive():
            if self.autograde is not None:
                self.autograde.close()
            worker_env = {**os.environ, **env}
            worker_env.pop("DLCOURSE_CONFINED", None)
            self.autograde = AutogradeWorker(worker_env, self.home, wait)
            STARTS["autograde"] += 1
        if repeat and (self.repeat is None or not self.repeat.alive()):
            self.restart_repeat(isolation, device, env, wait)

    def prepare(self, isolation: sandbox.Isolation, device: str, env: dict[str, str],
                repeat: bool) -> tuple[AutogradeWorker, RepeatServer | None]:
        """The warm processes for a job, started if need be and ready."""
        self.start(isolation, device, env, repeat)
        self.autograde.wait_ready()
        if repeat:
            self.repeat.wait_ready()
        return self.autograde, self.repeat if repeat else None

    def restart_repeat(self, isolation: sandbox.Isolation, device: str, env: dict[str, str],
                       wait: bool = True) -> RepeatServer:
        if self.repeat is not None:
            self.repeat.close()
            shutil.rmtree(self.repeat.spool, ignore_errors=True)
        self.repeat = RepeatServer(_server_env(env, isolation.kind == "bubblewrap", self.home), self.home,
                                   isolation, device, wait)
        STARTS["repeat"] += 1
        return self.repeat

    def close(self) -> None:
        for process in (self.autograde, self.repeat):
            if process is not None:
                process.close()
        self.autograde = self.repeat = None
        self.key = None  # the next job starts afresh, with a new home
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None


def _server_env(env: dict[str, str], confined: bool, home: Path) -> dict[str, str]:
    """The repeat server's environment: home and caches in the sandbox's /tmp when confined."""
    values = sandbox.child_env(home, env)
    if confined:
        values.update({k: v.replace(str(home / ".home"), "/tmp/home") for k, v in values.items()
                       if v.startswith(str(home / ".home"))})
    return values


_SLOTS: dict[int, Slot] = {}
_SLOTS_LOCK = threading.Lock()


_SPARE: list[Slot] = []


def prestart(count: int, isolation: sandbox.Isolation, device: str, env: dict[str, str], repeat: bool) -> None:
    """Start ``count`` slots now, without waiting: they load while the batch is being planned,
    and the first threads that grade take them."""
    for _ in range(count):
        spare = Slot()
        spare.start(isolation, device, env, repeat, wait=False)
        with _SLOTS_LOCK:
            _SPARE.append(spare)


def slot() -> Slot:
    """This thread's warm processes (a prestarted slot, if one is waiting)."""
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


def _reply(value: str) -> None:
    sys.stdout.write(REPLY + value + "\n")
    sys.stdout.flush()


def serve_autograde() -> int:
    """The autograde worker: one JSON request per line, one JSON reply per line."""
    from dlcourse.runner import nbgrader_api
    from dlcourse.runner.course import Course

    _die_with_parent()
    nbgrader_api.environment_bin_on_path()
    _reply("ready")
    for line in sys.stdin:
        request = json.loads(line)
        # Limits are the parent's (sandbox.watch); the kernel's own watchdog stays off. Once every
        # cell has run and its outputs are in, the kernel is stopped at once: a graceful shutdown
        # waits for a kernel whose outputs nobody needs any more (about 1 s per notebook).
        api = nbgrader_api.api(Course(Path(request["root"])),
                               ConfinedKernelManager={"memory_gb": None, "timeout": None},
                               Execute={"shutdown_kernel": "immediate"})
        try:
            result = api.autograde(request["assignment"], request["student"], force=True, create=True)
            reason = "" if result["success"] else nbgrader_api.failure_reason(result)
            answer = {"success": bool(result["success"]), "reason": reason}
        except Exception as exc:  # nbgrader itself failed: this submission only
            answer = {"success": False, "reason": f"nbgrader failed: {type(exc).__name__}: {exc}"}
        _reply(json.dumps(answer))
    return 0


def serve_feedback(root: Path, assignment: str, db_url: str) -> int:
    """The feedback writer: a student id per line; replies ``[written, problem]``."""
    from dlcourse.runner.course import Course
    from dlcourse.runner.grade import refresh_feedback

    _die_with_parent()
    course = Course(root)
    _reply("ready")
    for line in sys.stdin:
        try:
            answer = refresh_feedback(course, assignment, [line.strip()], db_url)
        except Exception as exc:  # the final pass in the parent writes what is missing
            answer = ([], f"feedback for {line.strip()} failed: {type(exc).__name__}: {exc}")
        _reply(json.dumps(answer))
    return 0


def _die_with_parent() -> None:
    """A grading thread's process that dies (a killed Dask worker) takes its warm worker along,
    and the worker's confined kernel with it (bubblewrap's --die-with-parent)."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _not_dumpable() -> None:
    """Children (same user, no capabilities) cannot ptrace or read /proc/<server>/mem."""
    pr_set_dumpable = 4
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, 0, 0, 0, 0)


def _empty(folder: Path, keep: str = "") -> None:
    """Remove what is in ``folder`` (but ``keep``), never crossing into a mount point: the spool
    is bound in below the sandbox's /tmp, and it is the parent's."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for path in folder.iterdir():
        if path.name == keep or os.path.ismount(path):
            continue
        if path.is_dir() and not path.is_symlink():
            _empty(path)
            with contextlib.suppress(OSError):  # a folder on the way to a mount point stays
                path.rmdir()
        else:
            with contextlib.suppress(OSError):
                path.unlink()


def _other_pids() -> list[int]:
    """Every process of this PID namespace but its init and this server."""
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]


def _kill_others(rounds: int = 200) -> None:
    """Kill what the student left running (the server owns its PID namespace)."""
    for _ in range(rounds):
        pids = _other_pids()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        time.sleep(0.01)
    raise RuntimeError(f"processes survive between students: {_other_pids()}")


def _remove_sysv_ipc() -> None:
    """Shared memory, semaphores and message queues of this IPC namespace: all a student's."""
    libc = ctypes.CDLL(None, use_errno=True)
    ipc_rmid = 0
    removers = {"shm": lambda i: libc.shmctl(i, ipc_rmid, None), "sem": lambda i: libc.semctl(i, 0, ipc_rmid),
                "msg": lambda i: libc.msgctl(i, ipc_rmid, None)}
    for kind, remove in removers.items():
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 1 and fields[1].isdigit():
                    remove(int(fields[1]))


def _answer(folder: Path, confined: bool) -> None:
    """In the forked child: stdio into the job's folder, a fresh home, then the challenge."""
    from dlcourse.runner import verify

    os.setsid()
    folder.mkdir(exist_ok=True)
    out = os.open(folder / ".stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(folder / ".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)  # noqa: SIM115
    home = Path("/tmp/home") if confined else folder / ".home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(HOME=str(home), TMPDIR=str(home.parent if confined else home))
    os.chdir(folder)
    code = verify.main([str(folder)])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve_repeats(spool: Path, confined: bool) -> int:
    """The repeat server: a job name per line; forks a child per job; replies when all is clean."""
    import importlib

    _not_dumpable()
    for module in PRELOAD:
        importlib.import_module(module)
    _reply("ready")
    for line in sys.stdin:
        name = line.strip()
        if not _JOB_NAME.match(name):
            _reply(f"{name} refused")
            continue
        # Before the child: nothing but this job's challenge is left to read.
        _empty(spool, keep=name)
        if confined:
            for folder in SCRATCH:
                _empty(Path(folder))
        pid = os.fork()
        if pid == 0:
            try:
                _answer(spool / name, confined)
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        if confined:
            _kill_others()
            _remove_sysv_ipc()
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        _reply(f"{name} {os.waitstatus_to_exitcode(status)}")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["autograde"]:
        return serve_autograde()
    if argv[:1] == ["feedback"] and len(argv) == 4:
        return serve_feedback(Path(argv[1]), argv[2], argv[3])
    if argv[:1] == ["repeat"] and len(argv) >= 2:
        return serve_repeats(Path(argv[1]), "--confined" in argv[2:])
    print("usage: python -m dlcourse.runner.warm autograde | repeat SPOOL [--confined] | "
          "feedback ROOT ASSIGNMENT DB_URL", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
