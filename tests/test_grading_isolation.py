"""Warm grading keeps nothing of one student for the next.

Two submissions of the LSTM practical go through the same warm processes
(`--workers 1`: one autograde worker and its warm repeat servers, which fork one isolated
job per graded function). The first plants, in the cell that defines ``sigmoid`` (an answer
cell, so it runs in the notebook's kernel and in every job that repeats a hidden test),
everything a student's code could leave behind: files (``/tmp``, home, ``/dev/shm``, the
folder above its working folder, a folder made read-only), an environment variable,
attributes on imported modules, a detached process listening on an abstract Unix socket, a
System V shared-memory segment, a POSIX message queue and keys in the user and session
keyrings. It then checks that it can see its own plants, so the probe is known to work where
it runs. The second submission runs the same probe first and raises if anything is there:
its ``sigmoid`` cell would fail, in the notebook and in the repeat outside it, with the list
of what it saw.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dlcourse.authoring.examples import submissions_dir
from dlcourse.runner import sandbox, warm
from dlcourse.runner.course import Course, scratch_course
from dlcourse.runner.grade import grade
from dlcourse.runner.notebooks import grade_id, read_notebook

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

PROBE = '''
import ctypes as _ct, os as _os, pathlib as _pl, socket as _so, subprocess as _sp, sys as _sys
_FILES = ("/tmp/dlc_planted", _os.path.expanduser("~/dlc_planted"), "/dev/shm/dlc_planted",
          str(_pl.Path.cwd().parent / "dlc_planted"), "/tmp/dlc_locked/dlc_planted")
_KEY = 0x5EED
_LIBC = _ct.CDLL(None, use_errno=True)
_KEYCTL = {"x86_64": 250, "aarch64": 219}[_os.uname().machine]
_ADD_KEY = {"x86_64": 248, "aarch64": 217}[_os.uname().machine]


def _dlc_key(keyring):
    return _LIBC.syscall(_KEYCTL, 10, _ct.c_long(keyring), b"user", b"dlc_planted", 0) > 0  # KEYCTL_SEARCH


def _dlc_seen():
    import numpy
    import dlcourse.grading.spec as _spec
    seen = [p for p in _FILES if _os.path.exists(p)]
    if _os.environ.get("DLC_PLANTED"):
        seen.append("environment variable")
    if hasattr(numpy, "dlc_planted") or hasattr(_spec, "DLC_PLANTED"):
        seen.append("module attribute")
    for pid in (p for p in _os.listdir("/proc") if p.isdigit() and int(p) != _os.getpid()):
        try:
            if b"dlc_planted" in _pl.Path(f"/proc/{pid}/cmdline").read_bytes():
                seen.append("process")
        except OSError:
            pass
    if _LIBC.shmget(_KEY, 0, 0) != -1:
        seen.append("shared memory")
    if _ct.CDLL("librt.so.1", use_errno=True).mq_open(b"/dlc_planted", _os.O_RDONLY) != -1:
        seen.append("message queue")
    for name, keyring in (("user keyring", -4), ("session keyring", -3)):
        if _dlc_key(keyring):
            seen.append(name)
    try:
        with _so.socket(_so.AF_UNIX) as _s:
            _s.connect("\\0dlc_planted")
            seen.append("abstract socket")
    except OSError:
        pass
    return seen
'''

PLANT = PROBE + '''
_planted = []
_pl.Path("/tmp/dlc_locked").mkdir(exist_ok=True)
for _p in _FILES:
    try:
        _pl.Path(_p).parent.mkdir(parents=True, exist_ok=True)
        _pl.Path(_p).write_text("planted")
        _planted.append(_p)
    except OSError:
        pass
_os.chmod("/tmp/dlc_locked", 0o555)
_os.environ["DLC_PLANTED"] = "1"
import numpy as _np
import dlcourse.grading.spec as _spec
_np.dlc_planted = True
_spec.DLC_PLANTED = True
_LISTEN = "import socket, time; s = socket.socket(socket.AF_UNIX); s.bind('\\\\0dlc_planted'); s.listen(); time.sleep(300)"
_sp.Popen([_sys.executable, "-c", _LISTEN, "dlc_planted"], start_new_session=True,
          stdout=_sp.DEVNULL, stderr=_sp.DEVNULL)
if _LIBC.shmget(_KEY, 4096, 0o1000 | 0o600) == -1:
    raise RuntimeError("could not plant shared memory")
if _ct.CDLL("librt.so.1", use_errno=True).mq_open(b"/dlc_planted", _os.O_CREAT | _os.O_RDWR, 0o600, None) == -1:
    raise RuntimeError("could not plant a message queue")
for _keyring in (-4, -3):
    if _LIBC.syscall(_ADD_KEY, b"user", b"dlc_planted", b"x", 1, _ct.c_long(_keyring)) < 0:
        raise RuntimeError(f"could not plant a key in keyring {_keyring}")
import time as _time
_time.sleep(0.5)  # the process is up
_core = {"/tmp/dlc_planted", "/tmp/dlc_locked/dlc_planted", str(_pl.Path.cwd().parent / "dlc_planted"),
         "environment variable", "module attribute", "process", "shared memory", "message queue",
         "user keyring", "session keyring", "abstract socket"}
_missing = (set(_planted) | _core) - set(_dlc_seen())
if _missing:
    raise RuntimeError(f"the probe misses what was just planted: {sorted(_missing)}")
'''

WITNESS = PROBE + '''
if _dlc_seen():
    raise RuntimeError(f"left over from another student: {_dlc_seen()}")
'''


def _with_prefix(perfect: Path, dest: Path, prefix: str) -> None:
    import nbformat

    shutil.copytree(perfect, dest)
    nb = read_notebook(dest / "lstm.ipynb")
    cell = next(c for c in nb.cells if grade_id(c) == "sigmoid")
    cell.source = prefix + "\n" + cell.source
    nbformat.write(nb, dest / "lstm.ipynb")


def test_nothing_of_one_student_reaches_the_next(tmp_path):
    course = Course(REPO)
    scratch = scratch_course(course, tmp_path / "course")
    perfect = submissions_dir(course, "lstm") / "perfect"
    batch = tmp_path / "batch"
    _with_prefix(perfect, batch / "a_planter", PLANT)
    _with_prefix(perfect, batch / "b_witness", WITNESS)
    starts = dict(warm.STARTS)
    result = grade(scratch, "lstm", batch, workers=1)
    # Both went through one autograde worker (and so its repeat servers): the warm path was taken.
    assert warm.STARTS["autograde"] - starts.get("autograde", 0) == 1
    records = {s: json.loads((scratch.grades / "records" / "lstm" / f"{s}.json").read_text())
               for s in ("a_planter", "b_witness")}
    for student, record in records.items():
        assert record["ok"], (student, record["reason"])
        failed = {v["test_id"]: v["message"] for v in record["verdicts"] if not v["passed"]}
        assert failed == {}, (student, failed)
    rows = {r.student: r for r in result.rows}
    assert rows["b_witness"].hidden_failed == [] and rows["a_planter"].hidden_failed == []
    assert rows["b_witness"].questions == rows["a_planter"].questions
    assert rows["b_witness"].score == rows["a_planter"].score > 0


def test_a_slot_closed_after_a_death_starts_afresh():
    """After a warm process died the slot is closed; the next job gets fresh processes."""
    unconfined = sandbox.confinement_env(sandbox.Isolation("none"))
    slot = warm.Slot()
    try:
        first = slot.prepare(unconfined)
        first.proc.kill()
        slot.close()
        second = slot.prepare(unconfined)
        assert second is not first and second.alive() and slot.home is not None and slot.home.is_dir()
    finally:
        slot.close()
