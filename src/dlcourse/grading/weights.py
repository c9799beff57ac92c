"""Reference weights into the student's layers, matched by layer name."""

from __future__ import annotations

import numpy as np

from dlcourse.grading.compare import GradingFailure

_WEIGHT_NAMES = {
    "Conv2D": ("kernel", "bias"), "Conv1D": ("kernel", "bias"), "Conv3D": ("kernel", "bias"),
    "Conv2DTranspose": ("kernel", "bias"), "Conv3DTranspose": ("kernel", "bias"),
    "Dense": ("kernel", "bias"),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
}


def _all_layers(model) -> dict:
    """Every layer by name, including layers of nested models."""
    found = {}
    stack = list(model.layers)
    while stack:
        layer = stack.pop(0)
        found.setdefault(layer.name, layer)
        stack.extend(getattr(layer, "layers", []))
    return found


def load_reference_weights(model, weights: dict[str, list[np.ndarray]], what: str = "your model") -> None:
    """Set each named layer of ``model`` to the reference values.

    A layer that is missing or has other shapes raises a GradingFailure that
    names it. A conv bias the contract leaves out but the student kept is set to
    zero (it then changes nothing). Weighted layers the reference does not know
    are reported too: they change the output in ways the tests cannot credit.
    """
    layers = _all_layers(model)
    missing = [name for name in weights if name not in layers]
    if missing:
        raise GradingFailure(
            f"{what} has no layer named {', '.join(repr(m) for m in missing)} "
            f"(layers with weights: {', '.join(sorted(n for n, lay in layers.items() if lay.weights)) or 'none'})"
        )
    extra = sorted(n for n, layer in layers.items()
                   if layer.weights and n not in weights and not getattr(layer, "layers", None))
    if extra:
        raise GradingFailure(f"{what} has layers with weights the specification does not ask for: "
                             f"{', '.join(extra)}")
    for name, values in weights.items():
        layer = layers[name]
        current = layer.get_weights()
        kind = type(layer).__name__
        labels = _WEIGHT_NAMES.get(kind, tuple(f"weight {i}" for i in range(len(current))))
        if len(current) == len(values) + 1 and kind.startswith("Conv") and len(values) == 1:
            values = [values[0], np.zeros_like(current[1])]  # redundant bias: zero it
        elif len(current) != len(values):
            if kind.startswith(("Conv", "Dense")) and len(values) == 2 and len(current) == 1:
                raise GradingFailure(f"layer {name!r} has no bias, but the specification asks for one")
            raise GradingFailure(
                f"layer {name!r} ({kind}) has {len(current)} weight arrays, expected {len(values)}"
            )
        for label, have, want in zip(labels, current, values, strict=False):
            if have.shape != want.shape:
                raise GradingFailure(
                    f"layer {name!r} ({kind}): {label} has shape {have.shape}, expected {want.shape}"
                    + _shape_hint(kind, label, have.shape, want.shape)
                )
        layer.set_weights([np.asarray(v, dtype=have.dtype) for v, have in zip(values, current, strict=True)])


def _shape_hint(kind: str, label: str, have: tuple, want: tuple) -> str:
    if label != "kernel" or len(have) != len(want):
        return ""
    if kind.startswith("Conv") and len(have) >= 3:
        if have[:-2] != want[:-2]:
            return f" (kernel size {have[:-2]} instead of {want[:-2]})"
        if have[-1] != want[-1]:
            return f" ({have[-1]} filters instead of {want[-1]})"
        return f" ({have[-2]} input channels instead of {want[-2]}: check what feeds this layer)"
    if kind == "Dense":
        if have[0] != want[0]:
            return f" ({have[0]} inputs instead of {want[0]}: check what feeds this layer)"
        return f" ({have[1]} units instead of {want[1]})"
    return ""
