"""Checks for the `inception` assignment: inception module and auxiliary classifier."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial

import numpy as np

from dlcourse.grading.models import build_and_predict, reference_case, run_case
from dlcourse.grading.policy import TOLERANCE, relative_error
from dlcourse.grading.references import Case, load_cases

BRANCHES = ("1x1", "3x3", "5x5", "pool_proj")
REFERENCE_FILE = "hidden_inception_refs.npz"

#: (case name, input shape, filters, layer-name prefix) for inception_module.
MODULE_CASES = (
    ("module_small", (8, 8, 6), (4, 3, 5, 2, 3, 2), "inc"),
    ("module_3a", (7, 5, 12), (8, 6, 10, 2, 4, 4), "inception_3a"),
    ("module_wide_pool", (6, 6, 16), (2, 4, 4, 2, 2, 9), "mixed"),
)
#: (case name, input shape, classes, layer-name prefix) for auxiliary_classifier.
AUX_CASES = (
    ("aux_8", (8, 8, 10), 4, "aux1"),
    ("aux_nonsquare", (7, 11, 12), 3, "aux2"),
)


def branch_sizes(filters) -> tuple[int, int, int, int]:
    f1, _, f3, _, f5, pool_proj = filters
    return f1, f3, f5, pool_proj


def _slices(sizes) -> list[slice]:
    bounds = np.cumsum([0, *sizes])
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def diagnose_module(got: np.ndarray, expected: np.ndarray, filters) -> list[str]:
    """Name the branch (or the concatenation) that makes the module's output wrong."""
    sizes = branch_sizes(filters)
    hints = []
    if got.ndim != 4:
        return [f"the module should return a 4-D tensor (batch, height, width, channels), got {got.ndim}-D"]
    if got.shape[1:3] != expected.shape[1:3]:
        hints.append(f"spatial size {got.shape[1:3]} instead of {expected.shape[1:3]}: every branch, "
                     "the 3x3 max pooling included, needs stride 1 and padding='same'")
    if got.shape[-1] != expected.shape[-1]:
        hints.append(f"{got.shape[-1]} output channels instead of {expected.shape[-1]} = "
                     + " + ".join(f"{s} ({b})" for s, b in zip(sizes, BRANCHES, strict=True)))
    if hints:
        return hints
    parts = _slices(sizes)
    wrong = [i for i, sl in enumerate(parts) if relative_error(got[..., sl], expected[..., sl]) > TOLERANCE]
    if not wrong:
        return []
    # Where does each reference branch sit in the student's output, if anywhere?
    found = {}
    for i, sl in enumerate(parts):
        for start in range(got.shape[-1] - sizes[i] + 1):
            if relative_error(got[..., start:start + sizes[i]], expected[..., sl]) <= TOLERANCE:
                found[i] = start
                break
    if len(found) == 4 and sorted(found, key=found.get) != [0, 1, 2, 3]:
        order = [BRANCHES[i] for i in sorted(found, key=found.get)]
        return [f"branches concatenated as [{', '.join(order)}]; expected [{', '.join(BRANCHES)}]"]
    for i in wrong:
        g, e = got[..., parts[i]], expected[..., parts[i]]
        branch = BRANCHES[i]
        if g.min() < -1e-6 and relative_error(np.maximum(g, 0), e) <= TOLERANCE:
            hints.append(f"{branch} branch: ReLU missing after its last convolution")
        elif branch == "pool_proj":
            hints.append("pool branch differs: 3x3 max pooling (stride 1, padding='same') "
                         "and then the 1x1 pool_proj convolution with ReLU")
        elif branch == "1x1":
            hints.append("1x1 branch differs: one 1x1 convolution on the module input, then ReLU")
        else:
            hints.append(f"{branch} branch differs: the 1x1 {branch}_reduce convolution (with ReLU) feeds "
                         f"the {branch} convolution; check both, and padding='same'")
    return hints


def produce_inception_module(inception_module: Callable, case: Case) -> np.ndarray:
    """The student's module output for ``case`` (reference weights), not compared."""
    filters, name = tuple(case.meta["filters"]), case.meta["name"]
    return build_and_predict(lambda x: inception_module(x, filters, name), case,
                             f"inception_module(x, {filters}, {name!r})")[1]


def produce_auxiliary_classifier(auxiliary_classifier: Callable, case: Case) -> np.ndarray:
    classes, name = case.meta["num_classes"], case.meta["name"]
    return build_and_predict(lambda x: auxiliary_classifier(x, classes, name), case,
                             f"auxiliary_classifier(x, {classes}, {name!r})")[1]


def check_inception_module(inception_module: Callable, cases: dict[str, Case] | str = REFERENCE_FILE) -> None:
    """Every module case of the reference file, weights loaded by layer name."""
    if isinstance(cases, str):
        cases = load_cases(cases)
    for case in (c for c in cases.values() if c.name.startswith("module")):
        filters, name = tuple(case.meta["filters"]), case.meta["name"]
        run_case(lambda x, f=filters, n=name: inception_module(x, f, n), case,
                 what=f"inception_module(x, {filters}, {name!r})",
                 diagnose=partial(diagnose_module, filters=filters))


def diagnose_auxiliary(got: np.ndarray, expected: np.ndarray) -> list[str]:
    if got.shape != expected.shape:
        return [f"the classifier should return (batch, num_classes) probabilities, got shape {got.shape}"]
    if not np.allclose(got.sum(axis=-1), 1.0, atol=1e-3):
        return ["rows do not sum to 1: the last Dense layer needs a softmax activation"]
    return ["check the 5x5 average pooling (strides=3, padding='valid'), the ReLUs after the 1x1 "
            "convolution and the 1024-unit dense layer, and that dropout only acts in training"]


def check_auxiliary_classifier(auxiliary_classifier: Callable,
                               cases: dict[str, Case] | str = REFERENCE_FILE) -> None:
    if isinstance(cases, str):
        cases = load_cases(cases)
    for case in (c for c in cases.values() if c.name.startswith("aux")):
        classes, name = case.meta["num_classes"], case.meta["name"]
        run_case(lambda x, k=classes, n=name: auxiliary_classifier(x, k, n), case,
                 what=f"auxiliary_classifier(x, {classes}, {name!r})", diagnose=diagnose_auxiliary)


def make_cases(inception_module: Callable, auxiliary_classifier: Callable) -> list[Case]:
    """Reference cases from the solution's functions (seeded inputs and weights)."""
    cases = []
    for seed, (case_name, shape, filters, name) in enumerate(MODULE_CASES, start=100):
        cases.append(reference_case(
            case_name, lambda x, f=filters, n=name: inception_module(x, f, n), shape,
            {"filters": list(filters), "name": name}, seed))
    for seed, (case_name, shape, classes, name) in enumerate(AUX_CASES, start=200):
        cases.append(reference_case(
            case_name, lambda x, k=classes, n=name: auxiliary_classifier(x, k, n), shape,
            {"num_classes": classes, "name": name}, seed, batch=4, weight_scale=2.0))
    return cases
