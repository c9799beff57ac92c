"""Fresh namespaces for one job, entered by a forked child of the warm repeat server.

The repeat server keeps TensorFlow imported between students, so a job cannot be a new
``bwrap`` process (that would import it again). Instead the server forks, and the child
builds the sandbox of one job around itself, without ``exec``, the way bubblewrap would:

1. :func:`isolate`, in the forked child: a user namespace whose only further child may be
   the job's own, then new user, mount, IPC, network, UTS and PID namespaces, the same uid
   mapped through; a private tmpfs of a fixed size on ``/tmp`` (which also holds
   ``/dev/shm``, the job's folder and its home, so one number says how much memory the job
   stores in files). What the sandbox bound below ``/tmp`` (a Python environment or the
   course checked out there) is bound again into the new tmpfs, read-only as before.
2. The child forks once more: the grandchild is PID 1 of the new PID namespace and calls
   :func:`seal`: a ``/proc`` of that namespace only, a new session and session keyring,
   process limits, every capability dropped and ``no_new_privs`` set.

Nothing of one job survives it: when the grandchild (PID 1) ends, the kernel kills every
process of its PID namespace; the mount, IPC (System V objects, POSIX message queues),
network and user namespaces (with the user's keyrings) go with their last process; the
tmpfs goes with its mount namespace. The job cannot see the server, its pipes or other
jobs: they are outside its PID namespace and its file descriptors are closed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import resource

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
KEYCTL_JOIN_SESSION_KEYRING = 1
SYS_KEYCTL = 250  # x86-64 and arm64 differ: see _keyctl_number
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

#: Where the job works: all inside the one tmpfs mounted on /tmp. Its home is the HOME the
#: sandbox set (dlcourse.runner.sandbox.HOME_ENV, inside /tmp), made afresh in that tmpfs.
TMP = "/tmp"
JOB = "/tmp/job"
SHM = "/tmp/.shm"

_libc = ctypes.CDLL(None, use_errno=True)


class IsolationError(RuntimeError):
    """A namespace, mount or capability call failed: the job must not run."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise IsolationError(f"{what}: {os.strerror(errno)}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _unshare(flags: int, what: str) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({what})")


def _map_ids(uid: int, gid: int) -> None:
    """The job keeps the server's uid and gid (mapped through), and no supplementary groups."""
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(None if source is None else source.encode(), target.encode(),
                       None if fstype is None else fstype.encode(), ctypes.c_ulong(flags),
                       None if data is None else data.encode()), f"mount {target}")


def _unescape(field: str) -> str:
    """A path as /proc/self/mountinfo writes it (space, tab, newline, backslash octal-escaped)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_below(folder: str) -> list[str]:
    """The outermost mount points strictly below ``folder`` (relative paths), from mountinfo."""
    with open("/proc/self/mountinfo") as fh:
        points = {_unescape(line.split()[4]) for line in fh if len(line.split()) > 4}
    below = sorted(p for p in points if p.startswith(folder.rstrip("/") + "/"))
    outer = [p for p in below if not any(p.startswith(q + "/") for q in below if q != p)]
    return [os.path.relpath(p, folder) for p in outer]


def _fresh_tmp(tmp_bytes: int) -> None:
    """A new tmpfs on /tmp with the sandbox's own mounts below /tmp bound into it again.

    They are reached through a descriptor of the old /tmp opened before it is covered; a
    recursive bind keeps their read-only flag and the masks mounted inside them (bubblewrap
    made those in a more privileged namespace, so the job cannot remove either).
    """
    keep = mounts_below(TMP)
    old = os.open(TMP, os.O_PATH | os.O_DIRECTORY)
    try:
        _mount("tmpfs", TMP, "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(tmp_bytes)},mode=0700")
        for rel in keep:
            target = os.path.join(TMP, rel)
            source = f"/proc/self/fd/{old}/{rel}"
            if os.path.isdir(source):
                os.makedirs(target, 0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))
            _mount(source, target, None, MS_BIND | MS_REC)
    finally:
        os.close(old)


def isolate(tmp_bytes: int) -> None:
    """In the forked child: new namespaces and the job's tmpfs (see the module's docstring).

    The caller must fork afterwards; only the grandchild is inside the new PID namespace.
    """
    uid, gid = os.getuid(), os.getgid()
    # The server is not dumpable (see not_dumpable), and a process that is not owns none of its
    # /proc files, its uid_map included. The job's processes have nothing to hide.
    _check(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
    # A first user namespace whose limit lets exactly one more be made below it (the job's):
    # the job itself can create none (bubblewrap's --disable-userns does the same).
    _unshare(CLONE_NEWUSER, "user")
    _map_ids(uid, gid)
    _write("/proc/sys/user/max_user_namespaces", "1")
    _unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWPID,
             "user, mount, ipc, net, uts, pid")
    _map_ids(uid, gid)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _fresh_tmp(tmp_bytes)
    home = os.environ.get("HOME", "")
    for folder in (SHM, JOB, *([home] if home.startswith(TMP + "/") else [])):
        os.makedirs(folder, 0o700, exist_ok=True)
    _mount(SHM, "/dev/shm", None, MS_BIND)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as fh:
        last = int(fh.read())
    for cap in range(last + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _keyctl_number() -> int:
    machine = os.uname().machine
    return {"x86_64": 250, "aarch64": 219}.get(machine, SYS_KEYCTL)


def seal(max_processes: int) -> None:
    """In the grandchild, PID 1 of the job's PID namespace: its own /proc where the kernel
    allows one, a session and session keyring of its own, limits, and no capability left.

    A new /proc needs a fully visible one already mounted; bubblewrap run as root covers parts
    of its /proc, and then the job keeps the server's. It shows the server's process, but the
    server is not dumpable: its descriptors, memory and environment stay closed to the job.
    """
    with contextlib.suppress(IsolationError):
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.setsid()
    # A new anonymous session keyring; the user keyring is the new user namespace's own.
    if _libc.syscall(_keyctl_number(), KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        raise IsolationError(f"keyctl(join session keyring): {os.strerror(ctypes.get_errno())}")
    resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _drop_capabilities()


def own_user_namespace(nested: int) -> None:
    """First thing a sandboxed process does (the kernel's start, a repeat server): a user
    namespace of its own, so that no other sandbox shares its kernel keyrings; at most
    ``nested`` user namespaces below it (0 for a kernel; a repeat server makes two per job);
    then no capability and ``no_new_privs``."""
    uid, gid = os.getuid(), os.getgid()
    _unshare(CLONE_NEWUSER, "user")
    _map_ids(uid, gid)
    _write("/proc/sys/user/max_user_namespaces", str(nested))
    if _libc.syscall(_keyctl_number(), KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        raise IsolationError(f"keyctl(join session keyring): {os.strerror(ctypes.get_errno())}")
    _drop_capabilities()


def not_dumpable() -> None:
    """Processes of the same user cannot trace this one or open its /proc files (descriptors,
    memory, environment); forked children inherit it."""
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")


def check_supported() -> str:
    """Why a forked child could not isolate itself here, or "" when it can (tried in a child)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            isolate(1 << 20)
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return "" if os.waitstatus_to_exitcode(status) == 0 else "cannot create nested namespaces for each job"
