"""Failure messages name what is wrong: the branch, the order, the layer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dlcourse.grading import GradingFailure
from dlcourse.grading.inception import AUXILIARY_CLASSIFIER, INCEPTION_MODULE, make_cases
from dlcourse.grading.weights import load_reference_weights

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from dlcourse.authoring.practical import catalogue_path, load_catalogue_module  # noqa: E402
from dlcourse.runner.course import Course  # noqa: E402

IMPLEMENTATIONS = load_catalogue_module(catalogue_path(Course(REPO), "inception")).IMPLEMENTATIONS
from test_grading_policy import define  # noqa: E402

EXPECTED = {
    "concat order 3x3/5x5 swapped": "branches concatenated as [1x1, 5x5, 3x3, pool_proj]",
    "pool branch first": "branches concatenated as [pool_proj, 1x1, 3x3, 5x5]",
    "valid padding on the 3x3": "raised ValueError",
    "no ReLU after the 5x5": "5x5 branch: ReLU missing after its last convolution",
    "no ReLU after the 3x3 reduce": "3x3 branch differs: the 1x1 3x3_reduce convolution",
    "missing 5x5 bottleneck": "has no layer named 'inc_5x5_reduce'",
    "average instead of max pooling": "pool branch differs: 3x3 max pooling",
    "pooling with stride 2": "raised ValueError",
    "3x3 kernel in the 5x5 branch": "kernel size (3, 3) instead of (5, 5)",
    "reduce filters swapped": "filters instead of",
    "layer misnamed": "has no layer named 'inc_3x3_reduce'",
    "no bias": "has no bias, but the specification asks for one",
    "no softmax": "rows do not sum to 1",
    "max instead of average pooling": "check the 5x5 average pooling",
    "pool stride 2": "(strides=3, padding='valid')",
    "no ReLU after the dense layer": "check the 5x5 average pooling",
    "no ReLU after the 1x1 convolution": "check the 5x5 average pooling",
}


@pytest.fixture(scope="module")
def cases():
    from test_grading_policy import REPO as repo

    from dlcourse.runner.notebooks import cells_by_grade_id, read_notebook, strip_markers

    cells = cells_by_grade_id(read_notebook(repo / "solutions/inception/inception.ipynb"))
    ns = define("\n\n".join(strip_markers(cells[g].source) for g in ("inception_module", "auxiliary_classifier")))
    ns.update(define("\n\n".join(strip_markers(cells[g].source) for g in ("conv_params", "params_inception"))))
    return {c.name: c for c in make_cases(ns["inception_module"], ns["auxiliary_classifier"], ns["conv_params"],
                                          ns["params_inception"])}


@pytest.mark.parametrize("impl", [i for i in IMPLEMENTATIONS if i.name in EXPECTED], ids=lambda i: i.name)
def test_mutant_message_names_the_mistake(impl, cases):
    fn = define(impl.source)[impl.grade_id]
    spec = INCEPTION_MODULE if impl.grade_id == "inception_module" else AUXILIARY_CLASSIFIER
    with pytest.raises(GradingFailure) as failure:
        spec.check(fn, cases)
    assert EXPECTED[impl.name] in str(failure.value), str(failure.value)


def test_redundant_bias_is_zeroed_not_failed():
    import keras

    x = keras.Input((4, 4, 2))
    model = keras.Model(x, keras.layers.Conv2D(3, 1, use_bias=True, name="c")(x))
    kernel = np.ones((1, 1, 2, 3), np.float32)
    load_reference_weights(model, {"c": [kernel]})  # the contract has no bias here
    assert np.array_equal(model.get_layer("c").get_weights()[1], np.zeros(3))


def test_extra_weighted_layer_is_named():
    import keras

    x = keras.Input((4, 4, 2))
    y = keras.layers.Conv2D(3, 1, name="c")(x)
    model = keras.Model(x, keras.layers.Dense(2, name="surprise")(y))
    with pytest.raises(GradingFailure, match="does not ask for: surprise"):
        load_reference_weights(model, {"c": [np.ones((1, 1, 2, 3), np.float32), np.zeros(3, np.float32)]})


def test_missing_reference_file_says_how_to_grade():
    from dlcourse.grading import load_cases

    with pytest.raises(FileNotFoundError, match="must run through the course's grader"):
        load_cases("hidden_nothing.npz")


RESIDUAL_EXPECTED = {
    "ReLU before the addition": "combination is wrong",
    "no final ReLU": "combination is wrong",
    "missing skip": "combination is wrong",
    "stride on the second convolution": "main path: the output of res_b_bn1 differs",
    "projection without batch norm": "has no layer named 'res_d_proj_bn'",
    "projection always": "does not ask for: res_a_proj, res_a_proj_bn",
    "stride on the first 1x1": "The stride 2 belongs to bot_b_conv2",
    "ReLU after the last batch norm, before the addition": "add the shortcut to bot_a_bn3's output directly",
    "new features first": "the concatenation is wrong",
    "no ReLU": "layer 1 (dense_b_layer1_conv) is the first whose new features differ",
}


@pytest.mark.parametrize("name", sorted(RESIDUAL_EXPECTED))
def test_residual_messages_localise_the_fault(name):
    from dlcourse.grading import load_cases
    from dlcourse.grading.residual import ASSIGNMENT

    RESIDUAL = load_catalogue_module(catalogue_path(Course(REPO), "residual")).IMPLEMENTATIONS
    impl = next(i for i in RESIDUAL if i.name == name)
    cases = load_cases(REPO / "solutions/residual/hidden_residual_refs.npz")
    spec = ASSIGNMENT.function(impl.grade_id)
    with pytest.raises(GradingFailure) as failure:
        spec.check(define(impl.source)[impl.grade_id], cases)
    assert RESIDUAL_EXPECTED[name] in str(failure.value), str(failure.value)
