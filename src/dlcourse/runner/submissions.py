"""Bring collected submissions into nbgrader's submitted/ folder.

Two sources: a folder of ``<student>/<files>``, or an LMS download as a zip.
The zip follows Canvas's naming, ``<name>_<user id>_<submission id>_<file>``
(``<name>_LATE_<user id>_...`` for late work), and the user id becomes the
student id, so the grades CSV imports back into the LMS. Resubmissions carry
suffixes (``lstm-1.ipynb``, ``lstm (1).ipynb``); the highest one is graded.
The originals are never modified; every file that cannot be placed is listed.

The submission time goes where nbgrader reads it, ``timestamp.txt`` beside the
files (formgrader shows it): one the download carries is kept, otherwise the
newest time of the graded files (a zip entry's date, a file's modification
time), taken as UTC.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from dlcourse.errors import CourseError
from dlcourse.runner.course import Course
from dlcourse.runner.nbgrader_plugins import is_handin

_STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
_CANVAS = re.compile(r"^(?P<name>[^_/]+)_(?:(?P<late>LATE)_)?(?P<uid>\d+)_(?P<sub>\d+)_(?P<file>.+)$")
_RESUBMISSION = re.compile(r"^(?P<stem>.+?)(?:-(?P<dash>\d+)| \((?P<paren>\d+)\))?(?P<ext>\.[A-Za-z0-9]+)$")
_JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db", ".ipynb_checkpoints/")


@dataclass
class ImportReport:
    students: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # student id -> name in the LMS download


@dataclass
class _Incoming:
    label: str  # where it came from, for the report
    name: str  # file name as handed in
    read: object  # () -> bytes
    modified: datetime | None = None  # when the file was handed in, as far as the download tells


TIMESTAMP = "timestamp.txt"  # nbgrader's name for the submission time


def _canonical(name: str) -> tuple[str, int]:
    """``lstm-2.ipynb`` -> (``lstm.ipynb``, 2); ``lstm (1).ipynb`` -> (``lstm.ipynb``, 1)."""
    match = _RESUBMISSION.match(name)
    if not match:
        return name, 0
    version = int(match["dash"] or match["paren"] or 0)
    return match["stem"] + match["ext"], version


def _place(course: Course, assignment: str, student: str, files: list[_Incoming], report: ImportReport) -> None:
    """Write one student's files to ``submitted/<student>/<assignment>/``, latest version of each."""
    notebook = f"{assignment}.ipynb"
    chosen: dict[str, tuple[int, _Incoming]] = {}
    others: list[_Incoming] = []
    for item in files:
        canonical, version = _canonical(item.name)
        if canonical == notebook or is_handin(canonical):
            if canonical in chosen:
                old_version, old = chosen[canonical]
                newer, older = (item, old) if version > old_version else (old, item)
                report.unplaced.append(f"{older.label}: older version of {canonical}, not graded")
                chosen[canonical] = (max(version, old_version), newer)
            else:
                chosen[canonical] = (version, item)
        else:
            others.append(item)
    loose_notebooks = [i for i in others if i.name.endswith(".ipynb")]
    if notebook not in chosen and len(loose_notebooks) == 1:
        chosen[notebook] = (0, loose_notebooks[0])
        others.remove(loose_notebooks[0])
    dest = course.submitted / student / assignment
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for canonical, (_version, item) in sorted(chosen.items()):
        if item.name != canonical:
            report.renamed.append(f"{item.label} -> {canonical}")
        (dest / canonical).write_bytes(item.read())
    times = [item.modified for _v, item in chosen.values() if item.modified]
    if times and not any(item.name == TIMESTAMP for item in others):
        (dest / TIMESTAMP).write_text(max(times).strftime("%Y-%m-%d %H:%M:%S UTC"))
    for item in others:
        if item.name.endswith(".ipynb"):
            report.unplaced.append(f"{item.label}: extra notebook, not graded")
        else:
            # Data or helper files a notebook may read stay beside it.
            (dest / item.name).write_bytes(item.read())
    report.students.append(student)


def import_folder(course: Course, assignment: str, source: Path) -> ImportReport:
    """Copy ``source/<student>/<files>`` to ``submitted/<student>/<assignment>/``."""
    report = ImportReport()
    for folder in sorted(p for p in source.iterdir() if not p.name.startswith(".")):
        if not folder.is_dir():
            report.unplaced.append(f"{folder.name}: not inside a student folder")
            continue
        if not _STUDENT_ID.match(folder.name):
            report.unplaced.append(f"{folder.name}/: not a usable student id")
            continue
        files = sorted(p for p in folder.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts)
        incoming = [_Incoming(f"{folder.name}/{p.relative_to(folder)}", p.name, p.read_bytes,
                              datetime.fromtimestamp(p.stat().st_mtime, UTC)) for p in files]
        _place(course, assignment, folder.name, incoming, report)
    if not report.students:
        raise CourseError(f"--from: {source} holds no <student>/ folders")
    return report


def import_zip(course: Course, assignment: str, source: Path) -> ImportReport:
    """Unpack an LMS download (Canvas naming, or ``<student>/<file>`` folders inside the zip)."""
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile:
        raise CourseError(f"--from: {source} is not a zip file") from None
    report = ImportReport()
    by_student: dict[str, list[_Incoming]] = {}
    with archive:
        for info in archive.infolist():
            if info.is_dir() or any(j in info.filename or info.filename.endswith(j) for j in _JUNK):
                continue
            path = PurePosixPath(info.filename)
            match = _CANVAS.match(path.name)
            if match:
                student = match["uid"]
                report.names[student] = match["name"]
                if match["late"] and student not in report.late:
                    report.late.append(student)
                name = match["file"]
            elif len(path.parts) >= 2 and _STUDENT_ID.match(path.parts[-2]):
                student, name = path.parts[-2], path.name
            else:
                report.unplaced.append(f"{info.filename}: neither <name>_<id>_<submission>_<file> "
                                       "nor <student>/<file>")
                continue
            by_student.setdefault(student, []).append(
                _Incoming(info.filename, name, lambda info=info: archive.read(info),
                          datetime(*info.date_time, tzinfo=UTC)))
        for student in sorted(by_student):
            _place(course, assignment, student, by_student[student], report)
    if not report.students:
        raise CourseError(f"--from: {source} holds no submissions")
    return report


def import_submissions(course: Course, assignment: str, source: str | Path) -> ImportReport:
    """Import a folder or an LMS zip into ``submitted/``."""
    source = Path(source)
    if not source.exists():
        raise CourseError(f"--from: {source} does not exist")
    if source.is_file():
        if source.suffix.lower() != ".zip":
            raise CourseError(f"--from: {source} is a file but not a .zip; give a folder of "
                              "<student>/<files> or an LMS zip download")
        return import_zip(course, assignment, source)
    return import_folder(course, assignment, source)
