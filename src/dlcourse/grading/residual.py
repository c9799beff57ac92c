"""Checks for the `residual` assignment: residual, bottleneck and dense blocks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dlcourse.grading.handin import accuracy, load_ct_test
from dlcourse.grading.models import produce_model_output, reference_case
from dlcourse.grading.policy import TOLERANCE, relative_error
from dlcourse.grading.references import Case
from dlcourse.grading.spec import AssignmentSpec, FunctionSpec, HandinContract, Produced

REFERENCE_FILE = "hidden_residual_refs.npz"

#: (case, input shape, filters, stride, name): identity, projection (stride 2 and
#: more channels), stride 2 with unchanged channels, and a channel change at stride 1.
RESIDUAL_CASES = (
    ("residual_identity", (8, 8, 6), 6, 1, "res_a"),
    ("residual_projection", (8, 10, 4), 8, 2, "res_b"),
    ("residual_stride2_same_channels", (9, 9, 5), 5, 2, "res_c"),
    ("residual_more_channels", (6, 6, 3), 7, 1, "res_d"),
)
BOTTLENECK_CASES = (
    ("bottleneck_identity", (6, 6, 16), 4, 1, "bot_a"),
    ("bottleneck_projection", (8, 8, 6), 3, 2, "bot_b"),
    ("bottleneck_stride2_same_channels", (7, 9, 12), 3, 2, "bot_c"),
)
DENSE_CASES = (
    ("dense_three", (6, 6, 4), 3, 5, "dense_a"),
    ("dense_one", (5, 7, 6), 1, 3, "dense_b"),
)


def _diagnose_block(kind: str, stride: int, channels_in: int, channels_out: int):
    def diagnose(got: np.ndarray, expected: np.ndarray) -> list[str]:
        if got.shape[1:3] != expected.shape[1:3]:
            return [f"spatial size {got.shape[1:3]} instead of {expected.shape[1:3]}: with stride {stride} "
                    "the first 3x3 convolution" + (" (the 3x3 in the middle, for a bottleneck)" if kind == "bottleneck"
                                                   else "") + " and the projection carry the stride; padding='same'"]
        if got.shape[-1] != expected.shape[-1]:
            return [f"{got.shape[-1]} output channels instead of {expected.shape[-1]}"]
        hints = []
        if got.min() < -1e-6:
            hints.append("negative outputs: the block ends with a ReLU after the addition")
        elif relative_error(got, expected) > TOLERANCE:
            projection = stride != 1 or channels_in != channels_out
            hints.append("check the order conv -> batch norm -> ReLU, that the last batch norm comes before "
                         "the addition and the final ReLU after it"
                         + (", and the projection shortcut (1x1 conv with the stride, then batch norm)"
                            if projection else ", and that the shortcut is the identity"))
        return hints
    return diagnose


def _diagnose_dense(growth: int, layers: int, channels_in: int):
    def diagnose(got: np.ndarray, expected: np.ndarray) -> list[str]:
        if got.shape[-1] != expected.shape[-1]:
            return [f"{got.shape[-1]} output channels instead of {channels_in} + {layers} x {growth} = "
                    f"{expected.shape[-1]}: every layer adds growth_rate channels to all previous ones"]
        if got.shape != expected.shape:
            return ["keep the spatial size: 3x3 convolutions with padding='same'"]
        if relative_error(got[..., :channels_in], expected[..., :channels_in]) > TOLERANCE:
            return ["the block's input must come first in the output: concatenate [previous features, new]"]
        for i in range(layers):
            sl = slice(channels_in + i * growth, channels_in + (i + 1) * growth)
            if relative_error(got[..., sl], expected[..., sl]) > TOLERANCE:
                return [f"layer {i + 1}'s new features differ: batch norm -> ReLU -> 3x3 conv (no bias), "
                        "applied to the concatenation of everything before it"]
        return []
    return diagnose


def _locate_block(name: str, stride: int, kind: str):
    """Hints from inner-layer comparisons: main path, shortcut, or how they are combined."""
    main = [f"{name}_bn1", f"{name}_bn2"] + ([f"{name}_bn3"] if kind == "bottleneck" else [])
    stride_conv = f"{name}_conv2" if kind == "bottleneck" else f"{name}_conv1"

    def locate(matches: dict[str, bool]) -> list[str]:
        for layer in main:
            if layer in matches and not matches[layer]:
                conv = layer.replace("_bn", "_conv")
                return [f"main path: the output of {layer} differs from the solution's; everything before it "
                        f"({conv} and earlier) is suspect. The stride {stride} belongs to {stride_conv}; "
                        "each convolution is followed directly by its batch norm, then a ReLU "
                        "(except the last batch norm)"]
        if f"{name}_proj_bn" in matches and not matches[f"{name}_proj_bn"]:
            return [f"shortcut: {name}_proj -> {name}_proj_bn differs: a 1x1 convolution with stride {stride} "
                    "applied to the block input, then batch norm"]
        return ["the main path and the shortcut both match the solution up to the addition, so the "
                f"combination is wrong: add the shortcut to {main[-1]}'s output directly (no ReLU before the "
                "addition), then apply one ReLU to the sum"]
    return locate


def _locate_dense(name: str, layers: int):
    def locate(matches: dict[str, bool]) -> list[str]:
        for i in range(1, layers + 1):
            if not matches.get(f"{name}_layer{i}_conv", True):
                return [f"layer {i} ({name}_layer{i}_conv) is the first whose new features differ: it should "
                        f"apply batch norm -> ReLU -> 3x3 conv to the concatenation of the block input"
                        + (f" and layers 1..{i - 1}" if i > 1 else "")]
        return ["every layer's new features match the solution; the concatenation is wrong: the output "
                "is [block input, layer 1, ..., layer n] along the channels"]
    return locate


def _block_probes(name: str, kind: str, projection: bool) -> tuple[str, ...]:
    layers = [f"{name}_bn1", f"{name}_bn2"] + ([f"{name}_bn3"] if kind == "bottleneck" else [])
    return tuple(layers + ([f"{name}_proj_bn"] if projection else []))


def _block_what(function: str, case: Case) -> str:
    f, st, n = case.meta["filters"], case.meta["stride"], case.meta["name"]
    return f"{function}(x, {f}, stride={st}, name={n!r})"


def _dense_what(case: Case) -> str:
    return f"dense_block(x, {case.meta['num_layers']}, {case.meta['growth_rate']}, name={case.meta['name']!r})"


def produce_residual_block(residual_block: Callable, case: Case) -> Produced:
    """The student's block output for ``case`` (reference weights), not compared."""
    f, s, n = case.meta["filters"], case.meta["stride"], case.meta["name"]
    return produce_model_output(lambda x: residual_block(x, f, stride=s, name=n), case,
                                _block_what("residual_block", case))


def produce_bottleneck_block(bottleneck_block: Callable, case: Case) -> Produced:
    f, s, n = case.meta["filters"], case.meta["stride"], case.meta["name"]
    return produce_model_output(lambda x: bottleneck_block(x, f, stride=s, name=n), case,
                                _block_what("bottleneck_block", case))


def produce_dense_block(dense_block: Callable, case: Case) -> Produced:
    k, g, n = case.meta["num_layers"], case.meta["growth_rate"], case.meta["name"]
    return produce_model_output(lambda x: dense_block(x, k, g, name=n), case, _dense_what(case))


RESIDUAL_BLOCK = FunctionSpec(
    function="residual_block", select="residual", produce=produce_residual_block,
    describe=lambda case: _block_what("residual_block", case),
    diagnose=lambda c: _diagnose_block("residual", c.meta["stride"], c.inputs.shape[-1], c.meta["filters"]),
    locate=lambda c: _locate_block(c.meta["name"], c.meta["stride"], "residual"))
BOTTLENECK_BLOCK = FunctionSpec(
    function="bottleneck_block", select="bottleneck", produce=produce_bottleneck_block,
    describe=lambda case: _block_what("bottleneck_block", case),
    diagnose=lambda c: _diagnose_block("bottleneck", c.meta["stride"], c.inputs.shape[-1], 4 * c.meta["filters"]),
    locate=lambda c: _locate_block(c.meta["name"], c.meta["stride"], "bottleneck"))
DENSE_BLOCK = FunctionSpec(
    function="dense_block", select="dense", produce=produce_dense_block, describe=_dense_what,
    diagnose=lambda c: _diagnose_dense(c.meta["growth_rate"], c.meta["num_layers"], c.inputs.shape[-1]),
    locate=lambda c: _locate_dense(c.meta["name"], c.meta["num_layers"]))

HANDIN = HandinContract(
    grade_id="test_small_networks_handin", model_file="residual_model.keras", data_file="hidden_ct_test.npz",
    load_split=load_ct_test, num_classes=4, metric="accuracy", score=accuracy, threshold=0.80)


def make_cases(residual_block: Callable, bottleneck_block: Callable, dense_block: Callable) -> list[Case]:
    """Reference cases from the solution's blocks (seeded inputs, weights, BN statistics)."""
    cases = []
    for seed, (case, shape, f, s, n) in enumerate(RESIDUAL_CASES, start=300):
        probes = _block_probes(n, "residual", s != 1 or shape[-1] != f)
        cases.append(reference_case(case, lambda x, f=f, s=s, n=n: residual_block(x, f, stride=s, name=n),
                                    shape, {"filters": f, "stride": s, "name": n}, seed, weight_scale=1.0,
                                    probe_layers=probes))
    for seed, (case, shape, f, s, n) in enumerate(BOTTLENECK_CASES, start=400):
        probes = _block_probes(n, "bottleneck", s != 1 or shape[-1] != 4 * f)
        cases.append(reference_case(case, lambda x, f=f, s=s, n=n: bottleneck_block(x, f, stride=s, name=n),
                                    shape, {"filters": f, "stride": s, "name": n}, seed, weight_scale=1.0,
                                    probe_layers=probes))
    for seed, (case, shape, k, g, n) in enumerate(DENSE_CASES, start=500):
        probes = tuple(f"{n}_layer{i}_conv" for i in range(1, k + 1))
        cases.append(reference_case(case, lambda x, k=k, g=g, n=n: dense_block(x, k, g, name=n),
                                    shape, {"num_layers": k, "growth_rate": g, "name": n}, seed, weight_scale=1.0,
                                    probe_layers=probes))
    return cases


ASSIGNMENT = AssignmentSpec(
    assignment="residual", module=__name__, reference_file=REFERENCE_FILE,
    functions=(RESIDUAL_BLOCK, BOTTLENECK_BLOCK, DENSE_BLOCK), make_cases=make_cases, handin=HANDIN)
