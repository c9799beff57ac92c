"""Regenerate hidden_warmup_reference.npz from the solution's small_cnn.

Run from the repository root:  .venv/bin/python solutions/warmup/hidden_make_reference.py
"""

from pathlib import Path

import numpy as np

from dlcourse.notebooks import solution_namespace

HERE = Path(__file__).parent


def make_reference() -> dict[str, np.ndarray]:
    namespace = solution_namespace(HERE / "warmup.ipynb", ["setup", "small_cnn"])
    model = namespace["small_cnn"]((32, 32, 1), 3)
    rng = np.random.default_rng(20260101)
    arrays = {"inputs": rng.normal(size=(4, 32, 32, 1)).astype("float32")}
    for name in ("conv1", "conv2", "head"):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        arrays[f"{name}/kernel"] = rng.normal(scale=0.3, size=kernel.shape).astype("float32")
        arrays[f"{name}/bias"] = rng.normal(scale=0.1, size=bias.shape).astype("float32")
        layer.set_weights([arrays[f"{name}/kernel"], arrays[f"{name}/bias"]])
    arrays["outputs"] = model.predict(arrays["inputs"], verbose=0)
    return arrays


if __name__ == "__main__":
    np.savez(HERE / "hidden_warmup_reference.npz", **make_reference())
