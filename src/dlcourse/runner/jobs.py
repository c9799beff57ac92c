"""One submission's grading as a function from bytes to bytes, so that it can run anywhere.

In: the assignment's *bundle*, made once per batch by the trusted parent
(nbgrader_config.py, the source notebook, the hidden files, a template
gradebook), and the submission's files. Out: what grading produced (the
autograded notebooks, the private gradebook the notebook was graded against)
and the outcome (verdicts of the repeat outside the kernel, findings, time,
memory, the reason for a failure). A worker -- a thread of `course grade`, or
a Dask worker on another machine -- needs the course's Python environment and
bubblewrap, not the course folder, the course's gradebook or database
credentials. Where the jobs run is a backend's business (:mod:`dlcourse.runner.backends`).
The trusted parent keeps what only it may do: trusted scores, overrides, the merge, feedback
and CSVs (:mod:`dlcourse.runner.grade`).
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import shutil
import socket
import tempfile
import threading
import zipfile
from dataclasses import asdict
from pathlib import Path

from dlcourse.runner import sandbox
from dlcourse.runner.archives import zip_bytes
from dlcourse.runner.autograde import FAULT_GRADER, Limits, Outcome, grade_submission
from dlcourse.runner.course import CONFIG_NAME, Course
from dlcourse.runner.nbgrader_plugins import hidden_files

OUTCOME = "outcome.json"
TEMPLATE = "template.db"
#: What comes back of the private course folder: the autograded notebooks and the gradebook
#: they were graded against (only the submission time is read from it).
RESULT_ROOTS = ("course/autograded", "course/gradebook.db")


def _folder_files(folder: Path, prefix: str = "", skip: tuple[str, ...] = (".ipynb_checkpoints",)) -> dict[str, bytes]:
    return {f"{prefix}{p.relative_to(folder).as_posix()}": p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not (set(p.relative_to(folder).parts) & set(skip))}


def _unzip(data: bytes, dest: Path) -> None:
    """Unpack ``data`` into ``dest``; names that would leave it are refused."""
    dest = dest.resolve()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            target = (dest / info.filename).resolve()
            if dest not in target.parents:
                raise ValueError(f"refusing to unpack {info.filename!r} outside {dest}")
            if info.is_dir():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))


def make_bundle(course: Course, assignment: str, template_db: Path) -> bytes:
    """Everything a worker needs of the assignment, made once per batch."""
    source = course.solutions / assignment
    files = {CONFIG_NAME: (course.root / CONFIG_NAME).read_bytes(), TEMPLATE: template_db.read_bytes(),
             f"solutions/{assignment}/{assignment}.ipynb": course.source_notebook(assignment).read_bytes()}
    for path in hidden_files(source):
        files[f"solutions/{assignment}/{path.relative_to(source).as_posix()}"] = path.read_bytes()
    return zip_bytes(files)


def pack_submission(course: Course, assignment: str, student: str) -> bytes:
    """The files one student handed in (as imported into submitted/)."""
    return zip_bytes(_folder_files(course.submitted / student / assignment))


_BUNDLES: dict[str, Path] = {}
_LOCK = threading.Lock()


def _bundle_folder(bundle: bytes) -> Path:
    """The bundle unpacked once per process (a worker grades many submissions with it)."""
    key = hashlib.sha256(bundle).hexdigest()
    with _LOCK:
        if key not in _BUNDLES:
            folder = Path(tempfile.mkdtemp(prefix="dlcourse-bundle-"))
            _unzip(bundle, folder)
            atexit.register(shutil.rmtree, folder, True)
            _BUNDLES[key] = folder
        return _BUNDLES[key]


def run_job(bundle: bytes, submission: bytes, assignment: str, student: str, limits: Limits) -> bytes:
    """Grade one submission; bytes in, bytes out. Never raises for what the submission does."""
    if limits.isolation.kind == "bubblewrap" and sandbox.detect().kind != "bubblewrap":
        reason = f"worker {socket.gethostname()} cannot confine student code: {sandbox.detect().warning}"
        outcome = Outcome(student, False, reason, fault=FAULT_GRADER)
        return zip_bytes({OUTCOME: json.dumps({**asdict(outcome), "workdir": None}).encode()})
    cached = _bundle_folder(bundle)
    with tempfile.TemporaryDirectory(prefix="dlcourse-job-") as tmp:
        root = Path(tmp) / "view"
        root.mkdir()
        shutil.copyfile(cached / CONFIG_NAME, root / CONFIG_NAME)
        (root / "solutions").symlink_to(cached / "solutions", target_is_directory=True)
        _unzip(submission, root / "submitted" / student / assignment)
        outcome = grade_submission(Course(root), assignment, student, cached / TEMPLATE, Path(tmp) / "work",
                                   limits)
        files = {OUTCOME: json.dumps({**asdict(outcome), "workdir": None}).encode()}
        if outcome.workdir is not None:
            for name in RESULT_ROOTS:
                path = outcome.workdir / name
                if path.is_file():
                    files[name] = path.read_bytes()
                elif path.is_dir():
                    files.update(_folder_files(path, f"{name}/", skip=(".ipynb_checkpoints", ".home")))
        return zip_bytes(files)


def unpack_result(data: bytes, dest: Path) -> Outcome:
    """The outcome of a job, its private course folder unpacked in ``dest`` (the parent's side)."""
    _unzip(data, dest)
    outcome = Outcome.from_json(json.loads((dest / OUTCOME).read_text()))
    outcome.workdir = dest if (dest / "course").is_dir() else None
    return outcome
