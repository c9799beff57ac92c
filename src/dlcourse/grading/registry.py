"""Each assignment's hidden reference file, how the solution makes it, its function specs and hand-in."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlcourse.grading import inception, lstm, residual, unet
from dlcourse.grading.policy import relative_error
from dlcourse.grading.references import Case, load_cases, save_cases
from dlcourse.grading.spec import HIDDEN_BEGIN, HIDDEN_END, FunctionSpec, HandinContract
from dlcourse.runner.course import Course
from dlcourse.runner.notebooks import cells_by_grade_id, grade_id, read_notebook, solution_namespace

#: Stored outputs may differ from a fresh run by float round-off only.
REPRODUCTION_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ReferenceSet:
    """One assignment's reference file: how the solution makes it and which specs read it."""

    assignment: str
    filename: str
    cells: tuple[str, ...]  # solution cells to run, setup first
    make: Callable[[dict[str, Any]], list[Case]]
    specs: tuple[FunctionSpec, ...] = ()


def _inception(ns: dict[str, Any]) -> list[Case]:
    return inception.make_cases(ns["inception_module"], ns["auxiliary_classifier"], ns["conv_params"],
                                ns["params_inception"])


def _residual(ns: dict[str, Any]) -> list[Case]:
    return residual.make_cases(ns["residual_block"], ns["bottleneck_block"], ns["dense_block"])


def _lstm(ns: dict[str, Any]) -> list[Case]:
    # Expected outputs come from SciPy and keras.layers.LSTM; the solution must reproduce them.
    return lstm.make_cases(ns["sigmoid"], ns["lstm_cell_forward"], ns["lstm_forward"])


def _unet(ns: dict[str, Any]) -> list[Case]:
    return unet.make_cases(ns["receptive_field"], ns["build_unet"], ns["dice_coefficient"])


REFERENCE_SETS: tuple[ReferenceSet, ...] = (
    ReferenceSet("inception", inception.REFERENCE_FILE,
                 ("setup", "conv_params", "params_inception", "inception_module", "auxiliary_classifier"),
                 _inception, (inception.CONV_PARAMS, inception.PARAMS_INCEPTION, inception.INCEPTION_MODULE,
                              inception.AUXILIARY_CLASSIFIER)),
    ReferenceSet("residual", residual.REFERENCE_FILE,
                 ("setup", "residual_block", "bottleneck_block", "dense_block"), _residual,
                 (residual.RESIDUAL_BLOCK, residual.BOTTLENECK_BLOCK, residual.DENSE_BLOCK)),
    ReferenceSet("lstm", lstm.REFERENCE_FILE,
                 ("setup", "sigmoid", "lstm_cell_forward", "lstm_forward"), _lstm,
                 (lstm.SIGMOID, lstm.LSTM_CELL_FORWARD, lstm.LSTM_FORWARD)),
    ReferenceSet("unet", unet.REFERENCE_FILE,
                 ("setup", "receptive_field", "build_unet", "dice_coefficient"), _unet,
                 (unet.RECEPTIVE_FIELD, unet.BUILD_UNET, unet.DICE_COEFFICIENT)),
)

#: Each assignment's hand-in contract.
HANDINS: dict[str, HandinContract] = {
    "inception": inception.HANDIN,
    "residual": residual.HANDIN,
    "lstm": lstm.HANDIN,
    "unet": unet.HANDIN,
}


def function_specs(assignment: str) -> list[FunctionSpec]:
    """Every graded function of ``assignment`` that has hidden reference cases."""
    return [spec for ref in reference_sets(assignment) for spec in ref.specs]


def handin_contracts(assignment: str) -> list[HandinContract]:
    return [HANDINS[assignment]] if assignment in HANDINS else []


def reference_sets(assignment: str) -> list[ReferenceSet]:
    return [r for r in REFERENCE_SETS if r.assignment == assignment]


def compute(course: Course, ref: ReferenceSet) -> list[Case]:
    namespace = solution_namespace(course.source_notebook(ref.assignment), ref.cells)
    return ref.make(namespace)


def write_references(course: Course, assignment: str) -> list[str]:
    """Regenerate every reference file of ``assignment``; returns the paths written."""
    written = []
    for ref in reference_sets(assignment):
        path = course.solutions / assignment / ref.filename
        save_cases(path, compute(course, ref))
        written.append(str(path.relative_to(course.root)))
    return written


def compare_references(course: Course, assignment: str) -> list[str]:
    """Problems found when the stored references are recomputed from the solution."""
    problems = []
    for ref in reference_sets(assignment):
        path = course.solutions / assignment / ref.filename
        if not path.is_file():
            problems.append(f"{ref.filename} is missing (run 'course references {assignment}')")
            continue
        stored = load_cases(path)
        fresh = {case.name: case for case in compute(course, ref)}
        if set(stored) != set(fresh):
            problems.append(f"{ref.filename}: cases {sorted(stored)} stored, solution makes {sorted(fresh)}")
            continue
        for name, case in fresh.items():
            old = stored[name]
            same_setup = (case.meta == old.meta and np.array_equal(case.inputs, old.inputs)
                          and case.weights.keys() == old.weights.keys()
                          and all(np.array_equal(a, b) for k in case.weights
                                  for a, b in zip(case.weights[k], old.weights[k], strict=True)))
            if not same_setup:
                problems.append(f"{ref.filename}: case {name} has other inputs or weights than the solution makes")
            elif case.expected.shape != old.expected.shape or \
                    relative_error(case.expected, old.expected) > REPRODUCTION_TOLERANCE:
                problems.append(f"{ref.filename}: case {name}: stored output is not what the solution produces")
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
    for spec in function_specs(assignment):
        cell = cells.get(spec.test_id)
        if cell is None:
            problems.append(f"{assignment}: no test cell {spec.test_id} for {spec.function}")
        elif _hidden_block(cell.source) != spec.hidden_source():
            problems.append(f"{assignment}: {spec.test_id}'s hidden block is not {spec.name}'s "
                            f"(expected:\n{spec.hidden_source()})")
    for handin in handin_contracts(assignment):
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
