"""The `unet` checks: failure messages name the fault, produce functions, the hand-in metric."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dlcourse.grading import GradingFailure, load_cases
from dlcourse.grading import unet as checks
from dlcourse.runner.notebooks import cells_by_grade_id, read_notebook, strip_markers

SPECS = {spec.function: spec for spec in checks.ASSIGNMENT.functions}

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from dlcourse.authoring.practical import catalogue_path, load_catalogue_module  # noqa: E402
from dlcourse.runner.course import Course  # noqa: E402

IMPLEMENTATIONS = load_catalogue_module(catalogue_path(Course(REPO), "unet")).IMPLEMENTATIONS
from test_grading_policy import define  # noqa: E402

REFERENCES = REPO / "solutions/unet/hidden_unet_refs.npz"

#: mutant -> a phrase its failure message must contain
EXPECTED = {
    # receptive_field
    "dilation ignored": "layer 2 (kernel 3, dilation 2) is the first that differs",
    "field starts at 0": "layer 1 (kernel 3, dilation 1) is the first that differs",
    "dilated kernel spans k * d pixels": "a dilated kernel spans (k - 1) * d + 1 pixels",
    "only the final field": "return a list with the field after every layer",
    # build_unet
    "skip taken after pooling": "*before* the 2x2 max pooling",
    "concatenation order [skip, up]": "dec0_bn1 differs although dec0_up matches: the concatenation",
    "skip from the upsampled path (no encoder skip)": "the concatenation feeding dec0_conv1 is wrong",
    "upsampling by UpSampling2D + Conv2D": "each dec{i}_up is a Conv2DTranspose",
    "ReLU on the transposed convolution": "upsampling layer dec0_up differs",
    "sigmoid head": "the head needs a softmax",
    "ReLU before batch norm": "level 0: enc0_bn1 differs",
    "average pooling": "2x2 max pooling (strides 2) of enc0's block output",
    "no ReLU after the second batch norm": "after its ReLU",
    "filters do not double": "layer 'bottleneck_conv1'",
    "bottleneck as wide as the last level": "layer 'bottleneck_bn1'",
    # dice_coefficient
    "background left out": "background included",
    "Dice per image, then averaged": "per image and then averaged",
    "thresholded prediction": "thresholded (argmax)",
    "no eps": "NaN",
    "Jaccard instead of Dice": "Jaccard",
    "numerator without the factor 2": "then the mean over all classes",
}


@pytest.fixture(scope="module")
def cases():
    return load_cases(REFERENCES)


@pytest.fixture(scope="module")
def solution() -> dict:
    cells = cells_by_grade_id(read_notebook(REPO / "solutions/unet/unet.ipynb"))
    return define("\n\n".join(strip_markers(cells[g].source)
                              for g in ("receptive_field", "build_unet", "dice_coefficient")))


def test_every_listed_mutant_exists():
    names = {i.name for i in IMPLEMENTATIONS}
    assert set(EXPECTED) <= names, set(EXPECTED) - names


@pytest.mark.parametrize("impl", [i for i in IMPLEMENTATIONS if i.name in EXPECTED], ids=lambda i: i.name)
def test_mutant_message_names_the_mistake(impl, cases):
    with pytest.raises(GradingFailure) as failure:
        SPECS[impl.grade_id].check(define(impl.source)[impl.grade_id], cases)
    assert EXPECTED[impl.name] in str(failure.value), str(failure.value)


@pytest.mark.parametrize("impl", [i for i in IMPLEMENTATIONS if i.correct
                                  and i.grade_id in ("receptive_field", "build_unet", "dice_coefficient")],
                         ids=lambda i: i.name)
def test_alternatives_pass(impl, cases):
    SPECS[impl.grade_id].check(define(impl.source)[impl.grade_id], cases)


def test_produce_functions_reproduce_the_references(solution, cases):
    from dlcourse.grading.policy import TOLERANCE, relative_error

    produce = {"receptive_field": checks.produce_receptive_field, "unet": checks.produce_build_unet,
               "dice": checks.produce_dice_coefficient}
    functions = {"receptive_field": "receptive_field", "unet": "build_unet", "dice": "dice_coefficient"}
    seen = set()
    for case in cases.values():
        prefix = next(p for p in produce if case.name.startswith(p))
        got = produce[prefix](solution[functions[prefix]], case).output
        assert isinstance(got, np.ndarray) and got.shape == case.expected.shape, case.name
        assert relative_error(got, case.expected) <= TOLERANCE, case.name
        seen.add(prefix)
    assert seen == set(produce)


def test_produce_does_not_judge(cases):
    """A wrong function still produces an output; only the check fails."""
    wrong = define(next(i for i in IMPLEMENTATIONS if i.name == "background left out").source)["dice_coefficient"]
    case = cases["dice_confident"]
    assert checks.produce_dice_coefficient(wrong, case).output.shape == (1,)


def test_student_exception_names_the_call(cases):
    def broken(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(GradingFailure, match=r"build_unet\(\(8, 8, 1\), 3, depth=1, base_filters=4\) raised"):
        checks.produce_build_unet(broken, cases["unet_depth1_square"])
    with pytest.raises(GradingFailure, match=r"returned NoneType: return a keras\.Model"):
        checks.produce_build_unet(lambda *a, **k: None, cases["unet_depth1_square"])


@pytest.mark.parametrize("shape", [(24, 20, 1), (20, 24, 1), (30, 32, 1)])
def test_sizes_not_divisible_raise_naming_them(solution, shape):
    bad = shape[0] if shape[0] % 8 else shape[1]
    with pytest.raises(ValueError, match=str(bad)):
        solution["build_unet"](shape, 4, depth=3, base_filters=4)


def test_probe_layers_follow_the_data_flow():
    assert checks.unet_probe_layers(1) == ("enc0_bn1", "enc0_bn2", "bottleneck_bn1", "bottleneck_bn2",
                                           "dec0_up", "dec0_bn1", "dec0_bn2")


def test_foreground_dice_metric():
    masks = np.zeros((2, 4, 4), np.uint8)
    masks[:, :2, :2] = 1
    masks[:, 2:, 2:] = 3
    perfect = np.eye(4)[masks]
    assert np.allclose(checks.foreground_dice(perfect, masks), 1.0)  # class 2 absent in both: 1
    background = np.eye(4)[np.zeros_like(masks)]
    assert checks.mean_foreground_dice(background, masks) == pytest.approx(1 / 3)  # only the absent class


def _save_constant_model(path: Path, probabilities: np.ndarray) -> None:
    import keras

    inputs = keras.Input((8, 8, 1))
    logits = keras.layers.Conv2D(4, 1, name="head", kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(np.log(probabilities)))(inputs)
    keras.Model(inputs, keras.layers.Softmax()(logits)).save(path)


def test_handin_contract_scores(tmp_path):
    masks = np.zeros((3, 8, 8), np.uint8)
    images = np.zeros((3, 8, 8, 1), np.float32)
    _save_constant_model(tmp_path / "unet_model.keras", np.array([0.7, 0.1, 0.1, 0.1]))
    handin = checks.HANDIN
    np.savez(tmp_path / handin.data_file, x=images, y=masks)
    masks[:, :4] = 1
    passed, message = handin.judge(handin.produce(tmp_path / "unet_model.keras", images), masks)
    assert not passed and "is below the threshold 0.80" in message and message.startswith("mean foreground Dice")
    masks[:] = 0
    passed, message = handin.judge(handin.produce(tmp_path / "unet_model.keras", images), masks)
    assert passed and message.startswith("mean foreground Dice on the test split 1.000"), message


def test_handin_check_rejects_wrong_output_shape(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(pooled)).save(tmp_path / "m.keras")
    with pytest.raises(GradingFailure, match="one probability vector per pixel"):
        checks.HANDIN.produce(tmp_path / "m.keras", np.zeros((2, 8, 8, 1), np.float32))
