"""Confine the kernel that nbgrader's own autograde starts: plain `nbgrader autograde` and formgrader.

`course grade` confines the whole grading process (nbgrader and the kernel) in
bubblewrap (:mod:`dlcourse.runner.sandbox`). A TA can also grade without it: plain
``nbgrader autograde`` from the course folder, or formgrader's Autograde button,
which runs nbgrader inside the Jupyter server with the TA's rights. Here the
kernel itself is started confined, with the rules of :mod:`dlcourse.runner.sandbox`: a
new network namespace (nothing but its own, empty loopback), a new PID namespace
that dies with the kernel, and a file-system view of the Python installation
(read-only) plus the submission's own folder; the TA's home, the course, the
gradebook and other submissions are not there.

A kernel in its own network namespace cannot reach its client over loopback
TCP, so the confined kernel talks to nbgrader over ZeroMQ's IPC transport: Unix
sockets in a private folder bound into the sandbox (Unix sockets are files, not
network addresses, so they cross network namespaces).

The course's nbgrader_config.py swaps nbgrader's ``Execute`` step of autograde
for :class:`ConfinedExecute` (:func:`confine_autograde`); validation (the
student's own Validate button) keeps the ordinary kernel. Inside `course grade`'s
sandbox the kernel is already confined and is started as usual. Without a
working bubblewrap the kernel runs unconfined and says so in nbgrader's log
(as `course grade --unconfined` does when the TA asks for it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import psutil
from jupyter_client.manager import AsyncKernelManager
from nbgrader.preprocessors import Execute
from traitlets import Float

from dlcourse.runner import sandbox

#: Variables a confined kernel keeps from nbgrader's environment; all others
#: (tokens, the TA's paths, Jupyter's parent-process handles) are dropped.
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "PYTHONHASHSEED",
            "OMP_NUM_THREADS", "DLCOURSE_DATA", "NBGRADER_EXECUTION", "NBGRADER_VALIDATING",
            "PYDEVD_DISABLE_FILE_VALIDATION",
            # numerics and devices: the same backend and settings as an unconfined run
            "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "TF_DETERMINISTIC_OPS", "TF_ENABLE_ONEDNN_OPTS",
            "TF_FORCE_GPU_ALLOW_GROWTH", "XLA_FLAGS", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH")
#: Home, caches and Jupyter's files of a confined kernel: a private tmpfs.
SANDBOX_HOME = "/tmp/home"


def confinement_wanted() -> tuple[bool, str]:
    """Whether to wrap the kernel, and why not when not."""
    if os.environ.get("DLCOURSE_CONFINED") == "1":
        return False, "already inside course grade's sandbox"
    if os.environ.get("DLCOURSE_UNCONFINED") == "1":
        return False, "DLCOURSE_UNCONFINED=1: the TA asked for an unconfined run"
    found = sandbox.detect()
    if found.kind != "bubblewrap":
        return False, found.warning or "bubblewrap is not available"
    return True, ""


def bwrap_command(cmd: list[str], workdir: Path, ipc_dir: Path) -> list[str]:
    """``cmd`` (a kernel) wrapped so that it sees the Python it needs, ``workdir`` and ``ipc_dir``."""
    # The rules of course grade's sandbox, capabilities dropped and the GPU (if any) bound in.
    args = ["bwrap", *sandbox.bwrap_args(Path(workdir).resolve(), sandbox.gpu_device_nodes())]
    args += ["--bind", str(ipc_dir), str(ipc_dir), "--dir", SANDBOX_HOME]
    # ipykernel would take the namespace's init for a dead parent and stop; parent pid 1
    # turns its polling off (--die-with-parent ends the kernel with nbgrader instead).
    args += ["--setenv", "JPY_PARENT_PID", "1", "--unsetenv", "JPY_INTERRUPT_EVENT",
             "--setenv", "HOME", SANDBOX_HOME]
    for name, sub in (("MPLCONFIGDIR", "mpl"), ("KERAS_HOME", "keras"), ("IPYTHONDIR", "ipython"),
                      ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_DATA_DIR", "data"),
                      ("JUPYTER_CONFIG_DIR", "config"), ("XDG_CACHE_HOME", "cache")):
        args += ["--setenv", name, f"{SANDBOX_HOME}/{sub}"]
    return [*args, "--", *cmd]


class ConfinedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs in bubblewrap and talks over IPC sockets."""

    memory_gb = Float(4.0, allow_none=True, config=True,
                      help="Resident memory (GB) of the confined kernel and its children before it is "
                           "killed, as course grade --memory; None for no limit.")
    timeout = Float(1800.0, allow_none=True, config=True,
                    help="Seconds a confined kernel may live, as course grade --timeout (per-cell "
                         "limits are Execute.timeout); None for no limit.")

    def __init__(self, **kwargs: Any) -> None:
        wanted, self.unconfined_reason = confinement_wanted()
        self._ipc_dir: Path | None = Path(tempfile.mkdtemp(prefix="dlk-")) if wanted else None
        if self._ipc_dir is not None:
            # Before any trait default is computed from the transport (cache_ports, ip).
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", str(self._ipc_dir / "kernel"))
            kwargs.setdefault("connection_file", str(self._ipc_dir / "connection.json"))
        super().__init__(**kwargs)
        self._workdir: Path | None = None
        self._watchdog: threading.Thread | None = None
        self.limit_hit = ""

    @property
    def confined(self) -> bool:
        return self._ipc_dir is not None

    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        if not self.confined and os.environ.get("DLCOURSE_CONFINED") != "1":
            self.log.warning("Student code runs UNCONFINED in this kernel (%s). `course grade` "
                             "confines it.", self.unconfined_reason)
        else:
            self._workdir = Path(kw.get("cwd") or self._ipc_dir)
            # Signals stop at the sandbox's init; ipykernel takes interrupts as messages.
            self.kernel_spec.interrupt_mode = "message"
        return await super()._async_pre_start_kernel(**kw)

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        if not self.confined:
            return cmd
        return bwrap_command(cmd, self._workdir, self._ipc_dir)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if self.confined:
            env = kw.get("env") or os.environ
            kw["env"] = {k: v for k, v in env.items() if k in KEPT_ENV}
        await super()._async_launch_kernel(kernel_cmd, **kw)
        if self.confined and (self.memory_gb or self.timeout):
            self._start_watchdog()

    def _start_watchdog(self) -> None:
        """Kill the sandbox (the kernel and all it started) past the memory or time limit."""
        pid = getattr(self.provisioner, "pid", None)
        if pid is None:
            return
        try:
            root = psutil.Process(pid)
        except psutil.Error:
            return
        memory = int(self.memory_gb * 2**30) if self.memory_gb else None

        def gone() -> bool:
            return not root.is_running() or root.status() == psutil.STATUS_ZOMBIE

        def watch() -> None:
            with contextlib.suppress(psutil.Error):
                self.limit_hit = sandbox.watch(lambda: sandbox.tree(root), gone, self.timeout, memory).limit
            if self.limit_hit:
                self.log.error("Kernel killed: %s", self.limit_hit)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # bwrap: the sandbox dies with it

        self._watchdog = threading.Thread(target=watch, name="kernel-memory-watchdog", daemon=True)
        self._watchdog.start()

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if self._ipc_dir is not None and not restart:
            shutil.rmtree(self._ipc_dir, ignore_errors=True)

    # AsyncKernelManager binds the base class's coroutine to this name; nbclient calls it.
    cleanup_resources = _async_cleanup_resources


class ConfinedExecute(Execute):
    """nbgrader's Execute step with the kernel started by :class:`ConfinedKernelManager`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("kernel_manager_class", ConfinedKernelManager)
        super().__init__(*args, **kwargs)


def confine_autograde(preprocessors: list) -> list:
    """Autograde's preprocessor list with Execute replaced by :class:`ConfinedExecute`.

    Fails when there is no Execute step to replace, so that a reordered
    configuration cannot silently run student code unconfined.
    """
    names = {Execute, "nbgrader.preprocessors.Execute", "nbgrader.preprocessors.execute.Execute"}
    steps = [ConfinedExecute if step in names else step for step in preprocessors]
    if ConfinedExecute not in steps:
        raise ValueError("Autograde.autograde_preprocessors has no nbgrader Execute step to confine")
    return steps
