"""The numeric policy: TF32-style rounding passes, typical mistakes fail by a wide margin.

A GPU in TF32 mode multiplies with 10-bit mantissas. Rounding every Conv2D and
Dense operand that way on the CPU stands in for it: the solution must stay
well inside the tolerance, every mutant at least 10x outside it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dlcourse.grading import TOLERANCE, GradingFailure, relative_error
from dlcourse.grading.inception import make_cases
from dlcourse.grading.models import wrap
from dlcourse.grading.policy import round_to_tf32, tf32_simulation
from dlcourse.grading.weights import load_reference_weights
from dlcourse.runner.notebooks import cells_by_grade_id, read_notebook, strip_markers

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from dlcourse.authoring.practical import catalogue_path, load_catalogue_module  # noqa: E402
from dlcourse.runner.course import Course  # noqa: E402

IMPLEMENTATIONS = load_catalogue_module(catalogue_path(Course(REPO), "inception")).IMPLEMENTATIONS


def define(source: str) -> dict:
    import keras

    namespace = {"keras": keras, "np": np}
    exec(source, namespace)
    return namespace


@pytest.fixture(scope="module")
def solution() -> dict:
    cells = cells_by_grade_id(read_notebook(REPO / "solutions/inception/inception.ipynb"))
    return define("\n\n".join(strip_markers(cells[g].source)
                              for g in ("inception_module", "auxiliary_classifier")))


@pytest.fixture(scope="module")
def cases(solution):
    # the model cases: parameter-count cases involve no floating point
    return [c for c in make_cases(solution["inception_module"], solution["auxiliary_classifier"])
            if c.name.startswith(("module", "aux"))]


def _builder(namespace: dict, case):
    if case.name.startswith("module"):
        return lambda x: namespace["inception_module"](x, tuple(case.meta["filters"]), case.meta["name"])
    return lambda x: namespace["auxiliary_classifier"](x, case.meta["num_classes"], case.meta["name"])


def _error(namespace: dict, case, simulate_tf32: bool = False) -> float:
    """Relative error of an implementation on a case; inf when it cannot be compared."""
    try:
        model = wrap(_builder(namespace, case), case.inputs.shape[1:], case.name)
        load_reference_weights(model, case.weights)
    except GradingFailure:
        return float("inf")
    if simulate_tf32:
        with tf32_simulation():
            got = np.asarray(model(case.inputs, training=False))
    else:
        got = np.asarray(model(case.inputs, training=False))
    return relative_error(got, case.expected) if got.shape == case.expected.shape else float("inf")


def test_round_to_tf32_keeps_ten_mantissa_bits():
    x = np.array([1.0, 1 + 2**-10, 1 + 2**-11, 1 + 3 * 2**-11, 3.14159265, -2.5e-3], np.float32)
    y = round_to_tf32(x)
    assert y[0] == 1.0 and y[1] == 1 + 2**-10
    assert y[2] == 1.0, "a tie rounds to the even mantissa"
    assert y[3] == 1 + 2**-9, "a tie rounds to the even mantissa"
    assert np.all(np.abs(y - x) <= np.abs(x) * 2**-11)
    assert np.array_equal(round_to_tf32(y), y), "rounding is idempotent"


def test_solution_passes_under_tf32_with_margin(solution, cases):
    for case in cases:
        error = _error(solution, case, simulate_tf32=True)
        assert 0 < error < TOLERANCE / 5, f"{case.name}: TF32 error {error:.2g} vs tolerance {TOLERANCE}"


@pytest.mark.parametrize("impl", [i for i in IMPLEMENTATIONS
                                  if i.grade_id in ("inception_module", "auxiliary_classifier")],
                         ids=lambda i: i.name)
def test_implementations_are_far_from_the_line(impl, cases):
    namespace = define(impl.source)
    prefix = "module" if impl.grade_id == "inception_module" else "aux"
    errors = {c.name: _error(namespace, c) for c in cases if c.name.startswith(prefix)}
    if impl.correct:
        tf32 = {c.name: _error(namespace, c, simulate_tf32=True) for c in cases if c.name.startswith(prefix)}
        assert max(errors.values()) < TOLERANCE / 100, errors
        assert max(tf32.values()) < TOLERANCE / 5, tf32
    else:
        assert max(errors.values()) >= 10 * TOLERANCE, f"{impl.name}: errors {errors}"
