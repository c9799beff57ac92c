"""One submission's grading as a function from bytes to bytes, so that it can run anywhere.

In: the assignment's *bundle*, made once per batch by the trusted parent
(nbgrader_config.py, the source notebook, the hidden files, a template
gradebook), and the submission's files. Out: what grading produced (the
autograded notebooks, the private gradebook the notebook was graded against)
and the outcome (verdicts of the repeat outside the kernel, findings, time,
memory, the reason for a failure). A worker -- a thread of `course grade`, or
a Dask worker on another machine -- needs the course's Python environment and
bubblewrap, not the course folder, the course's gradebook or database
credentials. The trusted parent keeps what only it may do: trusted scores,
overrides, the merge, feedback and CSVs (:mod:`dlcourse.runner.grade`).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import json
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dlcourse.errors import CourseError
from dlcourse.runner import warm
from dlcourse.runner.archives import zip_bytes
from dlcourse.runner.autograde import (
    FAULT_GRADER,
    FAULT_SUBMISSION,
    Limits,
    Outcome,
    grade_submission,
)
from dlcourse.runner.course import CONFIG_NAME, Course
from dlcourse.runner.nbgrader_plugins import hidden_files

OUTCOME = "outcome.json"
TEMPLATE = "template.db"
#: What comes back of the private course folder: the autograded notebooks and the gradebook
#: they were graded against (only the submission time is read from it).
RESULT_ROOTS = ("course/autograded", "course/gradebook.db")
#: Seconds to wait for a Dask scheduler before saying it cannot be reached.
CONNECT_TIMEOUT = 20


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
    from dlcourse.runner import sandbox

    if limits.isolation.kind == "bubblewrap" and sandbox.detect().kind != "bubblewrap":
        import socket

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


@contextlib.contextmanager
def job_executor(workers: int, cluster: str | None = None) -> Iterator[tuple[Executor, Callable[[bytes], Any]]]:
    """Where jobs run: ``workers`` threads here, or the workers of an existing Dask scheduler.

    Yields the executor and ``share``, which turns the bundle into what each job
    is given: the bytes themselves here, a Dask future there (fetched by a worker
    from its peers, not sent with every submission). A Dask worker that dies has
    its job run again elsewhere (up to the scheduler's ``allowed-failures``).
    """
    if cluster is None:
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                yield pool, lambda data: data
        finally:
            warm.close_all()  # the threads' warm processes end with the batch
        return
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - pinned in requirements.txt
        raise CourseError("--cluster needs Dask's 'distributed' package (see requirements.txt)") from None
    try:
        client = Client(cluster, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CourseError(f"--cluster: cannot reach a Dask scheduler at {cluster!r}: {first}") from None
    try:
        # A task, not scattered data: if every worker holding the bundle dies, the scheduler
        # makes it again from the graph instead of cancelling the jobs that need it.
        yield client.get_executor(pure=False), lambda data: client.submit(_same, data, pure=False)
    finally:
        client.close()


def _same(data: bytes) -> bytes:
    return data


def worker_lost(exc: BaseException | None) -> bool:
    """Dask gave up on a job because the workers it was given to died (``KilledWorker``), or
    cancelled it when data it needed went down with them."""
    return exc is not None and type(exc).__name__ in ("KilledWorker", "CancelledError", "FutureCancelledError")


def failure_fault(exc: BaseException) -> str:
    """Whose fault a job without a result is: the submission's when every worker it was given
    died, else the grader's (the next run grades it again)."""
    return FAULT_SUBMISSION if worker_lost(exc) else FAULT_GRADER


def failure_reason(exc: BaseException) -> str:
    """Why a job produced no result, in the words of the table."""
    if worker_lost(exc):
        return "the grading worker died each time this submission was graded (Dask KilledWorker)"
    return f"grader error: {type(exc).__name__}: {exc}"
