"""Checks for the `inception` assignment: inception module and auxiliary classifier."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial

import numpy as np

from dlcourse import architectures
from dlcourse.grading.compare import GradingFailure, call_student
from dlcourse.grading.handin import accuracy, load_ct_test
from dlcourse.grading.models import produce_model_output, reference_case
from dlcourse.grading.policy import TOLERANCE, relative_error
from dlcourse.grading.references import Case
from dlcourse.grading.spec import AssignmentSpec, FunctionSpec, HandinContract, Produced, StandIn

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
#: (kernel size, c_in, c_out, use_bias) rows for conv_params.
CONV_PARAMS_ROWS = ((1, 3, 8, 1), (3, 16, 32, 0), (5, 7, 2, 1), (7, 1, 64, 0), (11, 3, 96, 1))
#: (c_in, f1x1, f3x3_reduce, f3x3, f5x5_reduce, f5x5, pool_proj, bottlenecks) rows for params_inception.
PARAMS_INCEPTION_ROWS = tuple((c_in, *filters, b) for c_in, filters in (
    (480, (192, 96, 208, 16, 48, 64)), (7, (1, 2, 3, 4, 5, 6)), (832, (384, 192, 384, 48, 128, 128)))
    for b in (1, 0))


# --------------------------------------------------------------------------
# Parameter counts: conv_params and params_inception
# --------------------------------------------------------------------------

def _count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise GradingFailure(f"{what} returned {value!r} ({type(value).__name__}): return a Python int")
    return int(value)


def _conv_call(row) -> str:
    k, c_in, c_out, bias = (int(v) for v in row)
    return f"conv_params({k}, {c_in}, {c_out}, use_bias={bool(bias)})"


def _inception_call(row) -> str:
    c_in, *filters, bottlenecks = (int(v) for v in row)
    return f"params_inception({c_in}, {tuple(filters)}, bottlenecks={bool(bottlenecks)})"


def produce_conv_params(conv_params: Callable, case: Case) -> Produced:
    """The student's counts for every row of the case (no comparison)."""
    counts = []
    for row in case.inputs:
        k, c_in, c_out, bias = (int(v) for v in row)
        counts.append(_count(call_student(_conv_call(row), conv_params, k, c_in, c_out, use_bias=bool(bias)),
                             _conv_call(row)))
    return Produced(np.asarray(counts, dtype=np.int64))


def produce_params_inception(params_inception: Callable, case: Case) -> Produced:
    counts = []
    for row in case.inputs:
        c_in, *filters, bottlenecks = (int(v) for v in row)
        counts.append(_count(call_student(_inception_call(row), params_inception, c_in, tuple(filters),
                                   bottlenecks=bool(bottlenecks)), _inception_call(row)))
    return Produced(np.asarray(counts, dtype=np.int64))


def _first_wrong_row(call: Callable, note: str = ""):
    def diagnose_case(case: Case):
        def diagnose(got: np.ndarray, expected: np.ndarray) -> list[str]:
            for row, g, e in zip(case.inputs, got, expected, strict=True):
                if g != e:
                    return [f"{call(row)} = {int(g):,}; Keras counts {int(e):,}{note}"]
            return []
        return diagnose
    return diagnose_case


def _keras_conv_count(k: int, c_in: int, c_out: int, bias: bool) -> int:
    import keras

    layer = keras.layers.Conv2D(c_out, k, use_bias=bias)
    layer.build((None, 16, 16, c_in))
    return int(layer.count_params())


def _keras_inception_count(c_in: int, filters, bottlenecks: bool) -> int:
    import keras

    f1, r3, f3, r5, f5, pp = filters
    x = keras.Input((9, 9, c_in))
    conv = keras.layers.Conv2D
    pool = keras.layers.MaxPooling2D(3, 1, padding="same")(x)
    if bottlenecks:
        branches = [conv(f1, 1)(x), conv(f3, 3, padding="same")(conv(r3, 1)(x)),
                    conv(f5, 5, padding="same")(conv(r5, 1)(x)), conv(pp, 1)(pool)]
    else:
        branches = [conv(f1, 1)(x), conv(f3, 3, padding="same")(x), conv(f5, 5, padding="same")(x), pool]
    return int(keras.Model(x, keras.layers.Concatenate()(branches)).count_params())


def reference_conv_params(kernel_size, c_in, c_out, use_bias=True) -> int:
    """Stand-in for the student's ``conv_params`` while ``params_inception`` is tested."""
    from dlcourse.architectures import conv_params

    return conv_params(kernel_size, c_in, c_out, use_bias)


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


def _module_what(case: Case) -> str:
    return f"inception_module(x, {tuple(case.meta['filters'])}, {case.meta['name']!r})"


def _aux_what(case: Case) -> str:
    return f"auxiliary_classifier(x, {case.meta['num_classes']}, {case.meta['name']!r})"


def produce_inception_module(inception_module: Callable, case: Case) -> Produced:
    """The student's module output for ``case`` (reference weights), not compared."""
    filters, name = tuple(case.meta["filters"]), case.meta["name"]
    return produce_model_output(lambda x: inception_module(x, filters, name), case, _module_what(case))


def produce_auxiliary_classifier(auxiliary_classifier: Callable, case: Case) -> Produced:
    classes, name = case.meta["num_classes"], case.meta["name"]
    return produce_model_output(lambda x: auxiliary_classifier(x, classes, name), case, _aux_what(case))


def _diagnose_module(case: Case):
    return partial(diagnose_module, filters=tuple(case.meta["filters"]))


def diagnose_auxiliary(got: np.ndarray, expected: np.ndarray) -> list[str]:
    if got.shape != expected.shape:
        return [f"the classifier should return (batch, num_classes) probabilities, got shape {got.shape}"]
    if not np.allclose(got.sum(axis=-1), 1.0, atol=1e-3):
        return ["rows do not sum to 1: the last Dense layer needs a softmax activation"]
    return ["check the 5x5 average pooling (strides=3, padding='valid'), the ReLUs after the 1x1 "
            "convolution and the 1024-unit dense layer, and that dropout only acts in training"]


CONV_PARAMS = FunctionSpec(
    function="conv_params", select="conv_params", produce=produce_conv_params,
    describe=lambda case: f"conv_params on {len(case.inputs)} layer shapes", diagnose=_first_wrong_row(_conv_call),
    tolerance=0.0, test_cell="test_conv_params", refused_helpers=(architectures.conv_params,))
PARAMS_INCEPTION = FunctionSpec(
    function="params_inception", select="params_inception", produce=produce_params_inception,
    describe=lambda case: f"params_inception on {len(case.inputs)} modules",
    diagnose=_first_wrong_row(_inception_call, " (your conv_params was replaced by a reference count for "
                                               "this test)"),
    stand_ins=(StandIn("conv_params", reference_conv_params),), tolerance=0.0, test_cell="test_params_inception")
INCEPTION_MODULE = FunctionSpec(
    function="inception_module", select="module", produce=produce_inception_module, describe=_module_what,
    diagnose=_diagnose_module)
AUXILIARY_CLASSIFIER = FunctionSpec(
    function="auxiliary_classifier", select="aux", produce=produce_auxiliary_classifier, describe=_aux_what,
    diagnose=lambda case: diagnose_auxiliary)


def make_cases(inception_module: Callable, auxiliary_classifier: Callable, conv_params: Callable | None = None,
               params_inception: Callable | None = None) -> list[Case]:
    """Reference cases: parameter counts from Keras, module outputs from the solution.

    The solution's counting functions, when given, must reproduce Keras's
    counts (a sanity check of the solution, not the source of the references).
    """
    cases = [
        Case("conv_params", {}, np.asarray(CONV_PARAMS_ROWS, dtype=np.int64),
             np.asarray([_keras_conv_count(k, c, o, bool(b)) for k, c, o, b in CONV_PARAMS_ROWS], np.int64)),
        Case("params_inception", {}, np.asarray(PARAMS_INCEPTION_ROWS, dtype=np.int64),
             np.asarray([_keras_inception_count(c, f, bool(b)) for c, *f, b in PARAMS_INCEPTION_ROWS], np.int64)),
    ]
    for seed, (case_name, shape, filters, name) in enumerate(MODULE_CASES, start=100):
        cases.append(reference_case(
            case_name, lambda x, f=filters, n=name: inception_module(x, f, n), shape,
            {"filters": list(filters), "name": name}, seed))
    for seed, (case_name, shape, classes, name) in enumerate(AUX_CASES, start=200):
        cases.append(reference_case(
            case_name, lambda x, k=classes, n=name: auxiliary_classifier(x, k, n), shape,
            {"num_classes": classes, "name": name}, seed, batch=4, weight_scale=2.0))
    by_name = {c.name: c for c in cases}
    for spec, function in ((CONV_PARAMS, conv_params), (PARAMS_INCEPTION, params_inception)):
        if function is not None:
            spec.check(function, by_name)
    return cases


HANDIN = HandinContract(
    grade_id="test_mini_googlenet_handin", model_file="inception_model.keras", data_file="hidden_ct_test.npz",
    load_split=load_ct_test, num_classes=4, metric="accuracy", score=accuracy, threshold=0.80)

ASSIGNMENT = AssignmentSpec(
    assignment="inception", module=__name__, reference_file=REFERENCE_FILE,
    functions=(CONV_PARAMS, PARAMS_INCEPTION, INCEPTION_MODULE, AUXILIARY_CLASSIFIER), make_cases=make_cases,
    handin=HANDIN)
