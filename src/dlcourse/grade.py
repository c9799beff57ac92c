"""`course grade`: import, autograde every submission (confined, in parallel), verify,
merge into the gradebook, write feedback, CSVs and a table.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dlcourse import gradebook, nbgrader_api, sandbox
from dlcourse.autograde import Limits, Outcome, grade_submission
from dlcourse.course import Course
from dlcourse.errors import CourseError
from dlcourse.reports import StudentScore, collect_scores, write_csvs, write_lms_csv
from dlcourse.submissions import ImportReport, import_submissions
from dlcourse.verify import Verdict

DEFAULT_TIMEOUT = 1800.0
DEFAULT_MEMORY_GB = 4.0


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


def db_url(course: Course) -> str:
    return nbgrader_api.load_config(course).CourseDirectory.db_url


def submission_digest(course: Course, assignment: str, student: str) -> str:
    """Fingerprint of what was submitted and of the assignment it is graded against."""
    digest = hashlib.sha256()
    for folder in (course.submitted / student / assignment, course.solutions / assignment):
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts):
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _record_path(course: Course, assignment: str, student: str) -> Path:
    return course.grades / "records" / assignment / f"{student}.json"


def _read_record(course: Course, assignment: str, student: str) -> dict | None:
    try:
        return json.loads(_record_path(course, assignment, student).read_text())
    except (OSError, ValueError):
        return None


def _outcome_from_record(record: dict) -> Outcome:
    return Outcome(record["student"], record["ok"], record.get("reason", ""), record.get("seconds", 0.0),
                   record.get("peak_memory", 0), record.get("findings", []),
                   [Verdict(**v) for v in record.get("verdicts", [])])


def _write_record(course: Course, assignment: str, outcome: Outcome, digest: str, overridden: list[str]) -> None:
    path = _record_path(course, assignment, outcome.student)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"student": outcome.student, "ok": outcome.ok, "reason": outcome.reason,
              "seconds": round(outcome.seconds, 2), "peak_memory": outcome.peak_memory,
              "findings": outcome.findings, "verdicts": [asdict(v) for v in outcome.verdicts],
              "overridden": overridden, "digest": digest}
    path.write_text(json.dumps(record, indent=1))


def trusted_overrides(outcome: Outcome, scores: dict[str, float]) -> list[gradebook.Override]:
    """Where the kernel said pass but the repeat outside it failed, the kernel cannot be trusted.

    An honest notebook gives the same verdict in both places (same code, same
    inputs). A disagreement zeroes every test cell of that function
    (``test_<function>*``), since the same tampering may have passed its
    visible tests too; a failed hand-in model check zeroes that cell.
    """
    overrides = []
    for verdict in outcome.verdicts:
        if verdict.passed or not scores.get(verdict.test_id):
            continue
        function = verdict.function
        cells = [c for c in scores if c == verdict.test_id or (
            function and (c == f"test_{function}" or c.startswith(f"test_{function}_")))]
        why = f"passed inside the notebook but not when repeated outside it ({verdict.message})"
        overrides += [gradebook.Override(c, 0.0, why) for c in cells if scores[c] > 0]
    return overrides


def _merge(course: Course, assignment: str, outcome: Outcome, main_url: str) -> list[str]:
    """Bring a finished submission into the course; returns the cells whose grade was overridden."""
    student = outcome.student
    if not outcome.ok:
        gradebook.record_failure(main_url, assignment, student, outcome.reason)
        return []
    private = outcome.private_course
    private_url = f"sqlite:///{private / 'gradebook.db'}"
    graded = private / "autograded" / student / assignment
    scores = {nb.stem: gradebook.trusted_grades(main_url, assignment, nb) for nb in sorted(graded.glob("*.ipynb"))}
    overrides = trusted_overrides(outcome, {cell: score or 0.0 for per_nb in scores.values()
                                            for cell, score in per_nb.items()})
    gradebook.merge_submission(private_url, main_url, assignment, student, scores, overrides,
                               flagged=bool(overrides or outcome.findings))
    target = course.autograded / student / assignment
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(graded, target, ignore=shutil.ignore_patterns(".home", ".stdout", ".stderr"))
    return sorted({o.cell for o in overrides})


def _submissions_in(url: str, assignment: str) -> set[str]:
    """Students with a submission of ``assignment`` in the gradebook at ``url`` (none if it is new)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(url) as gb:
        try:
            return {s.student.id for s in gb.find_assignment(assignment).submissions}
        except MissingEntry:
            return set()


def register(course: Course, assignment: str, url: str) -> None:
    """Put the assignment (notebooks, grade cells, points) into the gradebook at ``url``."""
    with tempfile.TemporaryDirectory(prefix="dlcourse-register-") as tmp:
        nbgrader_api.generate_assignment(course, assignment, release_dir=Path(tmp), db_url=url)


def grade(
    course: Course,
    assignment: str,
    source: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Callable[[int, int, Outcome], None] | None = None,
    started: Callable[[list[str]], None] | None = None,
    workers: int = 1,
    memory_gb: float | None = DEFAULT_MEMORY_GB,
    force: bool = False,
    db: str | None = None,
) -> GradeResult:
    """Grade every submission of ``assignment`` in the course's submitted/ folder."""
    course.require_assignment(assignment)
    if timeout <= 0:
        raise CourseError(f"--timeout must be positive, got {timeout:g}")
    if workers < 1:
        raise CourseError(f"--workers must be at least 1, got {workers}")
    if memory_gb is not None and memory_gb <= 0:
        raise CourseError(f"--memory must be positive, got {memory_gb:g}")
    imported = import_submissions(course, assignment, source) if source is not None else None
    students = course.student_ids(assignment)
    if not students:
        raise CourseError(
            f"no submissions of {assignment} in {course.submitted} (import some with --from PATH)"
        )
    main_url = db or db_url(course)
    _check_db(main_url)
    isolation = sandbox.detect()
    limits = Limits(timeout, int(memory_gb * 2**30) if memory_gb else None, isolation)

    digests = {s: submission_digest(course, assignment, s) for s in students}
    recorded = _submissions_in(main_url, assignment)
    todo, skipped = [], []
    for student in students:
        record = _read_record(course, assignment, student)
        if not force and record and record.get("digest") == digests[student] and student in recorded:
            skipped.append(student)
        else:
            todo.append(student)

    outcomes: dict[str, Outcome] = {s: _outcome_from_record(_read_record(course, assignment, s)) for s in skipped}
    if started:
        started(todo)
    feedback_api = nbgrader_api.api(course, CourseDirectory={"db_url": main_url})
    with tempfile.TemporaryDirectory(prefix="dlcourse-grade-") as tmp:
        template = Path(tmp) / "template.db"
        register(course, assignment, f"sqlite:///{template}")
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(grade_submission, course, assignment, s, template, Path(tmp) / s, limits): s
                       for s in todo}
            # The course's gradebook is needed only when the first result comes back.
            register(course, assignment, main_url)
            for index, future in enumerate(as_completed(futures), start=1):
                student = futures[future]
                try:
                    outcome = future.result()
                except Exception as exc:  # a grader fault must not stop the batch
                    outcome = Outcome(student, False, f"grader error: {type(exc).__name__}: {exc}")
                try:
                    overridden = _merge(course, assignment, outcome, main_url)
                except Exception as exc:  # e.g. an autograded notebook nbgrader could not write
                    outcome.ok, outcome.reason = False, f"grader error: {type(exc).__name__}: {exc}"
                    gradebook.record_failure(main_url, assignment, student, outcome.reason)
                    overridden = []
                if outcome.ok:
                    result = feedback_api.generate_feedback(assignment, student, force=True)
                    if not result["success"]:
                        outcome.reason = "feedback failed: " + nbgrader_api.failure_reason(result)
                _write_record(course, assignment, outcome, digests[student], overridden)
                if outcome.workdir:
                    shutil.rmtree(outcome.workdir, ignore_errors=True)
                outcomes[student] = outcome
                if progress:
                    progress(index, len(todo), outcome)

    ordered = [outcomes[s] for s in students]
    questions, rows = collect_scores(main_url, assignment, ordered)
    for row, outcome in zip(rows, ordered, strict=True):
        record = _read_record(course, assignment, outcome.student) or {}
        row.findings = outcome.findings
        row.overridden = record.get("overridden", [])
    totals, per_question = write_csvs(course.grades, assignment, questions, rows)
    lms = write_lms_csv(course.grades, main_url)
    return GradeResult(assignment, questions, rows, totals, per_question, lms, imported, skipped,
                       isolation.warning)


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
