"""Importing an LMS zip, and the static tampering scan."""

from __future__ import annotations

import zipfile

import pytest
from nbfactory import TINY, make_course

from dlcourse.errors import CourseError
from dlcourse.runner.submissions import import_submissions
from dlcourse.runner.tamper import restore_deleted_tests, scan_notebook, scan_source


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_canvas_zip_maps_ids_versions_and_leftovers(tmp_path):
    course = make_course(tmp_path / "course", {"lstm": TINY})
    download = _zip(tmp_path / "submissions.zip", {
        "doejane_1234_998877_lstm.ipynb": b"old",
        "doejane_1234_998878_lstm-1.ipynb": b"new",
        "doejane_1234_998879_lstm_model-1.keras": b"model",
        "roejohn_LATE_5678_998880_lstm (2).ipynb": b"late",
        "roejohn_LATE_5678_998881_lstm (1).ipynb": b"earlier",
        "smithann_9012_998882_my_attempt.ipynb": b"only",
        "smithann_9012_998883_notes.txt": b"txt",
        "__MACOSX/._doejane_1234_998877_lstm.ipynb": b"junk",
        "readme.pdf": b"?",
    })
    original = download.read_bytes()
    report = import_submissions(course, "lstm", download)
    assert report.students == ["1234", "5678", "9012"]
    assert report.late == ["5678"] and report.names["1234"] == "doejane"
    assert (course.submitted / "1234/lstm/lstm.ipynb").read_bytes() == b"new"
    assert (course.submitted / "1234/lstm/lstm_model.keras").read_bytes() == b"model"
    assert (course.submitted / "5678/lstm/lstm.ipynb").read_bytes() == b"late"
    assert (course.submitted / "9012/lstm/lstm.ipynb").read_bytes() == b"only"
    assert (course.submitted / "9012/lstm/notes.txt").read_bytes() == b"txt"
    assert "doejane_1234_998877_lstm.ipynb: older version of lstm.ipynb, not graded" in report.unplaced
    assert "roejohn_LATE_5678_998881_lstm (1).ipynb: older version of lstm.ipynb, not graded" in report.unplaced
    assert any(line.startswith("readme.pdf: neither") for line in report.unplaced)
    assert "smithann_9012_998882_my_attempt.ipynb -> lstm.ipynb" in report.renamed
    assert download.read_bytes() == original


def test_zip_of_student_folders_and_bad_zips(tmp_path):
    course = make_course(tmp_path / "course", {"a": TINY})
    report = import_submissions(course, "a", _zip(tmp_path / "f.zip", {"class/s1/a.ipynb": b"x"}))
    assert report.students == ["s1"]
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(CourseError, match="is not a zip file"):
        import_submissions(course, "a", tmp_path / "bad.zip")
    with pytest.raises(CourseError, match="holds no submissions"):
        import_submissions(course, "a", _zip(tmp_path / "e.zip", {"stray.txt": b""}))
    (tmp_path / "x.tar").write_bytes(b"")
    with pytest.raises(CourseError, match=r"not a \.zip"):
        import_submissions(course, "a", tmp_path / "x.tar")


@pytest.mark.parametrize(("code", "finding"), [
    ("np.allclose = lambda *a, **k: True", "replaces np.allclose"),
    ("import numpy.testing as npt\nnpt.assert_allclose = print", "replaces npt.assert_allclose"),
    ("import dlcourse.grading.compare as c\nc.assert_matches = None", "replaces c.assert_matches"),
    ("from numpy import testing\ntesting.assert_array_equal = id", "replaces testing.assert_array_equal"),
    ("get_ipython().set_custom_exc((Exception,), print)", "calls get_ipython().set_custom_exc()"),
    ("setattr(np, 'isclose', None)", "calls setattr()"),
    ("data = open('hidden_signal_test.npz', 'rb').read()", "refers to hidden files"),
    ("def allclose(a, b):\n    return True", "redefines allclose"),
])
def test_scan_finds_tampering(code, finding):
    assert any(finding in f for f in scan_source(code, "cell 3")), scan_source(code, "cell 3")


@pytest.mark.parametrize("code", [
    "x = np.ones(3)\nnp.random.seed(0)\nmodel.trainable = False",
    "import matplotlib.pyplot as plt\nplt.rcParams['figure.dpi'] = 80",
    "%matplotlib inline\nresults['lstm'] = 0.9",
    "def f(:\n  broken",
])
def test_scan_leaves_honest_code_alone(code):
    assert scan_source(code, "cell") == []


def test_edited_and_deleted_test_cells_are_found_and_restored():
    from copy import deepcopy

    from dlcourse.runner.notebooks import grade_id

    edited = deepcopy(TINY)
    for cell in edited.cells:
        if grade_id(cell) == "test_double":
            cell.source = "pass"
    assert any("test_double was edited" in f for f in scan_notebook(edited, TINY))
    deleted = deepcopy(TINY)
    deleted.cells = [c for c in deleted.cells if grade_id(c) != "test_double"]
    assert any("test_double was deleted" in f for f in scan_notebook(deleted, TINY))
    assert restore_deleted_tests(deleted, TINY) == ["test_double"]
    assert [grade_id(c) for c in deleted.cells] == [grade_id(c) for c in TINY.cells]
    assert "BEGIN HIDDEN TESTS" not in deleted.cells[2].source, "restored as released"


def test_submission_times_reach_nbgraders_timestamp_file(tmp_path):
    import os

    course = make_course(tmp_path / "course", {"a": TINY})
    download = tmp_path / "sub.zip"
    with zipfile.ZipFile(download, "w") as zf:
        zf.writestr(zipfile.ZipInfo("doejane_1234_1_a.ipynb", date_time=(2026, 3, 1, 23, 59, 58)), b"{}")
        zf.writestr(zipfile.ZipInfo("doejane_1234_2_a_model.keras", date_time=(2026, 3, 1, 10, 0, 0)), b"m")
    import_submissions(course, "a", download)
    assert (course.submitted / "1234/a/timestamp.txt").read_text() == "2026-03-01 23:59:58 UTC"
    folder = tmp_path / "incoming"
    (folder / "s1").mkdir(parents=True)
    (folder / "s1/a.ipynb").write_bytes(b"{}")
    os.utime(folder / "s1/a.ipynb", (1_700_000_000, 1_700_000_000))
    (folder / "s2").mkdir()
    (folder / "s2/a.ipynb").write_bytes(b"{}")
    (folder / "s2/timestamp.txt").write_text("2026-02-02 12:00:00.000000 UTC")
    import_submissions(course, "a", folder)
    assert (course.submitted / "s1/a/timestamp.txt").read_text() == "2023-11-14 22:13:20 UTC"
    assert (course.submitted / "s2/a/timestamp.txt").read_text() == "2026-02-02 12:00:00.000000 UTC", \
        "a time the download carries is kept"


def test_reimport_replaces_a_students_folder_whole_and_leaves_no_staging(tmp_path):
    course = make_course(tmp_path / "course", {"a": TINY})
    first = _zip(tmp_path / "1.zip", {"doejane_1234_1_a.ipynb": b"v1", "doejane_1234_2_notes.txt": b"n",
                                      "roejohn_5678_3_a.ipynb": b"john"})
    import_submissions(course, "a", first)
    (course.submitted / "1234" / "other").mkdir()  # another assignment's folder stays
    second = _zip(tmp_path / "2.zip", {"doejane_1234_4_a-1.ipynb": b"v2"})
    report = import_submissions(course, "a", second)
    assert report.students == ["1234"]
    assert sorted(p.name for p in (course.submitted / "1234" / "a").iterdir()) == ["a.ipynb", "timestamp.txt"]
    assert (course.submitted / "1234" / "a" / "a.ipynb").read_bytes() == b"v2"
    assert (course.submitted / "1234" / "other").is_dir()
    assert (course.submitted / "5678" / "a" / "a.ipynb").read_bytes() == b"john"
    assert sorted(p.name for p in course.root.iterdir() if p.name.startswith(".")) == []
