"""Which hidden reference files each assignment has, and how the solution makes them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlcourse.course import Course
from dlcourse.grading.policy import relative_error
from dlcourse.grading.references import Case, load_cases, save_cases
from dlcourse.notebooks import solution_namespace

#: Stored outputs may differ from a fresh run by float round-off only.
REPRODUCTION_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ReferenceSet:
    assignment: str
    filename: str
    cells: tuple[str, ...]  # solution cells to run, setup first
    make: Callable[[dict[str, Any]], list[Case]]


def _inception(ns: dict[str, Any]) -> list[Case]:
    from dlcourse.grading.inception import make_cases

    return make_cases(ns["inception_module"], ns["auxiliary_classifier"])


def _residual(ns: dict[str, Any]) -> list[Case]:
    from dlcourse.grading.residual import make_cases

    return make_cases(ns["residual_block"], ns["bottleneck_block"], ns["dense_block"])


REFERENCE_SETS: tuple[ReferenceSet, ...] = (
    ReferenceSet("inception", "hidden_inception_refs.npz",
                 ("setup", "inception_module", "auxiliary_classifier"), _inception),
    ReferenceSet("residual", "hidden_residual_refs.npz",
                 ("setup", "residual_block", "bottleneck_block", "dense_block"), _residual),
)


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
