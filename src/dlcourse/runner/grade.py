"""`course grade`: import, autograde every submission (confined, in parallel), verify,
merge into the gradebook keeping hand grading, write feedback, CSVs (and a filled
Canvas export) and a table.

A run's options are one :class:`GradeOptions`; its jobs run on the backend they name
(:mod:`dlcourse.runner.backends`); what each student's last grading found is a record
(:mod:`dlcourse.runner.records`), and feedback is written by :mod:`dlcourse.runner.feedback`.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat

from dlcourse.errors import CourseError
from dlcourse.runner import (
    autograde,
    canvas,
    gradebook,
    jobs,
    nbgrader_api,
    records,
    sandbox,
    ungradable,
    warm,
)
from dlcourse.runner.autograde import Limits, Outcome
from dlcourse.runner.backends import Backend, DaskCluster, LocalThreads
from dlcourse.runner.canvas import CanvasReport
from dlcourse.runner.course import Course
from dlcourse.runner.feedback import FeedbackWriter, refresh_feedback
from dlcourse.runner.nbgrader_plugins import hidden_files
from dlcourse.runner.notebooks import read_notebook
from dlcourse.runner.records import Inputs, Record
from dlcourse.runner.reports import StudentScore, collect_scores, write_csvs, write_lms_csv
from dlcourse.runner.submissions import (
    TIMESTAMP,
    ImportReport,
    import_submissions,
    usable_student_id,
)
from dlcourse.runner.untrusted import InertNotebook

DEFAULT_TIMEOUT = 1800.0
#: The first name of a student known only from an LMS download's file name.
FILE_NAME_NOTE = "(from file name)"
DEFAULT_MEMORY_GB = 4.0
#: How long the feedback writer may take for one submission's feedback.
FEEDBACK_SECONDS = 300.0


@dataclass(frozen=True)
class GradeOptions:
    """How one `course grade` run grades: the command's options, checked once."""

    timeout: float = DEFAULT_TIMEOUT  # seconds of one whole submission
    workers: int = 1  # grading threads here (ignored with ``cluster``)
    memory_gb: float | None = DEFAULT_MEMORY_GB  # of one submission's student code; None: no limit
    force: bool = False  # regrade what is unchanged too
    db: str | None = None  # the gradebook's URL; None: the course's
    unconfined: bool = False  # run student code without bubblewrap (asked for explicitly)
    canvas_gradebook: Path | None = None  # a Canvas gradebook export to fill
    canvas_column: str | None = None  # its column for this assignment; None: found by name
    cluster: str | None = None  # a Dask scheduler's address: the jobs run on its workers
    device: str = "auto"  # cpu, gpu or auto: resolved where a submission is graded

    def check(self) -> None:
        """A one-line CourseError for options that cannot work together."""
        if self.timeout <= 0:
            raise CourseError(f"--timeout must be positive, got {self.timeout:g}")
        if self.workers < 1:
            raise CourseError(f"--workers must be at least 1, got {self.workers}")
        if self.memory_gb is not None and self.memory_gb <= 0:
            raise CourseError(f"--memory must be positive, got {self.memory_gb:g}")
        if self.canvas_column is not None and self.canvas_gradebook is None:
            raise CourseError("--canvas-column needs --canvas-gradebook EXPORT.csv")

    def backend(self) -> Backend:
        """Where the jobs run: a Dask cluster when one is named, else threads here."""
        return DaskCluster(self.cluster) if self.cluster is not None else LocalThreads(self.workers)


@dataclass
class Graded:
    """One submission graded in this run, as the progress line reports it."""

    outcome: Outcome
    review: list[str] = field(default_factory=list)  # hand grades marked for review again

    @property
    def hidden_failed(self) -> list[str]:
        """Test cells whose hidden tests failed (decided outside the notebook)."""
        return list(dict.fromkeys(v.test_id for v in self.outcome.verdicts if not v.passed))


@dataclass(frozen=True)
class TotalChange:
    student: str
    before: float
    after: float


@dataclass
class GradeResult:
    assignment: str
    questions: list[str]
    rows: list[StudentScore]
    csv_path: Path
    questions_csv_path: Path
    lms_csv_path: Path
    imported: ImportReport | None
    skipped: list[str] = field(default_factory=list)
    warning: str = ""
    changes: list[TotalChange] = field(default_factory=list)  # totals moved by this run's regrades
    feedback: list[str] = field(default_factory=list)  # students whose feedback was (re)written
    canvas: CanvasReport | None = None
    review: dict[str, list[str]] = field(default_factory=dict)  # hand grades to look at again
    devices: dict[str, int] = field(default_factory=dict)  # cpu/gpu -> submissions whose code ran there
    unusable: list[str] = field(default_factory=list)  # folders in submitted/ that are no student id


def db_url(course: Course) -> str:
    return nbgrader_api.load_config(course).CourseDirectory.db_url


def _digest(folder: Path, skip: tuple[str, ...] = ()) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
                       and ".ipynb_checkpoints" not in p.parts and p.name not in skip):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def submission_digest(course: Course, assignment: str, student: str) -> str:
    """Fingerprint of what the student handed in (its time, which cannot change a grade, apart)."""
    return _digest(course.submitted / student / assignment, skip=(TIMESTAMP,))


def _submitted_time(course: Course, assignment: str, student: str) -> str:
    path = course.submitted / student / assignment / TIMESTAMP
    return path.read_text(errors="replace").strip() if path.is_file() else ""


def _submitted_at(course: Course, assignment: str, student: str) -> datetime | None:
    """The submission time as nbgrader reads it (None where there is none or it is unreadable)."""
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(_submitted_time(course, assignment, student)) or None
    except (ValueError, OverflowError):
        return None


def assignment_digest(course: Course, assignment: str, template_url: str) -> str:
    """Fingerprint of what the assignment grades with: the gradebook's cells (graded cells, points,
    hidden tests, locked cells) and the hidden files. Prose in the source notebook, rubrics and
    the reference model are not part of it, so fixing a typo there regrades nobody."""
    digest = hashlib.sha256(gradebook.grading_inputs(template_url, assignment).encode())
    source = course.solutions / assignment
    for path in hidden_files(source):
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _merge(course: Course, assignment: str, outcome: Outcome, main_url: str, resubmitted: bool) -> Graded:
    """Bring a finished submission into the course, keeping hand grading."""
    student = outcome.student
    if not outcome.ok:
        _record_failure(course, assignment, student, outcome.reason, main_url)
        return Graded(outcome)
    private = outcome.private_course
    private_url = f"sqlite:///{private / 'gradebook.db'}"
    graded = private / "autograded" / student / assignment
    # The hidden tests' verdicts are in the notebook's outputs already (dlcourse.runner.trusted).
    scores = {nb.stem: gradebook.trusted_grades(main_url, assignment, nb) for nb in sorted(graded.glob("*.ipynb"))}
    review = gradebook.merge_submission(private_url, main_url, assignment, student, scores,
                                        flagged=bool(outcome.findings), resubmitted=resubmitted)
    target = course.autograded / student / assignment
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(graded, target, symlinks=True)
    return Graded(outcome, review)


def _record_failure(course: Course, assignment: str, student: str, reason: str, main_url: str) -> None:
    """Score 0 with the reason, and a folder in autograded/ so that formgrader lists it as graded
    (it shows the submitted notebook, or one that states the reason if that cannot be read)."""
    gradebook.record_failure(main_url, assignment, student, reason, _submitted_at(course, assignment, student))
    shutil.rmtree(course.feedback / student / assignment, ignore_errors=True)  # it would show old scores
    total = gradebook.totals(main_url, assignment).get(student)
    ungradable.write(course, assignment, student, reason, total.max_score if total else None)
    target = course.autograded / student / assignment
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    try:
        nb = read_notebook(course.submitted / student / assignment / f"{assignment}.ipynb")
    except (CourseError, OSError):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"**Not graded:** {reason}")])
    nb, _ = InertNotebook().preprocess(nb, {})  # formgrader shows it: nothing in it may run there
    nbformat.write(nb, target / f"{assignment}.ipynb")


def _submissions_in(url: str, assignment: str) -> set[str]:
    """Students with a submission of ``assignment`` in the gradebook at ``url`` (none if it is new)."""
    return set(gradebook.totals(url, assignment))


def register(course: Course, assignment: str, url: str) -> None:
    """Put the assignment (notebooks, grade cells, points) into the gradebook at ``url``."""
    with tempfile.TemporaryDirectory(prefix="dlcourse-register-") as tmp:
        nbgrader_api.generate_assignment(course, assignment, release_dir=Path(tmp), db_url=url)


@dataclass
class _Plan:
    """Which submissions this run grades, and the inputs each record is compared against."""

    todo: list[str]
    skipped: list[str]
    inputs: dict[str, Inputs]
    resubmitted: set[str]


def _plan(course: Course, assignment: str, students: list[str], template_url: str, main_url: str,
          force: bool) -> _Plan:
    """Grade what is new or changed (the submission, the graded cells, the hidden files), or all."""
    graded_with = assignment_digest(course, assignment, template_url)
    recorded = _submissions_in(main_url, assignment)
    plan = _Plan([], [], {}, set())
    for student in students:
        inputs = Inputs(submission_digest(course, assignment, student),
                        _submitted_time(course, assignment, student), graded_with)
        plan.inputs[student] = inputs
        record = records.read(course, assignment, student)
        if record is not None and record.resubmitted(inputs):
            plan.resubmitted.add(student)
        current = record is not None and record.current(inputs) and student in recorded
        (plan.skipped if current and not force else plan.todo).append(student)
    return plan


def _grade_all(course: Course, assignment: str, plan: _Plan, template: Path, workdir: Path, limits: Limits,
               main_url: str, backend: Backend, progress: Callable[[int, int, Graded], None] | None) -> list[Graded]:
    """Autograde the planned submissions in parallel on ``backend``; the parent merges each
    result as it comes.

    On a cluster, a worker that dies takes the jobs queued on it down with it, and the scheduler
    gives up on a job after a few such deaths. Those jobs are run again, one at a time, so that
    only a submission that kills every worker it is given is recorded as failed.
    """
    done: list[Graded] = []

    def finish(student: str, result: bytes | None, error: BaseException | None) -> None:
        if error is None:
            outcome = jobs.unpack_result(result, workdir / student)
        else:  # a grader fault or a lost worker must not stop the batch
            reason, fault = backend.failure(error)
            outcome = Outcome(student, False, reason, fault=fault)
        done.append(_record(course, assignment, plan, outcome, main_url))
        if progress:
            progress(len(done), len(plan.todo), done[-1])

    with backend.connect() as session:
        packed = jobs.make_bundle(course, assignment, template)
        bundle = session.share(packed)

        def submit(student: str, bundle=bundle) -> Future:
            return session.submit(bundle, jobs.pack_submission(course, assignment, student), assignment, student,
                                  limits)

        futures = {submit(s): s for s in plan.todo}
        again = []
        for future in as_completed(futures):
            error = _error_of(future)
            if backend.worker_lost(error):
                again.append(futures[future])
            else:
                finish(futures[future], None if error else future.result(), error)
        # Alone now: a neighbour's crash cannot take this job down. The bundle is shared afresh:
        # a dead worker may have taken its copy (and Dask's verdict on it) along.
        fresh = session.share(packed) if again else None
        for student in again:
            future = submit(student, fresh)
            error = _error_of(future)
            finish(student, None if error else future.result(), error)
    return done


def _grade_with_feedback(course: Course, assignment: str, plan: _Plan, template: Path, workdir: Path,
                         limits: Limits, main_url: str, backend: Backend,
                         progress: Callable[[int, int, Graded], None] | None) -> tuple[list[Graded], list[str], str]:
    """:func:`_grade_all`, with each graded submission's feedback written by a second process
    while the others are still being graded. Returns the graded, whose feedback was written,
    and the first feedback problem."""
    if not plan.todo:
        backend.release()  # prestarted for nothing
        return [], [], ""
    writer = FeedbackWriter(course.root, assignment, main_url, workdir / "feedback-writer.log")

    def graded_one(done: int, total: int, graded: Graded) -> None:
        if graded.outcome.ok:
            writer.submit(graded.outcome.student)
        if progress:
            progress(done, total, graded)

    written, problem = [], ""
    try:
        graded = _grade_all(course, assignment, plan, template, workdir, limits, main_url, backend, graded_one)
        with contextlib.suppress(warm.WarmProcessDied):  # the final refresh writes what is missing
            for students, trouble in writer.results(FEEDBACK_SECONDS):
                written += students
                problem = problem or trouble
    finally:
        writer.close()
    return graded, written, problem


def _error_of(future: Future) -> BaseException | None:
    """The job's exception (a cancelled job's too), after waiting for it."""
    try:
        return future.exception()
    except CancelledError as cancelled:
        return cancelled


def _record(course: Course, assignment: str, plan: _Plan, outcome: Outcome, main_url: str) -> Graded:
    """Merge one finished job into the course and write its record."""
    student = outcome.student
    try:
        graded = _merge(course, assignment, outcome, main_url, student in plan.resubmitted)
    except Exception as exc:  # e.g. an autograded notebook nbgrader could not write
        outcome.ok, outcome.reason = False, f"grader error: {type(exc).__name__}: {exc}"
        outcome.fault = autograde.FAULT_GRADER
        _record_failure(course, assignment, student, outcome.reason, main_url)
        graded = Graded(outcome)
    records.write(course, assignment, Record(outcome, plan.inputs[student]))
    if outcome.workdir:
        shutil.rmtree(outcome.workdir, ignore_errors=True)
    return graded


def _changes(before: dict[str, gradebook.Total], after: dict[str, gradebook.Total],
             students: list[str]) -> list[TotalChange]:
    return [TotalChange(s, before[s].score, after[s].score) for s in students
            if s in before and s in after and abs(before[s].score - after[s].score) > 1e-9]


def _names(course: Course, assignment: str, imported: ImportReport | None, export: canvas.Export | None,
           main_url: str) -> None:
    """Student names into the gradebook (formgrader shows them): a Canvas export's names win."""
    if imported and imported.names:
        # formgrader shows "last, first": the file name's one word is the last name, and the first
        # says where it came from (not "jansenanna, " with a dangling comma)
        gradebook.set_names(main_url, {s: (FILE_NAME_NOTE, n) for s, n in imported.names.items()},
                            replace=False)
    if export is not None:
        known = set(course.student_ids(assignment)) | set(gradebook.totals(main_url, assignment))
        gradebook.set_names(main_url, canvas.names(export, known), replace=True)


def grade(
    course: Course,
    assignment: str,
    source: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Callable[[int, int, Graded], None] | None = None,
    started: Callable[[list[str]], None] | None = None,
    workers: int = 1,
    memory_gb: float | None = DEFAULT_MEMORY_GB,
    force: bool = False,
    db: str | None = None,
    unconfined: bool = False,
    canvas_gradebook: Path | None = None,
    canvas_column: str | None = None,
    cluster: str | None = None,
    device: str = "auto",
) -> GradeResult:
    """:func:`grade_with` with the options given one by one (see :class:`GradeOptions`)."""
    options = GradeOptions(timeout=timeout, workers=workers, memory_gb=memory_gb, force=force, db=db,
                           unconfined=unconfined, canvas_gradebook=canvas_gradebook, canvas_column=canvas_column,
                           cluster=cluster, device=device)
    return grade_with(course, assignment, options, source, progress, started)


def grade_with(
    course: Course,
    assignment: str,
    options: GradeOptions,
    source: Path | None = None,
    progress: Callable[[int, int, Graded], None] | None = None,
    started: Callable[[list[str]], None] | None = None,
) -> GradeResult:
    """Grade every submission of ``assignment`` in the course's submitted/ folder.

    Student code runs confined (bubblewrap) unless ``options.unconfined``; hand grading in the
    gradebook survives every regrade. The jobs run on ``options.backend()``: threads here, or
    the workers of a Dask scheduler. ``progress`` hears of each submission as it is merged,
    ``started`` of the students this run grades.
    """
    course.require_assignment(assignment)
    options.check()
    backend = options.backend()
    limits = _limits(options, backend)
    export = canvas.read_export(options.canvas_gradebook) if options.canvas_gradebook is not None else None
    column = canvas.find_column(export, assignment, options.canvas_column) if export is not None else None
    imported = import_submissions(course, assignment, source) if source is not None else None
    found = course.student_ids(assignment)
    # A folder in submitted/ that is no usable student id is left out, and said, never graded.
    students = [s for s in found if usable_student_id(s)]
    unusable = [s for s in found if s not in students]
    if not students:
        raise CourseError(
            f"no submissions of {assignment} in {course.submitted} (import some with --from PATH)"
        )
    main_url = options.db or db_url(course)
    _check_db(main_url)
    backend.prestart(limits, len(students))  # what the jobs need loads while the batch is planned
    with tempfile.TemporaryDirectory(prefix="dlcourse-grade-") as tmp:
        template = Path(tmp) / "template.db"
        register(course, assignment, f"sqlite:///{template}")
        plan = _plan(course, assignment, students, f"sqlite:///{template}", main_url, options.force)
        if started:
            started(plan.todo)
        register(course, assignment, main_url)
        _names(course, assignment, imported, export, main_url)
        before = gradebook.totals(main_url, assignment)
        graded, early, early_problem = _grade_with_feedback(course, assignment, plan, template, Path(tmp),
                                                            limits, main_url, backend, progress)
    after = gradebook.totals(main_url, assignment)
    # Feedback whose scores changed since (or that was not written alongside): hand grading in
    # formgrader, submissions not graded in this run.
    late, problem = refresh_feedback(course, assignment, students, main_url)
    feedback, problem = sorted({*early, *late}), early_problem or problem
    questions, rows, devices = _report_rows(course, assignment, students, main_url)
    totals_csv, per_question = write_csvs(course.grades, assignment, questions, rows)
    lms = write_lms_csv(course.grades, main_url)
    report = canvas.fill(export, column, after, course.grades / f"canvas_{assignment}.csv") if export else None
    warning = "; ".join(w for w in (limits.isolation.warning, problem) if w)
    return GradeResult(assignment, questions, rows, totals_csv, per_question, lms, imported, plan.skipped,
                       warning, _changes(before, after, plan.todo), feedback, report,
                       {g.outcome.student: g.review for g in graded if g.review}, devices, unusable)


def _limits(options: GradeOptions, backend: Backend) -> Limits:
    """What each submission is graded under; the device is resolved here when the jobs run here,
    else by each worker on its own machine."""
    isolation = sandbox.required(options.unconfined)
    try:
        resolved = sandbox.resolve_device(options.device)
    except ValueError as exc:
        if backend.local or options.device not in sandbox.DEVICES:
            raise CourseError(str(exc)) from None
        resolved = options.device
    memory = int(options.memory_gb * 2**30) if options.memory_gb else None
    return Limits(options.timeout, memory, isolation, resolved if backend.local else options.device)


def _report_rows(course: Course, assignment: str, students: list[str],
                 main_url: str) -> tuple[list[str], list[StudentScore], dict[str, int]]:
    """The report step: every student's row from the gradebook and the records, and how many
    submissions' code ran on each device."""
    outcomes = {s: _last_outcome(course, assignment, s) for s in students}
    questions, rows = collect_scores(main_url, assignment, [outcomes[s] for s in students])
    for row in rows:
        row.findings = outcomes[row.student].findings
        row.hidden_failed = Graded(outcomes[row.student]).hidden_failed
        row.hidden_messages = {v.test_id: v.message for v in outcomes[row.student].verdicts if not v.passed}
    devices = Counter(o.device for o in outcomes.values() if o.device)
    return questions, rows, dict(sorted(devices.items()))


def _last_outcome(course: Course, assignment: str, student: str) -> Outcome:
    record = records.read(course, assignment, student)
    return record.outcome if record is not None else Outcome(student, False, "no record of its grading")


def _check_db(url: str) -> None:
    """A clear one-line error for a database URL that cannot be used."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

    try:
        engine = create_engine(url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (ArgumentError, NoSuchModuleError) as exc:
        raise CourseError(f"--db: {url!r} is not a usable database URL ({exc})") from None
    except (OperationalError, ImportError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CourseError(f"--db: cannot connect to {url!r}: {first}") from None
