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
class HiddenCheck:
    """One hidden reference test cell, as a trusted process outside the kernel repeats it.

    ``produce(student_function, case)`` returns the student's output for a
    case without comparing; the grader compares it with ``case.expected``.
    """

    test_id: str  # grade_id of the hidden test cell
    function: str  # the contract function it tests
    select: str  # prefix of the names of its cases
    produce: Callable[[Callable, Case], np.ndarray]


@dataclass(frozen=True)
class HandinCheck:
    """The hidden test of a handed-in model: metric on the reserved test split."""

    assignment: str
    test_id: str
    model_file: str
    data_file: str  # hidden_* file beside the source notebook
    load: Callable[[str], tuple[np.ndarray, np.ndarray]]  # path -> (inputs, labels)
    num_classes: int
    score: Callable[[np.ndarray, np.ndarray], float]  # (probabilities, labels) -> metric
    threshold: float


@dataclass(frozen=True)
class ReferenceSet:
    assignment: str
    filename: str
    cells: tuple[str, ...]  # solution cells to run, setup first
    make: Callable[[dict[str, Any]], list[Case]]
    checks: tuple[HiddenCheck, ...] = ()


def _inception(ns: dict[str, Any]) -> list[Case]:
    from dlcourse.grading.inception import make_cases

    return make_cases(ns["inception_module"], ns["auxiliary_classifier"])


def _residual(ns: dict[str, Any]) -> list[Case]:
    from dlcourse.grading.residual import make_cases

    return make_cases(ns["residual_block"], ns["bottleneck_block"], ns["dense_block"])


def _lstm(ns: dict[str, Any]) -> list[Case]:
    from dlcourse.grading.lstm import make_cases

    # Expected outputs come from keras.layers.LSTM; the solution must reproduce them.
    return make_cases(ns["lstm_cell_forward"], ns["lstm_forward"])


def _unet(ns: dict[str, Any]) -> list[Case]:
    from dlcourse.grading.unet import make_cases

    return make_cases(ns["receptive_field"], ns["build_unet"], ns["dice_coefficient"])


def _cardiac_split(path: str) -> tuple[np.ndarray, np.ndarray]:
    from dlcourse.data import load_cardiac

    return load_cardiac("test", path=path)


def _mean_foreground_dice(probabilities: np.ndarray, labels: np.ndarray) -> float:
    from dlcourse.grading.unet import mean_foreground_dice

    return mean_foreground_dice(probabilities, labels)


def _signal_split(path: str) -> tuple[np.ndarray, np.ndarray]:
    from dlcourse.grading.lstm import load_test_split

    return load_test_split(path)


def _beat_f1(probabilities: np.ndarray, labels: np.ndarray) -> float:
    from dlcourse.grading.lstm import beat_f1

    return beat_f1(probabilities, labels)


def _produce(module: str, function: str) -> Callable[[Callable, Case], np.ndarray]:
    """``dlcourse.grading.<module>.produce_<function>``, imported when first called."""
    def produce(student_function: Callable, case: Case) -> np.ndarray:
        import importlib

        return getattr(importlib.import_module(f"dlcourse.grading.{module}"), f"produce_{function}")(
            student_function, case)
    return produce


def _check(module: str, function: str, select: str, test_id: str = "") -> HiddenCheck:
    return HiddenCheck(test_id or f"test_{function}_reference", function, select, _produce(module, function))


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probabilities.argmax(axis=-1) == labels))


def _ct_split(path: str) -> tuple[np.ndarray, np.ndarray]:
    from dlcourse.data import load_ct_slices

    return load_ct_slices("test", path=path)


REFERENCE_SETS: tuple[ReferenceSet, ...] = (
    ReferenceSet("inception", "hidden_inception_refs.npz",
                 ("setup", "inception_module", "auxiliary_classifier"), _inception,
                 (_check("inception", "inception_module", "module"),
                  _check("inception", "auxiliary_classifier", "aux"))),
    ReferenceSet("residual", "hidden_residual_refs.npz",
                 ("setup", "residual_block", "bottleneck_block", "dense_block"), _residual,
                 (_check("residual", "residual_block", "residual"),
                  _check("residual", "bottleneck_block", "bottleneck"),
                  _check("residual", "dense_block", "dense"))),
    ReferenceSet("lstm", "hidden_lstm_refs.npz",
                 ("setup", "sigmoid", "lstm_cell_forward", "lstm_forward"), _lstm,
                 (_check("lstm", "lstm_cell_forward", "cell"),
                  _check("lstm", "lstm_forward", "forward"))),
    ReferenceSet("unet", "hidden_unet_refs.npz",
                 ("setup", "receptive_field", "build_unet", "dice_coefficient"), _unet,
                 (_check("unet", "receptive_field", "receptive_field"),
                  _check("unet", "build_unet", "unet"),
                  _check("unet", "dice_coefficient", "dice"))),
)

HANDIN_CHECKS: tuple[HandinCheck, ...] = (
    HandinCheck("inception", "test_mini_googlenet_handin", "inception_model.keras", "hidden_ct_test.npz",
                _ct_split, 4, accuracy, 0.80),
    HandinCheck("residual", "test_small_networks_handin", "residual_model.keras", "hidden_ct_test.npz",
                _ct_split, 4, accuracy, 0.80),
    HandinCheck("lstm", "test_sequence_models_handin", "lstm_model.keras", "hidden_signal_test.npz",
                _signal_split, 2, _beat_f1, 0.72),
    HandinCheck("unet", "test_segmentation_model_handin", "unet_model.keras", "hidden_cardiac_test.npz",
                _cardiac_split, 4, _mean_foreground_dice, 0.80),
)


def handin_checks(assignment: str) -> list[HandinCheck]:
    return [h for h in HANDIN_CHECKS if h.assignment == assignment]


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
