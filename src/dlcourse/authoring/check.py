"""`course check`: the quality gates of the course, over whatever assignments exist."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from dlcourse.authoring.examples import reference_handins, sync_examples
from dlcourse.authoring.practical import load_catalogue_module, practical, practical_problems
from dlcourse.authoring.references import compare_references, spec_problems
from dlcourse.authoring.release import release
from dlcourse.errors import CourseError
from dlcourse.runner import sandbox
from dlcourse.runner.autograde import QUIET_ENV
from dlcourse.runner.course import Course, scratch_course
from dlcourse.runner.grade import grade
from dlcourse.runner.notebooks import fill_solutions, find_leaks, read_notebook


@dataclass
class Gate:
    name: str
    ok: bool
    detail: str = ""


def release_gate(course: Course) -> list[Gate]:
    """Gate 3: assignments/ and examples/ equal a fresh release; nothing leaks."""
    gates = []
    diffs = release(course, check=True)
    for assignment, changes in diffs.items():
        gates.append(Gate(f"{assignment}: release is current", not changes, "; ".join(changes)))
    leaks = find_leaks(course.assignments)
    gates.append(Gate("release holds no solution, hidden test or hidden file", not leaks, "; ".join(leaks)))
    for assignment in course.assignment_ids():
        try:
            changes = sync_examples(course, assignment, check=True)
        except CourseError as exc:
            changes = [str(exc)]
        gates.append(Gate(f"{assignment}: example submissions are current", not changes, "; ".join(changes)))
    return gates


def practical_gate(course: Course, assignment: str) -> list[Gate]:
    """A practical with graded cells has its spec, references and mutant catalogue: a gate that
    fails naming what is missing, rather than gates that quietly do not run."""
    problems = practical_problems(practical(course, assignment))
    return [Gate(f"{assignment}: spec, references and mutant catalogue are in place", not problems,
                 "; ".join(problems))]


def reference_gate(course: Course, assignment: str) -> list[Gate]:
    """Stored hidden reference outputs are what the current solution produces; the hidden
    cells and the prose agree with the specs and the hand-in contract."""
    found = practical(course, assignment)
    if found.spec is None:
        return []  # practical_gate says whether one is needed
    problems = compare_references(course, assignment)
    drift = spec_problems(course, assignment)
    return [Gate(f"{assignment}: hidden references reproduce from the solution", not problems,
                 "; ".join(problems)),
            Gate(f"{assignment}: hidden cells and prose follow the specs and hand-in contract", not drift,
                 "; ".join(drift))]


def mutant_gate(course: Course, assignment: str) -> list[Gate]:
    """Gate 4: every mutant loses marks on its own grade_id only; alternatives keep them."""
    from dlcourse.authoring.mutants import judge, score_implementations

    path = practical(course, assignment).catalogue
    if not path.is_file():
        return []  # practical_gate fails where a catalogue is needed
    module = load_catalogue_module(path)
    verdicts = score_implementations(course.source_notebook(assignment), list(module.IMPLEMENTATIONS),
                                     skip=getattr(module, "SKIP", ()))
    problems = [p for v in verdicts if (p := judge(v, getattr(module, "DEPENDS_ON", {})))]
    mutants = sum(not v.implementation.correct for v in verdicts)
    return [Gate(f"{assignment}: {mutants} mutants lose marks, {len(verdicts) - mutants} alternatives keep them",
                 not problems, "; ".join(problems))]


def autograde_gates(course: Course, assignment: str, timeout: float = 1800) -> list[Gate]:
    """Gates 1 and 2: the solution scores full marks, the untouched release 0."""
    with tempfile.TemporaryDirectory(prefix="dlcourse-check-") as tmp:
        scratch = scratch_course(course, Path(tmp) / "course")
        incoming = Path(tmp) / "incoming"
        release_nb = read_notebook(course.release_notebook(assignment))
        solution = fill_solutions(release_nb, read_notebook(course.source_notebook(assignment)))
        for student, nb in (("solution", solution), ("untouched", release_nb)):
            (incoming / student).mkdir(parents=True)
            nbformat.write(nb, incoming / student / f"{assignment}.ipynb")
        for path in reference_handins(course, assignment):
            shutil.copyfile(path, incoming / "solution" / path.name)
        # The course's own solution and release: confined where bubblewrap works, else unconfined
        # (they are the instructor's code, which `course check` runs anyway).
        result = grade(scratch, assignment, incoming, timeout=timeout,
                       unconfined=sandbox.detect().kind != "bubblewrap")
        rows = {row.student: row for row in result.rows}
        shutil.rmtree(scratch.root, ignore_errors=True)
    auto = [q for q in result.questions if not _is_manual(q, rows["solution"])]
    sol, untouched = rows["solution"], rows["untouched"]
    lost = [q for q in auto if (sol.questions.get(q) or 0) < sol.question_max.get(q, 0)]
    gained = [q for q in auto if (untouched.questions.get(q) or 0) > 0]
    def detail(row, problems: list[str], what: str) -> str:
        if not row.status.startswith("graded"):
            return row.status
        return f"{what} {', '.join(problems)}" if problems else f"{row.score:g} of {row.max_score:g} points"

    return [
        Gate(f"{assignment}: solution scores full marks",
             sol.status.startswith("graded") and not lost, detail(sol, lost, "lost points in")),
        Gate(f"{assignment}: untouched release scores 0",
             untouched.status.startswith("graded") and not gained, detail(untouched, gained, "scored in")),
    ]


def _is_manual(question: str, row) -> bool:
    return question in row.questions and row.questions[question] is None


def lecture_gate(course: Course) -> list[Gate]:
    """Gate 5: lecture notebooks pass nbval (stored outputs reproduce)."""
    notebooks = sorted((course.root / "lectures").glob("*.ipynb"))
    if not notebooks:
        return [Gate("lectures pass nbval", True, "no lecture notebooks yet")]
    # In the environment the lectures are executed and checked in (lectures/execute.py, make test),
    # not with the grading settings the course command sets for itself: TF_ENABLE_ONEDNN_OPTS=0,
    # for one, changes the round-off of the lectures' training runs.
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", *map(str, notebooks)],
        cwd=course.root, capture_output=True, text=True, env=env,
    )
    lines = proc.stdout.strip().splitlines() or ["no output"]
    # Which cells failed, by notebook and cell, then the count.
    failed = [line.removeprefix("FAILED ").split(" - ")[0] for line in lines if line.startswith("FAILED ")]
    detail = "; ".join([*failed, lines[-1]])
    return [Gate("lectures pass nbval", proc.returncode == 0, detail)]


def run_checks(course: Course, lectures: bool = True, report: Callable[[Gate], None] = print) -> bool:
    """Run every gate, reporting each as it finishes; True when all pass."""
    gates: list[Gate] = []

    def add(new: list[Gate]) -> None:
        for gate in new:
            report(gate)
            gates.append(gate)

    add(release_gate(course))
    for assignment in course.assignment_ids():
        add(practical_gate(course, assignment))
        add(reference_gate(course, assignment))
        add(autograde_gates(course, assignment))
        add(mutant_gate(course, assignment))
    if lectures:
        add(lecture_gate(course))
    return all(g.ok for g in gates)
