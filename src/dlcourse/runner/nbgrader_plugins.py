"""Small nbgrader extensions, each with one job, wired in by nbgrader_config.py."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from nbgrader.preprocessors import OverwriteCells, SaveAutoGrades
from traitlets import Bool

from dlcourse.runner.repeat_servers import pool

#: Files beside a source notebook that students never see.
HIDDEN_PATTERNS: tuple[str, ...] = ("hidden_*",)
#: Trained models students hand in. The instructor's reference model sits beside
#: the source notebook under the same name; it must never be released, and never
#: replace (or stand in for) a student's own file during autograding.
HANDIN_PATTERNS: tuple[str, ...] = ("*_model.keras",)
#: A practical's mutant catalogue beside its source notebook: `course check` reads it; no
#: release, autograde or feedback carries it (dlcourse.authoring.practical).
CATALOGUE_FILE = "mutants.py"


def environment_bin_on_path() -> None:
    """nbgrader shells out to `alembic`: make the running environment's bin/ findable
    even when the virtual environment is not activated."""
    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def is_hidden(name: str) -> bool:
    """True for a file name that must stay out of releases and feedback."""
    return any(fnmatch.fnmatch(name, pattern) for pattern in HIDDEN_PATTERNS)


def is_handin(name: str) -> bool:
    """True for a file name of a handed-in trained model."""
    return any(fnmatch.fnmatch(name, pattern) for pattern in HANDIN_PATTERNS)


def hidden_files(folder: Path) -> list[Path]:
    """Hidden files directly in (or below) ``folder``, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_hidden(p.name))


def handin_files(folder: Path) -> list[Path]:
    """Handed-in model files directly in ``folder`` (regular files, never links), sorted."""
    return sorted(p for p in Path(folder).glob("*") if is_handin(p.name) and p.is_file() and not p.is_symlink())


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``, opened without
    following a link (OSError or ValueError otherwise). Files that came from student code or a
    submission are read this way only, so that a link or a sparse giant reads nothing."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{Path(path).name} is not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(f"{Path(path).name} is larger than {max_bytes} bytes")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ValueError(f"{Path(path).name} is larger than {max_bytes} bytes")
        return data
    finally:
        os.close(fd)


#: A handed-in model: far above any model the practicals ask for.
MAX_HANDIN_BYTES = 512 << 20


#: (db_url, assignment, student) -> the submission's time in the gradebook before nbgrader's
#: autograde updated it: how :class:`KeepHandGrades` tells a resubmission from a regrade.
_TIMES_BEFORE: dict[tuple[str, str, str], object] = {}


def _submission_time(db_url: str, assignment: str, student: str) -> object:
    """The submission's time as the gradebook holds it (None: no submission yet)."""
    from nbgrader.api import Gradebook, MissingEntry

    if db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///"):]).is_file():
        return None  # never create a database just to look
    with Gradebook(db_url) as gb:
        try:
            return gb.find_submission(assignment, student).timestamp
        except MissingEntry:
            return None


class AutogradeFileCopier:
    """Autograde pre-convert hook: put the student's own hand-in models beside the notebook.

    nbgrader's ignore list keeps hand-in files (and hidden files) from being copied in
    either direction, so the instructor's reference model never replaces a student's. The
    student's own models come from the submission, read as regular files only. Hidden files
    are never copied here: no reference lies where the notebook runs; the hidden tests are
    decided outside it (:mod:`dlcourse.runner.trusted`). nbgrader calls the hook once per
    submission with its notebook paths, ``<root>/<submitted>/<student>/<assignment>/<nb>.ipynb``;
    the student and assignment are read off those paths (for a whole class nbgrader passes
    ``student="*"``). With ``db_url`` it also notes the submission's time before nbgrader
    updates it, for :class:`KeepHandGrades`.
    """

    def __init__(self, source_directory: str, autograded_directory: str, db_url: str | None = None) -> None:
        self.source_directory = source_directory
        self.autograded_directory = autograded_directory
        self.db_url = db_url

    def __call__(self, assignment: str, student: str, notebooks: Iterable[str], **_: Any) -> None:
        notebooks = list(notebooks)
        if not notebooks:
            return
        submitted = Path(notebooks[0]).parent
        root = submitted.parents[2]
        assignment, student = submitted.name, submitted.parent.name
        if self.db_url:
            key = (self.db_url, assignment, student)
            _TIMES_BEFORE.pop(key, None)
            with contextlib.suppress(Exception):  # no gradebook to read: nothing to compare with
                _TIMES_BEFORE[key] = _submission_time(self.db_url, assignment, student)
        dest = root / self.autograded_directory / student / assignment
        for path in handin_files(submitted):
            with contextlib.suppress(OSError, ValueError):  # not a regular file: not handed in
                data = read_regular_file(path, MAX_HANDIN_BYTES)
                dest.mkdir(parents=True, exist_ok=True)
                target = dest / path.name
                if target.is_symlink() or target.exists():
                    target.unlink()
                target.write_bytes(data)


class KeepHandGrades(SaveAutoGrades):
    """nbgrader's SaveAutoGrades with the course's rule for hand grading (as `course grade`).

    nbgrader marks every hand-graded cell for review again on each autograde, so
    formgrader's Autograde button (or a plain ``nbgrader autograde``) on an unchanged,
    finished submission shows its written answers as unresolved, while `course grade`
    counts them as graded. Here a hand grade stays resolved unless the cell's
    automatic outcome changed or the student handed in again (the submission time
    moved); a cell no one has graded waits for a TA as before.
    """

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        info = resources["nbgrader"]
        key = (info["db_url"], info["assignment"], info["student"])
        self._resubmitted = False
        if key in _TIMES_BEFORE:
            with contextlib.suppress(Exception):
                now = _submission_time(info["db_url"], info["assignment"], info["student"])
                self._resubmitted = _TIMES_BEFORE[key] != now
        return super().preprocess(nb, resources)

    def _add_score(self, cell: NotebookNode, resources: dict) -> None:
        from nbgrader import utils

        grade = self.gradebook.find_grade(cell.metadata["nbgrader"]["grade_id"], self.notebook_id,
                                          self.assignment_id, self.student_id)
        auto_score, _ = utils.determine_grade(cell, self.log)
        before = grade.auto_score
        changed = not ((before is None and auto_score is None) or
                       (before is not None and auto_score is not None and abs(before - auto_score) < 1e-9))
        grade.auto_score = auto_score
        if grade.manual_score is not None:
            grade.needs_manual_grade = grade.needs_manual_grade or changed or self._resubmitted
        else:
            grade.needs_manual_grade = auto_score is None
        self.gradebook.db.commit()


#: nbgrader's feedback summary names each graded cell by its kind only ("Test cell" seven times).
_KINDS = {"Test cell": "test", "Written response": "written answer", "Coding free-response": "code graded by hand",
          "Task": "task"}


def name_feedback_summary(page: str) -> str:
    """Feedback HTML whose summary names each graded cell by its grade_id, then its kind."""
    import re

    def named(match: re.Match) -> str:
        grade_id, kind = match.group(1), match.group(2)
        return f'<a href="#{grade_id}">{grade_id}</a> ({_KINDS[kind]})'

    kinds = "|".join(re.escape(k) for k in _KINDS)
    return re.sub(r'<a href="#([\w.-]+)">(' + kinds + r")</a>", named, page)


def _without_hidden_tests(source: str) -> str:
    """A test cell's source as released: its hidden-test regions removed (nbgrader's rule)."""
    from nbgrader.preprocessors import ClearHiddenTests

    cell = NotebookNode(cell_type="code", source=source, metadata={}, outputs=[], execution_count=None)
    ClearHiddenTests()._remove_hidden_test_region(cell)
    return cell.source


class QuietOverwriteCells(OverwriteCells):
    """nbgrader's OverwriteCells, with warnings only where something is wrong.

    nbgrader warns "Attribute 'checksum' for cell X has changed!" for every locked cell
    whose text differs from the source, which is every test cell with hidden tests (the
    release holds them cut out), and "Cell X does not exist in the database" for every
    cell that has a grade_id but is not graded, locked or an answer. On an honest
    submission the TA's log (formgrader's Autograde dialog) opened with a screen of such
    alarms. Those two expected cases are logged at debug level; a test cell the student
    edited, or a cell nbgrader should know and does not, still warns. The cell is
    restored exactly as before.
    """

    def preprocess_cell(self, cell: NotebookNode, resources: dict, cell_index: int) -> tuple[NotebookNode, dict]:
        from nbgrader.api import MissingEntry

        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        self._released_text = cell.source
        if grade_id is not None and not (meta.get("grade") or meta.get("solution") or meta.get("locked")
                                         or meta.get("task")):
            try:
                self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                self.log.debug("Cell %r is not graded: nothing to restore", grade_id)
                del cell.metadata.nbgrader["grade_id"]
                return cell, resources
        return super().preprocess_cell(cell, resources, cell_index)

    def report_change(self, name: str, attr: str, old: Any, new: Any) -> None:
        if attr == "checksum":
            with contextlib.suppress(Exception):
                source = self.gradebook.find_source_cell(name, self.notebook_id, self.assignment_id).source
                if _without_hidden_tests(source).strip() == self._released_text.strip():
                    self.log.debug("Cell %s: hidden tests put back into the test cell", name)
                    return
            self.log.warning("Read-only cell %s was edited; it is restored from the source before grading", name)
            return
        super().report_change(name, attr, old, new)


class StderrIsNotFailure(Preprocessor):
    """Make a cell's verdict depend on whether it raised, not on log noise.

    nbgrader treats any stderr output as a failed test. In a cell that did not
    raise, stderr streams become stdout streams: the text stays visible, the
    points stay. Cells that raised are left exactly as they are.
    """

    enabled = Bool(True, help="nbconvert preprocessors are off unless enabled").tag(config=True)

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict, index: int
    ) -> tuple[NotebookNode, dict]:
        if cell.cell_type != "code":
            return cell, resources
        outputs = cell.get("outputs", [])
        if any(out.output_type == "error" for out in outputs):
            return cell, resources
        for out in outputs:
            if out.output_type == "stream" and out.name == "stderr":
                out.name = "stdout"
        return cell, resources


def machine_paths(extra: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(absolute folder of this machine, what to show instead), longest first.

    Installed packages become their import path (``keras/src/...``), the Python
    installation ``<python>``, temporary folders ``<tmp>``, the home folder ``~``;
    ``extra`` folders (the course) become ``<course>``.
    """
    import site
    import sysconfig
    import tempfile

    pairs: list[tuple[str, str]] = []
    packages = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    with contextlib.suppress(AttributeError):
        packages.update(site.getsitepackages())
    pairs += [(folder, "") for folder in packages]
    pairs += [(sysconfig.get_paths()["stdlib"], "")]
    pairs += [(folder, "<course>") for folder in extra]
    pairs += [(prefix, "<python>") for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}]
    pairs += [(tempfile.gettempdir(), "<tmp>"), ("/tmp", "<tmp>"), ("/var/tmp", "<tmp>")]
    with contextlib.suppress(RuntimeError, KeyError):
        pairs.append((str(Path.home()), "~"))
    seen: dict[str, str] = {}
    for folder, shown in pairs:
        folder = os.path.normpath(folder)
        if len(folder.strip("/")) >= 3 and folder not in seen:
            seen[folder] = shown
    return sorted(seen.items(), key=lambda pair: len(pair[0]), reverse=True)


def hide_machine_paths(text: str, pairs: list[tuple[str, str]]) -> str:
    """``text`` with every folder of ``pairs`` replaced (only a whole absolute path: not inside
    a URL or a relative path, and not the start of a longer name; a colour code of a traceback
    may come right before it)."""
    import re

    ansi_before = re.compile(r"\x1b\[[0-9;]*m$")
    for folder, shown in pairs:
        if folder not in text:
            continue

        def replace(match: re.Match, shown: str = shown, text: str = text) -> str:
            before = text[:match.start()]
            if before and re.match(r"[\w.~/:-]", before[-1]) and not ansi_before.search(before):
                return match.group(0)  # part of a longer path or a URL
            return (shown + match.group(1)) if shown else ""

        text = re.sub(re.escape(folder) + r"(/|(?![\w.-]))", replace, text)
    return text


class HideMachinePaths(Preprocessor):
    """Outputs name no folder of the grading machine (autograded notebooks and feedback).

    What a graded notebook prints can hold absolute paths: a setup cell's
    return value, a traceback through the installed packages, a temporary file.
    They tell students nothing they need and reveal the grader's layout and user
    name; each becomes a relative or symbolic path (``keras/src/...``, ``<tmp>``,
    ``<course>``, ``~``). Cell sources are left alone.
    """

    enabled = Bool(True, help="nbconvert preprocessors are off unless enabled").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        extra = []
        with contextlib.suppress(Exception):
            extra.append(str(Path(self.config.CourseDirectory.root).resolve()))
        self._pairs = machine_paths(extra)
        return super().preprocess(nb, resources)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return hide_machine_paths(value, self._pairs)
        if isinstance(value, list):
            return [self._clean(v) for v in value]
        return value

    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int) -> tuple[NotebookNode, dict]:
        for out in cell.get("outputs", []):
            for key in ("text", "evalue", "traceback"):
                if key in out:
                    out[key] = self._clean(out[key])
            for mime, value in out.get("data", {}).items():
                if mime.startswith("text/") or mime in ("application/json",):
                    out["data"][mime] = self._clean(value)
        return cell, resources


class HideHiddenTests(Preprocessor):
    """Feedback preprocessor: students see that hidden tests ran and their verdict, not the tests.

    nbgrader's feedback shows the autograded notebook as it ran, hidden-test
    source included. Here each hidden region is replaced by a one-line marker,
    and an error raised in such a cell keeps only its last line (exception type
    and message, which say what is wrong) -- the traceback would quote the
    hidden lines.
    """

    enabled = Bool(True, help="nbconvert preprocessors are off unless enabled").tag(config=True)
    begin = "### BEGIN HIDDEN TESTS"
    end = "### END HIDDEN TESTS"
    marker = "# (hidden tests: they ran when this notebook was graded)"

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict, index: int
    ) -> tuple[NotebookNode, dict]:
        if cell.cell_type != "code" or self.begin not in cell.source:
            return cell, resources
        kept, hidden = [], False
        for line in cell.source.splitlines():
            if self.begin in line:
                hidden = True
                kept.append(line[: len(line) - len(line.lstrip())] + self.marker)
            elif self.end in line:
                hidden = False
            elif not hidden:
                kept.append(line)
        cell.source = "\n".join(kept)
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                out.traceback = [f"{out.ename}: {out.evalue}"]
        return cell, resources


def _start_time(proc) -> float | None:
    """When ``proc`` started (a pid alone could be reused); None once it is gone."""
    try:
        return proc.create_time()
    except psutil.Error:
        return None


def _descendants() -> dict[int, float | None]:
    """This process's descendants: pid -> start time."""
    return {proc.pid: _start_time(proc) for proc in psutil.Process().children(recursive=True)}


class RememberProcesses(Preprocessor):
    """Autograde preprocessor, right before Execute: note which processes exist already.

    Formgrader autogrades inside the Jupyter server, whose other children are the
    TA's own kernels; :class:`StopStudentProcesses` must leave those alone.
    """

    enabled = Bool(True, help="nbconvert preprocessors are off unless enabled").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        resources["dlcourse_processes_before"] = _descendants()
        return nb, resources


class StopStudentProcesses(Preprocessor):
    """Autograde preprocessor, right after Execute: no student process outlives the kernel.

    A confined kernel's processes end with its sandbox (its own PID namespace). This matters
    when the TA grades unconfined: a cell can start a detached process that waits for nbgrader
    to write the scores and then edits the gradebook. Every descendant of this process that
    started during the notebook's execution is killed -- not the server's other children (the
    TA's own kernels, under formgrader), and not the warm repeat servers, which run no student
    code (:mod:`dlcourse.runner.repeat_servers`).
    """

    enabled = Bool(True, help="nbconvert preprocessors are off unless enabled").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        me = psutil.Process()
        before = resources.get("dlcourse_processes_before", {})
        keep = pool().process_ids()
        targets = [p for p in me.children(recursive=True)
                   if before.get(p.pid) != _start_time(p) and p.pid not in keep]
        for proc in targets:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(targets, timeout=5)
        return nb, resources
