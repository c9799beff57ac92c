"""The kernel of a notebook being autograded, confined (every path: `course grade`, plain
``nbgrader autograde``, formgrader's Autograde button).

The course's nbgrader_config.py swaps nbgrader's ``Execute`` step of autograde for
:class:`ConfinedExecute` (:func:`confine_autograde`), whose kernel manager starts the kernel in
bubblewrap with the rules of :mod:`dlcourse.runner.sandbox` (another user, fresh namespaces,
no capability, a read-only view of the Python installation, sized tmpfs).

- **A private working folder.** The kernel works in ``/tmp/work`` inside its sandbox, a copy of
  the regular files beside the notebook (a hand-in model, data the student handed in), made
  inside the sandbox from a read-only staging folder. It never sees the folder where nbgrader
  writes the graded notebook, so nothing it does there (a link in place of the notebook, say)
  can reach a file of the TA's.
- **Its own channel.** A kernel in its own network namespace cannot reach its client over
  loopback TCP, so it talks to nbgrader over ZeroMQ's IPC transport: Unix sockets in a folder
  made for this kernel and bound into its sandbox. Standard input is ``/dev/null``; standard
  output and error go to a log file of the trusted side, never to the pipes of the process that
  runs nbgrader. The client drops any message larger than :data:`MAX_MESSAGE_BYTES`, and
  :class:`ConfinedExecute` stops keeping outputs past :data:`MAX_OUTPUT_BYTES` per notebook.
- **Limits.** The kernel's processes, what it stores in its tmpfs and in its socket folder count
  against the notebook's budget (:mod:`dlcourse.runner.limits`), shared with the repeat of its
  hidden tests; past a limit the sandbox is killed.

Validation (the student's own Validate button) keeps the ordinary kernel. Without a working
bubblewrap, or when the TA asked for an unconfined run, the kernel runs unconfined and says so
in nbgrader's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Float, Integer

from dlcourse.runner import limits, sandbox
from dlcourse.runner.nbgrader_plugins import read_regular_file

#: Inside the sandbox: the working folder, and the read-only folder its files are copied from.
WORK = "/tmp/work"
STAGE = "/tmp/.stage"
#: A single kernel message larger than this is dropped (and the connection with it).
MAX_MESSAGE_BYTES = 64 << 20
#: Outputs kept per notebook; later outputs are replaced by one note.
MAX_OUTPUT_BYTES = 16 << 20
#: Files copied into the kernel's working folder: at most this much in all.
MAX_STAGED_BYTES = 768 << 20
#: Entries and bytes the kernel may leave in its socket folder (the only folder on disk it
#: can write to), and in its log file (its standard output and error).
MAX_SOCKET_FOLDER_BYTES = 16 << 20
MAX_SOCKET_FOLDER_ENTRIES = 64
MAX_LOG_BYTES = 16 << 20


def stage_files(folder: Path, stage: Path, limit: int = MAX_STAGED_BYTES) -> list[str]:
    """Copy the regular files of ``folder`` (not notebooks, never links) into ``stage``."""
    copied, total = [], 0
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.suffix == ".ipynb" or path.is_symlink() or not path.is_file():
            continue
        with contextlib.suppress(OSError, ValueError):
            data = read_regular_file(path, limit - total)
            (stage / path.name).write_bytes(data)
            (stage / path.name).chmod(0o644)
            total += len(data)
            copied.append(path.name)
    return copied


def _folder_usage(folder: Path) -> tuple[int, int]:
    """(bytes allocated, entries) below ``folder``, counting at most a few more entries than allowed."""
    used, entries = 0, 0
    pending = [folder]
    while pending and entries <= MAX_SOCKET_FOLDER_ENTRIES:
        with contextlib.suppress(OSError), os.scandir(pending.pop()) as found:
            for entry in found:
                entries += 1
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    used += info.st_blocks * 512
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(Path(entry.path))
    return used, entries


class CappedKernelClient(AsyncKernelClient):
    """A kernel client whose sockets refuse messages larger than :data:`MAX_MESSAGE_BYTES`."""

    def _create_connected_socket(self, channel: str, identity: bytes | None = None):
        import zmq
        from jupyter_client.connect import channel_socket_types

        # jupyter_client's own, with the size cap set before connecting (it applies to new
        # connections only). IPC transport: no encryption keys to set.
        sock = self.context.socket(channel_socket_types[channel])
        sock.linger = 1000
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        if identity:
            sock.identity = identity
        sock.connect(self._make_url(channel))
        return sock


class ConfinedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs in bubblewrap and talks over IPC sockets."""

    memory_gb = Float(4.0, allow_none=True, config=True,
                      help="Memory (GB) of the confined kernel when no notebook budget is open (the "
                           "autograde steps of dlcourse.runner.trusted open one); None for no limit.")
    timeout = Float(1800.0, allow_none=True, config=True,
                    help="Seconds a confined kernel may live when no notebook budget is open; None for "
                         "no limit. Per-cell limits are Execute.timeout.")

    def __init__(self, **kwargs: Any) -> None:
        wanted, self.unconfined_reason = sandbox.confinement_wanted()
        self._ipc_dir: Path | None = None
        self._private: Path | None = None
        if wanted:
            self._ipc_dir = sandbox.share_with_sandbox(Path(tempfile.mkdtemp(prefix="dlk-")))
            self._private = Path(tempfile.mkdtemp(prefix="dlk-trusted-"))
            # Before any trait default is computed from the transport (cache_ports, ip).
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", str(self._ipc_dir / "kernel"))
            kwargs.setdefault("connection_file", str(self._ipc_dir / "connection.json"))
        super().__init__(**kwargs)
        if self.confined:
            self.client_class = "dlcourse.runner.kernel_sandbox.CappedKernelClient"
        self._budget: limits.Budget | None = None
        self._budget_key: int | None = None
        self._own_budget = False

    @property
    def confined(self) -> bool:
        return self._ipc_dir is not None

    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        if not self.confined:
            self.log.warning("Student code runs UNCONFINED in this kernel (%s). `course grade` confines it "
                             "unless told otherwise.", self.unconfined_reason)
        else:
            self.log.info("Student code runs confined: its kernel starts in a bubblewrap sandbox as "
                          "another user, with no network and no file of the course.")
            stage = self._private / "stage"
            stage.mkdir()
            stage_files(Path(kw.get("cwd") or "."), stage)
            stage.chmod(0o755)
            self._private.chmod(0o755)
            # Signals stop at the sandbox's init; ipykernel takes interrupts as messages.
            self.kernel_spec.interrupt_mode = "message"
        return await super()._async_pre_start_kernel(**kw)

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        if not self.confined:
            return cmd
        if cmd and os.path.basename(cmd[0]).startswith("python"):
            cmd = [sys.executable, *cmd[1:]]
        start = [sys.executable, "-m", "dlcourse.harness.kernel_start", STAGE, WORK, "--", *cmd]
        layout = sandbox.Layout(device=sandbox.current_device(), writable=(self._ipc_dir,),
                                readonly=((self._private / "stage", STAGE),), chdir="/tmp",
                                # ipykernel would take the namespace's init for a dead parent and
                                # stop; parent pid 1 turns its polling off (--die-with-parent ends
                                # the kernel with nbgrader instead).
                                env={"JPY_PARENT_PID": "1"})
        return sandbox.command(start, layout)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if self.confined:
            env = kw.get("env") or os.environ
            kw["env"] = sandbox.environment(sandbox.kept(env))
            log = open(self._private / "kernel.log", "ab")  # noqa: SIM115 - the kernel's, closed below
            kw.update(stdin=_devnull(), stdout=log, stderr=log)
            with contextlib.suppress(OSError):
                sandbox.give_to_sandbox(Path(self.connection_file))
            await super()._async_launch_kernel(kernel_cmd, **kw)
            log.close()
            self._watch()
        else:
            await super()._async_launch_kernel(kernel_cmd, **kw)

    def _root(self) -> psutil.Process | None:
        pid = getattr(self.provisioner, "pid", None)
        with contextlib.suppress(psutil.Error, TypeError):
            return psutil.Process(pid)
        return None

    def _stored(self) -> int:
        root = self._root()
        inner = sandbox.tree(root)[1:2] if root else []
        used = sandbox.stored_bytes(inner[0].pid) if inner else 0
        folder_bytes, entries = _folder_usage(self._ipc_dir)
        log_bytes = 0
        with contextlib.suppress(OSError):
            log_bytes = (self._private / "kernel.log").stat().st_blocks * 512
        full = folder_bytes > MAX_SOCKET_FOLDER_BYTES or entries > MAX_SOCKET_FOLDER_ENTRIES
        if self._budget is not None and (full or log_bytes > MAX_LOG_BYTES):
            self._budget.spend("the kernel wrote too much outside its temporary files (its socket folder "
                               "or its standard output)")
        return used + folder_bytes + log_bytes

    def _watch(self) -> None:
        """Put the sandbox under the notebook's budget (or a budget of its own)."""
        root = self._root()
        if root is None:
            return
        self._budget = limits.current()
        if self._budget is None:
            memory = int(self.memory_gb * 2**30) if self.memory_gb else None
            self._budget, self._own_budget = limits.Budget(self.timeout, memory), True
        self._budget_key = self._budget.add(lambda: sandbox.tree(root), self._stored)

    @property
    def limit_hit(self) -> str:
        return self._budget.limit if self._budget is not None else ""

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if restart:
            return
        if self._budget is not None and self._budget_key is not None:
            self._budget.remove(self._budget_key)
            if self._own_budget:
                self._budget.close()
        for folder in (self._ipc_dir, self._private):
            if folder is not None:
                sandbox.remove_tree(folder)

    # AsyncKernelManager binds the base class's coroutine to this name; nbclient calls it.
    cleanup_resources = _async_cleanup_resources


def _devnull() -> int:
    return os.open(os.devnull, os.O_RDONLY)


def _size(content: Any) -> int:
    try:
        return len(json.dumps(content, default=str))
    except (TypeError, ValueError, RecursionError):
        return MAX_OUTPUT_BYTES + 1


class ConfinedExecute(Execute):
    """nbgrader's Execute step with the kernel started by :class:`ConfinedKernelManager`, and a
    cap on the outputs kept in memory while the notebook runs."""

    max_output_bytes = Integer(MAX_OUTPUT_BYTES, help="Bytes of outputs kept per notebook while it runs; "
                               "later outputs are replaced by one note.").tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("kernel_manager_class", ConfinedKernelManager)
        super().__init__(*args, **kwargs)
        self._output_bytes = 0
        self._noted = False

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):
        self._output_bytes, self._noted = 0, False
        return super().preprocess(nb, resources, km)

    def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> NotebookNode | None:
        self._output_bytes += _size(msg.get("content"))
        if self._output_bytes > self.max_output_bytes:
            if not self._noted:
                self._noted = True
                note = new_output("stream", name="stdout",
                                  text=f"[outputs after the first {self.max_output_bytes} bytes were not kept]\n")
                outs.append(note)
            if msg.get("msg_type") == "error":
                return super().output(outs, msg, display_id, cell_index)
            return None
        return super().output(outs, msg, display_id, cell_index)


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
