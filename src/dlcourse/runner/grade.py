"""`course grade`: import, autograde every submission (confined, in parallel), verify,
merge into the gradebook keeping hand grading, write feedback, CSVs (and a filled
Canvas export) and a table.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat

from dlcourse.errors import CourseError
from dlcourse.runner import autograde, canvas, gradebook, jobs, nbgrader_api, sandbox, warm
from dlcourse.runner.autograde import Limits, Outcome
from dlcourse.runner.canvas import CanvasReport
from dlcourse.runner.course import Course
from dlcourse.runner.nbgrader_plugins import hidden_files
from dlcourse.runner.notebooks import read_notebook
from dlcourse.runner.reports import (
    StudentScore,
    collect_scores,
    mark_pending,
    write_csvs,
    write_lms_csv,
)
from dlcourse.runner.submissions import (
    TIMESTAMP,
    ImportReport,
    import_submissions,
    usable_student_id,
)
from dlcourse.runner.untrusted import InertNotebook

DEFAULT_TIMEOUT = 1800.0
DEFAULT_MEMORY_GB = 4.0
#: How long the feedback writer may take for one submission's feedback.
FEEDBACK_SECONDS = 300.0


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


def _record_path(course: Course, assignment: str, student: str) -> Path:
    return course.grades / "records" / assignment / f"{student}.json"


def _read_record(course: Course, assignment: str, student: str) -> dict | None:
    try:
        return json.loads(_record_path(course, assignment, student).read_text())
    except (OSError, ValueError):
        return None


def _write_record(course: Course, assignment: str, outcome: Outcome, inputs: dict[str, str]) -> None:
    path = _record_path(course, assignment, outcome.student)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"student": outcome.student, "ok": outcome.ok, "reason": outcome.reason,
              "seconds": round(outcome.seconds, 2), "peak_memory": outcome.peak_memory,
              "findings": outcome.findings, "verdicts": [asdict(v) for v in outcome.verdicts],
              "device": outcome.device, "fault": outcome.fault, **inputs}
    path.write_text(json.dumps(record, indent=1))


def _update_record(course: Course, assignment: str, student: str, **values: str) -> None:
    record = _read_record(course, assignment, student)
    if record is not None:
        record.update(values)
        _record_path(course, assignment, student).write_text(json.dumps(record, indent=1))


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


def _check_options(timeout: float, workers: int, memory_gb: float | None) -> None:
    if timeout <= 0:
        raise CourseError(f"--timeout must be positive, got {timeout:g}")
    if workers < 1:
        raise CourseError(f"--workers must be at least 1, got {workers}")
    if memory_gb is not None and memory_gb <= 0:
        raise CourseError(f"--memory must be positive, got {memory_gb:g}")


@dataclass
class _Plan:
    """Which submissions this run grades, and the inputs each record is compared against."""

    todo: list[str]
    skipped: list[str]
    inputs: dict[str, dict[str, str]]  # student -> {"submission", "timestamp", "assignment"} digests
    resubmitted: set[str]


def _plan(course: Course, assignment: str, students: list[str], template_url: str, main_url: str,
          force: bool) -> _Plan:
    """Grade what is new or changed (the submission, the graded cells, the hidden files), or all."""
    graded_with = assignment_digest(course, assignment, template_url)
    recorded = _submissions_in(main_url, assignment)
    plan = _Plan([], [], {}, set())
    for student in students:
        inputs = {"submission": submission_digest(course, assignment, student),
                  "timestamp": _submitted_time(course, assignment, student), "assignment": graded_with}
        plan.inputs[student] = inputs
        record = _read_record(course, assignment, student) or {}
        if record.get("submission", inputs["submission"]) != inputs["submission"]:  # unknown: not new
            plan.resubmitted.add(student)
        # A submission whose grading failed for a reason not its own (a dead worker, a machine that
        # could not confine it, a classmate's sabotage) is graded again, whatever else changed.
        blameless = record.get("ok") is False and record.get("fault") != autograde.FAULT_SUBMISSION
        current = all(record.get(k) == v for k, v in inputs.items()) and student in recorded and not blameless
        (plan.skipped if current and not force else plan.todo).append(student)
    return plan


def _grade_all(course: Course, assignment: str, plan: _Plan, template: Path, workdir: Path, limits: Limits,
               main_url: str, workers: int, progress: Callable[[int, int, Graded], None] | None,
               cluster: str | None = None) -> list[Graded]:
    """Autograde the planned submissions in parallel (here, or on a Dask cluster); the parent
    merges each result as it comes.

    On a cluster, a worker that dies takes the jobs queued on it down with it, and the scheduler
    gives up on a job after a few such deaths. Those jobs are run again, one at a time, so that
    only a submission that kills every worker it is given is recorded as failed.
    """
    done: list[Graded] = []

    def finish(student: str, result: bytes | None, error: BaseException | None) -> None:
        if error is None:
            outcome = jobs.unpack_result(result, workdir / student)
        else:  # a grader fault or a lost worker must not stop the batch
            outcome = Outcome(student, False, jobs.failure_reason(error), fault=jobs.failure_fault(error))
        done.append(_record(course, assignment, plan, outcome, main_url))
        if progress:
            progress(len(done), len(plan.todo), done[-1])

    with jobs.job_executor(workers, cluster) as (pool, share):
        packed = jobs.make_bundle(course, assignment, template)
        bundle = share(packed)

        def submit(student: str, bundle=bundle):
            return pool.submit(jobs.run_job, bundle, jobs.pack_submission(course, assignment, student),
                               assignment, student, limits)

        futures = {submit(s): s for s in plan.todo}
        again = []
        for future in as_completed(futures):
            error = _error_of(future)
            if jobs.worker_lost(error):
                again.append(futures[future])
            else:
                finish(futures[future], None if error else future.result(), error)
        # Alone now: a neighbour's crash cannot take this job down. The bundle is shared afresh:
        # a dead worker may have taken its copy (and Dask's verdict on it) along.
        fresh = share(packed) if again else None
        for student in again:
            future = submit(student, fresh)
            error = _error_of(future)
            finish(student, None if error else future.result(), error)
    return done


def _grade_with_feedback(course: Course, assignment: str, plan: _Plan, template: Path, workdir: Path,
                         limits: Limits, main_url: str, workers: int,
                         progress: Callable[[int, int, Graded], None] | None,
                         cluster: str | None) -> tuple[list[Graded], list[str], str]:
    """:func:`_grade_all`, with each graded submission's feedback written by a second process
    while the others are still being graded. Returns the graded, whose feedback was written,
    and the first feedback problem."""
    if not plan.todo:
        warm.close_all()  # prestarted for nothing
        return [], [], ""
    writer = warm.FeedbackWriter(course.root, assignment, main_url, workdir / "feedback-writer.log")

    def graded_one(done: int, total: int, graded: Graded) -> None:
        if graded.outcome.ok:
            writer.submit(graded.outcome.student)
        if progress:
            progress(done, total, graded)

    written, problem = [], ""
    try:
        graded = _grade_all(course, assignment, plan, template, workdir, limits, main_url, workers, graded_one,
                            cluster)
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
    _write_record(course, assignment, outcome, plan.inputs[student])
    if outcome.workdir:
        shutil.rmtree(outcome.workdir, ignore_errors=True)
    return graded


def refresh_feedback(course: Course, assignment: str, students: list[str], main_url: str) -> tuple[list[str], str]:
    """Write the feedback of every graded student whose scores or comments changed since it was
    written (a regrade, or a TA's hand grading in formgrader). Returns the students and the
    first problem, if any."""
    feedback_api = nbgrader_api.api(course, CourseDirectory={"db_url": main_url})
    written, problem = [], ""
    for student in students:
        record = _read_record(course, assignment, student)
        if not record or not record.get("ok"):
            continue
        state = gradebook.grading_state(main_url, assignment, student)
        html = course.feedback / student / assignment
        if record.get("feedback") == state and html.is_dir() and any(html.glob("*.html")):
            continue
        result = feedback_api.generate_feedback(assignment, student, force=True)
        if not result["success"]:
            problem = problem or f"feedback for {student} failed: {nbgrader_api.failure_reason(result)}"
            continue
        _mark_provisional(course, assignment, student, main_url)
        _update_record(course, assignment, student, feedback=state)
        written.append(student)
    return written, problem


def _mark_provisional(course: Course, assignment: str, student: str, main_url: str) -> None:
    """Written answers waiting for a TA read "not graded yet" in the feedback, the total provisional."""
    for notebook, pending in gradebook.pending_cells(main_url, assignment, student).items():
        path = course.feedback / student / assignment / f"{notebook}.html"
        if pending and path.is_file():
            path.write_text(mark_pending(path.read_text(), notebook, pending))


def _changes(before: dict[str, gradebook.Total], after: dict[str, gradebook.Total],
             students: list[str]) -> list[TotalChange]:
    return [TotalChange(s, before[s].score, after[s].score) for s in students
            if s in before and s in after and abs(before[s].score - after[s].score) > 1e-9]


def _names(course: Course, assignment: str, imported: ImportReport | None, export: canvas.Export | None,
           main_url: str) -> None:
    """Student names into the gradebook (formgrader shows them): a Canvas export's names win."""
    if imported and imported.names:
        gradebook.set_names(main_url, {s: ("", n) for s, n in imported.names.items()}, replace=False)
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
    """Grade every submission of ``assignment`` in the course's submitted/ folder.

    Student code runs confined (bubblewrap) unless ``unconfined`` is given;
    hand grading in the gradebook survives every regrade. With ``cluster`` (a
    Dask scheduler's address) the submissions are graded on its workers.
    ``device`` (cpu, gpu, auto) is resolved where a submission is graded.
    """
    course.require_assignment(assignment)
    _check_options(timeout, workers, memory_gb)
    if canvas_column is not None and canvas_gradebook is None:
        raise CourseError("--canvas-column needs --canvas-gradebook EXPORT.csv")
    limits = _limits(timeout, memory_gb, unconfined, device, cluster)
    export = canvas.read_export(canvas_gradebook) if canvas_gradebook is not None else None
    column = canvas.find_column(export, assignment, canvas_column) if export is not None else None
    imported = import_submissions(course, assignment, source) if source is not None else None
    found = course.student_ids(assignment)
    # A folder in submitted/ that is no usable student id is left out, and said, never graded.
    students = [s for s in found if usable_student_id(s)]
    unusable = [s for s in found if s not in students]
    if not students:
        raise CourseError(
            f"no submissions of {assignment} in {course.submitted} (import some with --from PATH)"
        )
    main_url = db or db_url(course)
    _check_db(main_url)
    if cluster is None:  # the warm processes load while the batch is planned
        autograde.prestart(limits, min(workers, len(students)))
    with tempfile.TemporaryDirectory(prefix="dlcourse-grade-") as tmp:
        template = Path(tmp) / "template.db"
        register(course, assignment, f"sqlite:///{template}")
        plan = _plan(course, assignment, students, f"sqlite:///{template}", main_url, force)
        if started:
            started(plan.todo)
        register(course, assignment, main_url)
        _names(course, assignment, imported, export, main_url)
        before = gradebook.totals(main_url, assignment)
        graded, early, early_problem = _grade_with_feedback(course, assignment, plan, template, Path(tmp),
                                                            limits, main_url, workers, progress, cluster)
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


def _limits(timeout: float, memory_gb: float | None, unconfined: bool, device: str,
            cluster: str | None) -> Limits:
    """What each submission is graded under; the device is resolved here unless a cluster's
    workers resolve it (each on its own machine)."""
    isolation = sandbox.required(unconfined)
    try:
        resolved = sandbox.resolve_device(device)
    except ValueError as exc:
        if cluster is None or device not in sandbox.DEVICES:
            raise CourseError(str(exc)) from None
        resolved = device
    return Limits(timeout, int(memory_gb * 2**30) if memory_gb else None, isolation,
                  device if cluster else resolved)


def _report_rows(course: Course, assignment: str, students: list[str],
                 main_url: str) -> tuple[list[str], list[StudentScore], dict[str, int]]:
    """The report step: every student's row from the gradebook and the records, and how many
    submissions' code ran on each device."""
    outcomes = {s: Outcome.from_json(_read_record(course, assignment, s)) for s in students}
    questions, rows = collect_scores(main_url, assignment, [outcomes[s] for s in students])
    for row in rows:
        row.findings = outcomes[row.student].findings
        row.hidden_failed = Graded(outcomes[row.student]).hidden_failed
        row.hidden_messages = {v.test_id: v.message for v in outcomes[row.student].verdicts if not v.passed}
    devices = Counter(o.device for o in outcomes.values() if o.device)
    return questions, rows, dict(sorted(devices.items()))


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
