"""Checks for the `unet` assignment: receptive fields, the U-Net, Dice, the handed-in model.

Every hidden reference test is a :class:`~dlcourse.grading.spec.FunctionSpec`: a
``produce_*`` function runs the student's code on one stored case and returns
its output without judging it; the spec compares that output with the stored
solution's and explains a difference (which level, which layer, which part).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dlcourse import architectures
from dlcourse.grading.compare import GradingFailure, call_student
from dlcourse.grading.models import probe_outputs
from dlcourse.grading.policy import grading_mode
from dlcourse.grading.references import Case, random_weights
from dlcourse.grading.spec import AssignmentSpec, FunctionSpec, HandinContract, Produced
from dlcourse.grading.weights import load_reference_weights

REFERENCE_FILE = "hidden_unet_refs.npz"
CARDIAC_CLASSES = ("background", "left ventricle", "myocardium", "right ventricle")

#: (case, kernel sizes, dilations): plain, dilated, 1x1 layers, large kernels, one layer.
RECEPTIVE_FIELD_CASES = (
    ("receptive_field_plain", (3, 3, 3, 3), (1, 1, 1, 1)),
    ("receptive_field_doubling", (3, 3, 3, 3, 3), (1, 2, 4, 8, 16)),
    ("receptive_field_mixed", (5, 1, 3, 7, 1, 3), (1, 1, 3, 2, 1, 5)),
    ("receptive_field_single", (7,), (3,)),
    ("receptive_field_ones", (1, 1, 3), (4, 1, 1)),
)

#: (case, input shape, classes, depth, base filters); depth None would mean the defaults
#: (4, 16), which the visible test checks instead (their weights alone take 8 MB).
UNET_CASES = (
    ("unet_depth1_square", (8, 8, 1), 3, 1, 4),
    ("unet_depth2_nonsquare", (8, 12, 2), 4, 2, 4),
    ("unet_depth3_tall", (24, 16, 1), 2, 3, 3),
    ("unet_depth4_wide", (16, 32, 1), 4, 4, 2),
)

#: (case, shape (batch, H, W, C), kind): kind says what the prediction looks like.
DICE_CASES = (
    ("dice_soft", (2, 6, 5, 3), "soft"),
    ("dice_confident", (3, 4, 4, 4), "confident"),
    ("dice_absent_class", (2, 5, 5, 4), "absent"),  # one class in neither mask nor prediction
    ("dice_uneven_images", (2, 8, 8, 2), "uneven"),  # images with very different foreground
    ("dice_single", (1, 7, 3, 5), "soft"),
)


# --------------------------------------------------------------------------
# receptive_field
# --------------------------------------------------------------------------


def _rf_what(case: Case) -> str:
    return f"receptive_field({list(case.meta['kernel_sizes'])}, {list(case.meta['dilations'])})"


def produce_receptive_field(receptive_field: Callable, case: Case) -> Produced:
    """The student's receptive fields for one case, as an int array (no comparison)."""
    what = _rf_what(case)
    result = call_student(what, receptive_field, list(case.meta["kernel_sizes"]), list(case.meta["dilations"]))
    if isinstance(result, int | np.integer) or not hasattr(result, "__len__"):
        raise GradingFailure(f"{what} returned {result!r}: return a list with the field after every layer")
    try:
        return Produced(np.asarray([int(v) for v in result], dtype=np.int64))
    except (TypeError, ValueError):
        raise GradingFailure(f"{what} returned {result!r}: a list of ints is expected") from None


def _diagnose_receptive_field(case: Case):
    kernels, dilations = case.meta["kernel_sizes"], case.meta["dilations"]

    def diagnose(got: np.ndarray, expected: np.ndarray) -> list[str]:
        if got.shape != expected.shape:
            return [f"{len(got)} values for {len(kernels)} layers: one receptive field per layer"]
        first = int(np.argmax(got != expected))
        k, d = kernels[first], dilations[first]
        before = int(expected[first - 1]) if first else 1
        return [f"layer {first + 1} (kernel {k}, dilation {d}) is the first that differs: it should widen "
                f"the field from {before} to {before + (k - 1) * d} (got {int(got[first])}); a dilated "
                "kernel spans (k - 1) * d + 1 pixels"]
    return diagnose


# --------------------------------------------------------------------------
# build_unet
# --------------------------------------------------------------------------


def _unet_args(case: Case) -> tuple[tuple, dict]:
    meta = case.meta
    kwargs = {} if meta["depth"] is None else {"depth": meta["depth"], "base_filters": meta["base_filters"]}
    return (tuple(meta["input_shape"]), meta["num_classes"]), kwargs


def _unet_what(case: Case) -> str:
    (shape, classes), kwargs = _unet_args(case)
    extra = "".join(f", {k}={v}" for k, v in kwargs.items())
    return f"build_unet({shape}, {classes}{extra})"


def _depth(case: Case) -> int:
    return 4 if case.meta["depth"] is None else case.meta["depth"]


def unet_probe_layers(depth: int) -> tuple[str, ...]:
    """Inner layers compared on failure, in data-flow order."""
    names = []
    for i in range(depth):
        names += [f"enc{i}_bn1", f"enc{i}_bn2"]
    names += ["bottleneck_bn1", "bottleneck_bn2"]
    for i in reversed(range(depth)):
        names += [f"dec{i}_up", f"dec{i}_bn1", f"dec{i}_bn2"]
    return tuple(names)


def _build_hint(message: str) -> str:
    lowered = message.lower()
    if "concatenate" in lowered or "matching shapes" in lowered:
        return ("\n- the decoder joins dec{i}_up's output with the skip of level i, which must have the same "
                "height and width: take the skip from enc{i}'s block output (after its ReLU) *before* the "
                "2x2 max pooling")
    return ""


def _weights_hint(message: str) -> str:
    if "_up'" in message:
        return ("\n- each dec{i}_up is a Conv2DTranspose with a 2x2 kernel, strides 2, bias, and "
                "base_filters * 2**i filters (a Conv2D's kernel is laid out (kh, kw, in, out), a transposed "
                "convolution's (kh, kw, out, in))")
    if "_conv1'" in message and "dec" in message:
        return "\n- dec{i}_conv1 reads the concatenation [dec{i}_up output, skip of level i]"
    return ""


def build_student_unet(build_unet: Callable, case: Case):
    """The student's U-Net for ``case`` with the reference weights loaded by name."""
    import keras

    grading_mode()
    what = _unet_what(case)
    args, kwargs = _unet_args(case)
    try:
        model = build_unet(*args, **kwargs)
    except GradingFailure:
        raise
    except Exception as exc:
        raise GradingFailure(f"{what} raised {type(exc).__name__}: {exc}" + _build_hint(str(exc))) from exc
    if not isinstance(model, keras.Model):
        raise GradingFailure(f"{what} returned {type(model).__name__}: return a keras.Model")
    if tuple(model.input_shape[1:]) != tuple(args[0]):
        raise GradingFailure(f"{what}: the model's input shape is {model.input_shape[1:]}, expected {args[0]}")
    try:
        load_reference_weights(model, case.weights, what=what)
    except GradingFailure as failure:
        raise GradingFailure(str(failure) + _weights_hint(str(failure))) from None
    return model


def produce_build_unet(build_unet: Callable, case: Case) -> Produced:
    """Build the student's U-Net, load the case's weights by name, predict in inference mode."""
    model = build_student_unet(build_unet, case)
    return Produced(np.asarray(model(case.inputs, training=False)),
                    probe_outputs(model, list(case.probes), case.inputs))


def _locate_unet(depth: int):
    order = unet_probe_layers(depth)

    def locate(matches: dict[str, bool]) -> list[str]:
        first = next((name for name in order if name in matches and not matches[name]), None)
        if first is None:
            return ["every block matches the solution up to dec0_bn2; the head is wrong: a 1x1 Conv2D 'head' "
                    "with bias to num_classes applied to dec0's output after its ReLU, then a softmax over "
                    "the classes (no other activation)"]
        block, layer = first.rsplit("_", 1)
        if layer == "bn2":
            return [f"{block}: {block}_bn1 matches but {block}_bn2 differs: inside the block it is "
                    f"{block}_bn1 -> ReLU -> {block}_conv2 (3x3, same, no bias) -> {block}_bn2"]
        if layer == "up":
            below = "bottleneck" if int(block[3:]) == depth - 1 else f"dec{int(block[3:]) + 1}"
            return [f"upsampling layer {first} differs: a Conv2DTranspose (2x2, strides 2, with bias, no "
                    f"activation) applied to {below}'s block output after its ReLU"]
        if block.startswith("dec"):
            return [f"{first} differs although {block}_up matches: the concatenation feeding {block}_conv1 is "
                    f"wrong. It is [{block}_up output, skip] in this order, and the skip is enc{block[3:]}'s "
                    "block output after its ReLU and before the pooling"]
        if block == "enc0":
            return ["level 0: enc0_bn1 differs: the first layer is enc0_conv1 (3x3, same, no bias) on the "
                    "input, then enc0_bn1 (batch norm before the ReLU)"]
        previous = f"enc{int(block[3:]) - 1}" if block.startswith("enc") else f"enc{depth - 1}"
        return [f"{first} differs although {previous} matches: the input of {block} is a 2x2 max pooling "
                f"(strides 2) of {previous}'s block output after its ReLU, then {block}_conv1 -> {block}_bn1"]
    return locate


def _diagnose_unet(case: Case):
    classes = case.meta["num_classes"]

    def diagnose(got: np.ndarray, expected: np.ndarray) -> list[str]:
        if got.shape[1:3] != expected.shape[1:3]:
            return [f"output size {got.shape[1:3]} instead of the input's {expected.shape[1:3]}"]
        if got.shape[-1] != expected.shape[-1]:
            return [f"{got.shape[-1]} output channels instead of num_classes = {classes}"]
        sums = got.sum(axis=-1)
        if not np.allclose(sums, 1.0, atol=1e-3) or got.min() < 0:
            return ["the outputs are not probabilities (each pixel's values must sum to 1): the head needs a "
                    "softmax over the classes"]
        return []
    return diagnose


# --------------------------------------------------------------------------
# dice_coefficient
# --------------------------------------------------------------------------


def _dice_what(case: Case) -> str:
    return f"dice_coefficient(y_true, y_pred) on a {tuple(case.inputs.shape[1:])} batch ({case.meta['kind']})"


def produce_dice_coefficient(dice_coefficient: Callable, case: Case) -> Produced:
    """The student's Dice for one case as ``np.array([value])`` (no comparison)."""
    what = _dice_what(case)
    y_true, y_pred = case.inputs[0].copy(), case.inputs[1].copy()
    value = call_student(what, dice_coefficient, y_true, y_pred)
    if isinstance(value, np.ndarray) and value.size != 1:
        raise GradingFailure(f"{what} returned an array of shape {value.shape}: return one number, the mean "
                             "over the classes")
    try:
        return Produced(np.array([float(value)], dtype=np.float64))
    except (TypeError, ValueError):
        raise GradingFailure(f"{what} returned {type(value).__name__}: return a Python float") from None


def _dice_variants(case: Case) -> dict[str, float]:
    """Values of typical wrong Dice formulas, from the solution's per-class and per-image values.

    The reference file stores, for each case, the solution's Dice of every class
    alone, of every image alone and of the argmax prediction; the wrong
    variants follow from those without restating the formula here.
    """
    per_class = case.probes.get("per_class")
    if per_class is None:
        return {}
    per_class = per_class.astype(np.float64)
    return {
        "the background class is left out: average over all C classes, background included":
            float(per_class[1:].mean()),
        "Dice is computed per image and then averaged: sum over all pixels of the whole batch per class":
            float(case.probes["per_image"].mean()),
        "the prediction was thresholded (argmax): soft Dice uses the probabilities as they are":
            float(case.probes["hard"][0]),
        "this is the Jaccard index (intersection over union), not Dice":
            float(np.mean(per_class / (2.0 - per_class))),
    }


def _diagnose_dice(case: Case):
    def diagnose(got: np.ndarray, expected: np.ndarray) -> list[str]:
        for hint, value in _dice_variants(case).items():
            if abs(value - float(got[0])) <= 1e-4 * max(1.0, abs(value)):
                return [hint]
        classes = case.inputs.shape[-1]
        if case.meta["kind"] == "absent" and abs(float(expected[0]) - 1.0 / classes - float(got[0])) < 1e-4:
            return ["a class that is in neither the mask nor the prediction must score 1: eps belongs in "
                    "the numerator and the denominator"]
        return ["soft Dice per class over all pixels of the batch, (2 * intersection + eps) / (sum of the "
                "mask + sum of the prediction + eps), then the mean over all classes"]
    return diagnose


RECEPTIVE_FIELD = FunctionSpec(
    function="receptive_field", select="receptive_field", produce=produce_receptive_field,
    describe=_rf_what, diagnose=_diagnose_receptive_field, tolerance=0.0,
    refused_helpers=(architectures.receptive_fields, architectures.receptive_fields_of_model))
BUILD_UNET = FunctionSpec(
    function="build_unet", select="unet", produce=produce_build_unet, describe=_unet_what,
    diagnose=_diagnose_unet, locate=lambda case: _locate_unet(_depth(case)), diagnose_first=True)
DICE_COEFFICIENT = FunctionSpec(
    function="dice_coefficient", select="dice", produce=produce_dice_coefficient, describe=_dice_what,
    diagnose=_diagnose_dice)


def _dice_inputs(shape: tuple[int, ...], kind: str, rng: np.random.Generator) -> np.ndarray:
    batch, h, w, c = shape
    labels = rng.integers(0, c, size=(batch, h, w))
    if kind == "absent":
        labels = np.where(labels == c - 1, 0, labels)
    if kind == "uneven":
        labels[0] = 0
        labels[0, :2, :2] = 1
    y_true = np.eye(c)[labels]
    logits = rng.normal(size=shape) * (4.0 if kind == "confident" else 1.0) + 2.0 * y_true
    if kind == "absent":
        logits[..., c - 1] = -60.0  # the prediction agrees: the class is nowhere
    y_pred = np.exp(logits - logits.max(axis=-1, keepdims=True))
    y_pred /= y_pred.sum(axis=-1, keepdims=True)
    if kind == "absent":
        y_pred[..., c - 1] = 0.0
        y_pred /= y_pred.sum(axis=-1, keepdims=True)
    return np.stack([y_true, y_pred]).astype(np.float32)


# --------------------------------------------------------------------------
# The handed-in segmentation model
# --------------------------------------------------------------------------


def foreground_dice(probabilities: np.ndarray, masks: np.ndarray, num_classes: int = 4) -> np.ndarray:
    """Hard Dice of each foreground class (1..C-1) over all pixels of all images."""
    labels = probabilities.argmax(axis=-1)
    scores = []
    for c in range(1, num_classes):
        predicted, truth = labels == c, masks == c
        denominator = predicted.sum() + truth.sum()
        scores.append(1.0 if denominator == 0 else 2.0 * np.logical_and(predicted, truth).sum() / denominator)
    return np.array(scores)


def mean_foreground_dice(probabilities: np.ndarray, masks: np.ndarray) -> float:
    """The hand-in metric: mean over the foreground classes of :func:`foreground_dice`."""
    return float(foreground_dice(probabilities, masks, probabilities.shape[-1]).mean())


def _per_class_dice(probabilities: np.ndarray, masks: np.ndarray) -> str:
    scores = foreground_dice(probabilities, masks, probabilities.shape[-1])
    names = CARDIAC_CLASSES if probabilities.shape[-1] == len(CARDIAC_CLASSES) else None
    return ", ".join(f"{names[c + 1] if names else c + 1} {v:.3f}" for c, v in enumerate(scores))


def _cardiac_test(path: str) -> tuple[np.ndarray, np.ndarray]:
    from dlcourse.data import load_cardiac

    return load_cardiac("test", path=path)


HANDIN = HandinContract(
    grade_id="test_segmentation_model_handin", model_file="unet_model.keras",
    data_file="hidden_cardiac_test.npz", load_split=_cardiac_test, num_classes=4, metric="mean foreground Dice", score=mean_foreground_dice, threshold=0.80,
    output_shape=lambda input_shape: (*input_shape[:2], len(CARDIAC_CLASSES)),
    output_meaning="one probability vector per pixel", detail=_per_class_dice, batch_size=32)


# --------------------------------------------------------------------------
# Reference cases from the solution
# --------------------------------------------------------------------------


def make_cases(receptive_field: Callable, build_unet: Callable, dice_coefficient: Callable) -> list[Case]:
    """Reference cases from the solution's functions (seeded inputs and weights)."""
    grading_mode()
    cases = []
    for name, kernels, dilations in RECEPTIVE_FIELD_CASES:
        expected = np.asarray(receptive_field(list(kernels), list(dilations)), dtype=np.int64)
        cases.append(Case(name, {"kernel_sizes": list(kernels), "dilations": list(dilations)},
                          np.asarray([kernels, dilations], dtype=np.int64), expected))
    for seed, (name, shape, classes, depth, base) in enumerate(UNET_CASES, start=700):
        kwargs = {} if depth is None else {"depth": depth, "base_filters": base}
        model = build_unet(shape, classes, **kwargs)
        weights = random_weights(model, seed, scale=1.0)
        load_reference_weights(model, weights)
        rng = np.random.default_rng(seed + 1)
        inputs = rng.normal(size=(2, *shape)).astype(np.float32)
        expected = np.asarray(model(inputs, training=False), dtype=np.float32)
        probes = {k: v.astype(np.float32) for k, v in
                  probe_outputs(model, unet_probe_layers(depth or 4), inputs).items()}
        cases.append(Case(name, {"input_shape": list(shape), "num_classes": classes, "depth": depth,
                                 "base_filters": base}, inputs, expected, weights, probes))
    for seed, (name, shape, kind) in enumerate(DICE_CASES, start=800):
        inputs = _dice_inputs(shape, kind, np.random.default_rng(seed))
        y_true, y_pred = inputs[0], inputs[1]
        value = dice_coefficient(y_true.copy(), y_pred.copy())
        hard = np.eye(shape[-1], dtype=np.float32)[y_pred.argmax(-1)]
        probes = {  # for diagnostics only: the solution's Dice of each class and each image alone
            "per_class": np.array([dice_coefficient(y_true[..., c:c + 1], y_pred[..., c:c + 1])
                                   for c in range(shape[-1])]),
            "per_image": np.array([dice_coefficient(y_true[b:b + 1], y_pred[b:b + 1]) for b in range(shape[0])]),
            "hard": np.array([dice_coefficient(y_true, hard)]),
        }
        cases.append(Case(name, {"shape": list(shape), "kind": kind}, inputs, np.array([float(value)]),
                          probes=probes))
    return cases


ASSIGNMENT = AssignmentSpec(
    assignment="unet", module=__name__, reference_file=REFERENCE_FILE,
    functions=(RECEPTIVE_FIELD, BUILD_UNET, DICE_COEFFICIENT), make_cases=make_cases, handin=HANDIN)
