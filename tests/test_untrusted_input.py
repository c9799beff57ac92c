"""What students hand in is hostile input: LMS zips, folders, notebook JSON and cell code.

Fast (no grading run): each hostile import either stops with one line and leaves
``submitted/`` exactly as it was, or imports the honest submissions beside it and
lists the problem; a hostile notebook is a one-line ``CourseError``; code the tamper
scan cannot parse is a finding, never an exception.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import nbformat
import pytest
from nbfactory import TINY, make_course

from dlcourse.errors import CourseError
from dlcourse.runner import submissions, tamper
from dlcourse.runner.notebooks import read_notebook
from dlcourse.runner.submissions import import_folder, import_submissions
from dlcourse.runner.tamper import (
    restore_deleted_tests,
    scan_notebook,
    scan_source,
    scan_submission,
)

# --------------------------------------------------------------------------- helpers


def _tree(root: Path) -> dict[str, object]:
    """Everything under ``root`` (links not followed): path -> bytes, link target or 'dir'."""
    found: dict[str, object] = {}
    if not root.exists():
        return found
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = path.read_bytes()
    return found


def _entry(name: str, data: bytes, *, declared: int | None = None, mode: int = stat.S_IFREG | 0o644,
           crc: int | None = None, method: int = zipfile.ZIP_DEFLATED, packed: bytes | None = None):
    """One entry for :func:`_raw_zip`: sizes, CRC and mode as given, whatever the data."""
    if packed is None:
        packed = data
        if method == zipfile.ZIP_DEFLATED:
            squeeze = zlib.compressobj(6, zlib.DEFLATED, -15)
            packed = squeeze.compress(data) + squeeze.flush()
    return {"name": name.encode("utf-8"), "packed": packed, "method": method,
            "size": len(data) if declared is None else declared,
            "crc": zlib.crc32(data) if crc is None else crc, "attr": mode << 16}


def _raw_zip(path: Path, entries: list[dict]) -> Path:
    """A zip written byte by byte, so that names, sizes and modes can be what an attacker wants."""
    body, central = b"", b""
    for e in entries:
        offset = len(body)
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0x800, e["method"], 0, 0x5C61, e["crc"],
                            len(e["packed"]), e["size"], len(e["name"]), 0) + e["name"] + e["packed"]
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 0x314, 20, 0x800, e["method"], 0, 0x5C61,
                               e["crc"], len(e["packed"]), e["size"], len(e["name"]), 0, 0, 0, 0,
                               e["attr"], offset) + e["name"]
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(body), 0)
    path.write_bytes(body + central + end)
    return path


def _bomb(gib: int) -> bytes:
    """Raw deflate data that expands to ``gib`` GiB of zeros (about 1 MB per GiB), built in ms."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    mib = bytes(2**20)
    first = squeeze.compress(mib) + squeeze.flush(zlib.Z_FULL_FLUSH)
    again = squeeze.compress(mib) + squeeze.flush(zlib.Z_FULL_FLUSH)
    return first + again * (gib * 1024 - 1) + squeeze.flush()


HONEST = "doejane_1234_900_a.ipynb"


@pytest.fixture
def course(tmp_path):
    """A course whose submitted/ already holds two students: an import must not disturb them."""
    course = make_course(tmp_path / "course", {"a": TINY})
    for student, data in (("1234", b"graded last week"), ("old", b"someone else")):
        folder = course.submitted / student / "a"
        folder.mkdir(parents=True)
        (folder / "a.ipynb").write_bytes(data)
        (folder / "timestamp.txt").write_text("2026-01-01 00:00:00 UTC")
    return course


def _refused(course, source: Path, *needles: str) -> str:
    """Import ``source``: one line, every needle in it, and nothing changed in the course."""
    before = _tree(course.root)
    with pytest.raises(CourseError) as caught:
        import_submissions(course, "a", source)
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message and "\x00" not in message, message
    for needle in needles:
        assert needle in message, message
    assert _tree(course.root) == before, "the course folder changed"
    return message


# --------------------------------------------------------------------------- zips refused whole


@pytest.mark.parametrize(("name", "needle"), [
    ("..", "'..' in its path"),
    ("../x.ipynb", "'..' in its path"),
    ("class/../../1234/a/a.ipynb", "'..' in its path"),
    ("class/.../a.ipynb", "'...' in its path"),
    ("/etc/cron.d/a.ipynb", "an absolute path"),
    ("C:/Users/a.ipynb", "an absolute path"),
    ("..\\..\\evil.ipynb", "a backslash"),
    ("doejane_1234_901_a\x1b[2J.ipynb", "a control character"),
    ("doejane_1234_901_a\x00.ipynb", "a NUL character"),
    ("class//1234/a.ipynb", "an empty folder name"),
    ("doejane_1234_901_" + "x" * 300 + ".ipynb", "longer than 255 bytes"),
    ("/".join(["d"] * 20) + "/a.ipynb", "folders deep"),
])
def test_zip_with_a_bad_entry_name_is_refused_whole(course, tmp_path, name, needle):
    download = _raw_zip(tmp_path / "s.zip", [_entry(HONEST, b"new"), _entry(name, b"x")])
    message = _refused(course, download, needle, "nothing was imported", "entry '")
    if "\x1b" in name:
        assert "\\x1b" in message, "the name is shown escaped"


@pytest.mark.parametrize(("mode", "needle"), [
    (stat.S_IFLNK | 0o777, "a symbolic link"),
    (stat.S_IFIFO | 0o644, "not a regular file"),
    (stat.S_IFCHR | 0o644, "not a regular file"),
])
def test_zip_with_a_link_or_special_entry_is_refused(course, tmp_path, mode, needle):
    download = _raw_zip(tmp_path / "s.zip", [
        _entry(HONEST, b"new"), _entry("doejane_1234_901_notes.txt", b"/etc/shadow", mode=mode)])
    _refused(course, download, "doejane_1234_901_notes.txt", needle)


def test_zip_bomb_with_an_honest_header_is_refused_before_unpacking(course, tmp_path):
    packed = _bomb(3)  # 3 GiB of zeros in 3 MB
    assert len(packed) < 4 * 2**20
    download = _raw_zip(tmp_path / "s.zip", [
        _entry(HONEST, b"new"),
        _entry("roejohn_5678_902_a_model.keras", b"", packed=packed, declared=3 * 2**30, crc=0)])
    _refused(course, download, "roejohn_5678_902_a_model.keras", "3.0 GB unpacked", "per file")


def test_zip_bomb_with_a_lying_header_stops_while_unpacking(course, tmp_path):
    # The header says 1 kB; the data inflate to 3 GiB. Nothing past the declared size is
    # ever produced, and the mismatch is one line.
    download = _raw_zip(tmp_path / "s.zip", [
        _entry(HONEST, b"new"),
        _entry("roejohn_5678_902_a_model.keras", b"", packed=_bomb(3), declared=1000, crc=0)])
    _refused(course, download, "roejohn_5678_902_a_model.keras", "could not be read", "BadZipFile")


def test_highly_compressed_entry_is_refused_as_a_bomb(course, tmp_path):
    download = _raw_zip(tmp_path / "s.zip", [
        _entry(HONEST, b"new"), _entry("roejohn_5678_902_data.csv", bytes(16 * 2**20))])
    _refused(course, download, "roejohn_5678_902_data.csv", f"more than {submissions.MAX_RATIO} times",
             "zip bomb")


def test_overlapping_entries_are_refused(course, tmp_path):
    # Two central-directory records pointing at the same bytes: how non-recursive bombs multiply.
    download = _raw_zip(tmp_path / "s.zip", [_entry("doejane_1234_900_a.ipynb", b"x" * 100),
                                             _entry("doejane_1234_900_b.ipynb", b"x" * 100)])
    data = bytearray(download.read_bytes())
    second = data.rindex(b"PK\x01\x02")
    data[second + 42:second + 46] = struct.pack("<L", 0)
    download.write_bytes(bytes(data))
    _refused(course, download, "overlap")


def test_streaming_stops_at_the_cap_whatever_the_source_declared(tmp_path):
    lying = submissions._Incoming("x/a.ipynb", "a.ipynb", 10, lambda: io.BytesIO(bytes(3 * 2**20)),
                                  packed=None)
    original = submissions.MAX_FILE_BYTES
    try:
        submissions.MAX_FILE_BYTES = 2**20
        with pytest.raises(CourseError, match=r"unpacks to more than 1\.0 MB"):
            submissions._copy(lying, tmp_path / "out", 0, 2**30, tmp_path / "s.zip")
    finally:
        submissions.MAX_FILE_BYTES = original
    assert (tmp_path / "out").stat().st_size <= 2**20
    with pytest.raises(CourseError, match=r"more than 2\.0 MB in all"):
        submissions._copy(lying, tmp_path / "out2", 2**20, 2 * 2**20, tmp_path / "s.zip")


def test_too_many_entries_and_too_many_bytes(course, tmp_path, monkeypatch):
    download = _raw_zip(tmp_path / "many.zip", [_entry(f"s{i}/a.ipynb", b"{}") for i in range(60)])
    monkeypatch.setattr(submissions, "MAX_ENTRIES", 50)
    _refused(course, download, "60 entries", "50")
    monkeypatch.setattr(submissions, "MAX_ENTRIES", 20_000)
    monkeypatch.setattr(submissions, "MAX_TOTAL_BYTES", 3 * 2**20)
    big = _raw_zip(tmp_path / "big.zip", [_entry(f"s{i}/a.ipynb", os.urandom(2**20)) for i in range(5)])
    _refused(course, big, "unpacks to 5.0 MB", "over the limit")


def test_failure_late_in_the_unpacking_leaves_nothing_behind(course, tmp_path):
    # Students 1234 and 5678 unpack fine; 9999's entry has a wrong CRC, found only at its end.
    download = _raw_zip(tmp_path / "s.zip", [
        _entry(HONEST, b"new"), _entry("roejohn_5678_901_a.ipynb", b"fine"),
        _entry("zed_9999_902_a.ipynb", b"corrupt" * 100, crc=1)])
    _refused(course, download, "zed_9999_902_a.ipynb", "CRC")
    assert not list(course.root.glob(".submitted-import-*")), "the staging folder is removed"


def test_cli_prints_one_line_for_a_hostile_zip(course, tmp_path, capsys):
    from dlcourse.errors import run_command

    download = _raw_zip(tmp_path / "s.zip", [_entry(HONEST, b"new"), _entry("../../x", b"x")])
    assert run_command(lambda: import_submissions(course, "a", download) and 0) == 1
    err = capsys.readouterr().err
    assert err.startswith("course: error: --from: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- zips imported, problems listed


def test_forged_canvas_timestamp_is_the_students_file_not_the_time(course, tmp_path):
    download = tmp_path / "s.zip"
    with zipfile.ZipFile(download, "w") as zf:
        zf.writestr(zipfile.ZipInfo(HONEST, date_time=(2026, 3, 2, 10, 0, 0)), b"late work")
        zf.writestr(zipfile.ZipInfo("doejane_1234_901_timestamp.txt", date_time=(2026, 3, 2, 10, 0, 0)),
                    b"2026-03-01 12:00:00 UTC")  # before the deadline, says the student
        zf.writestr(zipfile.ZipInfo("doejane_1234_902_timestamp (1).txt"), b"2026-03-01 12:00:00 UTC")
    report = import_submissions(course, "a", download)
    folder = course.submitted / "1234" / "a"
    assert sorted(p.name for p in folder.iterdir()) == ["a.ipynb", "timestamp (1).txt", "timestamp.txt"]
    assert (folder / "timestamp.txt").read_text() == "2026-03-02 10:00:00 UTC", "the entry's time, not the file"
    assert (folder / "a.ipynb").read_bytes() == b"late work"
    assert ("doejane_1234_901_timestamp.txt: a file named timestamp.txt among the student's files; "
            "not imported, not taken as the submission time") in report.unplaced
    assert (course.submitted / "old" / "a" / "a.ipynb").read_bytes() == b"someone else"


def test_timestamps_in_folder_zips_are_believed_only_where_nbgrader_writes_them(course, tmp_path):
    download = tmp_path / "s.zip"
    with zipfile.ZipFile(download, "w") as zf:
        zf.writestr(zipfile.ZipInfo("class/s1/a/a.ipynb", date_time=(2026, 3, 2, 10, 0, 0)), b"s1")
        zf.writestr("class/s1/a/timestamp.txt", b"2026-03-01 09:00:00.000000 UTC")
        zf.writestr(zipfile.ZipInfo("class/s2/a.ipynb", date_time=(2026, 3, 2, 10, 0, 0)), b"s2")
        zf.writestr("class/s2/work/timestamp.txt", b"2020-01-01 00:00:00 UTC")  # not where nbgrader writes
        zf.writestr(zipfile.ZipInfo("class/s3/a.ipynb", date_time=(2026, 3, 2, 10, 0, 0)), b"s3")
        zf.writestr("class/s3/timestamp.txt", b"2026-01-01 00:00:00 /etc/passwd")  # not a time
    report = import_submissions(course, "a", download)
    assert report.students == ["s1", "s2", "s3"]
    stamp = {s: (course.submitted / s / "a" / "timestamp.txt").read_text() for s in report.students}
    assert stamp == {"s1": "2026-03-01 09:00:00.000000 UTC", "s2": "2026-03-02 10:00:00 UTC",
                     "s3": "2026-03-02 10:00:00 UTC"}
    assert any(line.startswith("class/s2/work/timestamp.txt: a file named timestamp.txt")
               for line in report.unplaced), report.unplaced
    assert any(line.startswith("class/s3/timestamp.txt: does not read as a submission time")
               for line in report.unplaced), report.unplaced
    assert sorted(p.name for p in (course.submitted / "s2" / "a").iterdir()) == ["a.ipynb", "timestamp.txt"]


def test_bad_student_ids_are_listed_and_the_others_imported(course, tmp_path):
    long_id = "x" * 65
    entries = {"class/s1/a.ipynb": b"1", "class/s2/a.ipynb": b"2", "class/-rf/a.ipynb": b"dash",
               "class/.hidden/a.ipynb": b"dot", "class/a b/a.ipynb": b"space",
               f"class/{long_id}/a.ipynb": b"long", "doejane_" + "9" * 70 + "_1_a.ipynb": b"uid",
               "class/s1/sub/data.csv": b"nested, not a student"}
    download = tmp_path / "s.zip"
    with zipfile.ZipFile(download, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    before = _tree(course.submitted)
    report = import_submissions(course, "a", download)
    assert report.students == ["s1", "s2"]
    for bad in ("class/-rf/a.ipynb", "class/.hidden/a.ipynb", "class/a b/a.ipynb", f"class/{long_id}/a.ipynb",
                "doejane_" + "9" * 70 + "_1_a.ipynb"):
        assert f"{bad}: not a usable student id" in report.unplaced, report.unplaced
    after = _tree(course.submitted)
    assert {k: v for k, v in after.items() if not k.startswith(("s1", "s2"))} == before
    assert sorted(k for k in after if k.startswith(("s1", "s2")) and after[k] != "dir") == \
        ["s1/a/a.ipynb", "s1/a/data.csv", "s1/a/timestamp.txt", "s2/a/a.ipynb", "s2/a/timestamp.txt"]


def test_bad_characters_in_a_canvas_file_name_are_listed(course, tmp_path):
    download = _raw_zip(tmp_path / "s.zip", [
        _entry(HONEST, b"new"),
        _entry("doejane_1234_901_notes\u202egpj.txt", b"x"),  # a right-to-left override
        _entry("doejane_1234_902_..", b"x"),
        _entry("evil\u202e\u2066name_5678_903_a.ipynb", b"5678's")])
    report = import_submissions(course, "a", download)
    assert report.students == ["1234", "5678"]
    assert (course.submitted / "1234/a/a.ipynb").read_bytes() == b"new"
    assert "doejane_1234_901_notes\\u202egpj.txt: a control or text-direction character in its name, " \
           "not imported" in report.unplaced
    assert "doejane_1234_902_..: a name made only of dots, not imported" in report.unplaced
    assert report.names["5678"] == "evilname", "no control characters reach the gradebook"
    assert sorted(p.name for p in (course.submitted / "1234/a").iterdir()) == ["a.ipynb", "timestamp.txt"]


def test_display_names_are_capped_and_cleaned():
    assert submissions._display_name("doe\x07\u202ejane" + "x" * 500) == ("doejane" + "x" * 500)[:100]
    for good in ("1234", "s1", "jane.doe@uni.nl", "a" * 64):
        assert submissions.usable_student_id(good), good
    for bad in (".", "..", "-rf", ".hidden", "a b", "a\n", "a\tb", "a" * 65, "", "*", "a/b", "é"):
        assert not submissions.usable_student_id(bad), bad


# --------------------------------------------------------------------------- folders


def test_folder_import_never_follows_links_or_opens_fifos(course, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the TA's secret")
    (outside / "a.ipynb").write_text("not a student")
    incoming = tmp_path / "in"
    (incoming / "s1").mkdir(parents=True)
    (incoming / "s1" / "a.ipynb").write_text("s1")
    (incoming / "s1" / "notes.txt").symlink_to(outside / "secret.txt")
    (incoming / "s1" / "data").symlink_to(outside, target_is_directory=True)
    os.mkfifo(incoming / "s1" / "pipe")
    (incoming / "s1" / "evil\x1b[2J.txt").write_text("x")
    (incoming / "s2").mkdir()
    (incoming / "s2" / "a.ipynb").write_text("s2")
    (incoming / "s3").symlink_to(outside, target_is_directory=True)
    os.mkfifo(incoming / "fifo")
    report = import_folder(course, "a", incoming)
    assert report.students == ["s1", "s2"]
    assert sorted(p.name for p in (course.submitted / "s1" / "a").iterdir()) == ["a.ipynb", "timestamp.txt"]
    assert "s1/notes.txt: a symbolic link, not followed" in report.unplaced
    assert "s1/data: a symbolic link, not followed" in report.unplaced
    assert "s1/pipe: not a regular file (a FIFO, device or socket), not read" in report.unplaced
    assert "s3: a symbolic link, not followed" in report.unplaced
    assert "fifo: not a regular file (a FIFO, device or socket), not read" in report.unplaced
    assert "s1/evil\\x1b[2J.txt: a control or text-direction character in its name, not imported" \
        in report.unplaced
    assert "the TA's secret" not in str(_tree(course.submitted))
    assert not (course.submitted / "s3").exists()


def test_folder_import_refuses_a_huge_file_whole(course, tmp_path):
    incoming = tmp_path / "in"
    (incoming / "s1").mkdir(parents=True)
    (incoming / "s1" / "a.ipynb").write_text("s1")
    (incoming / "s2").mkdir()
    with open(incoming / "s2" / "a_model.keras", "wb") as handle:
        handle.truncate(600 * 2**20)  # sparse: nothing is written to disk
    _refused(course, incoming, "s2/a_model.keras", "600.0 MB", "per file", "nothing was imported")


def test_folder_import_timestamp_rules(course, tmp_path):
    incoming = tmp_path / "in"
    for student in ("s1", "s2"):
        (incoming / student / "a").mkdir(parents=True)
        (incoming / student / "a" / "a.ipynb").write_text(student)
        os.utime(incoming / student / "a" / "a.ipynb", (1_700_000_000, 1_700_000_000))
    (incoming / "s1" / "a" / "timestamp.txt").write_text("2026-02-02 12:00:00.000000 UTC")
    (incoming / "s2" / "a" / "sub").mkdir()
    (incoming / "s2" / "a" / "sub" / "timestamp.txt").write_text("2020-01-01 00:00:00 UTC")
    report = import_folder(course, "a", incoming)
    assert (course.submitted / "s1/a/timestamp.txt").read_text() == "2026-02-02 12:00:00.000000 UTC"
    assert (course.submitted / "s2/a/timestamp.txt").read_text() == "2023-11-14 22:13:20 UTC"
    assert any(line.startswith("s2/a/sub/timestamp.txt: a file named timestamp.txt") for line in report.unplaced)


# --------------------------------------------------------------------------- notebooks


def _notebook_json(cells: int = 1, source: str = "x = 1") -> str:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for _ in range(cells)])
    return nbformat.writes(nb)


def test_read_notebook_refuses_deep_json_cheaply(tmp_path):
    path = tmp_path / "deep.ipynb"
    path.write_text('{"cells": [], "metadata": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}, "
                    '"nbformat": 4, "nbformat_minor": 5}')
    with pytest.raises(CourseError, match=r"deep\.ipynb is not a valid notebook \(JSON nested deeper than 100"):
        read_notebook(path)
    # Brackets inside strings are text, not nesting.
    path.write_text(_notebook_json(source="x = " + "[" * 5000 + "\\\"" + "{" * 5000))
    assert read_notebook(path).cells[0].source.startswith("x = [[[")


def test_read_notebook_turns_recursion_into_a_course_error(tmp_path, monkeypatch):
    from dlcourse.runner import notebooks

    monkeypatch.setattr(notebooks, "MAX_JSON_DEPTH", 10**9)  # let the parser meet it
    path = tmp_path / "deep.ipynb"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CourseError, match=r"not a valid notebook \(RecursionError"):
        read_notebook(path)


def test_read_notebook_size_cells_and_source_caps(tmp_path):
    huge = tmp_path / "huge.ipynb"
    with open(huge, "wb") as handle:
        handle.truncate(10 * 2**30)  # sparse 10 GiB: refused by its size, never read
    with pytest.raises(CourseError, match=r"huge\.ipynb is not a valid notebook \(larger than 50 MB: 10,240 MB\)"):
        read_notebook(huge)
    many = tmp_path / "many.ipynb"
    many.write_text(_notebook_json(cells=10_001, source=""))
    with pytest.raises(CourseError, match=r"not a valid notebook \(10,001 cells, over the limit of 10,000\)"):
        read_notebook(many)
    long = tmp_path / "long.ipynb"
    long.write_text(_notebook_json(source="#" * 2_000_001))
    with pytest.raises(CourseError, match=r"cell 1 has 2,000,001 characters of source"):
        read_notebook(long)
    digits = tmp_path / "digits.ipynb"
    digits.write_text('{"cells": [], "metadata": {"n": ' + "9" * 5000 + '}, "nbformat": 4, "nbformat_minor": 5}')
    with pytest.raises(CourseError, match=r"not a valid notebook \(not JSON"):
        read_notebook(digits)
    fifo = tmp_path / "fifo.ipynb"
    os.mkfifo(fifo)
    with pytest.raises(CourseError, match="notebook not found"):
        read_notebook(fifo)  # and does not hang
    fine = tmp_path / "fine.ipynb"
    fine.write_text(_notebook_json(cells=3))
    assert len(read_notebook(fine).cells) == 3


# --------------------------------------------------------------------------- tamper scan

DEEP_UNARY = "x = " + "-" * 5000 + "1"  # 5,000-deep: the AST constructor raises RecursionError
DEEP_LAMBDA = "f = " + "lambda: " * 5000 + "1"  # the parser raises MemoryError


@pytest.mark.parametrize(("code", "error"), [(DEEP_UNARY, "RecursionError"), (DEEP_LAMBDA, "MemoryError")])
def test_scan_source_flags_what_it_cannot_parse(code, error):
    assert scan_source(code, "cell 7") == [f"cell 7 could not be scanned ({error}): flagged for review"]


def test_scan_source_survives_deep_chains_and_long_cells(monkeypatch):
    chain = "np" + ".a" * 2000 + " = 1"  # parses; unparsing it would recurse too deep
    assert scan_source(chain, "c") == ["c: replaces ? (monkeypatching)"]
    calls = "f" + "()" * 2000 + ".x = 1"  # the root of the target is found by a loop
    assert scan_source(calls, "c") == []
    monkeypatch.setattr(tamper, "MAX_SCAN_CHARS", 100)
    assert scan_source("x = 1\n" * 50, "cell 2") == [
        "cell 2 could not be scanned (300 characters, over the 100 parsed): flagged for review"]


def _submission(answer: str) -> nbformat.NotebookNode:
    """TINY as released (hidden tests removed), with ``answer`` in the solution cell."""
    nb = tamper.released_view(TINY)
    nb.cells[1].source = answer
    return nb


def test_scans_flag_a_deep_answer_cell_and_agree(tmp_path):
    source = tmp_path / "source.ipynb"
    nbformat.write(TINY, source)
    deep = _submission("def double(x):\n    return 2 * x\n\n" + DEEP_UNARY)
    nbformat.write(deep, tmp_path / "deep.ipynb")
    expected = ["double could not be scanned (RecursionError): flagged for review"]
    assert scan_notebook(deep, TINY) == expected
    assert scan_submission(tmp_path / "deep.ipynb", source) == expected
    tampered = _submission("import numpy as np\nnp.allclose = lambda *a, **k: True\ndef double(x):\n    return 0")
    tampered.cells[2].source = "pass"  # the test cell edited
    del tampered.cells[3]
    nbformat.write(tampered, tmp_path / "tampered.ipynb")
    findings = scan_notebook(tampered, TINY)
    assert findings == ["double: replaces np.allclose (monkeypatching)",
                        "test cell test_double was edited (the original was restored for grading)"]
    assert scan_submission(tmp_path / "tampered.ipynb", source) == findings
    honest = _submission("def double(x):\n    return 2 * x")
    nbformat.write(honest, tmp_path / "honest.ipynb")
    assert scan_submission(tmp_path / "honest.ipynb", source) == scan_notebook(honest, TINY) == []


def test_scan_notebook_flags_the_cells_left_when_its_time_is_spent(monkeypatch):
    nb = _submission("def double(x):\n    return 2 * x")
    monkeypatch.setattr(tamper, "SCAN_BUDGET_S", 0.0)
    assert scan_notebook(nb, TINY) == [
        "2 cells from setup on could not be scanned (the scan's 0 s were spent): flagged for review"]


def test_scan_submission_never_raises(tmp_path, monkeypatch):
    source = tmp_path / "source.ipynb"
    nbformat.write(TINY, source)
    (tmp_path / "cut.ipynb").write_text('{"cells": [')
    assert scan_submission(tmp_path / "cut.ipynb", source) == [
        "the notebook could not be scanned (cut.ipynb is not a valid notebook (not JSON: cut off or "
        "corrupted)): flagged for review"]
    assert scan_submission(tmp_path / "missing.ipynb", source)[0].startswith("the notebook could not be scanned")
    nbformat.write(_submission("def double(x):\n    return 2 * x"), tmp_path / "s.ipynb")
    monkeypatch.setattr(tamper, "SCAN_TIMEOUT_S", 0.01)
    assert scan_submission(tmp_path / "s.ipynb", source) == [
        "the notebook could not be scanned (the scan took longer than 0.01 s): flagged for review"]


def test_scan_submission_holds_its_process_to_the_memory_limit(tmp_path, monkeypatch):
    source = tmp_path / "source.ipynb"
    nbformat.write(TINY, source)
    # 325 kB of code peaks at 110 MB of address space (measured): over 64 MB, under the default 2 GiB.
    body = "\n".join(f"y{i} = np.mean(a[{i}:{i} + 3] * 2.0) + f(b, c={i})" for i in range(6000))
    nbformat.write(_submission("def double(x):\n    return 2 * x\n" + body), tmp_path / "big.ipynb")
    assert scan_submission(tmp_path / "big.ipynb", source) == []
    monkeypatch.setattr(tamper, "SCAN_MEMORY_BYTES", 64 * 2**20)
    assert scan_submission(tmp_path / "big.ipynb", source) == [
        "double could not be scanned (MemoryError): flagged for review"]


def test_hostile_nbgrader_metadata_does_not_break_the_scan():
    nb = _submission("def double(x):\n    return 2 * x")
    nb.cells[0].metadata["nbgrader"] = "not a mapping"
    nb.cells[1].metadata["nbgrader"] = {"grade_id": ["unhashable"]}
    nb.cells[2].metadata["nbgrader"]["grade_id"] = "test_\x1b[2Jdouble"
    findings = scan_notebook(nb, TINY)
    assert "test cell test_double was deleted (it was restored for grading)" in findings
    assert all("\x1b" not in f for f in findings)
    assert restore_deleted_tests(nb, TINY) == ["test_double"]

