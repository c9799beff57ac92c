"""Build a one-function Keras model around the student's code, for a test case."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dlcourse.grading.compare import GradingFailure, call_student
from dlcourse.grading.policy import grading_mode
from dlcourse.grading.references import Case
from dlcourse.grading.weights import load_reference_weights


def wrap(build: Callable, input_shape: tuple[int, ...], what: str):
    """``keras.Model(x, build(x))``; a student exception names the function it came from."""
    import keras

    grading_mode()
    inputs = keras.Input(shape=tuple(input_shape))
    outputs = call_student(what, build, inputs)
    if isinstance(outputs, keras.Model):
        raise GradingFailure(f"{what} must return a tensor, not a keras.Model")
    return keras.Model(inputs, outputs)


def probe_outputs(model, layer_names, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs of the named layers of ``model`` (those it has), in inference mode."""
    import keras

    present = [n for n in layer_names if n in {layer.name for layer in model.layers}]
    if not present:
        return {}
    probe = keras.Model(model.input, [model.get_layer(n).output for n in present])
    outputs = probe(inputs, training=False)
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    return {n: np.asarray(o) for n, o in zip(present, outputs, strict=True)}


def build_and_predict(build: Callable, case: Case, what: str):
    """The student's model for ``case`` with its reference weights, and its output (no comparison)."""
    model = wrap(build, case.inputs.shape[1:], what)
    load_reference_weights(model, case.weights, what=what)
    return model, np.asarray(model(case.inputs, training=False))


def produce_model_output(build: Callable, case: Case, what: str):
    """The student's output for ``case`` and the outputs of the inner layers the case names.

    The inner outputs let the trusted side say which part differs (a branch, a
    level) without the student's model, which stays in the confined process.
    """
    from dlcourse.grading.spec import Produced

    model, output = build_and_predict(build, case, what)
    return Produced(output, probe_outputs(model, list(case.probes), case.inputs))


def reference_case(name: str, build: Callable, input_shape: tuple[int, ...], meta: dict,
                   seed: int, batch: int = 2, input_scale: float = 1.0,
                   weight_scale: float = 0.5, probe_layers: tuple[str, ...] = ()) -> Case:
    """Run the solution's ``build`` on seeded inputs and weights; the result is a Case."""
    from dlcourse.grading.references import random_weights

    model = wrap(build, input_shape, name)
    weights = random_weights(model, seed, scale=weight_scale)
    load_reference_weights(model, weights)
    rng = np.random.default_rng(seed + 1)
    inputs = (rng.normal(size=(batch, *input_shape)) * input_scale).astype(np.float32)
    expected = np.asarray(model(inputs, training=False), dtype=np.float32)
    probes = {k: v.astype(np.float32) for k, v in probe_outputs(model, probe_layers, inputs).items()}
    return Case(name, meta, inputs, expected, weights, probes)


def count_params_without_conv_bias(model) -> int:
    """Parameters of ``model``, not counting convolution biases.

    Where the contract says ``use_bias=False`` a kept bias is redundant (the batch
    norm after it has an offset) and costs no marks; parameter-count tests use
    this count so such a model still passes.
    """
    import keras

    total = 0
    for layer in model.layers:
        conv = isinstance(layer, keras.layers.Conv2D | keras.layers.Conv1D | keras.layers.Conv3D)
        for weight in layer.weights:
            if conv and weight.name == "bias":
                continue
            total += int(np.prod(weight.shape))
    return total
