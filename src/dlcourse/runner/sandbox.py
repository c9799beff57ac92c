"""Run untrusted grading work in a confined child process with time and memory limits.

Confinement uses bubblewrap (Debian package ``bubblewrap``) when it is present
and works: the child and everything it starts (nbgrader's client and the
student's kernel) get a new network namespace with only loopback (the kernel
and its client still talk over it), a new PID namespace that dies with the
child, and a file-system view of the Python installation (read-only) plus the
submission's own working folder; the course, the other submissions, the
gradebook and the home folder are not there. Without working bubblewrap
:func:`required` refuses to run student code unless the TA asked for an
unconfined run explicitly.

Limits are watched from outside: wall-clock time for the whole child, and the
summed resident memory of its process tree. An address-space rlimit would be
simpler but TensorFlow reserves several GiB of address space at import, so it
cannot express "2 GiB of real memory".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
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
class Finished:
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    peak_memory: int  # bytes, summed resident memory of the process tree
    limit: str = ""  # why it was stopped: "" when it ended by itself


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    for target in children:
        with contextlib.suppress(psutil.Error):
            target.kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_limited(jobs: list[tuple[list[str], Path]], env: dict[str, str], timeout: float,
                memory_bytes: int | None) -> list[Finished]:
    """Run ``(cmd, cwd)`` jobs side by side under one deadline and one memory budget.

    The budget is the summed resident memory of all their process trees; when a
    limit is reached every job is killed and each result names the limit.
    Never raises for what the children do.
    """
    start = time.monotonic()
    peak = 0
    limit = ""
    procs, files = [], []
    for cmd, cwd in jobs:
        out, err = open(Path(cwd) / ".stdout", "w"), open(Path(cwd) / ".stderr", "w")  # noqa: SIM115
        files.append((out, err))
        procs.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                      start_new_session=True))
    watched = [psutil.Process(p.pid) for p in procs]
    ended = [0.0] * len(procs)
    while True:
        running = [p.poll() is None for p in procs]
        elapsed = time.monotonic() - start
        for i, alive in enumerate(running):
            if not alive and not ended[i]:
                ended[i] = elapsed
        if not any(running):
            break
        rss = sum(_tree_rss(w) for w, p in zip(watched, procs, strict=True) if p.returncode is None)
        peak = max(peak, rss)
        if elapsed > timeout:
            limit = f"time limit of {timeout:g} s exceeded"
        elif memory_bytes and rss > memory_bytes:
            limit = f"memory limit of {memory_bytes / 2**30:g} GB exceeded ({rss / 2**30:.1f} GB resident)"
        if limit:
            for proc in procs:
                if proc.poll() is None:
                    _kill_tree(proc)
            break
        time.sleep(POLL_SECONDS)
    total = time.monotonic() - start
    results = []
    for i, ((_cmd, cwd), proc, (out, err)) in enumerate(zip(jobs, procs, files, strict=True)):
        out.close()
        err.close()
        results.append(Finished(proc.returncode, (Path(cwd) / ".stdout").read_text(errors="replace"),
                                (Path(cwd) / ".stderr").read_text(errors="replace"),
                                ended[i] or total, peak, limit))
    return results
