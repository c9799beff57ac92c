"""The warm repeat server: loaded once, it forks one isolated child per job.

Run confined by the trusted side (``python -m dlcourse.harness.zygote framework|numpy``, inside
bubblewrap, see :mod:`dlcourse.runner.repeat_servers`), with the environment and home the
sandbox gives it (:mod:`dlcourse.runner.sandbox`). It imports what jobs need (TensorFlow and the
grading specs for ``framework``; NumPy and SciPy only, frameworks stubbed, for ``numpy``),
then answers requests from its standard input, one frame each
(:mod:`dlcourse.harness.frames`): the header names the job and its limits, the payload is
the job (a zip). For each job it forks a child that isolates itself in fresh namespaces
(:mod:`dlcourse.harness.namespaces`); the grandchild, PID 1 of its own PID namespace,
receives the job through a pipe, runs it (:mod:`dlcourse.harness.answer`) and writes its
outputs to a second pipe and its log to a third. The server reads at most a fixed number of
bytes of each, kills the job when it passes them or its time, kills whatever is left in its
PID namespace, and replies with one frame: status, exit code, outputs and log.

The server itself never runs student code. Its standard input and output, the only way to
the trusted side, are closed in every child, and no child can see the server's process.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import selectors
import signal
import sys
import tempfile
import threading
import time

from dlcourse.harness import frames, namespaces

#: Imported once per server, before any job (never running TensorFlow ops: forking after
#: TensorFlow has started its thread pools is unsafe).
PRELOAD = {
    "framework": ("numpy", "scipy.special", "matplotlib", "matplotlib.pyplot", "tensorflow", "keras",
                  "IPython.core.interactiveshell", "dlcourse.runtime", "dlcourse.architectures", "dlcourse.data",
                  "dlcourse.experiments", "dlcourse.figures", "dlcourse.grading.inception",
                  "dlcourse.grading.residual", "dlcourse.grading.lstm", "dlcourse.grading.unet",
                  "dlcourse.harness.answer"),
    "numpy": ("numpy", "scipy.special", "dlcourse.grading.inception", "dlcourse.grading.residual",
              "dlcourse.grading.lstm", "dlcourse.grading.unet", "dlcourse.harness.answer"),
}
#: A job's request: the job itself (inputs, weights, a hand-in model, cells) is small.
MAX_JOB_BYTES = 256 << 20
#: What a job may send back: outputs, and the tail of its log.
MAX_OUTPUT_BYTES = 64 << 20
MAX_LOG_BYTES = 256 << 10
#: Processes (threads count) a job may have; a fork bomb stops here.
MAX_PROCESSES = 4096
#: User namespaces the server's may hold below it: two per job, the job itself can make none.
NESTED_USER_NAMESPACES = 64
#: Exit code of a child that could not isolate itself (the job never ran).
ISOLATION_FAILED = 71


def _other_pids() -> list[int]:
    """Every process of the server's PID namespace but its init and the server itself: the
    job's (its PID namespace is nested in the server's, so they are all visible here)."""
    me = os.getpid()
    pids = []
    with contextlib.suppress(OSError):
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
    return pids


def _kill_job(child: int, confined: bool) -> None:
    if not confined:  # no PID namespace of its own: the job's session is what it left
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child, signal.SIGKILL)
        return
    for _ in range(500):
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
    raise RuntimeError(f"processes of a finished job survive: {_other_pids()}")


def _child(kind: str, tmp_bytes: int, pipes: dict[str, int], keep: set[int], confined: bool) -> None:
    """In the forked child: isolate, fork the job's PID 1, wait for it. Never returns."""
    code = ISOLATION_FAILED
    try:
        for fd in range(3, _max_fd()):
            if fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if confined:
            namespaces.isolate(tmp_bytes)
        grandchild = os.fork()
        if grandchild == 0:
            try:
                if confined:
                    namespaces.seal(MAX_PROCESSES)
                else:  # the TA asked for an unconfined run: a session and a folder of its own only
                    os.setsid()
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(pipes["log"], 1)
                os.dup2(pipes["log"], 2)
                for fd in (null, pipes["log"]):
                    os.close(fd)
                from dlcourse.harness import answer

                folder = namespaces.JOB if confined else os.path.join(tempfile.mkdtemp(prefix="dlcourse-job-"), "job")
                os._exit(answer.main(pipes["job"], pipes["out"], kind, folder))
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.write(2, f"job failed before its answer: {type(exc).__name__}: {exc}\n".encode())
                os._exit(ISOLATION_FAILED)
        for fd in pipes.values():
            os.close(fd)
        _, status = os.waitpid(grandchild, 0)
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 128 - code
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(pipes["log"], f"the job could not be isolated: {type(exc).__name__}: {exc}\n".encode())
    os._exit(code)


def _max_fd() -> int:
    try:
        return min(os.sysconf("SC_OPEN_MAX"), 65536)
    except (ValueError, OSError):
        return 4096


def run_job(job: bytes, kind: str, tmp_bytes: int, timeout: float, confined: bool) -> tuple[dict, bytes, bytes]:
    """Fork, isolate and run one job; its status, outputs and log."""
    job_r, job_w = os.pipe()
    out_r, out_w = os.pipe()
    log_r, log_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(kind, tmp_bytes, {"job": job_r, "out": out_w, "log": log_w}, {job_r, out_w, log_w}, confined)
    for fd in (job_r, out_w, log_w):
        os.close(fd)
    threading.Thread(target=_send, args=(job_w, job), daemon=True).start()
    status, out, log = _collect(out_r, log_r, timeout)
    if status != "ok":
        _kill_job(pid, confined)
    _, wait_status = os.waitpid(pid, 0)
    _kill_job(pid, confined)  # anything the job left running
    code = os.waitstatus_to_exitcode(wait_status)
    if status == "ok" and code == ISOLATION_FAILED:
        status = "isolation failed"
    return {"status": status, "exit": code}, out, log


def _send(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    with contextlib.suppress(OSError):
        os.close(fd)


def _collect(out_r: int, log_r: int, timeout: float) -> tuple[str, bytes, bytes]:
    """Read the job's outputs and log until both end, within their limits and the time."""
    limits = {out_r: MAX_OUTPUT_BYTES, log_r: MAX_LOG_BYTES}
    data: dict[int, bytearray] = {out_r: bytearray(), log_r: bytearray()}
    selector = selectors.DefaultSelector()
    for fd in limits:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    status = "ok"
    try:
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                status = "time limit"
                break
            for key, _ in selector.select(min(left, 1.0)):
                fd = key.fd
                try:
                    chunk = os.read(fd, 1 << 20)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(fd)
                    continue
                if len(data[fd]) + len(chunk) > limits[fd]:
                    if fd == out_r:
                        status = "outputs too large"
                        return status, b"", bytes(data[log_r])
                    data[fd] += chunk[: max(limits[fd] - len(data[fd]), 0)]
                    selector.unregister(fd)  # the log keeps its head; the job goes on
                    continue
                data[fd] += chunk
    finally:
        selector.close()
        for fd in limits:
            with contextlib.suppress(OSError):
                os.close(fd)
    return status, bytes(data[out_r]), bytes(data[log_r])


def serve(kind: str, confined: bool = True) -> int:
    """The server's loop (see the module's docstring)."""
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)  # whatever a library prints goes to the log, never into a reply
    os.close(null)
    if confined:  # keyrings of its own; room for the two user namespaces of each job (and of jobs
        # whose namespaces the kernel has not freed yet: it frees them a little after they end)
        namespaces.own_user_namespace(NESTED_USER_NAMESPACES)
        namespaces.not_dumpable()
    if kind == "numpy":
        from dlcourse.harness import frameworks

        frameworks.install_stubs()
    for module in PRELOAD[kind]:
        importlib.import_module(module)
    problem = namespaces.check_supported() if confined else ""
    frames.write_frame(replies, {"ready": not problem, "problem": problem, "pid": os.getpid()})
    if problem:
        return 1
    while True:
        try:
            request = frames.read_frame(requests, MAX_JOB_BYTES)
        except frames.FrameError as exc:
            print(f"bad request: {exc}", file=sys.stderr, flush=True)
            return 1
        if request is None:
            return 0
        header, payloads = request
        job_id = str(header.get("job", ""))[:64]
        try:
            tmp_bytes, timeout = int(header["tmp_bytes"]), float(header["timeout"])
            reply, out, log = run_job(payloads[0], kind, tmp_bytes, timeout, confined)
        except Exception as exc:
            reply, out, log = {"status": f"server error: {type(exc).__name__}: {exc}", "exit": -1}, b"", b""
        frames.write_frame(replies, {"job": job_id, **reply}, out, log)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in PRELOAD or argv[1:] not in ([], ["--unconfined"]):
        print(f"usage: python -m dlcourse.harness.zygote {'|'.join(PRELOAD)} [--unconfined]", file=sys.stderr)
        return 2
    return serve(argv[0], confined="--unconfined" not in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
