"""Bring collected submissions into nbgrader's submitted/ folder.

Two sources: a folder of ``<student>/<files>``, or an LMS download as a zip.
The zip follows Canvas's naming, ``<name>_<user id>_<submission id>_<file>``
(``<name>_LATE_<user id>_...`` for late work), and the user id becomes the
student id, so the grades CSV imports back into the LMS. Resubmissions carry
suffixes (``lstm-1.ipynb``, ``lstm (1).ipynb``); the highest one is graded.
A zip may also hold ``<student>/<files>`` folders (one common top folder, such
as ``class/``, is looked through; ``<student>/<assignment>/<files>``, nbgrader's
own layout, is read as the student's folder). Files in subfolders of a
student's folder are placed beside the notebook, by name. The originals are
never modified; every file that cannot be placed is listed.

Everything in the source is the students', so it is checked before it is
believed, and the import is atomic: the whole source is checked and unpacked
into a staging folder beside ``submitted/`` first, and only when all of it
succeeded is each student's folder moved into place. Any problem with the
source as a whole (an entry name that climbs out of its folder, a link, a
special file, more entries or bytes than the limits below, a zip bomb, a file
that cannot be read) stops the import with a one-line ``CourseError`` that names
the entry, and ``submitted/`` is left exactly as it was. A problem with one
student's id or one file's name is listed and the others are imported. In a
folder, symbolic links are never followed and FIFOs, devices and sockets never
opened: they are listed.

The submission time goes where nbgrader reads it, ``timestamp.txt`` beside the
files (formgrader shows it). A ``timestamp.txt`` is believed only where the LMS
or nbgrader wrote it, never from a file the student handed in:

- Canvas zips carry no time file: a Canvas-named ``<name>_<id>_<sub>_timestamp.txt``
  is a file the student uploaded, so it is listed and not imported.
- Folders and ``<student>/<files>`` zips are put together by the TA or by
  nbgrader's exchange (``submit`` writes the file, over any the student had):
  a ``timestamp.txt`` directly in ``<student>/`` or in ``<student>/<assignment>/``
  is believed when it reads as a date and time (nbgrader's format); one anywhere
  else, or one that does not read as a time, is listed and not imported. Where
  an LMS passes students' own files into such folders untouched, remove those
  files or use its Canvas-style download.

Otherwise the time is the newest of the graded files' times (a zip entry's
date, a file's modification time), taken as UTC.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from dlcourse.errors import CourseError
from dlcourse.runner.course import Course
from dlcourse.runner.nbgrader_plugins import is_handin

# --------------------------------------------------------------------------- limits
# All checked before anything is unpacked (on the sizes the source declares) and
# again while unpacking (on the bytes that come out, since a zip header can lie).

#: Entries in one zip, or files and folders in one imported folder. A class of 500
#: handing in a notebook, a model and a few data files each is under 5,000 entries.
MAX_ENTRIES = 20_000
#: Bytes of a zip's central directory, read before the entries are counted: 20,000
#: entries with names of the longest length allowed (MAX_PATH_CHARS) fit in it.
MAX_CENTRAL_DIRECTORY_BYTES = 128 * 2**20
#: One file, unpacked. The largest honest file is a handed-in model: the reference
#: models are under 7 MB; a full-width U-Net (31 M parameters) saved with its Adam
#: state is about 370 MB.
MAX_FILE_BYTES = 512 * 2**20
#: Everything one import unpacks. 500 students at 40 MB each; never more than the
#: disk holds either (see DISK_RESERVE_BYTES).
MAX_TOTAL_BYTES = 20 * 2**30
#: Disk space an import leaves free, so that a full disk is never the import's doing: the
#: gradebook, the feedback and the graders' work folders need room too.
DISK_RESERVE_BYTES = 256 * 2**20
#: Largest expansion of a compressed entry (unpacked bytes per compressed byte), checked
#: on entries over RATIO_FLOOR_BYTES. Measured with deflate: this repository's notebooks,
#: models and .npz files 1.0 to 4.2 times, a Keras training log 12, a stream output made
#: of nothing but progress-bar redraws 340; deflate's ceiling, where zip bombs sit, ~1,030.
MAX_RATIO = 500
#: Below this size an entry's ratio is not checked: a small file of zeros is harmless.
RATIO_FLOOR_BYTES = 2**20
#: Longest path inside a zip, in characters (PATH_MAX is 4,096 bytes; LMS names are < 200).
MAX_PATH_CHARS = 1024
#: Longest file or folder name, in bytes (NAME_MAX on Linux and macOS).
MAX_NAME_BYTES = 255
#: Deepest folder nesting read, in a zip or a folder (a student's folder needs two or three).
MAX_DEPTH = 16
#: Longest student id (LMS user ids are under 20 characters; nbgrader puts it in paths).
MAX_ID_CHARS = 64
#: Longest student name taken from a file name into the gradebook.
MAX_DISPLAY_NAME_CHARS = 100
#: Largest timestamp.txt read (nbgrader's is 30 bytes).
MAX_TIMESTAMP_BYTES = 100
_CHUNK = 2**20

# A usable id: starts with a letter or digit (never '.', '-' or a dot-only name), then
# letters, digits and _ . @ -; no whitespace or control character; length capped.
_STUDENT_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.@-]{{0,{MAX_ID_CHARS - 1}}}")
_CANVAS = re.compile(r"^(?P<name>[^_/]+)_(?:(?P<late>LATE)_)?(?P<uid>\d+)_(?P<sub>\d+)_(?P<file>.+)$")
_RESUBMISSION = re.compile(r"^(?P<stem>.+?)(?:-(?P<dash>\d+)| \((?P<paren>\d+)\))?(?P<ext>\.[A-Za-z0-9]+)$")
_JUNK_FOLDERS = {"__MACOSX", ".ipynb_checkpoints"}
_JUNK_FILES = {".DS_Store", "Thumbs.db"}
# Control characters (C0, DEL, C1): never in a zip entry's path.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Those and the bidirectional overrides that reorder a line: never in a file name we write,
# escaped wherever a name is shown, stripped from names that go to the gradebook.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# nbgrader's timestamp.txt: "2026-02-02 12:00:00.000000 UTC" (and the ISO variants).
_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.\d{1,6})?"
                   r"(?: ?(?:[A-Za-z]{1,6}|[+-]\d\d:?\d\d))?")


@dataclass
class ImportReport:
    students: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # student id -> name in the LMS download


@dataclass
class _Incoming:
    label: str  # where it came from, printable, for the report
    name: str  # file name as handed in (one path component, checked)
    size: int  # its size as the source declares it
    open: Callable[[], BinaryIO]
    modified: datetime | None = None  # when the file was handed in, as far as the download tells
    packed: int | None = None  # its compressed size in a zip, for the ratio check
    trusted_time: bool = False  # a timestamp.txt where the LMS or nbgrader writes one


@dataclass
class _Planned:
    student: str
    files: dict[str, _Incoming]  # name in submitted/<student>/<assignment>/ -> source
    timestamp: str | None


TIMESTAMP = "timestamp.txt"  # nbgrader's name for the submission time


# --------------------------------------------------------------------------- names


def _show(text: str, limit: int = 200) -> str:
    """``text`` for a terminal or a log line: control characters and undecodable bytes escaped."""
    text = _UNSAFE.sub(lambda m: ascii(m.group())[1:-1], text)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def usable_student_id(text: str) -> bool:
    """Whether ``text`` can be a student id (a folder name in nbgrader's paths)."""
    return _STUDENT_ID.fullmatch(text) is not None


def _display_name(text: str) -> str:
    """A name from a file name, as it goes into the gradebook: no control characters, capped."""
    return " ".join(_UNSAFE.sub("", text).split())[:MAX_DISPLAY_NAME_CHARS]


def _name_problem(name: str) -> str | None:
    """Why ``name`` cannot be one file or folder name, or None."""
    if not name:
        return "an empty name"
    if _UNSAFE.search(name):
        return "a control or text-direction character in its name"
    if "/" in name or "\\" in name:
        return "a slash or backslash in its name"
    if set(name) == {"."}:
        return "a name made only of dots"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "a name that is not valid UTF-8"
    if len(encoded) > MAX_NAME_BYTES:
        return f"a name longer than {MAX_NAME_BYTES} bytes"
    return None


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip entry must not be unpacked at all, or None."""
    name = info.orig_filename
    if "\x00" in name or name != info.filename:
        return "a NUL character in its name"
    if len(name) > MAX_PATH_CHARS:
        return f"a name longer than {MAX_PATH_CHARS} characters"
    if _CONTROL.search(name):
        return "a control character in its name"
    if "\\" in name:
        return "a backslash in its name (a Windows path?)"
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    parts = name[:-1].split("/") if name.endswith("/") else name.split("/")
    if len(parts) > MAX_DEPTH:
        return f"a path more than {MAX_DEPTH} folders deep"
    for part in parts:
        if not part:
            return "an empty folder name in its path"
        if set(part) == {"."}:
            return f"{part!r} in its path"
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            return f"a name longer than {MAX_NAME_BYTES} bytes in its path"
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR) or (kind == stat.S_IFDIR and not info.is_dir()):
        return "not a regular file (a device, FIFO or socket)"
    if info.flag_bits & 0x1:
        return "encrypted"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"compressed with method {info.compress_type} (only stored and deflated entries are read)"
    if not info.is_dir():
        if info.file_size > MAX_FILE_BYTES:
            return f"{_mb(info.file_size)} unpacked, over the limit of {_mb(MAX_FILE_BYTES)} per file"
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            return (f"{_mb(info.compress_size)} that unpack to {_mb(info.file_size)}, more than "
                    f"{MAX_RATIO} times (a zip bomb?)")
    return None


def _mb(size: int) -> str:
    return f"{size / 2**20:,.1f} MB" if size < 2**30 else f"{size / 2**30:,.1f} GB"


def _canonical(name: str) -> tuple[str, int]:
    """``lstm-2.ipynb`` -> (``lstm.ipynb``, 2); ``lstm (1).ipynb`` -> (``lstm.ipynb``, 1)."""
    match = _RESUBMISSION.match(name)
    if not match:
        return name, 0
    version = int(match["dash"] or match["paren"] or 0)
    return match["stem"] + match["ext"], version


def _utc(date_time: tuple[int, ...] | float) -> datetime | None:
    """A zip entry's date or a file's mtime as UTC; None where it is not a real time."""
    try:
        if isinstance(date_time, tuple):
            return datetime(*date_time, tzinfo=UTC)
        return datetime.fromtimestamp(date_time, UTC)
    except (ValueError, OverflowError, OSError):
        return None


# --------------------------------------------------------------------------- planning


def _read_timestamp(item: _Incoming) -> str | None:
    """The text of a timestamp.txt the LMS or nbgrader wrote, when it reads as a time."""
    if item.size > MAX_TIMESTAMP_BYTES:
        return None
    try:
        with item.open() as handle:
            text = handle.read(MAX_TIMESTAMP_BYTES + 1).decode("utf-8").strip()
    except Exception:  # unreadable entry or file, not UTF-8: not a time
        return None
    match = _TIME.fullmatch(text)
    if not match or len(text) > MAX_TIMESTAMP_BYTES:
        return None
    try:
        datetime.strptime(f"{match[1]} {match[2]}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return text


def _plan(assignment: str, student: str, files: list[_Incoming], report: ImportReport) -> _Planned:
    """What goes into ``submitted/<student>/<assignment>/``: the latest version of each file."""
    notebook = f"{assignment}.ipynb"
    chosen: dict[str, tuple[int, _Incoming]] = {}
    others: list[_Incoming] = []
    stamps: list[_Incoming] = []
    for item in files:
        if item.name == TIMESTAMP:
            if item.trusted_time:
                stamps.append(item)
            else:
                report.unplaced.append(f"{item.label}: a file named {TIMESTAMP} among the student's "
                                       "files; not imported, not taken as the submission time")
            continue
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
    targets: dict[str, _Incoming] = {}
    for canonical, (_version, item) in sorted(chosen.items()):
        if item.name != canonical:
            report.renamed.append(f"{item.label} -> {canonical}")
        targets[canonical] = item
    for item in others:
        if item.name.endswith(".ipynb"):
            report.unplaced.append(f"{item.label}: extra notebook, not graded")
        elif item.name in targets:
            report.unplaced.append(f"{item.label}: another file named {_show(item.name)} is imported")
        else:
            # Data or helper files a notebook may read stay beside it.
            targets[item.name] = item
    timestamp = None
    for stamp in stamps:
        text = _read_timestamp(stamp)
        if text is None:
            report.unplaced.append(f"{stamp.label}: does not read as a submission time; "
                                   "the files' time is used")
        elif timestamp is None:
            timestamp = text
        else:
            report.unplaced.append(f"{stamp.label}: a second {TIMESTAMP}, not used")
    if timestamp is None:
        times = [item.modified for _v, item in chosen.values() if item.modified]
        if times:
            timestamp = max(times).strftime("%Y-%m-%d %H:%M:%S UTC")
    report.students.append(student)
    return _Planned(student, targets, timestamp)


def _is_junk(parts: list[str] | tuple[str, ...]) -> bool:
    return any(p in _JUNK_FOLDERS for p in parts[:-1]) or parts[-1] in _JUNK_FILES


def _common_folders(paths: list[list[str]], assignment: str) -> int:
    """How many leading folders all ``<...>/<student>/<file>`` paths share above the students'."""
    cut = 0
    while (paths and all(len(p) >= cut + 3 for p in paths) and len({p[cut] for p in paths}) == 1
           and not all(p[cut + 1] == assignment for p in paths)):  # <student>/<assignment>/...
        cut += 1
    return cut


# --------------------------------------------------------------------------- unpacking


def _install(course: Course, assignment: str, source: Path, plans: list[_Planned]) -> None:
    """Unpack every planned file into a staging folder, then move the students' folders in.

    Nothing in ``submitted/`` changes unless everything was unpacked; a failure while
    moving puts back what was moved.
    """
    home = course.submitted.resolve().parent if course.submitted.exists() else course.submitted.parent
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".submitted-import-", dir=home))
    try:
        free = shutil.disk_usage(staging).free
        budget = min(MAX_TOTAL_BYTES, max(free - DISK_RESERVE_BYTES, 0))
        declared = sum(item.size for plan in plans for item in plan.files.values())
        if declared > budget:
            limit = ("the limit" if budget == MAX_TOTAL_BYTES
                     else f"the free disk space less {_mb(DISK_RESERVE_BYTES)}")
            raise CourseError(f"--from: {source} unpacks to {_mb(declared)}, over {limit} "
                              f"({_mb(budget)}); nothing was imported")
        used = 0
        for plan in plans:
            folder = staging / "new" / plan.student
            folder.mkdir(parents=True)
            for target, item in plan.files.items():
                used = _copy(item, folder / target, used, budget, source)
            if plan.timestamp is not None:
                (folder / TIMESTAMP).write_text(plan.timestamp)
        _move_in(course, assignment, source, staging, [plan.student for plan in plans])
    except OSError as exc:
        raise CourseError(f"--from: {source}: unpacking failed ({_show(str(exc))}); "
                          "nothing was imported") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy(item: _Incoming, dest: Path, used: int, budget: int, source: Path) -> int:
    """Stream one file to ``dest``, stopping at the caps whatever its header said; the new total."""

    def refuse(why: str) -> CourseError:
        return CourseError(f"--from: {source}: {item.label}: {why}; nothing was imported")

    written = 0
    try:
        with item.open() as src, open(dest, "xb") as out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > MAX_FILE_BYTES:
                    raise refuse(f"unpacks to more than {_mb(MAX_FILE_BYTES)} (the limit per file)")
                if used + written > budget:
                    raise refuse(f"the import unpacks to more than {_mb(budget)} in all")
                if item.packed is not None and written > RATIO_FLOOR_BYTES and \
                        written > MAX_RATIO * max(item.packed, 1):
                    raise refuse(f"{_mb(item.packed)} unpack to more than {MAX_RATIO} times that "
                                 "(a zip bomb?)")
                out.write(chunk)
    except CourseError:
        raise
    except Exception as exc:  # BadZipFile (bad CRC, header), zlib.error, EOFError, OSError
        raise refuse(f"could not be read ({type(exc).__name__}: {_show(str(exc), 120)})") from None
    return used + written


def _move_in(course: Course, assignment: str, source: Path, staging: Path, students: list[str]) -> None:
    """Replace ``submitted/<student>/<assignment>`` by the staged folders, all or none."""
    undo: list[Callable[[], None]] = []
    old = staging / "old"
    old.mkdir()
    try:
        if not course.submitted.exists():
            course.submitted.mkdir()
            undo.append(course.submitted.rmdir)
        for student in students:
            folder = course.submitted / student
            if not folder.is_dir():
                folder.mkdir()
                undo.append(folder.rmdir)
            dest = folder / assignment
            if os.path.lexists(dest):
                os.rename(dest, old / student)
                undo.append(lambda dest=dest, student=student: os.rename(old / student, dest))
            os.rename(staging / "new" / student, dest)
            undo.append(lambda dest=dest, student=student: os.rename(dest, staging / "new" / student))
    except OSError as exc:
        for step in reversed(undo):
            with contextlib.suppress(OSError):
                step()
        raise CourseError(f"--from: {source}: could not move the submissions into {course.submitted} "
                          f"({_show(str(exc))}); nothing was imported") from None


# --------------------------------------------------------------------------- folders

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _open_beneath(root: Path, parts: tuple[str, ...]) -> BinaryIO:
    """Open ``root/parts...`` for reading without following a link at any step below ``root``."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _O_DIR, dir_fd=fd)
            os.close(fd)
            fd = inner
        handle = os.open(parts[-1], _O_FILE, dir_fd=fd)  # O_NONBLOCK: a FIFO swapped in never blocks
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        raise OSError(f"{'/'.join(parts)} is no longer a regular file")
    return os.fdopen(handle, "rb")


def _scan_folder(root: Path, fd: int, parts: tuple[str, ...], found: list, problems: list,
                 count: list[int]) -> None:
    """Regular files below the open folder ``fd`` (at ``root/parts``), links and specials apart."""
    with os.scandir(fd) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        count[0] += 1
        if count[0] > MAX_ENTRIES:
            raise CourseError(f"--from: {root} holds more than {MAX_ENTRIES:,} files and folders "
                              "(the limit); nothing was imported")
        here = (*parts, entry.name)
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            problems.append((here, "a symbolic link, not followed"))
        elif stat.S_ISDIR(mode):
            if entry.name in _JUNK_FOLDERS:
                continue
            if len(here) > MAX_DEPTH:
                problems.append((here, f"more than {MAX_DEPTH} folders deep, not read"))
                continue
            inner = os.open(entry.name, _O_DIR, dir_fd=fd)
            try:
                _scan_folder(root, inner, here, found, problems, count)
            finally:
                os.close(inner)
        elif stat.S_ISREG(mode):
            if entry.name not in _JUNK_FILES:
                found.append((here, entry.stat(follow_symlinks=False)))
        else:
            problems.append((here, "not a regular file (a FIFO, device or socket), not read"))


def import_folder(course: Course, assignment: str, source: Path) -> ImportReport:
    """Copy ``source/<student>/<files>`` to ``submitted/<student>/<assignment>/``, all or nothing.

    Links are listed, never followed, and FIFOs, devices and sockets are listed, never
    opened (files are opened with ``O_NOFOLLOW`` folder by folder, and checked to be
    regular after opening). A ``timestamp.txt`` directly in ``<student>/`` or in
    ``<student>/<assignment>/`` is taken as the submission time (the TA or nbgrader's
    exchange put the folder together); see the module's docstring.
    """
    source = Path(source)
    report = ImportReport()
    plans: list[_Planned] = []
    count = [0]
    root_fd = -1
    try:
        root_fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        with os.scandir(root_fd) as listing:
            top = sorted((e for e in listing if not e.name.startswith(".")), key=lambda e: e.name)
        for entry in top:
            label = _show(entry.name)
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                report.unplaced.append(f"{label}: a symbolic link, not followed")
                continue
            if stat.S_ISREG(mode):
                report.unplaced.append(f"{label}: not inside a student folder")
                continue
            if not stat.S_ISDIR(mode):
                report.unplaced.append(f"{label}: not a regular file (a FIFO, device or socket), not read")
                continue
            if not usable_student_id(entry.name):
                report.unplaced.append(f"{label}/: not a usable student id")
                continue
            found: list[tuple[tuple[str, ...], os.stat_result]] = []
            problems: list[tuple[tuple[str, ...], str]] = []
            fd = os.open(entry.name, _O_DIR, dir_fd=root_fd)
            try:
                _scan_folder(source, fd, (entry.name,), found, problems, count)
            finally:
                os.close(fd)
            report.unplaced += [f"{_show('/'.join(p))}: {why}" for p, why in problems]
            incoming = []
            for parts, info in found:
                label = _show("/".join(parts))
                problem = _name_problem(parts[-1])
                if problem:
                    report.unplaced.append(f"{label}: {problem}, not imported")
                    continue
                if info.st_size > MAX_FILE_BYTES:
                    raise CourseError(f"--from: {source}: {label}: {_mb(info.st_size)}, over the limit "
                                      f"of {_mb(MAX_FILE_BYTES)} per file; nothing was imported")
                incoming.append(_Incoming(
                    label, parts[-1], info.st_size, lambda parts=parts: _open_beneath(source, parts),
                    _utc(info.st_mtime), trusted_time=parts[1:] in ((TIMESTAMP,), (assignment, TIMESTAMP))))
            plans.append(_plan(assignment, entry.name, incoming, report))
    except OSError as exc:
        raise CourseError(f"--from: {source} could not be read ({_show(str(exc))}); "
                          "nothing was imported") from None
    finally:
        if root_fd >= 0:
            os.close(root_fd)
    if not plans:
        raise CourseError(f"--from: {source} holds no <student>/ folders")
    _install(course, assignment, source, plans)
    return report


# --------------------------------------------------------------------------- zips


def _check_central_directory(source: Path) -> None:
    """Refuse a zip whose table of contents is too big to read, before zipfile reads it."""
    try:
        with open(source, "rb") as handle:
            end = zipfile._EndRecData(handle)  # the end record that zipfile itself reads first
    except (OSError, AttributeError, IndexError, ValueError):
        return  # zipfile says what is wrong
    if not end:
        return
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if entries > MAX_ENTRIES or size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise CourseError(f"--from: {source} lists {entries:,} entries in {_mb(size)} (the limit is "
                          f"{MAX_ENTRIES:,}); nothing was imported")


def _check_entries(source: Path, archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Every entry's name, kind, size and compression, and that no two share their bytes."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise CourseError(f"--from: {source} has {len(infos):,} entries, over the limit of "
                          f"{MAX_ENTRIES:,}; nothing was imported")
    for info in infos:
        problem = _entry_problem(info)
        if problem:
            raise CourseError(f"--from: {source}: entry '{_show(info.orig_filename)}': {problem}; "
                              "nothing was imported")
    # Entries whose data overlap are how non-recursive zip bombs multiply one payload.
    ordered = sorted(infos, key=lambda i: i.header_offset)
    ends = [i.header_offset for i in ordered[1:]] + [getattr(archive, "start_dir", None)]
    for info, end in zip(ordered, ends, strict=True):
        if end is not None and info.header_offset + 30 + info.compress_size > end:
            raise CourseError(f"--from: {source}: entry '{_show(info.filename)}': its data overlap "
                              "the next entry's (a zip bomb?); nothing was imported")
    return infos


def import_zip(course: Course, assignment: str, source: Path) -> ImportReport:
    """Unpack an LMS download (Canvas naming, or ``<student>/<file>`` folders inside the zip).

    All or nothing: every entry is checked before any is unpacked (names, links and
    special files, encryption and compression method, the size limits and the
    compression ratio), the entries are unpacked into a staging folder with the
    same limits applied to the bytes that come out, and the students' folders are
    moved into ``submitted/`` only when all of that succeeded. A Canvas-named
    ``..._timestamp.txt`` is the student's file (listed, not imported); a
    ``timestamp.txt`` in ``<student>/`` or ``<student>/<assignment>/`` is believed
    (see the module's docstring).
    """
    source = Path(source)
    _check_central_directory(source)
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile:
        raise CourseError(f"--from: {source} is not a zip file") from None
    except Exception as exc:  # OSError, NotImplementedError, ValueError, EOFError ...
        raise CourseError(f"--from: {source} could not be read as a zip file "
                          f"({type(exc).__name__}: {_show(str(exc), 120)})") from None
    report = ImportReport()
    with archive:
        infos = _check_entries(source, archive)
        by_student: dict[str, list[_Incoming]] = {}
        folders: list[tuple[zipfile.ZipInfo, list[str]]] = []

        def incoming(info: zipfile.ZipInfo, name: str, trusted_time: bool = False) -> _Incoming:
            return _Incoming(_show(info.filename), name, info.file_size,
                             lambda: archive.open(info), _utc(info.date_time), info.compress_size,
                             trusted_time)

        for info in infos:
            parts = info.filename.split("/")
            if info.is_dir() or _is_junk(parts):
                continue
            match = _CANVAS.match(parts[-1])
            if not match:
                folders.append((info, parts))
                continue
            student, name = match["uid"], match["file"]
            if not usable_student_id(student):
                report.unplaced.append(f"{_show(info.filename)}: not a usable student id")
                continue
            problem = _name_problem(name)
            if problem:
                report.unplaced.append(f"{_show(info.filename)}: {problem}, not imported")
                continue
            report.names[student] = _display_name(match["name"])
            if match["late"] and student not in report.late:
                report.late.append(student)
            by_student.setdefault(student, []).append(incoming(info, name))
        nested = [parts for _info, parts in folders if len(parts) >= 2]
        cut = _common_folders(nested, assignment)
        for info, parts in folders:
            if len(parts) < 2:
                report.unplaced.append(f"{_show(info.filename)}: neither <name>_<id>_<submission>_<file> "
                                       "nor <student>/<file>")
                continue
            student, inside = parts[cut], tuple(parts[cut + 1:])
            if not usable_student_id(student):
                report.unplaced.append(f"{_show(info.filename)}: not a usable student id")
                continue
            trusted = inside in ((TIMESTAMP,), (assignment, TIMESTAMP))
            by_student.setdefault(student, []).append(incoming(info, inside[-1], trusted))
        plans = [_plan(assignment, student, by_student[student], report) for student in sorted(by_student)]
        if not plans:
            raise CourseError(f"--from: {source} holds no submissions")
        _install(course, assignment, source, plans)
    return report


def import_submissions(course: Course, assignment: str, source: str | Path) -> ImportReport:
    """Import a folder or an LMS zip into ``submitted/``, all or nothing."""
    source = Path(source)
    if not source.exists():
        raise CourseError(f"--from: {source} does not exist")
    if source.is_file():
        if source.suffix.lower() != ".zip":
            raise CourseError(f"--from: {source} is a file but not a .zip; give a folder of "
                              "<student>/<files> or an LMS zip download")
        return import_zip(course, assignment, source)
    if not source.is_dir():
        raise CourseError(f"--from: {source} is neither a folder nor a zip file")
    return import_folder(course, assignment, source)

