"""Warm grading keeps nothing of one student for the next.

Two submissions of the LSTM practical go through the same warm processes
(`--workers 1`: one autograde worker, one repeat server). The first plants, in the
cell that defines ``sigmoid``, everything a student's code could leave behind: files
(the sandbox's /tmp, home, /dev/shm, the server's spool), an environment variable,
attributes on imported modules, a detached process and a System V shared-memory
segment. It then checks that it can see its own plants, so the probe is known to
work where it runs. The second submission runs the same probe first and raises if
anything is there: its ``sigmoid`` cell would fail, in the notebook and in the
repeat outside it, with the list of what it saw.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dlcourse.authoring.examples import submissions_dir
from dlcourse.runner import warm
from dlcourse.runner.course import Course, scratch_course
from dlcourse.runner.grade import grade
from dlcourse.runner.notebooks import grade_id, read_notebook

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

PROBE = '''
import ctypes as _ct, os as _os, pathlib as _pl, subprocess as _sp, sys as _sys
_FILES = ("/tmp/dlc_planted", _os.path.expanduser("~/dlc_planted"), "/dev/shm/dlc_planted",
          str(_pl.Path.cwd().parent / "dlc_planted"))
_KEY = 0x5EED


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
    if _ct.CDLL(None, use_errno=True).shmget(_KEY, 0, 0) != -1:
        seen.append("shared memory")
    return seen
'''

PLANT = PROBE + '''
_planted = []
for _p in _FILES:
    try:
        _pl.Path(_p).parent.mkdir(parents=True, exist_ok=True)
        _pl.Path(_p).write_text("planted")
        _planted.append(_p)
    except OSError:
        pass
_os.environ["DLC_PLANTED"] = "1"
import numpy as _np
import dlcourse.grading.spec as _spec
_np.dlc_planted = True
_spec.DLC_PLANTED = True
_sp.Popen([_sys.executable, "-c", "import time; time.sleep(300)", "dlc_planted"], start_new_session=True,
          stdout=_sp.DEVNULL, stderr=_sp.DEVNULL)
if _ct.CDLL(None, use_errno=True).shmget(_KEY, 4096, 0o1000 | 0o600) == -1:
    raise RuntimeError("could not plant shared memory")
import time as _time
_time.sleep(0.5)  # the process is up
_core = {"/tmp/dlc_planted", str(_pl.Path.cwd().parent / "dlc_planted"), "environment variable",
         "module attribute", "process", "shared memory"}
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
    # Both went through one repeat server and one autograde worker: the warm path was taken.
    assert warm.STARTS["repeat"] - starts.get("repeat", 0) == 1
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
    from dlcourse.runner import sandbox

    slot = warm.Slot()
    isolation = sandbox.required(unconfined=True)
    try:
        first, _ = slot.prepare(isolation, "cpu", {"DLCOURSE_UNCONFINED": "1"}, repeat=False)
        first.proc.kill()
        slot.close()
        second, _ = slot.prepare(isolation, "cpu", {"DLCOURSE_UNCONFINED": "1"}, repeat=False)
        assert second is not first and second.alive() and slot.home is not None and slot.home.is_dir()
    finally:
        slot.close()
