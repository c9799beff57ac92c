"""`course references`: each practical's hidden reference file, made from its solution and
checked against it; the source notebook's hidden blocks and prose checked against (and written
from) its spec. TA side: it runs solution code and reads the course."""

from __future__ import annotations

import re

import nbformat
import numpy as np

from dlcourse.authoring.practical import Practical, practical
from dlcourse.grading.policy import relative_error
from dlcourse.grading.references import Case, load_cases, save_cases
from dlcourse.grading.spec import (
    HIDDEN_BEGIN,
    HIDDEN_END,
    AssignmentSpec,
    FunctionSpec,
    HandinContract,
)
from dlcourse.runner.course import Course
from dlcourse.runner.notebooks import cells_by_grade_id, grade_id, read_notebook, solution_namespace

#: Stored outputs may differ from a fresh run by float round-off only.
REPRODUCTION_TOLERANCE = 1e-5


def function_specs(course: Course, assignment: str) -> list[FunctionSpec]:
    """Every graded function of ``assignment`` that has hidden reference cases."""
    spec = practical(course, assignment).spec
    return list(spec.functions) if spec else []


def handin_contracts(course: Course, assignment: str) -> list[HandinContract]:
    handin = practical(course, assignment).handin
    return [handin] if handin else []


def _graded(found: Practical) -> AssignmentSpec | None:
    """The spec, where it grades functions against references."""
    return found.spec if found.spec is not None and found.spec.functions else None


def compute(course: Course, spec: AssignmentSpec) -> list[Case]:
    """The reference cases, from the solution cells the spec names (setup first)."""
    return spec.make(solution_namespace(course.source_notebook(spec.assignment), spec.cells))


def write_references(course: Course, assignment: str) -> list[str]:
    """Regenerate the reference file of ``assignment``; returns the paths written."""
    found = practical(course, assignment)
    spec = _graded(found)
    if spec is None or found.references is None:
        return []
    save_cases(found.references, compute(course, spec))
    return [str(found.references.relative_to(course.root))]


def compare_references(course: Course, assignment: str) -> list[str]:
    """Problems found when the stored references are recomputed from the solution."""
    found = practical(course, assignment)
    spec = _graded(found)
    if spec is None or found.references is None:
        return []
    filename, path = spec.reference_file, found.references
    problems: list[str] = []
    if not path.is_file():
        return [f"{filename} is missing (run 'course references {assignment}')"]
    stored = load_cases(path)
    fresh = {case.name: case for case in compute(course, spec)}
    if set(stored) != set(fresh):
        return [f"{filename}: cases {sorted(stored)} stored, solution makes {sorted(fresh)}"]
    for name, case in fresh.items():
        old = stored[name]
        same_setup = (case.meta == old.meta and np.array_equal(case.inputs, old.inputs)
                      and case.weights.keys() == old.weights.keys()
                      and all(np.array_equal(a, b) for k in case.weights
                              for a, b in zip(case.weights[k], old.weights[k], strict=True)))
        if not same_setup:
            problems.append(f"{filename}: case {name} has other inputs or weights than the solution makes")
        elif case.expected.shape != old.expected.shape or \
                relative_error(case.expected, old.expected) > REPRODUCTION_TOLERANCE:
            problems.append(f"{filename}: case {name}: stored output is not what the solution produces")
    return problems


def _hidden_block(source: str) -> str | None:
    begin, end = source.find(HIDDEN_BEGIN), source.find(HIDDEN_END)
    return source[begin:end + len(HIDDEN_END)] if 0 <= begin < end else None


def spec_problems(course: Course, assignment: str) -> list[str]:
    """Where the source notebook disagrees with its specs and hand-in contract.

    Each spec's test cell must hold exactly the hidden block the spec generates;
    each hand-in cell is the contract's cell; and wherever the notebook states
    the hand-in's metric with a threshold (prose, comments), it is the contract's.
    """
    nb = read_notebook(course.source_notebook(assignment))
    cells = cells_by_grade_id(nb)
    problems = []
    for spec in function_specs(course, assignment):
        cell = cells.get(spec.test_id)
        if cell is None:
            problems.append(f"{assignment}: no test cell {spec.test_id} for {spec.function}")
        elif _hidden_block(cell.source) != spec.hidden_source():
            problems.append(f"{assignment}: {spec.test_id}'s hidden block is not {spec.name}'s "
                            f"(expected:\n{spec.hidden_source()})")
    for handin in handin_contracts(course, assignment):
        cell = cells.get(handin.grade_id)
        if cell is None or cell.source.strip() != handin.cell_source():
            problems.append(f"{assignment}: {handin.grade_id} is not the hand-in contract's cell "
                            f"(expected:\n{handin.cell_source()})")
        stated = re.compile(rf"{re.escape(handin.metric)}\s*(?:≥|>=)\s*([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)
        for index, c in enumerate(nb.cells):
            for value in stated.findall(c.source):
                if float(value) != handin.threshold:
                    problems.append(f"{assignment}: cell {grade_id(c) or index} states {handin.metric} >= "
                                    f"{value}; the hand-in contract ({handin.grade_id}) says "
                                    f"{handin.threshold:.2f}")
        if not any(c.cell_type == "markdown" and handin.stated in c.source for c in nb.cells):
            problems.append(f"{assignment}: no markdown cell states the target '{handin.stated}'")
    return problems


def _with_block(source: str, block: str) -> str:
    """``source`` with its hidden block replaced by ``block`` (appended where it has none)."""
    current = _hidden_block(source)
    if current is not None:
        return source.replace(current, block, 1)
    return f"{source.rstrip()}\n{block}" if source.strip() else block


def write_hidden_blocks(course: Course, assignment: str, check: bool = False) -> list[str]:
    """Write each spec'd test cell's hidden block (and the hand-in's whole cell) into the source
    notebook from the spec, so that nobody pastes them; returns the cells changed (with
    ``check``, the cells that would change, and nothing is written)."""
    found = practical(course, assignment)
    if found.spec is None:
        return []
    nb = read_notebook(found.notebook)
    cells = cells_by_grade_id(nb)
    changed = []
    for spec in found.spec.functions:
        cell = cells.get(spec.test_id)
        if cell is not None and _hidden_block(cell.source) != spec.hidden_source():
            cell.source = _with_block(cell.source, spec.hidden_source())
            changed.append(spec.test_id)
    handin = found.handin
    if handin is not None and (cell := cells.get(handin.grade_id)) is not None \
            and cell.source.strip() != handin.cell_source():
        cell.source = handin.cell_source()
        changed.append(handin.grade_id)
    if changed and not check:
        nbformat.write(nb, found.notebook)
    return changed
