"""The `course` command: a thin layer over the dlcourse library.

Every problem the user can fix ends as one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from dlcourse.errors import run_command


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the whole usage text
        self.exit(2, f"course: error: {message} (see 'course --help')\n")


def _console():
    from rich.console import Console

    return Console(highlight=False)


def cmd_release(args: argparse.Namespace) -> int:
    from dlcourse.authoring.examples import sync_examples
    from dlcourse.authoring.release import release
    from dlcourse.runner.course import Course

    course = Course.find()
    if args.assignment:
        course.require_assignment(args.assignment)
    ids = [args.assignment] if args.assignment else None
    report = release(course, ids, check=args.check)
    for assignment in ids or course.assignment_ids():
        report.setdefault(assignment, []).extend(sync_examples(course, assignment, check=args.check))
    stale = {a: d for a, d in report.items() if d}
    for assignment, diffs in report.items():
        state = ("out of date: " + "; ".join(diffs)) if diffs else "up to date"
        if not args.check:
            state = ("regenerated: " + "; ".join(diffs)) if diffs else "unchanged"
        print(f"{assignment}: {state}")
    if args.check and stale:
        print("course: error: assignments/ is out of date; run 'course release'", file=sys.stderr)
        return 1
    return 0


def _t(text: object) -> str:
    """A submission's text (id, file name, reason) escaped for the terminal, on one line."""
    from dlcourse.runner.untrusted import for_terminal

    return for_terminal(text)


def _items(items) -> str:
    return ", ".join(_t(item) for item in items)


def _outcome_line(graded) -> str:
    """One neutral line per graded submission: what happened, not what it may mean.

    Student ids, reasons and names come from submissions: escaped (:func:`_t`), one line.
    """
    outcome = graded.outcome
    state = "graded" if outcome.ok else f"NOT GRADED ({_t(outcome.reason)})"
    parts = [f"{_t(outcome.student)}: {state} in {outcome.seconds:.1f} s, {outcome.peak_memory / 2**30:.1f} GB"]
    if graded.hidden_failed:
        parts.append(f"hidden tests failed in: {_items(graded.hidden_failed)}")  # a cell may be partly visible
    if outcome.findings:
        parts.append(f"{len(outcome.findings)} tampering finding(s)")
    if graded.review:
        parts.append(f"hand grade to review again: {_items(graded.review)}")
    return "; ".join(parts)


def _print_progress(index: int, total: int, graded) -> None:
    print(f"[{index}/{total}] {_outcome_line(graded)}", flush=True)


class _ProgressBar:
    """A rich progress bar with one line per finished submission above it."""

    def __init__(self, console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, transient=True)
        self.task = None

    def started(self, students: list[str]) -> None:
        self.bar.start()
        self.task = self.bar.add_task("grading", total=len(students))

    def update(self, index: int, total: int, graded) -> None:
        outcome = graded.outcome
        style = "green" if outcome.ok and not outcome.findings else "red" if not outcome.ok else "yellow"
        self.bar.console.print(f"[{index}/{total}] {_outcome_line(graded)}", style=style, markup=False,
                               highlight=False)
        self.bar.advance(self.task)

    def stop(self) -> None:
        self.bar.stop()


def cmd_grade(args: argparse.Namespace) -> int:
    from dlcourse.runner.course import Course
    from dlcourse.runner.grade import GradeOptions, grade_with

    course = Course.find()
    course.require_assignment(args.assignment)
    source = Path(args.source) if args.source else None
    options = GradeOptions(timeout=args.timeout, workers=args.workers, memory_gb=args.memory, force=args.force,
                           db=args.db, unconfined=args.unconfined,
                           canvas_gradebook=Path(args.canvas_gradebook) if args.canvas_gradebook else None,
                           canvas_column=args.canvas_column, cluster=args.cluster, device=args.device)
    bar = _ProgressBar(_console())
    try:
        result = grade_with(course, args.assignment, options, source, progress=bar.update, started=bar.started)
    finally:
        bar.stop()
    if result.warning:
        print(f"warning: {_t(result.warning)}", file=sys.stderr)
    _print_grade_report(result, course.feedback)
    if result.devices:
        print("student code ran on: " + ", ".join(f"{d} ({n})" for d, n in result.devices.items())
              + ("; UNCONFINED (--unconfined)" if args.unconfined else "; confined (bubblewrap)"))
    return 0


def _print_grade_report(result, feedback: Path) -> None:
    """What a TA must see after grading: imports, changes, the table, where the files are.

    Every file name, student id, finding and cell name in it came from a submission:
    each item is escaped for the terminal and stays on its line.
    """
    from dlcourse.runner.reports import score_table

    if result.imported:
        for line in result.imported.renamed:
            print(f"renamed: {_t(line)}")
        for line in result.imported.unplaced:
            print(f"not imported: {_t(line)}")
        for student in result.imported.late:
            print(f"late: {_t(student)}")
    if result.skipped:
        print(f"already graded, unchanged (use --force to regrade): {_items(result.skipped)}")
    if result.unusable:
        print(f"not graded, not a usable student id (folders in submitted/): {_items(result.unusable)}")
    _console().print(score_table(result.assignment, result.questions, result.rows))
    for row in result.rows:
        for finding in row.findings:
            print(f"tampering: {_t(row.student)}: {_t(finding)}")
    for change in result.changes:
        print(f"total changed: {_t(change.student)}: {change.before:g} -> {change.after:g} "
              f"({change.after - change.before:+g})")
    for student, cells in result.review.items():
        print(f"review hand grade: {_t(student)}: {_items(cells)} (automatic outcome changed or resubmitted)")
    if result.feedback:
        print(f"feedback written: {_items(result.feedback)}")
    print(f"grades: {result.csv_path}\nper question: {result.questions_csv_path}\n"
          f"other LMSs (one row per student, score and maximum per assignment): {result.lms_csv_path}")
    if result.canvas:
        _print_canvas(result.canvas)
    print(f"feedback: {feedback}/<student>/{result.assignment}/")


def _print_canvas(report) -> None:
    """Names and ids from the Canvas export and the submissions, escaped like the rest."""
    print(f"Canvas import ({_t(repr(report.column))} filled for {len(report.filled)} student(s)): {report.path}")
    if report.pending:
        print(f"  left blank, written answers wait for a TA: {'; '.join(_t(who) for who in report.pending)}")
    if report.not_submitted:
        print(f"  left blank, no submission in the gradebook: {'; '.join(_t(who) for who in report.not_submitted)}")
    if report.unknown:
        print(f"  graded but not in the Canvas export (not written): {_items(report.unknown)}")
    for line in report.warnings:
        print(f"  warning: {_t(line)}")


def cmd_validate(args: argparse.Namespace) -> int:
    from dlcourse.validate import run

    return run(args.notebook, out=lambda line: print(line, flush=True))


def cmd_publish(args: argparse.Namespace) -> int:
    from dlcourse.authoring.publish import publish
    from dlcourse.runner.course import Course

    report = publish(Course.find(), Path(args.dest), make_zip=args.zip, check=args.check)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    for line in report.stale:
        print(f"  {line}")
    for line in report.leaks:
        print(f"  LEAK {line}")
    size = f"{report.files} files, {report.bytes / 1e6:.1f} MB"
    if report.leaks:
        print(f"course: error: the edition at {report.dest} leaks {len(report.leaks)} item(s) (listed above); "
              "do not hand it out", file=sys.stderr)
        return 1
    if args.check:
        if report.stale:
            print(f"course: error: the edition at {report.dest} is out of date; run 'course publish {args.dest}'",
                  file=sys.stderr)
            return 1
        print(f"{report.dest}: up to date ({size}); leak scan: clean")
        return 0
    print(f"edition: {report.dest} ({size}); leak scan: clean")
    if report.zip_path:
        print(f"zip for the LMS: {report.zip_path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from dlcourse.authoring.check import run_checks
    from dlcourse.runner.course import Course

    def show(gate) -> None:
        mark = "PASS" if gate.ok else "FAIL"
        print(f"{mark}  {gate.name}" + (f": {gate.detail}" if gate.detail else ""), flush=True)

    ok = run_checks(Course.find(), lectures=not args.skip_lectures, report=show)
    print("course check: all gates pass" if ok else "course check: some gates FAIL")
    return 0 if ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from dlcourse.authoring.examples import submissions_dir
    from dlcourse.runner.course import Course, scratch_course
    from dlcourse.runner.grade import grade
    from dlcourse.runner.reports import score_table

    course = Course.find()
    print("== course release")
    cmd_release(argparse.Namespace(assignment=None, check=False))
    demo_root = Path(args.dir) if args.dir else course.root / "demo"
    demo = scratch_course(course, demo_root)
    console = _console()
    unconfined = _demo_mode()
    for assignment in course.assignment_ids():
        examples = submissions_dir(course, assignment)
        print(f"== course grade {assignment} --from {examples.relative_to(course.root)}")
        result = grade(demo, assignment, examples, progress=_print_progress, unconfined=unconfined)
        console.print(score_table(assignment, result.questions, result.rows))
    print(f"Demo course (gradebook, autograded notebooks, feedback, grades/): {demo_root}")
    return 0


def _demo_mode() -> bool:
    """Confined where bubblewrap works; otherwise unconfined, said out loud (the demo grades the
    course's own examples, which `course grade` would refuse without --unconfined)."""
    from dlcourse.runner import sandbox

    found = sandbox.detect()
    if found.kind == "bubblewrap":
        print("== grading confined with bubblewrap (no network, only the submission's own folder)")
        return False
    print(f"== grading UNCONFINED: {found.warning}. The demo grades the course's own examples; "
          f"for students' work, {sandbox.INSTALL_HINT} (course grade refuses to run without it)")
    return True


def cmd_references(args: argparse.Namespace) -> int:
    from dlcourse.authoring.practical import practicals
    from dlcourse.authoring.references import compare_references, write_references
    from dlcourse.runner.course import Course

    course = Course.find()
    if args.assignment:
        course.require_assignment(args.assignment)
    ids = [args.assignment] if args.assignment else [p.id for p in practicals(course) if p.references]
    problems = []
    for assignment in ids:
        if args.check:
            found = compare_references(course, assignment)
            problems += found
            print(f"{assignment}: " + ("; ".join(found) if found else "references reproduce"))
        else:
            for path in write_references(course, assignment):
                print(f"wrote {path}")
    return 1 if problems else 0


def cmd_gpu_check(args: argparse.Namespace) -> int:
    from dlcourse.authoring.gpucheck import format_report, gpu_check
    from dlcourse.authoring.practical import practicals
    from dlcourse.runner.course import Course

    course = Course.find()
    ids = [course.require_assignment(args.assignment)] if args.assignment else \
        [p.id for p in practicals(course) if p.references]
    ok = True
    for assignment in ids:
        report = gpu_check(course, assignment)
        print(format_report(report), flush=True)
        ok = ok and report.verdicts_equal
    return 0 if ok else 1


def cmd_new(args: argparse.Namespace) -> int:
    from dlcourse.authoring.scaffold import HANDIN_STEPS, new_practical
    from dlcourse.runner.course import Course

    course = Course.find()
    for path in new_practical(course, args.assignment):
        print(f"wrote {path}")
    print(f"{args.assignment}: released with its references and example submissions; edit "
          f"solutions/{args.assignment}/{args.assignment}.ipynb and its spec module, then run "
          "'course release' and 'course check'.")
    print(HANDIN_STEPS)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="course", description="Release, grade and check the course's assignments.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("release", help="regenerate assignments/ (and examples/) from solutions/")
    p.add_argument("assignment", nargs="?", help="one assignment (default: all)")
    p.add_argument("--check", action="store_true", help="fail if assignments/ is out of date; change nothing")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("grade", help="autograde every submission of an assignment")
    p.add_argument("assignment")
    p.add_argument("--from", dest="source", metavar="PATH",
                   help="folder of <student>/<files>, or an LMS zip download, to import first")
    p.add_argument("--timeout", type=float, default=1800, metavar="SECONDS",
                   help="wall-clock limit of one whole submission (default 1800)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, metavar="N",
                       help="submissions graded at once on this machine (default 1)")
    where.add_argument("--cluster", metavar="ADDRESS",
                       help="grade on the workers of an existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="auto",
                   help="where student code runs: the CPU, the GPU (its device nodes are bound into "
                        "the confinement), or auto: the GPU where one is present (default)")
    p.add_argument("--memory", type=float, default=4.0, metavar="GB",
                   help="resident memory limit of one submission (default 4)")
    p.add_argument("--force", action="store_true", help="regrade submissions already graded and unchanged")
    p.add_argument("--db", metavar="URL", help="gradebook database URL (default: nbgrader's SQLite file; "
                                               "e.g. postgresql://user@host/db)")
    p.add_argument("--unconfined", action="store_true",
                   help="run student code without bubblewrap's confinement, with your own rights")
    p.add_argument("--canvas-gradebook", metavar="EXPORT.csv",
                   help="a Canvas gradebook export to fill; writes grades/canvas_<assignment>.csv")
    p.add_argument("--canvas-column", metavar="NAME",
                   help="the export's column of this assignment (default: the one whose title starts "
                        "with the assignment id)")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("validate", help="run a copy of a notebook as the grader does; report each cell")
    p.add_argument("notebook")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("publish", help="write the student edition to DEST and scan it for leaks")
    p.add_argument("dest", metavar="DEST", help="folder of the edition (new, or an earlier edition)")
    p.add_argument("--zip", action="store_true", help="also write DEST.zip, for an LMS")
    p.add_argument("--check", action="store_true", help="fail if the edition at DEST is out of date or leaks; "
                                                         "change nothing")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("new", help="scaffold a practical that releases, grades and passes the gates at once")
    p.add_argument("assignment", help="the new practical's id (its folder solutions/ID/)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("references", help="regenerate the hidden reference outputs from the solutions")
    p.add_argument("assignment", nargs="?", help="one assignment (default: all that have references)")
    p.add_argument("--check", action="store_true", help="only prove the stored references are current")
    p.set_defaults(func=cmd_references)

    p = sub.add_parser("check", help="the course's quality gates")
    p.add_argument("--skip-lectures", action="store_true", help="leave out the nbval run of lectures/")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("gpu-check", help="grade solutions and mutants on the accelerator present")
    p.add_argument("assignment", nargs="?")
    p.set_defaults(func=cmd_gpu_check)

    p = sub.add_parser("demo", help="release and autograde the bundled example submissions")
    p.add_argument("--dir", help="where to put the demo course (default: ./demo)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from dlcourse.runner.autograde import QUIET_ENV
    from dlcourse.runtime import GRADING_VARIABLE

    for key, value in QUIET_ENV.items():
        if key != GRADING_VARIABLE:
            os.environ.setdefault(key, value)
    tempfile.tempdir = None
    args = build_parser().parse_args(argv)
    return run_command(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
