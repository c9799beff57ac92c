"""The confined environment student code runs in: one module owns every fact about it.

Two kinds of process run student code, both inside bubblewrap (Debian package
``bubblewrap``) built by :func:`command`: the Jupyter kernel of each notebook being
autograded (:mod:`dlcourse.runner.kernel_sandbox`), and the jobs of the warm repeat servers
that repeat the hidden tests outside the notebook (:mod:`dlcourse.runner.repeat_servers`, which
fork one freshly namespaced child per job, :mod:`dlcourse.harness.namespaces`). Both take every
fact from here: the variable that marks an unconfined run, the kept environment and the home
inside (:func:`environment`), bubblewrap's arguments (:func:`command`), the device nodes.
What they share, and what keeps them apart from the trusted side:

- **Another user.** The code runs as ``nobody`` with no capability, in a user namespace that
  the first code inside makes for itself (:func:`dlcourse.harness.namespaces.own_user_namespace`),
  capping the user namespaces below it: none for a kernel, those of its jobs for a repeat
  server. When the TA is root, the real uid is dropped first (``setpriv``) to
  :data:`SANDBOX_UID`, so that files the sandbox can see are read with that user's rights, not
  root's: ``/etc/shadow`` stays closed; otherwise bubblewrap makes a user namespace first
  (``--unshare-user``).
- **Fresh namespaces:** PID (``/proc`` shows only the sandbox), network (only its own
  loopback), IPC, UTS; a new session; the kernel's user keyring belongs to the user namespace,
  so no two sandboxes share one.
- **A read-only view** of the system, the Python environment, the student side of
  ``dlcourse`` (its TA side -- runner, authoring, CLI -- is hidden under empty mounts) and the
  public data. Writable: a ``/tmp`` and a ``/dev/shm`` of fixed sizes (what is stored there is
  counted as memory by :func:`watch`), and for the kernel only the folder of its IPC sockets.
  No course folder, submission, gradebook, reference file or home folder is visible.
- **No inherited channel.** Standard input is ``/dev/null``, output goes to a log file of the
  trusted side, and no other descriptor is passed; the trusted side reads nothing back from
  the sandbox's files but the kernel's messages and the repeat's framed replies.

Limits are watched from outside (:func:`watch`): wall-clock time, and the summed resident
memory of the sandbox's processes plus what they store in its tmpfs. An address-space rlimit
cannot express "4 GiB of real memory": TensorFlow reserves several GiB of address space when
it is imported. Without a working bubblewrap :func:`required` refuses to run student code
unless the TA asked for an unconfined run explicitly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import psutil

from dlcourse.errors import CourseError

POLL_SECONDS = 0.2
#: The real uid (and gid) of student code when the TA runs the grader as root: ``nobody``.
#: Another unprivileged uid can be chosen with DLCOURSE_SANDBOX_UID.
SANDBOX_UID = int(os.environ.get("DLCOURSE_SANDBOX_UID", "65534"))
#: Who student code is inside its user namespace.
INNER_UID = 65534
#: Sizes of the writable tmpfs mounts of a sandbox: what the code may store in files. Each
#: byte stored there counts against the memory limit as well.
TMP_BYTES = 1 << 30
SHM_BYTES = 256 << 20
#: The TA side of the package, hidden from every sandbox (the grader, its tools, the CLI). The
#: student side never imports it (the import contracts in pyproject.toml, tests/test_layers.py).
TA_SUBPACKAGES = ("runner", "authoring", "cli")
#: Set to "1" in the environment of the processes that start student code (the autograde
#: worker, and so its kernel manager and repeat servers) when the TA asked for an unconfined run.
UNCONFINED_VARIABLE = "DLCOURSE_UNCONFINED"
#: Environment variables a sandbox keeps from the grader's environment; all others (tokens,
#: the TA's paths, database URLs, Jupyter's parent-process handles) are dropped.
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "OMP_NUM_THREADS",
            "DLCOURSE_DATA", "NBGRADER_EXECUTION", "NBGRADER_VALIDATING", "PYDEVD_DISABLE_FILE_VALIDATION",
            # numerics and devices: the same backend and settings as an unconfined run
            "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "TF_DETERMINISTIC_OPS", "TF_ENABLE_ONEDNN_OPTS",
            "TF_FORCE_GPU_ALLOW_GROWTH", "XLA_FLAGS", "CUDA_VISIBLE_DEVICES", "PYTHONWARNINGS")
#: Home and caches of student code: inside the sandbox's /tmp (the processes inside make the
#: folder: the kernel's start, and each repeat job in its own tmpfs, from HOME as set here).
HOME = "/tmp/home"
HOME_ENV = {"HOME": HOME, "TMPDIR": "/tmp", "MPLCONFIGDIR": f"{HOME}/mpl", "KERAS_HOME": f"{HOME}/keras",
            "IPYTHONDIR": f"{HOME}/ipython", "JUPYTER_RUNTIME_DIR": f"{HOME}/runtime",
            "JUPYTER_DATA_DIR": f"{HOME}/data", "JUPYTER_CONFIG_DIR": f"{HOME}/config",
            "XDG_CACHE_HOME": f"{HOME}/cache", "JUPYTER_PLATFORM_DIRS": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "MPLBACKEND": "Agg"}


@dataclass(frozen=True)
class Isolation:
    kind: str  # "bubblewrap" or "none"
    warning: str = ""  # why there is no confinement, or that the TA chose to run without it


#: What to run to make confinement available; one definition for errors, demo and README.
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap)"


def kept(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``env`` that a sandbox keeps (:data:`KEPT_ENV`)."""
    return {k: v for k, v in env.items() if k in KEPT_ENV}


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a sandboxed process: the kept variables, home and caches inside."""
    return {**kept(os.environ), **HOME_ENV, **(extra or {})}


def confinement_env(isolation: Isolation) -> dict[str, str]:
    """What the processes that start student code must be told of a run's confinement:
    unconfined means unconfined, or the kernel manager and the repeat would confine on their
    own (:func:`confinement_wanted`)."""
    return {} if isolation.kind == "bubblewrap" else {UNCONFINED_VARIABLE: "1"}


def _as_root() -> bool:
    return os.geteuid() == 0


def _inside_prefix() -> list[str]:
    """When the TA is root: inside the sandbox, become SANDBOX_UID before anything else runs
    (bubblewrap, running as root, has made every mount by then, so the Python installation is
    readable even where the sandbox's user could not traverse its path on the host)."""
    if not _as_root():
        return []
    return ["/usr/bin/setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups",
            "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--"]


def give_to_sandbox(path: Path) -> Path:
    """Make a file the trusted side created the sandbox user's (when the TA is root, the
    sandbox runs as SANDBOX_UID; otherwise it is the TA's own already)."""
    if _as_root():
        os.chown(path, SANDBOX_UID, SANDBOX_UID)
    return path


def share_with_sandbox(path: Path) -> Path:
    """Make a folder the trusted side created writable by student code; nobody else may enter it."""
    give_to_sandbox(path).chmod(0o700)
    return path


def _readable_roots() -> list[Path]:
    """What the sandbox must read: the system, the interpreter, the environment, dlcourse, data."""
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


def _hidden_paths(frameworks: bool) -> list[Path]:
    """Folders covered by empty read-only mounts: the TA side of dlcourse, and the frameworks
    where a job must run without them (:mod:`dlcourse.harness.frameworks`)."""
    import dlcourse

    package = Path(dlcourse.__file__).resolve().parent
    hidden = [package / sub for sub in TA_SUBPACKAGES if (package / sub).is_dir()]
    if not frameworks:
        from dlcourse.harness.frameworks import FRAMEWORKS

        site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
        hidden += [folder / name for folder in site for name in FRAMEWORKS if (folder / name).is_dir()]
    return hidden


#: The NVIDIA device nodes the CUDA runtime opens: one per GPU (nvidia0, ...), the control and
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


@dataclass(frozen=True)
class Layout:
    """One sandbox's view beyond the common read-only one."""

    device: str = "cpu"  # "gpu": the NVIDIA device nodes are bound in
    frameworks: bool = True  # False: TensorFlow, Keras, ... are hidden
    writable: tuple[Path, ...] = ()  # bound read-write at the same path (the kernel's IPC folder)
    readonly: tuple[tuple[Path, str], ...] = ()  # (host path, sandbox path), bound read-only
    chdir: str = "/tmp"
    tmp_bytes: int = TMP_BYTES
    shm_bytes: int = SHM_BYTES
    env: dict[str, str] = field(default_factory=dict)  # set inside (on top of the process's own)


def _parents(paths: Iterable[str]) -> list[str]:
    """Every folder above ``paths``, shallowest first: made traversable in the sandbox's root."""
    found: set[str] = set()
    for path in paths:
        found |= {str(p) for p in Path(path).parents if str(p) != "/"}
    return sorted(found, key=lambda p: (p.count("/"), p))


def bwrap_args(layout: Layout) -> list[str]:
    """bubblewrap's arguments for ``layout`` (see the module's docstring for why each is there).

    As root, bubblewrap runs privileged (no user namespace of its own) and keeps only the
    capabilities :func:`_inside_prefix` needs to become SANDBOX_UID; as anyone else it makes a
    user namespace (``--unshare-user``). Either way the first code inside makes a user
    namespace of its own (:func:`dlcourse.harness.namespaces.own_user_namespace`).
    """
    args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session"]
    if _as_root():
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    else:
        args += ["--unshare-user", "--uid", str(INNER_UID), "--gid", str(INNER_UID), "--cap-drop", "ALL"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    devices = gpu_device_nodes() if layout.device == "gpu" else []
    for node in devices:  # after --dev, so that they appear in the minimal /dev
        args += ["--dev-bind", str(node), str(node)]
    args += ["--size", str(layout.tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp",
             "--size", str(layout.shm_bytes), "--perms", "1777", "--tmpfs", "/dev/shm"]
    roots = _readable_roots()
    hidden = [h for h in _hidden_paths(layout.frameworks)]
    destinations = [str(r) for r in roots] + [inside for _host, inside in layout.readonly] + \
        [str(p) for p in layout.writable]
    for folder in _parents(destinations):
        if folder != "/tmp" and not any(folder == str(r) or Path(folder).is_relative_to(r) for r in roots):
            args += ["--perms", "0755", "--dir", folder]
    for root in roots:
        args += ["--ro-bind", str(root), str(root)]
    for path in hidden:
        if path.is_dir():
            args += ["--size", "4096", "--perms", "0555", "--tmpfs", str(path), "--remount-ro", str(path)]
        else:
            args += ["--ro-bind", "/dev/null", str(path)]
    for host, inside in layout.readonly:
        args += ["--ro-bind", str(host), inside]
    for path in layout.writable:
        args += ["--bind", str(path), str(path)]
    for key, value in layout.env.items():
        args += ["--setenv", key, value]
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", layout.chdir]
    return args


def command(cmd: list[str], layout: Layout) -> list[str]:
    """``cmd`` as it runs confined with ``layout``. The command must begin by making its own
    user namespace (:func:`dlcourse.harness.namespaces.own_user_namespace`)."""
    return [shutil.which("bwrap") or "bwrap", *bwrap_args(layout), "--", *_inside_prefix(), *cmd]


@cache
def detect() -> Isolation:
    """Which confinement this machine offers; tried once per process, with everything a repeat
    server needs (the Python environment readable as the sandbox's user, nested namespaces)."""
    if not shutil.which("bwrap"):
        return Isolation("none", "bubblewrap (bwrap) is not installed")
    if _as_root() and not Path("/usr/bin/setpriv").exists():
        return Isolation("none", "setpriv (util-linux) is not installed: needed to run student code as "
                                 "another user than root")
    # The user namespace first: unshare() refuses a process with threads (NumPy starts some).
    probe = ("import sys\nfrom dlcourse.harness import namespaces\nnamespaces.own_user_namespace(64)\n"
             "import numpy\nproblem = namespaces.check_supported()\nprint(problem)\nsys.exit(1 if problem else 0)")
    cmd = command([sys.executable, "-c", probe], Layout())
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=environment(), timeout=120,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Isolation("none", f"bubblewrap could not start ({exc})")
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).strip().splitlines() or ["unknown error"]
        reason = lines[-1][:300]
        return Isolation("none", f"bubblewrap cannot confine student code here ({reason})")
    return Isolation("bubblewrap")


def confinement_wanted() -> tuple[bool, str]:
    """Whether student code started now runs confined, and why not when not: not when the TA
    asked for an unconfined run (``course grade --unconfined`` sets :data:`UNCONFINED_VARIABLE`,
    :func:`confinement_env`), or when this machine cannot confine (plain nbgrader then warns in
    its log)."""
    if os.environ.get(UNCONFINED_VARIABLE) == "1":
        return False, f"{UNCONFINED_VARIABLE}=1: the TA asked for an unconfined run"
    found = detect()
    if found.kind != "bubblewrap":
        return False, found.warning or "bubblewrap is not available"
    return True, ""


def current_device() -> str:
    """Where student code started now runs: the GPU when its device nodes exist and the
    frameworks may see them (``--device cpu`` hides them with CUDA_VISIBLE_DEVICES=-1)."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip() in ("-1", "")
    visible_unset = "CUDA_VISIBLE_DEVICES" not in os.environ
    return "gpu" if gpu_device_nodes() and (visible_unset or not hidden) else "cpu"


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


# ----------------------------------------------------------------- limits


@dataclass
class Watched:
    limit: str  # why the processes must be stopped: "" when they finished by themselves
    seconds: float
    peak_memory: int  # bytes, the most the watched processes held at once (resident + tmpfs)


def _rss(processes: Iterable[psutil.Process]) -> int:
    total = 0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def stored_bytes(pid: int, mounts: tuple[str, ...] = ("/tmp", "/dev/shm")) -> int:
    """Bytes stored in the tmpfs mounts of the sandbox that process ``pid`` is in (seen through
    /proc/PID/root; 0 once it is gone). tmpfs pages are memory no process's RSS shows. A file
    system larger than any tmpfs a sandbox gets is not one of them (a process that has not
    entered its sandbox yet sees the host's) and counts nothing."""
    total = 0
    for mount in mounts:
        with contextlib.suppress(OSError):
            stats = os.statvfs(f"/proc/{pid}/root{mount}")
            if stats.f_blocks * stats.f_frsize <= max(TMP_BYTES, SHM_BYTES):
                total += (stats.f_blocks - stats.f_bfree) * stats.f_frsize
    return total


def remove_tree(path: Path) -> None:
    """Remove a folder student code could write to: what it made read-only (a folder of mode
    0555, say) is made writable first, and no link is followed."""
    def retry(function, name, _exc_info) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            if not os.path.islink(name) and os.path.isdir(name):
                os.chmod(name, 0o700)
            function(name)

    if path.is_dir() and not path.is_symlink():
        for folder, dirs, _files in os.walk(path):  # os.walk does not follow links
            for name in dirs:
                with contextlib.suppress(OSError):
                    if not os.path.islink(os.path.join(folder, name)):
                        os.chmod(os.path.join(folder, name), 0o700)
        shutil.rmtree(path, onerror=retry)


def tree(root: psutil.Process) -> list[psutil.Process]:
    """``root`` and everything it started (nothing once it is gone)."""
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def watch(processes: Callable[[], list[psutil.Process]], finished: Callable[[], bool], timeout: float | None,
          memory_bytes: int | None, stored: Callable[[], int] = lambda: 0) -> Watched:
    """Wait until ``finished()``, or until the student's ``processes()`` pass a limit.

    The memory budget is their summed resident memory plus what ``stored()`` says they keep in
    tmpfs, sampled every ``POLL_SECONDS``; the caller stops them when a limit is named.
    """
    start = time.monotonic()
    peak = 0
    while not finished():
        elapsed = time.monotonic() - start
        used = _rss(processes()) + stored()
        peak = max(peak, used)
        if timeout is not None and elapsed > timeout:
            return Watched(f"time limit of {timeout:g} s exceeded", elapsed, peak)
        if memory_bytes and used > memory_bytes:
            return Watched(f"memory limit of {memory_bytes / 2**30:g} GB exceeded ({used / 2**30:.1f} GB "
                           "resident or stored in files)", elapsed, peak)
        time.sleep(POLL_SECONDS)
    return Watched("", time.monotonic() - start, peak)


def kill(processes: list[psutil.Process]) -> None:
    """SIGKILL each of ``processes`` (already gone is fine) and wait for them briefly."""
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(processes, timeout=5)
