"""A function with two mistakes gets both named: a hidden test reports each distinct failure.

A residual block with the stride on the second convolution *and* no final ReLU failed
its first case for the missing ReLU only; the stride mistake, shown by a later case,
was never named, and the student fixed one mistake to meet the other at the next
grading. The check (in a notebook) and the repeat outside the kernel (every grading
path) now run every case and name each distinct diagnosis.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dlcourse.grading import GradingFailure
from dlcourse.grading.spec import combine_failures

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

STRIDE = "the output of res_b_bn1 differs"
RELU = "combination is wrong"


def test_one_diagnosis_reads_as_before():
    first = "f(x) differs from the reference (relative error 0.5, tolerance 0.005)\n- the 3x3 branch"
    same = "f(y) differs from the reference (relative error 0.7, tolerance 0.005)\n- the 3x3 branch"
    assert combine_failures([first, same]) == first
    assert combine_failures([first]) == first


def test_each_distinct_diagnosis_is_named_once():
    a = "f(x) differs from the reference\n- the 3x3 branch"
    b = "f(y) differs from the reference\n- the pool branch\n- check its stride"
    combined = combine_failures([a, b, a.replace("f(x)", "f(z)")])
    assert combined.startswith("2 different failures:\n1. f(x) differs")
    assert "\n2. f(y) differs from the reference\n   - the pool branch\n   - check its stride" in combined
    assert "f(z)" not in combined


@pytest.mark.slow
def test_two_mistakes_in_a_residual_block_are_both_named():
    from test_grading_policy import define

    from dlcourse.authoring.practical import catalogue_path, load_catalogue_module
    from dlcourse.grading import load_cases
    from dlcourse.grading.residual import ASSIGNMENT
    from dlcourse.runner.course import Course

    catalogue = load_catalogue_module(catalogue_path(Course(REPO), "residual"))
    both = catalogue._residual(s1="1", tail='bn(conv(y, filters, 3, stride, "conv2"), "bn2")', final="out")
    spec = ASSIGNMENT.function("residual_block")
    cases = load_cases(REPO / "solutions/residual/hidden_residual_refs.npz")
    with pytest.raises(GradingFailure) as failure:
        spec.check(define(both)["residual_block"], cases)
    message = str(failure.value)
    assert STRIDE in message and RELU in message, message


def test_the_repeat_outside_the_kernel_names_each_failure_too():
    """runner.repeat.judge_function, which decides hidden tests on every grading path."""
    from dlcourse.grading.references import Case
    from dlcourse.grading.spec import FunctionSpec
    from dlcourse.harness import answer
    from dlcourse.runner.repeat import judge_function

    cases = [Case(name=f"c{i}", meta={}, inputs=np.zeros(3), expected=np.ones(3)) for i in range(3)]

    class Spec:  # judge as a FunctionSpec does: a message per failing case
        test_id, function = "test_f", "f"

        def judge(self, case, produced):
            gate = "gate i" if case.name == "c1" else "gate o"
            return None if case.name == "c0" else f"f({case.name}) differs\n- {gate}"

    outputs = {answer.output_key(c.name): np.ones(3) for c in cases}
    verdict = judge_function(Spec(), cases, outputs, {})  # type: ignore[arg-type]
    assert not verdict.passed
    assert "- gate i" in verdict.message and "- gate o" in verdict.message, verdict.message
    assert FunctionSpec.check.__doc__ and "distinct" in FunctionSpec.check.__doc__
