"""A hostile class, graded through the real runner (`dlcourse.runner.grade.grade`, real nbgrader).

Grading is confined by default: without bubblewrap `course grade` stops with one line
naming both ways out, and runs unconfined only when asked (`--unconfined`).

Two batches, each graded once per module with two workers:
- the one-function ``tiny`` course: hang, kernel crash, memory hog, broken JSON,
  syntax error, edited and deleted test cells, an attempt to reach the network
  and the course folder -- beside honest submissions whose scores must not move;
- the ``inception`` assignment: wrong code dressed up by monkeypatching the
  grading library or IPython's error handling, and a cell reading hidden files.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest
from nbfactory import tiny_course, tiny_submission
from nbformat.v4 import new_code_cell

from dlcourse.authoring.examples import reference_handins, submissions_dir
from dlcourse.errors import CourseError
from dlcourse.runner import sandbox
from dlcourse.runner.course import scratch_course
from dlcourse.runner.grade import grade
from dlcourse.runner.notebooks import grade_id, read_notebook, replace_cell_sources

pytestmark = pytest.mark.slow

WRONG = "def double(x):\n    return x + 1"
#: A detached process that waits for nbgrader to save the scores, then raises them.
DAEMON_CODE = """
import os, sqlite3, time
paths = [os.path.join(*(['..'] * up + ['gradebook.db'])) for up in range(6)]
for _ in range(900):
    time.sleep(0.1)
    for path in paths:
        try:
            db = sqlite3.connect(path, timeout=1)
            db.execute('UPDATE grade SET auto_score = 2 WHERE auto_score IS NOT NULL')
            db.commit()
            db.close()
        except Exception:
            pass
"""
DAEMON = (f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {DAEMON_CODE!r}], "
          "start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n")
HOG = ("import numpy as np\nhog = []\nfor _ in range(64):\n"
       "    hog.append(np.ones(2**26))  # 512 MB each, touched\n")


def _add_cell(nb, source: str, after: str):
    index = [grade_id(c) for c in nb.cells].index(after) + 1
    nb.cells.insert(index, new_code_cell(source))
    return nb


def _edit(nb, gid: str, source: str):
    for cell in nb.cells:
        if grade_id(cell) == gid:
            cell.source = source
    return nb


def _write(folder, student: str, nb_or_text, name: str) -> None:
    (folder / student).mkdir(parents=True)
    target = folder / student / name
    if isinstance(nb_or_text, str):
        target.write_text(nb_or_text)
    else:
        nbformat.write(nb_or_text, target)


@pytest.fixture(scope="module")
def tiny_batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    course = tiny_course(root / "course")
    (root / "ta_secret.txt").write_text("TA-ONLY")
    server = socket.create_server(("127.0.0.1", 0))  # a service on the TA's loopback
    server.settimeout(0.5)
    hits = []

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                hits.append(server.accept())

    stop = threading.Event()
    threading.Thread(target=serve, daemon=True).start()
    probe = ("import os, socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n"
             "    print('NETWORK open')\nexcept OSError:\n    print('NETWORK blocked')\n"
             f"try:\n    socket.create_connection(('127.0.0.1', {server.getsockname()[1]}), timeout=3)\n"
             "    print('LOOPBACK open')\nexcept OSError:\n    print('LOOPBACK blocked')\n"
             f"print('COURSE', 'visible' if os.path.exists({str(course.solutions)!r}) else 'hidden')\n"
             f"print('HOME', 'visible' if os.path.exists({str(root)!r}) else 'hidden')\n"
             f"try:\n    print('SECRET', open({str(root / 'ta_secret.txt')!r}).read())\n"
             "except OSError:\n    print('SECRET hidden')\n"
             f"try:\n    open({str(root / 'written_by_student.txt')!r}, 'w').write('x')\n    print('WRITE done')\n"
             "except OSError:\n    print('WRITE blocked')\n")
    cases = {
        "good": tiny_submission(course),
        "wrong": tiny_submission(course, WRONG),
        "hang": tiny_submission(course, "import time\ntime.sleep(10_000)\n" + WRONG),
        "crash": tiny_submission(course, "import os\nos._exit(3)"),
        "memory": tiny_submission(course, HOG + WRONG),
        "notjson": '{"cells": [',
        "syntax": tiny_submission(course, "def double(x)\n    return 2 * x"),
        "edited": _edit(tiny_submission(course, WRONG), "test_double", "pass"),
        "deleted": tiny_submission(course, WRONG),
        "escape": _add_cell(tiny_submission(course), probe, "double"),
        "daemon": tiny_submission(course, DAEMON + WRONG),
        "good2": tiny_submission(course),
    }
    cases["deleted"].cells = [c for c in cases["deleted"].cells if grade_id(c) != "test_double"]
    incoming = root / "incoming"
    for student, nb in cases.items():
        _write(incoming, student, nb, "tiny.ipynb")
    originals = {p: p.read_bytes() for p in incoming.rglob("*") if p.is_file()}
    result = grade(course, "tiny", incoming, timeout=40, workers=2, memory_gb=1.5)
    stop.set()
    server.close()
    (root / "loopback_connections.txt").write_text(str(len(hits)))
    return course, incoming, originals, {r.student: r for r in result.rows}


def test_honest_scores_do_not_move(tiny_batch):
    _course, _incoming, _originals, rows = tiny_batch
    assert rows["good"].score == rows["good2"].score == 2
    assert rows["escape"].score == 2, rows["escape"].status
    assert rows["wrong"].score == 0 and rows["wrong"].status.startswith("graded")


def test_no_student_process_outlives_the_kernel(tiny_batch):
    *_rest, rows = tiny_batch
    assert rows["daemon"].score == 0, "a detached process rewrote the gradebook after the kernel stopped"


@pytest.mark.parametrize(("student", "reason"), [
    ("hang", "time limit of 40 s exceeded"),
    ("memory", "memory limit of 1.5 GB exceeded"),
    ("notjson", "not a valid notebook"),
])
def test_failures_are_recorded_with_a_reason(tiny_batch, student, reason):
    course, *_rest, rows = tiny_batch
    assert rows[student].score == 0
    assert reason in rows[student].status
    with open(course.grades / "tiny.csv") as fh:
        line = next(r for r in csv.DictReader(fh) if r["student_id"] == student)
    assert line["score"] == "0" and reason in line["status"]
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        submission = gb.find_submission("tiny", student)
        assert submission.score == 0
        comments = [c.auto_comment for nb in submission.notebooks for c in nb.comments]
        assert any(reason in (c or "") for c in comments)


def test_kernel_crash_and_syntax_error_score_zero(tiny_batch):
    *_rest, rows = tiny_batch
    assert rows["crash"].score == 0 and rows["syntax"].score == 0


def test_edited_and_deleted_tests_are_restored_and_reported(tiny_batch):
    *_rest, rows = tiny_batch
    assert rows["edited"].score == 0, "the edited test cell must run as released"
    assert rows["deleted"].score == 0, "the deleted test cell must be put back and fail"
    assert any("test_double was edited" in f for f in rows["edited"].findings)
    assert any("test_double was deleted" in f for f in rows["deleted"].findings)


def test_submissions_are_confined(tiny_batch):
    # Never skipped: grading refuses to run unconfined, and .ci/run installs bubblewrap.
    assert sandbox.detect().kind == "bubblewrap"
    course, *_rest = tiny_batch
    nb = read_notebook(course.autograded / "escape" / "tiny" / "tiny.ipynb")
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "NETWORK blocked" in text and "COURSE hidden" in text and "HOME hidden" in text, text
    assert "LOOPBACK blocked" in text and "SECRET hidden" in text and "WRITE blocked" in text, text
    root = course.root.parent
    assert (root / "loopback_connections.txt").read_text() == "0", "the TA's loopback server was reached"
    assert not (root / "written_by_student.txt").exists()


def test_originals_untouched_and_regrading_is_idempotent(tiny_batch):
    course, incoming, originals, rows = tiny_batch
    assert {p: p.read_bytes() for p in incoming.rglob("*") if p.is_file()} == originals
    again = grade(course, "tiny", timeout=40, workers=2, memory_gb=1.5)
    assert sorted(again.skipped) == sorted(rows), "unchanged submissions are not graded twice"
    assert {r.student: r.score for r in again.rows} == {s: r.score for s, r in rows.items()}
    # A submission whose grading failed for a reason not its own (a dead worker, a classmate's
    # sabotage) is graded again without --force; one that failed of itself is not.
    record_path = course.grades / "records" / "tiny" / "good2.json"
    record = json.loads(record_path.read_text())
    record.update(ok=False, reason="grading process died: the worker was killed", fault="grader")
    record_path.write_text(json.dumps(record))
    recovered = grade(course, "tiny", timeout=40, workers=2, memory_gb=1.5)
    assert "good2" not in recovered.skipped and {"hang", "memory", "notjson"} <= set(recovered.skipped)
    assert {r.student: r.score for r in recovered.rows}["good2"] == 2
    forced = grade(course, "tiny", timeout=40, workers=2, memory_gb=1.5, force=True)
    honest = ("good", "good2", "wrong", "syntax", "edited", "deleted", "escape", "notjson", "daemon")
    assert {s: r.score for s, r in ((r.student, r) for r in forced.rows) if s in honest} == \
        {s: rows[s].score for s in honest}
    with open(course.grades / "grades.csv") as fh:
        lms = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert lms["good"]["tiny"] == "2" and lms["good"]["tiny max"] == "3" and lms["hang"]["tiny"] == "0"


@pytest.fixture(scope="module")
def inception_batch(repo_course, tmp_path_factory):
    root = tmp_path_factory.mktemp("tamper")
    course = scratch_course(repo_course, root / "course")
    perfect = read_notebook(submissions_dir(repo_course, "inception") / "perfect" / "inception.ipynb")
    wrong_source = (repo_course.root / "examples/inception/partly_wrong/inception_module.py").read_text()
    wrong = replace_cell_sources(perfect, {"inception_module": wrong_source})
    patch_library = ("import dlcourse.grading.spec as _s\nimport numpy as np\n"
                     "_s.assert_matches = lambda *args, **kwargs: 0.0\nnp.allclose = lambda *a, **k: True")
    swallow = "get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)"
    peek = "import numpy as np\nprint(len(np.load('hidden_inception_refs.npz').files))"
    cases = {
        "perfect": perfect,
        "patched": _add_cell(nbformat.from_dict(json.loads(json.dumps(wrong))), patch_library, "inception_module"),
        "swallowed": _add_cell(nbformat.from_dict(json.loads(json.dumps(wrong))), swallow, "inception_module"),
        "peeking": _add_cell(nbformat.from_dict(json.loads(json.dumps(perfect))), peek, "inception_module"),
    }
    incoming = root / "incoming"
    for student, nb in cases.items():
        _write(incoming, student, nb, "inception.ipynb")
        for path in reference_handins(repo_course, "inception"):
            shutil.copyfile(path, incoming / student / path.name)
    result = grade(course, "inception", incoming, timeout=600, workers=2)
    return course, {r.student: r for r in result.rows}


@pytest.mark.parametrize("student", ["patched", "swallowed"])
def test_tampering_does_not_pay(inception_batch, student):
    _course, rows = inception_batch
    row, perfect = rows[student], rows["perfect"]
    assert perfect.score == 24 and not perfect.hidden_failed and not perfect.findings
    assert row.questions["test_inception_module_reference"] == 0
    assert row.score <= 19, "no more than the same wrong module handed in honestly (examples' partly_wrong)"
    assert row.findings, "the tampering is reported"


def test_patching_the_grading_library_cannot_pass_a_hidden_test(inception_batch):
    _course, rows = inception_batch
    # The hidden test never runs in the kernel the patch lives in: it is decided outside it.
    assert "test_inception_module_reference" in rows["patched"].hidden_failed
    assert rows["patched"].questions["test_inception_module_reference"] == 0


def test_no_hidden_file_is_there_to_read_and_trying_is_reported(inception_batch):
    course, rows = inception_batch
    assert rows["peeking"].score == 24
    assert any("hidden files" in f for f in rows["peeking"].findings)
    graded = read_notebook(course.autograded / "peeking" / "inception" / "inception.ipynb")
    errors = [o for c in graded.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert any(e.ename == "FileNotFoundError" and "hidden_inception_refs" in e.evalue for e in errors)


def test_feedback_holds_no_hidden_tests(inception_batch):
    course, _rows = inception_batch
    folder = course.feedback / "patched" / "inception"
    html = (folder / "inception.html").read_text()
    assert "hidden tests: they ran" in html
    for secret in ("BEGIN HIDDEN TESTS", "INCEPTION_MODULE.check", "HANDIN.check", "hidden_ct_test",
                   "load_cases"):
        assert secret not in html, secret
    assert not [p.name for p in folder.iterdir() if p.name.startswith("hidden_")]


def test_no_confinement_means_no_grading_unless_asked(monkeypatch, tmp_path):
    course = tiny_course(tmp_path / "course")
    monkeypatch.setattr(sandbox, "detect", lambda: sandbox.Isolation("none", "bubblewrap (bwrap) is not installed"))
    with pytest.raises(CourseError) as caught:
        grade(course, "tiny", tmp_path / "nothing-imported")
    message = str(caught.value)
    assert "\n" not in message and "bwrap) is not installed" in message
    assert "apt-get install bubblewrap" in message and "--unconfined" in message
    assert not course.submitted.exists(), "refused before importing anything"


def test_cli_without_bubblewrap_refuses_then_grades_when_told(tmp_path):
    """A machine without bwrap on PATH: one-line error; with --unconfined it grades (and says so)."""
    course = tiny_course(tmp_path / "course")
    incoming = tmp_path / "incoming"
    _write(incoming, "good", tiny_submission(course), "tiny.ipynb")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": str(bin_dir), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("DLCOURSE_ROOT", None)
    cmd = [str(bin_dir / "course"), "grade", "tiny", "--from", str(incoming), "--timeout", "120"]
    refused = subprocess.run(cmd, cwd=course.root, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().count("\n") == 0, refused.stderr
    assert refused.stderr.startswith("course: error: cannot confine student code")
    assert "apt-get install bubblewrap" in refused.stderr and "--unconfined" in refused.stderr
    export = tmp_path / "export.csv"
    export.write_text("Student,ID,SIS User ID,SIS Login ID,Section,Tiny (1)\n    Points Possible,,,,,3\n"
                      "\"Good, Gina\",good,,,,\n\"Late, Lou\",lou,,,,\n")
    told = subprocess.run([*cmd, "--unconfined", "--canvas-gradebook", str(export)], cwd=course.root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert told.returncode == 0, told.stderr
    assert "running student code unconfined (--unconfined)" in told.stderr
    assert "Canvas import ('Tiny (1)' filled for 0 student(s))" in told.stdout, told.stdout
    assert "left blank, written answers wait for a TA: Good, Gina (good)" in told.stdout
    assert "left blank, no submission in the gradebook: Late, Lou (lou)" in told.stdout
    with open(course.grades / "tiny.csv") as fh:
        assert {r["student_id"]: r["score"] for r in csv.DictReader(fh)} == {"good": "2"}


def test_demo_says_which_mode_it_grades_in(monkeypatch, capsys):
    from dlcourse.cli.main import _demo_mode

    monkeypatch.setattr(sandbox, "detect", lambda: sandbox.Isolation("none", "bubblewrap (bwrap) is not installed"))
    assert _demo_mode() is True
    said = capsys.readouterr().out
    assert "grading UNCONFINED: bubblewrap (bwrap) is not installed" in said and "apt-get install bubblewrap" in said
    monkeypatch.setattr(sandbox, "detect", lambda: sandbox.Isolation("bubblewrap"))
    assert _demo_mode() is False
    assert "grading confined with bubblewrap" in capsys.readouterr().out
