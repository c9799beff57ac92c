"""Confine untrusted student code, and watch it against time and memory limits.

Confinement uses bubblewrap (Debian package ``bubblewrap``) when it is present
and works. What runs student code -- the kernel of each notebook
(:mod:`dlcourse.runner.kernel_sandbox`) and the repeat server of
:mod:`dlcourse.runner.warm` -- gets a new network namespace with only its own
loopback, new PID and IPC namespaces that die with it, no capabilities, and a
file-system view of the Python installation (read-only) plus its own working
folder; the course, the other submissions, the gradebook and the home folder
are not there. Without working bubblewrap :func:`required` refuses to run
student code unless the TA asked for an unconfined run explicitly.

Limits are watched from outside (:func:`watch`): wall-clock time, and the
summed resident memory of the student's processes. An address-space rlimit
would be simpler but TensorFlow reserves several GiB of address space at
import, so it cannot express "2 GiB of real memory".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psutil

from dlcourse.errors import CourseError

POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Isolation:
    kind: str  # "bubblewrap" or "none"
    warning: str = ""  # why there is no confinement, or that the TA chose to run without it


#: What to run to make confinement available; one definition for errors, demo and README.
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap)"


@cache
def detect() -> Isolation:
    """Which confinement this machine offers; tried once per process."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return Isolation("none", "bubblewrap (bwrap) is not installed")
    probe = subprocess.run([bwrap, *bwrap_args(Path("/tmp")), "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
        return Isolation("none", f"bubblewrap cannot create namespaces here ({reason})")
    return Isolation("bubblewrap")


def required(unconfined: bool = False) -> Isolation:
    """The confinement to grade with: bubblewrap, or none only when the TA asked for it.

    Student code is untrusted, so a missing or broken bubblewrap is an error
    naming both ways out, never a silent fallback.
    """
    if unconfined:
        return Isolation("none", "running student code unconfined (--unconfined): it can read and write "
                                 "what you can and reach the network")
    found = detect()
    if found.kind == "none":
        raise CourseError(f"cannot confine student code: {found.warning}; {INSTALL_HINT}, "
                          "or pass --unconfined to run submissions with your own rights")
    return found


def _readable_roots() -> list[Path]:
    """What the child must read: the system, the interpreter, the environment, dlcourse."""
    import dlcourse

    system = [Path(p) for p in ("/usr", "/bin", "/lib", "/lib64", "/etc", "/sbin") if Path(p).exists()]
    python = {Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable).parent}
    python |= {Path(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    python.add(Path(dlcourse.__file__).resolve().parents[1])
    with contextlib.suppress(Exception):  # the bundled data sets, wherever they are
        from dlcourse.data.paths import data_dir

        python.add(data_dir())
    python = {p.resolve() for p in python if p.exists()}
    python = {p for p in python if not any(p == s or s in p.parents for s in system)}
    # Nested roots are covered by their parents.
    return system + sorted(p for p in python if not any(q != p and q in p.parents for q in python))


#: Device nodes the CUDA runtime opens: one per GPU (nvidia0, ...), the control and
#: unified-memory nodes. bubblewrap's minimal /dev has none of them.
GPU_DEVICE_PATTERNS = ("nvidia[0-9]*", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
DEVICES = ("cpu", "gpu", "auto")


def gpu_device_nodes(dev: Path = Path("/dev")) -> list[Path]:
    """The NVIDIA device nodes present on this machine (none without an NVIDIA GPU)."""
    return sorted({p for pattern in GPU_DEVICE_PATTERNS for p in dev.glob(pattern)})


def resolve_device(requested: str, dev: Path = Path("/dev")) -> str:
    """``cpu`` or ``gpu`` for ``--device cpu|gpu|auto`` on this machine (auto: the GPU if present)."""
    if requested not in DEVICES:
        raise ValueError(f"--device must be one of {', '.join(DEVICES)}, got {requested!r}")
    present = bool(gpu_device_nodes(dev))
    if requested == "gpu" and not present:
        raise ValueError("--device gpu: this machine has no NVIDIA device nodes (/dev/nvidia*)")
    return "gpu" if requested == "gpu" or (requested == "auto" and present) else "cpu"


def device_env(device: str) -> dict[str, str]:
    """On the CPU the frameworks must not find a GPU, even outside the confinement."""
    return {"CUDA_VISIBLE_DEVICES": "-1"} if device == "cpu" else {}


def bwrap_args(workdir: Path, devices: list[Path] | tuple[Path, ...] = ()) -> list[str]:
    # --cap-drop ALL: run as root (CI), bubblewrap would otherwise keep root's capabilities inside.
    args = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--setenv", "DLCOURSE_CONFINED", "1",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for node in devices:  # after --dev, so that they appear in the minimal /dev
        args += ["--dev-bind", str(node), str(node)]
    for root in _readable_roots():
        args += ["--ro-bind", str(root), str(root)]
    args += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
    return args


def confined(cmd: list[str], workdir: Path, isolation: Isolation, device: str = "cpu") -> list[str]:
    """``cmd`` wrapped so that it only sees ``workdir`` (read-write), the Python it needs and,
    with ``device="gpu"``, the GPU's device nodes."""
    if isolation.kind != "bubblewrap":
        return cmd
    devices = gpu_device_nodes() if device == "gpu" else []
    return ["bwrap", *bwrap_args(Path(workdir).resolve(), devices), *cmd]


def child_env(workdir: Path, extra: dict[str, str]) -> dict[str, str]:
    """Environment for a confined child: home, caches and Jupyter's runtime files in ``workdir``."""
    home = Path(workdir) / ".home"
    home.mkdir(exist_ok=True)
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "OMP_NUM_THREADS", "DLCOURSE_DATA",
                     "CUDA_VISIBLE_DEVICES")}
    return {**keep, "HOME": str(home), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTER_DATA_DIR": str(home / "data"), "IPYTHONDIR": str(home / "ipython"),
            "MPLCONFIGDIR": str(home / "mpl"), "KERAS_HOME": str(home / "keras"),
            "JUPYTER_PLATFORM_DIRS": "1", "PYTHONDONTWRITEBYTECODE": "1", **extra}


@dataclass
class Watched:
    limit: str  # why the processes must be stopped: "" when they finished by themselves
    seconds: float
    peak_memory: int  # bytes, the most the watched processes held at once (summed resident memory)


def _rss(processes: list[psutil.Process]) -> int:
    total = 0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def tree(root: psutil.Process) -> list[psutil.Process]:
    """``root`` and everything it started (nothing once it is gone)."""
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def watch(processes: Callable[[], list[psutil.Process]], finished: Callable[[], bool], timeout: float | None,
          memory_bytes: int | None) -> Watched:
    """Wait until ``finished()``, or until the student's ``processes()`` pass a limit.

    The memory budget is their summed resident memory, sampled every
    ``POLL_SECONDS``; the caller stops them when a limit is named. An
    address-space rlimit cannot express this (see the module's docstring).
    """
    start = time.monotonic()
    peak = 0
    while not finished():
        elapsed = time.monotonic() - start
        rss = _rss(processes())
        peak = max(peak, rss)
        if timeout is not None and elapsed > timeout:
            return Watched(f"time limit of {timeout:g} s exceeded", elapsed, peak)
        if memory_bytes and rss > memory_bytes:
            return Watched(f"memory limit of {memory_bytes / 2**30:g} GB exceeded ({rss / 2**30:.1f} GB "
                           "resident)", elapsed, peak)
        time.sleep(POLL_SECONDS)
    return Watched("", time.monotonic() - start, peak)


def kill(processes: list[psutil.Process]) -> None:
    """SIGKILL each of ``processes`` (already gone is fine) and wait for them briefly."""
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(processes, timeout=5)
