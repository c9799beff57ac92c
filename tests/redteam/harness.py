"""Grade a batch of submissions through one path, as one user, and collect what happened.

A batch lives in a folder of its own below /var/tmp (``RT_BASE``; readable by the ordinary user;
not below /tmp, where a sandbox mounts its own tmpfs and a grader may expect the TA's TMPDIR to
be /tmp itself):

    <root>/home/            the TA's home (HOME); home/secret/notes.txt holds a secret token
    <root>/tmp/             the TA's TMPDIR (mode 1777 as /tmp for the invoking user; 0700 for uid 4242)
    <root>/incoming/        the download `course grade --from` imports (local and cluster paths)
    <root>/repo/            the instructor's checkout, copied (nbgrader_config.py, solutions/lstm)
    <root>/course/          a scratch course made from it (`dlcourse.runner.course.scratch_course`):
                            its solutions/ is a link to repo/solutions

Everything the TA runs is a subprocess: the ``course`` CLI, ``nbgrader``, a Python script that
calls nbgrader's ``NbGraderAPI`` as formgrader does, a Dask scheduler and worker. For the ordinary
user it runs under ``setpriv --reuid=4242 --regid=4242 --clear-groups`` with the batch folder
chowned to that uid. The environment carries a token (``RT_TA_TOKEN``) that only the TA's
processes have.

The evidence is plain data (JSON-able), so that it can be shared between pytest-xdist workers:
scores from the gradebook, rows of the grades CSVs, markers found in graded and feedback files,
changes outside the grading folders, processes, keys and System V objects left behind, peak
memory of the TA's processes and of the bytes in its TMPDIR, script text where a browser would
run it. The batch folder is removed afterwards (``RT_KEEP=1`` keeps it).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
import psutil

from redteam.attacks import (
    ASSIGNMENT,
    CLASSMATE_MARK,
    NOTEBOOK,
    REPO,
    XSS,
    Context,
    Submission,
)

BIN = Path(sys.executable).parent
UID = GID = 4242
USER_NAME = "rtta"
#: Top-level names of the course that grading writes (everything else must stay as it was).
GRADING = ("submitted", "autograded", "feedback", "grades", "gradebook.db", "gradebook.db-journal",
           "gradebook.db-wal", "gradebook.db-shm")
#: Files nbgrader itself keeps in the course folder: its log.
ALLOWED_NEW = (".nbgrader.log",)
SQLITE = b"SQLite format 3\x00"
#: Control characters in a CSV cell (a line break inside a quoted cell, CRLF included, is fine).
UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)")
COMMAND_SECONDS = 1500


def skip_reason(user: str) -> str:
    """Why the variant cannot run here ("" when it can)."""
    if user == "user" and os.geteuid() != 0:
        return ("the ordinary-user variant runs the grading as uid 4242 through setpriv, which needs "
                "root (CI runs as root); this run is not root")
    return ""


# --------------------------------------------------------------------------- the batch folder


@dataclass
class Layout:
    name: str
    user: str
    root: Path
    marker: str
    token: str = field(default_factory=lambda: secrets.token_hex(6))
    secret_token: str = field(default_factory=lambda: "RTSECRET-" + secrets.token_hex(8))
    env_token: str = field(default_factory=lambda: "RTENV-" + secrets.token_hex(8))

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def secret_dir(self) -> Path:
        return self.home / "secret"

    @property
    def secret(self) -> Path:
        return self.secret_dir / "notes.txt"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def course(self) -> Path:
        return self.root / "course"

    @property
    def bin(self) -> Path:
        """Where the TA's commands are: the environment's bin/, or for the ordinary user a shim
        of it (:func:`user_python`)."""
        shim = self.root / "python" / "bin"
        return shim if shim.is_dir() else BIN

    @property
    def python(self) -> str:
        return str(self.bin / "python") if self.bin != BIN else sys.executable

    @property
    def repo(self) -> Path:
        """The instructor's checkout (a copy: nbgrader_config.py and the assignment's solutions)."""
        return self.root / "repo"

    def submitted(self, student: str) -> Path:
        return self.course / "submitted" / student / ASSIGNMENT

    def paths(self) -> dict[str, str]:
        """The TA's files an attacker aims at (it guessed the layout)."""
        return {"solution": str(self.course / "solutions" / ASSIGNMENT / NOTEBOOK),
                "solution_dir": str(self.course / "solutions" / ASSIGNMENT),
                "solution_model": str(self.course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}_model.keras"),
                "gradebook": str(self.course / "gradebook.db"),
                "classmate": str(self.submitted("zz_partly") / NOTEBOOK),
                "classmate_model": str(self.submitted("zz_perfect") / f"{ASSIGNMENT}_model.keras"),
                "secret": str(self.secret), "secret_dir": str(self.secret_dir), "course": str(self.course)}

    def context(self, bomb: Callable[[], bytes] | None = None) -> Context:
        return Context(self.marker, self.token, self.paths(), bomb=bomb)


def make_layout(name: str, user: str) -> Layout:
    from dlcourse.runner.course import Course, scratch_course

    root = Path(tempfile.mkdtemp(prefix=f"dlcourse-redteam-{name}-", dir=os.environ.get("RT_BASE", "/var/tmp")))
    root.chmod(0o755)
    marker = "RTPWN_" + re.sub(r"[^A-Za-z0-9]", "", name) + secrets.token_hex(3)
    layout = Layout(name, user, root, marker)
    for folder in (layout.home, layout.secret_dir, layout.tmp, layout.incoming):
        folder.mkdir(parents=True, exist_ok=True)
    for folder in (layout.home, layout.secret_dir):
        folder.chmod(0o700)
    # The ordinary user's TMPDIR is theirs alone; the invoking user's is shared and sticky, as /tmp
    # is (a root TA's default), so that a grader that runs student code as another user can use it.
    layout.tmp.chmod(0o700 if user == "user" else 0o1777)
    layout.secret.write_text(f"{layout.secret_token}\nthe TA's private notes\n")
    layout.secret.chmod(0o600)
    # The course's solutions are a link to the instructor's checkout (as scratch_course makes them);
    # here a copy of it, so that an attack that works cannot damage the real one.
    (layout.repo / "solutions").mkdir(parents=True)
    shutil.copytree(REPO / "solutions" / ASSIGNMENT, layout.repo / "solutions" / ASSIGNMENT)
    shutil.copyfile(REPO / "nbgrader_config.py", layout.repo / "nbgrader_config.py")
    scratch_course(Course(layout.repo), layout.course)
    if user == "user":
        user_python(layout.root)
    own(layout)
    return layout


def user_python(root: Path) -> None:
    """Let the ordinary user run this environment's Python and commands.

    A virtual environment whose base interpreter lies below a home the user cannot enter (here:
    pyenv's, in /root, mode 0700) cannot be executed by anyone else. Then ``root/python`` becomes
    a virtual environment of the system's interpreter of the same minor version, whose
    site-packages is the environment's (a link), with copies of the environment's console scripts
    pointing at it: the same packages and the same code, runnable by uid 4242.
    """
    probe = subprocess.run(as_user(["/bin/sh", "-c", 'exec "$0" -c 0', sys.executable], "user"),
                           capture_output=True, cwd="/", timeout=60)
    if probe.returncode == 0:
        return
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = next((Path(d) / minor for d in ("/usr/bin", "/usr/local/bin") if (Path(d) / minor).is_file()), None)
    if base is None:
        raise RuntimeError(f"uid {UID} cannot run {sys.executable} and there is no system {minor}")
    shim = root / "python"
    (shim / "bin").mkdir(parents=True)
    os.symlink(base, shim / "bin" / "python")
    (shim / "pyvenv.cfg").write_text(f"home = {base.parent}\ninclude-system-site-packages = false\n"
                                     f"version = {'.'.join(map(str, sys.version_info[:3]))}\n")
    (shim / "lib" / minor).mkdir(parents=True)
    os.symlink(sysconfig.get_paths()["purelib"], shim / "lib" / minor / "site-packages")
    for shared in ("share", "etc", "include"):  # Jupyter's data (nbconvert's templates) and config
        if (Path(sys.prefix) / shared).exists():
            os.symlink(Path(sys.prefix) / shared, shim / shared)
    for script in BIN.iterdir():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = script.read_text()
            if script.is_file() and text.startswith("#!") and "python" in text.splitlines()[0]:
                target = shim / "bin" / script.name
                if not target.exists():
                    target.write_text(f"#!{shim / 'bin' / 'python'}\n" + text.split("\n", 1)[1])
                    target.chmod(0o755)


def own(layout: Layout) -> None:
    """The batch folder belongs to the user who grades (uid 4242 for the ordinary user)."""
    if layout.user != "user":
        return
    for folder, dirs, files in os.walk(layout.root):
        for name in [*dirs, *files]:
            with contextlib.suppress(OSError):
                os.lchown(os.path.join(folder, name), UID, GID)
    os.lchown(layout.root, UID, GID)


def remove(layout: Layout) -> None:
    if os.environ.get("RT_KEEP"):
        return

    def writable(func, path, _exc):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            func(path)

    shutil.rmtree(layout.root, onerror=writable)


def write_submission(folder: Path, sub: Submission) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(sub.notebook, folder / NOTEBOOK)
    for name, data in sub.files.items():
        (folder / name).write_bytes(data)


# --------------------------------------------------------------------------- running as the TA


def as_user(cmd: list[str], user: str) -> list[str]:
    if user != "user":
        return cmd
    return ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups", *cmd]


def ta_env(layout: Layout, **extra: str) -> dict[str, str]:
    name = USER_NAME if layout.user == "user" else (os.environ.get("USER") or "root")
    env = {"PATH": f"{layout.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": str(layout.home), "USER": name, "LOGNAME": name, "TMPDIR": str(layout.tmp),
           "LANG": "C.UTF-8", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore::DeprecationWarning",
           "PYTHONDONTWRITEBYTECODE": "1", "RT_TA_TOKEN": layout.env_token}
    for kept in ("PYTHONPATH", "DLCOURSE_DATA"):
        if os.environ.get(kept):
            env[kept] = os.environ[kept]
    return {**env, **extra}


@dataclass
class Ran:
    what: str  # course, nbgrader, formgrader
    cmd: str
    rc: int
    stdout: str
    stderr: str
    seconds: float
    ta_peak_rss: int  # the largest resident memory of one trusted process (not a sandbox's)
    tmp_peak: int  # the most bytes (allocated) in the TA's TMPDIR at once


def _trusted(top: psutil.Process) -> list[psutil.Process]:
    """The TA's processes: ``top`` and what it started, but nothing inside a sandbox (bubblewrap)
    and no kernel (student code)."""
    out, queue = [], [top]
    while queue:
        proc = queue.pop()
        try:
            command = " ".join(proc.cmdline())
            if proc.name() == "bwrap" or "ipykernel" in command:
                continue
            out.append(proc)
            queue += proc.children()
        except psutil.Error:
            continue
    return out


def _allocated(folder: Path) -> int:
    total = 0
    for path, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(path, name)).st_blocks * 512
    return total


def run(what: str, cmd: list[str], layout: Layout, cwd: Path, timeout: float = COMMAND_SECONDS,
        extra_trusted: Callable[[], list[psutil.Process]] | None = None, watch: list[Path] = (),
        **env: str) -> Ran:
    """Run ``cmd`` as the batch's TA, sampling its memory and the bytes in its TMPDIR (and in the
    folders in ``watch``) while it runs."""
    own(layout)
    start = time.monotonic()
    proc = subprocess.Popen(as_user(cmd, layout.user), cwd=cwd, env=ta_env(layout, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    peak = {"rss": 0, "tmp": 0}
    done = threading.Event()

    def sample() -> None:
        try:
            top = psutil.Process(proc.pid)
        except psutil.Error:
            return
        while not done.is_set():
            for each in _trusted(top) + (extra_trusted() if extra_trusted else []):
                with contextlib.suppress(psutil.Error):
                    peak["rss"] = max(peak["rss"], each.memory_info().rss)
            peak["tmp"] = max(peak["tmp"], _allocated(layout.tmp) + sum(_allocated(w) for w in watch))
            done.wait(0.3)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n[redteam] killed after {timeout:g} s".encode()
    done.set()
    sampler.join()
    return Ran(what, " ".join(cmd[:4]), proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
               time.monotonic() - start, peak["rss"], peak["tmp"])


# --------------------------------------------------------------------------- the four paths


def course_cli(layout: Layout, *args: str, extra_trusted=None) -> Ran:
    return run("course", [str(layout.bin / "course"), "grade", ASSIGNMENT, *args], layout, layout.course,
               extra_trusted=extra_trusted)


def nbgrader_cli(layout: Layout, *args: str) -> Ran:
    return run("nbgrader", [layout.python, "-m", "nbgrader", *args], layout, layout.course)


FORMGRADER = r"""
import json, shutil, sys
from pathlib import Path

from nbgrader.apps import NbGraderAPI
from traitlets.config.loader import PyFileConfigLoader

root, step = Path(sys.argv[1]), sys.argv[2]
api = NbGraderAPI(config=PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config())
if step == "generate":
    result = api.generate_assignment(sys.argv[3], force=True, create=True)
    print("RT-GENERATE", result["success"], flush=True)
    sys.exit(0 if result["success"] else 1)
students, snapshot = sys.argv[4].split(","), sys.argv[5]
for index, student in enumerate(students):
    if snapshot and index == len(students) - 1:
        shutil.copyfile(root / "gradebook.db", snapshot)  # what the gradebook held before the last one
    result = api.autograde(sys.argv[3], student, force=True, create=True)
    print("RT-AUTOGRADE", student, result["success"], flush=True)
    if not result["success"]:
        print((result.get("log") or "")[-1500:], (result.get("error") or "")[-1500:], file=sys.stderr)
"""


def formgrader(layout: Layout, step: str, students: list[str] = (), snapshot: str = "") -> Ran:
    script = layout.tmp / "formgrader_click.py"
    script.write_text(FORMGRADER)
    return run("formgrader", [layout.python, str(script), str(layout.course), step, ASSIGNMENT, ",".join(students), snapshot],
               layout, layout.course)


@contextlib.contextmanager
def dask_cluster(layout: Layout):
    """`dask scheduler` and one single-threaded `dask worker` on loopback, run as the batch's TA."""
    from distributed import Client

    scheduler_file = layout.tmp / "scheduler.json"
    env = ta_env(layout)
    own(layout)
    procs = [subprocess.Popen(as_user([str(layout.bin / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                       "--no-dashboard", "--scheduler-file", str(scheduler_file)], layout.user),
                              env=env, cwd=layout.home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    try:
        deadline = time.monotonic() + 90
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        procs.append(subprocess.Popen(
            as_user([str(layout.bin / "dask"), "worker", address, "--nthreads", "1", "--name", "w1", "--no-dashboard",
                     "--memory-limit", "0", "--host", "127.0.0.1", "--local-directory", str(layout.tmp / "dask")],
                    layout.user),
            env=env, cwd=layout.home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=120)

        def workers() -> list[psutil.Process]:
            found = []
            for proc in procs[1:]:
                with contextlib.suppress(psutil.Error):
                    found += _trusted(psutil.Process(proc.pid))
            return found

        yield address, workers
    finally:  # as a TA stops a cluster: the worker closes its warm processes and their folders
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@dataclass
class Batch:
    """What one batch ran and what it left: everything the verdicts look at."""

    name: str
    path: str
    user: str
    marker: str
    students: list[dict]  # Submission's expectations (no notebooks)
    runs: list[dict] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)
    rerun: dict = field(default_factory=dict)  # after `course grade` again without --force
    error: str = ""


def _expectations(sub: Submission) -> dict:
    return {"student": sub.student, "attack": sub.attack, "summary": sub.summary, "base": sub.base,
            "hidden_zero": sub.hidden_zero, "zero_cells": list(sub.zero_cells), "same_as_base": sub.same_as_base,
            "honest": sub.honest, "files": {name: hashlib.sha256(data).hexdigest() for name, data in
                                            _submitted_bytes(sub).items()}}


def _submitted_bytes(sub: Submission) -> dict[str, bytes]:
    return {NOTEBOOK: nbformat.writes(sub.notebook).encode() + b"\n", **sub.files}


def grade_batch(name: str, path: str, user: str, build: Callable[[Context], list[Submission]],
                bomb: Callable[[], bytes] | None = None, memory_gb: float = 2.0, timeout: float = 150.0,
                rerun: bool = False) -> Batch:
    """Build the submissions, grade them through ``path`` as ``user``, collect the evidence."""
    layout = make_layout(name, user)
    batch = Batch(name, path, user, layout.marker, [])
    try:
        subs = build(layout.context(bomb))
        batch.students = [_expectations(s) for s in subs]
        students = [s.student for s in subs]
        limits = ["--device", "cpu", "--timeout", f"{timeout:g}", "--memory", f"{memory_gb:g}"]
        if path in ("local", "dask"):
            for sub in subs:
                write_submission(layout.incoming / sub.student, sub)
            before = snapshot(layout)
            if path == "local":
                ran = [course_cli(layout, "--from", str(layout.incoming), "--workers", "1", *limits)]
            else:
                with dask_cluster(layout) as (address, workers):
                    ran = [course_cli(layout, "--from", str(layout.incoming), "--cluster", address, *limits,
                                      extra_trusted=workers)]
        elif path == "nbgrader":
            ran = [nbgrader_cli(layout, "generate_assignment", ASSIGNMENT, "--force")]
            for sub in subs:
                write_submission(layout.submitted(sub.student), sub)
            before = snapshot(layout)
            ran += [nbgrader_cli(layout, "autograde", ASSIGNMENT, "--create"),
                    nbgrader_cli(layout, "generate_feedback", ASSIGNMENT)]
        elif path == "formgrader":
            ran = [formgrader(layout, "generate")]
            for sub in subs:
                write_submission(layout.submitted(sub.student), sub)
            before = snapshot(layout)
            last = students[-1] if students[-1].startswith("zzz_") else ""
            held = str(layout.tmp / "gradebook-before-last.db") if last else ""
            ran += [formgrader(layout, "autograde", students, held)]
        else:
            raise ValueError(path)
        batch.runs = [vars(r) for r in ran]
        batch.evidence = collect(layout, subs, before)
        if path == "formgrader" and held:
            batch.evidence["held_scores"] = read_gradebook(Path(held))
        if rerun:
            again = course_cli(layout, "--workers", "1", *limits)
            batch.rerun = {"run": vars(again), "scores": read_gradebook(layout.course / "gradebook.db")}
    except Exception:
        batch.error = traceback.format_exc()
    finally:
        with contextlib.suppress(Exception):
            batch.evidence.setdefault("leftovers", {}).update(sweep(layout))
        remove(layout)
    return batch


# --------------------------------------------------------------------------- evidence


def read_gradebook(db: Path) -> dict:
    """{"scores": {student: {cell: score}}, "max": {student: total}, "error": ""} from a copy."""
    from nbgrader.api import Gradebook

    out: dict = {"scores": {}, "max": {}, "error": ""}
    if not db.is_file():
        out["error"] = f"no gradebook at {db.name}"
        return out
    if db.read_bytes()[:16] != SQLITE:
        out["error"] = f"{db.name} is not an SQLite file any more (starts {db.read_bytes()[:40]!r})"
        return out
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "gradebook.db"
        shutil.copyfile(db, copy)
        try:
            with Gradebook(f"sqlite:///{copy}") as gb:
                for student in gb.students:
                    with contextlib.suppress(Exception):
                        submission = gb.find_submission(ASSIGNMENT, student.id)
                        cells = {g.name: (None if g.score is None else float(g.score))
                                 for nb in submission.notebooks for g in nb.grades}
                        out["scores"][student.id] = cells
                        out["max"][student.id] = float(submission.max_score)
        except Exception as exc:
            out["error"] = f"gradebook unreadable: {type(exc).__name__}: {exc}"
    return out


def _digest(path: Path) -> str:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return "link:" + os.readlink(path)
    if stat.S_ISDIR(info.st_mode):
        return f"dir:{oct(info.st_mode & 0o7777)}"
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"{digest.hexdigest()}:{oct(info.st_mode & 0o7777)}"


def _tree(root: Path, label: str, skip_top: tuple[str, ...] = ()) -> dict[str, str]:
    out = {}
    if not root.exists():
        return out
    for folder, dirs, files in os.walk(root, followlinks=False):
        rel = os.path.relpath(folder, root)
        if rel == ".":
            dirs[:] = [d for d in dirs if d not in skip_top]
            files = [f for f in files if f not in skip_top]
        for name in dirs + files:
            path = Path(folder) / name
            with contextlib.suppress(OSError):
                out[f"{label}/{os.path.relpath(path, root)}"] = _digest(path)
    return out


def snapshot(layout: Layout) -> dict[str, str]:
    """Every file that grading must not touch: the course outside the grading folders, the
    instructor's checkout its solutions link to, the imported download, the TA's secret folder."""
    out = _tree(layout.course, "course", GRADING)
    out.update(_tree(layout.repo, "repo"))
    out.update(_tree(layout.incoming, "incoming"))
    out.update(_tree(layout.secret_dir, "home/secret"))
    return out


def _needles(layout: Layout) -> dict[str, list[bytes]]:
    """Byte strings that must not appear where students or the TA's browser look."""
    source = REPO / "solutions" / ASSIGNMENT
    hidden: list[bytes] = []
    for path in sorted(source.glob("hidden_*")):
        data = path.read_bytes()
        hidden += [data[len(data) // 2:len(data) // 2 + 64], data[-200:-136]]
        with contextlib.suppress(Exception), np.load(path, allow_pickle=False) as arrays:
            for key in arrays.files:
                value = arrays[key]
                if value.dtype.kind == "f" and value.size >= 16:
                    hidden.append(value.reshape(-1)[:8].tobytes())
    hidden_source = []
    release = (REPO / "assignments" / ASSIGNMENT / NOTEBOOK).read_text()
    for cell in nbformat.read(source / NOTEBOOK, as_version=4).cells:
        inside = False
        for line in cell.source.splitlines():
            if "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) >= 12 and line.strip() not in release:
                hidden_source.append(line.strip().encode())
    needles = {"TA secret": [layout.secret_token.encode()], "TA environment": [layout.env_token.encode()],
               "hidden file bytes": hidden, "solution source": [b"### BEGIN SOLUTION"]}
    with contextlib.suppress(OSError):
        first = Path("/etc/shadow").read_text().splitlines()[0]
        if len(first) >= 10:
            needles["/etc/shadow"] = [first.encode()]
    needles["hidden test source"] = [b"BEGIN HIDDEN TESTS", *hidden_source]
    return needles


_SCRIPT = [re.compile(p, re.I | re.S) for p in (
    r"<script\b[^>]*>(?:(?!</script>).){0,4000}?" + XSS,
    r"<[a-z][^<>]*\son[a-z]+\s*=\s*(?:\"[^\"]*|'[^']*|[^\s>]*)" + XSS,
    r"<[a-z][^<>]*=\s*[\"']?\s*javascript:[^\"'>]*" + XSS,
    r"<iframe[^<>]*srcdoc\s*=\s*(?:\"[^\"]*|'[^']*)" + XSS,
)]


def live_scripts(text: str) -> list[str]:
    """Script text a browser would run (escaped text does not count)."""
    return [m.group(0)[-120:] for pattern in _SCRIPT for m in pattern.finditer(text)]


def _outputs(nb: dict) -> list[tuple[str, str]]:
    """(mime type or kind, text) of every output of every code cell."""
    out = []
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if "text" in output:
                out.append(("stream", "".join(output["text"]) if isinstance(output["text"], list) else output["text"]))
            if output.get("output_type") == "error":
                out.append(("error", f"{output.get('evalue', '')}\n" + "\n".join(output.get("traceback", []))))
            for mime, value in (output.get("data") or {}).items():
                out.append((mime, "".join(value) if isinstance(value, list) else str(value)))
    return out


def _walk(folder: Path):
    """(path, is link) below ``folder``, never following a link."""
    for path, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            full = Path(path) / name
            yield full, full.is_symlink()


def collect(layout: Layout, subs: list[Submission], before: dict[str, str]) -> dict:
    course = layout.course
    students = [s.student for s in subs]
    attackers = {s.student for s in subs if not s.honest}
    ev: dict = {"gradebook": read_gradebook(course / "gradebook.db"), "leaks": [], "links": [],
                "big_files": [], "scripts": [], "reports": {}, "csv": {}, "csv_unsafe": [], "classmate_files": {}}
    after = snapshot(layout)
    ev["outside"] = {"added": sorted(k for k in after.keys() - before.keys()
                                     if not any(k == f"course/{n}" for n in ALLOWED_NEW)),
                     "removed": sorted(before.keys() - after.keys()),
                     "changed": sorted(k for k in before.keys() & after.keys() if before[k] != after[k])}
    needles = _needles(layout)
    marks = {s: CLASSMATE_MARK.format(student=s, token=layout.token).encode() for s in students}
    for student in students:
        for area in ("autograded", "feedback", "submitted"):
            folder = course / area / student
            if not folder.exists():
                continue
            for path, is_link in _walk(folder):
                rel = str(path.relative_to(course))
                if is_link:
                    ev["links"].append({"student": student, "where": rel, "target": os.readlink(path)})
                    continue
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode):
                    continue
                if info.st_size >= 100 << 20:
                    ev["big_files"].append({"student": student, "where": rel, "bytes": info.st_size,
                                            "allocated": info.st_blocks * 512})
                    continue
                if layout.marker.encode() in path.name.encode() and student not in attackers:
                    ev["leaks"].append({"student": student, "where": rel, "what": "a file an attacker left"})
                if area == "submitted":
                    continue
                data = path.read_bytes()
                for kind, values in needles.items():
                    if kind == "hidden test source" and area != "feedback":
                        continue  # autograded notebooks hold nbgrader's test cells by design
                    if any(v in data for v in values):
                        ev["leaks"].append({"student": student, "where": rel, "what": kind})
                if data.startswith(SQLITE) and b"solution_cells" in data:
                    ev["leaks"].append({"student": student, "where": rel, "what": "the gradebook"})
                for other, mark in marks.items():
                    if other != student and mark in data:
                        ev["leaks"].append({"student": student, "where": rel, "what": f"{other}'s code"})
                if path.suffix == ".html":
                    ev["scripts"] += [{"student": student, "where": rel, "snippet": s}
                                      for s in live_scripts(data.decode(errors="replace"))]
                if path.suffix == ".ipynb" and area == "autograded":
                    with contextlib.suppress(ValueError):
                        nb = json.loads(data)
                        reports = []
                        for mime, text in _outputs(nb):
                            reports += [line[:400] for line in text.splitlines() if "RTPWN" in line]
                            if mime in ("application/javascript", "text/javascript") and XSS in text:
                                ev["scripts"].append({"student": student, "where": rel, "snippet": text[:120]})
                            elif mime in ("text/html", "image/svg+xml", "text/markdown"):
                                ev["scripts"] += [{"student": student, "where": rel, "snippet": s}
                                                  for s in live_scripts(text)]
                        ev["reports"][student] = reports[:60]
    for sub in subs:
        if sub.honest:
            folder = layout.submitted(sub.student)
            changed = []
            for name, data in _submitted_bytes(sub).items():
                path = folder / name
                if path.is_symlink() or not path.is_file():
                    changed.append(f"{name}: {'a link' if path.is_symlink() else 'missing'}")
                elif path.read_bytes() != data:
                    changed.append(f"{name}: other bytes")
                elif not path.stat().st_mode & 0o200:
                    changed.append(f"{name}: made read-only ({oct(path.stat().st_mode & 0o777)})")
            ev["classmate_files"][sub.student] = changed
    grades = course / "grades"
    if (grades / f"{ASSIGNMENT}.csv").is_file():
        with open(grades / f"{ASSIGNMENT}.csv", newline="") as fh:
            ev["csv"] = {row["student_id"]: row for row in csv.DictReader(fh)}
    for path in sorted(grades.glob("*.csv")) if grades.is_dir() else []:
        text = path.read_text(errors="replace")
        for kind, values in needles.items():
            if kind != "hidden file bytes" and any(v.decode(errors="replace") in text for v in values):
                ev["leaks"].append({"student": "", "where": f"grades/{path.name}", "what": kind})
        for other, mark in marks.items():
            if mark.decode() in text:
                ev["leaks"].append({"student": "", "where": f"grades/{path.name}", "what": f"{other}'s code"})
        with open(path, newline="") as fh:
            for row in csv.reader(fh):
                for value in row:
                    if value[:1] in ("=", "+", "-", "@", "\t", "\r") or re.search(UNSAFE, value):
                        ev["csv_unsafe"].append(f"grades/{path.name}: {value[:80]!r}")
    for big in (p for p in _walk(course) if not p[1]):
        with contextlib.suppress(OSError):
            if big[0].lstat().st_size >= 100 << 20 and not any(b["where"] == str(big[0].relative_to(course))
                                                              for b in ev["big_files"]):
                ev["big_files"].append({"student": "", "where": str(big[0].relative_to(course)),
                                        "bytes": big[0].lstat().st_size})
    return ev


# --------------------------------------------------------------------------- after the batch


def _sysv_keys(marker: str) -> set[int]:
    return {int(hashlib.sha1(f"{marker}_{tag}".encode()).hexdigest()[:7], 16) for tag in ("table", "state")}


def _keys_as(user: str, marker: str, remove_them: bool) -> list[str]:
    """Lines of /proc/keys naming ``marker`` as ``user`` sees them; unlinked when asked."""
    code = _keys_script(marker, remove_them)
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    proc = subprocess.run(as_user([python, "-c", code], user), capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", ""), "HOME": "/"})
    return [line for line in proc.stdout.splitlines() if marker in line]


def _keys_script(marker: str, remove_them: bool) -> str:
    return f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
nr = {{"x86_64": 250, "aarch64": 219}}.get(__import__("platform").machine())
for line in open("/proc/keys"):
    if {marker!r} in line:
        print(line.strip())
        if {remove_them!r} and nr:
            key = int(line.split()[0], 16)
            for ring in (-4, -5, -3, -2):
                libc.syscall(ctypes.c_long(nr), ctypes.c_long(9), ctypes.c_long(key), ctypes.c_long(ring))
            libc.syscall(ctypes.c_long(nr), ctypes.c_long(21), ctypes.c_long(key))
"""


def _marker_files(marker: str, layout: Layout) -> list[str]:
    """Files named with the marker anywhere an attack could have put them outside the batch's
    grading folders."""
    import site

    found = []
    roots = [("/tmp", 2), ("/var/tmp", 2), ("/dev/shm", 2), ("/dev/mqueue", 1), ("/root", 2), ("/home", 3),
             ("/", 1), (str(REPO), 2), (str(layout.home), 6), (str(layout.tmp), 6), (str(layout.incoming), 4),
             (str(layout.course), 1), (str(layout.repo), 6), *[(p, 1) for p in site.getsitepackages()]]
    for root, depth in roots:
        base = root.rstrip("/").count("/")
        for folder, dirs, files in os.walk(root):
            if folder.count("/") - base >= depth or folder.startswith(("/proc", "/sys")):
                dirs[:] = []
            if folder == str(layout.secret_dir):
                continue
            for name in dirs + files:
                if marker in name:
                    found.append(os.path.join(folder, name))
    return sorted(set(found))


def sweep(layout: Layout) -> dict:
    """What the attacks left outside the batch folder (processes, keys, System V objects, files
    named with the marker), recorded and then removed."""
    marker = layout.marker
    left: dict = {"processes": [], "keys": [], "sysv": [], "files": []}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            command = " ".join(proc.info["cmdline"] or [])
            if marker in command:
                left["processes"].append(f"{proc.pid}: {command[:200]}")
                proc.kill()
    users = ["root", "user"] if layout.user == "user" else ["root"]
    for user in users:
        left["keys"] += [f"{user}: {line}" for line in _keys_as(user, marker, remove_them=True)]
    keys = _sysv_keys(marker)
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    removers = {"shm": lambda i: libc.shmctl(i, 0, None), "sem": lambda i: libc.semctl(i, 0, 0),
                "msg": lambda i: libc.msgctl(i, 0, None)}  # IPC_RMID
    for kind, remover in removers.items():
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields and int(fields[0]) in keys:
                    left["sysv"].append(f"{kind} key {fields[0]}")
                    remover(int(fields[1]))
    left["files"] = [p for p in _marker_files(marker, layout)
                     if not any(p.startswith(str(layout.course / g)) for g in GRADING)]
    for path in left["files"]:
        if not path.startswith(str(layout.root)):
            with contextlib.suppress(OSError):
                if os.path.isdir(path) and not os.path.islink(path):
                    os.chmod(path, 0o700)
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
    return left


# --------------------------------------------------------------------------- sharing between xdist workers


def shared(key: str, base: Path, compute: Callable[[], dict]) -> dict:
    """``compute()`` once per test run, even with several pytest-xdist workers: the first worker
    computes and stores it beside the run's temporary folders, the others read it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return compute()
    path, lock = base / f"redteam-{key}.json", base / f"redteam-{key}.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if path.is_file():
            return json.loads(path.read_text())
        value = compute()
        path.write_text(json.dumps(value))
        return value


_MEMO: dict[str, dict] = {}


def clean_batch(base: Path) -> dict:
    """The clean batch (perfect, partly wrong and untouched examples, with the classmates' marks),
    graded once per test run through plain `nbgrader autograde`: the scores every path must give."""
    from dataclasses import asdict

    from redteam.attacks import classmates, hidden_cells, read_example

    def compute() -> dict:
        def build(ctx: Context) -> list[Submission]:
            return [*classmates(ctx), Submission("untouched", read_example("untouched"), base="untouched",
                                                 same_as_base=True)]

        batch = asdict(grade_batch("clean", "nbgrader", "root", build))
        batch["hidden_cells"] = hidden_cells(nbformat.read(REPO / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4))
        return batch

    if "clean" not in _MEMO:
        _MEMO["clean"] = shared("clean", base, compute)
    return _MEMO["clean"]


def run_batch(name: str, path: str, user: str, attacks: list[str], base: Path, **options) -> dict:
    """One batch (shared between xdist workers like the clean one), as plain data."""
    from dataclasses import asdict

    from redteam.archives import keras_bomb
    from redteam.attacks import build

    def compute() -> dict:
        return asdict(grade_batch(name, path, user, lambda ctx: build(ctx, attacks), bomb=keras_bomb, **options))

    return shared(name, base, compute)


# --------------------------------------------------------------------------- LMS downloads


def import_download(name: str, user: str, variant: str) -> dict:
    """`course grade lstm --from <hostile download>` on a fresh course, as ``user``: what was
    imported, what was written (and how much at most), what was said."""
    from redteam.archives import GIB, deflated_run, downloads

    layout = make_layout(name, user)
    out: dict = {"name": name, "variant": variant, "error": ""}
    try:
        perfect = (REPO / "examples" / "submissions" / ASSIGNMENT / "perfect" / NOTEBOOK).read_bytes()
        cut = perfect[: len(perfect) // 2]  # imported, then failed at once: no kernel needed
        paths = {**layout.paths(), "classmate_source": f"../1009/{NOTEBOOK}"}
        download = downloads(cut, layout.marker, paths, _bomb_member(deflated_run, GIB))[variant]
        source = download.write(layout.root / f"download-{variant}")
        out["expect"] = {"honest": download.honest, "optional": list(download.optional),
                         "hostile": download.hostile, "forged_timestamp": download.forged_timestamp}
        before = snapshot(layout)
        before.update(_tree(source, "download") if source.is_dir() else {"download": _digest(source)})
        ran = run("course", [str(layout.bin / "course"), "grade", ASSIGNMENT, "--from", str(source), "--workers", "1",
                   "--device", "cpu", "--timeout", "60"], layout, layout.course, watch=[layout.course])
        out["run"] = vars(ran)
        after = snapshot(layout)
        after.update(_tree(source, "download") if source.is_dir() else {"download": _digest(source)})
        out["outside"] = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)
                                and not any(k == f"course/{n}" for n in ALLOWED_NEW))
        submitted = layout.course / "submitted"
        out["students"] = sorted(p.name for p in submitted.iterdir()) if submitted.is_dir() else []
        needles = _needles(layout)
        solution = REPO / "solutions" / ASSIGNMENT
        copies = {hashlib.sha256((solution / n).read_bytes()).hexdigest(): f"the solution's {n}"
                  for n in (NOTEBOOK, f"{ASSIGNMENT}_model.keras")}
        out["submitted"], out["bad"] = {}, []
        for path, is_link in (_walk(submitted) if submitted.is_dir() else []):
            rel = str(path.relative_to(submitted))
            if is_link:
                out["bad"].append(f"{rel}: a link to {os.readlink(path)}")
                continue
            if not path.is_file():
                continue
            out["submitted"][rel] = path.stat().st_size
            if path.stat().st_size < 100 << 20:
                data = path.read_bytes()
                found = [kind for kind in ("TA secret", "solution source") if any(v in data for v in needles[kind])]
                found += [copies[h] for h in [hashlib.sha256(data).hexdigest()] if h in copies]
                out["bad"] += [f"{rel}: {kind}" for kind in found]
        for rel in download.links:  # a folder download's links: nothing may come in through them
            student, _, name = rel.partition("/")
            folder = submitted / student / ASSIGNMENT
            came = [folder / name] if name else (list(folder.iterdir()) if folder.is_dir() else [])
            out["bad"] += [f"{student}/{ASSIGNMENT}/{p.name}: imported through the link {rel}"
                           for p in came if p.exists() and not p.is_symlink()]
        out["timestamps"] = {s: (submitted / s / ASSIGNMENT / "timestamp.txt").read_text(errors="replace")
                             for s in out["students"] if (submitted / s / ASSIGNMENT / "timestamp.txt").is_file()}
        out["csv_unsafe"] = []
        for path in sorted((layout.course / "grades").glob("*.csv")):
            with open(path, newline="") as fh:
                for row in csv.reader(fh):
                    out["csv_unsafe"] += [f"grades/{path.name}: {v[:80]!r}" for v in row
                                          if v[:1] in ("=", "+", "-", "@", "\t", "\r")
                                          or re.search(UNSAFE, v)]
    except Exception:
        out["error"] = traceback.format_exc()
    finally:
        with contextlib.suppress(Exception):
            out["leftovers"] = sweep(layout)
        remove(layout)
    return out


_BOMB: list = []


def _bomb_member(deflated_run, size: int):
    if not _BOMB:
        _BOMB.append(deflated_run(b"\0", size))
    return _BOMB[0]
