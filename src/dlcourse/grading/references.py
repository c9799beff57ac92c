"""Reference cases: fixed inputs, fixed weights and the solution's outputs.

A case file is one ``.npz``: for case ``c`` it holds ``c/inputs``,
``c/expected``, ``c/weights/<layer>/<i>``, optional ``c/probes/<layer>``
(inner layer outputs, for diagnostics) and ``c/meta`` (JSON: the
arguments the function under test was called with). Instructors write it from
the solution with ``save_cases``; hidden tests read it with ``load_cases``.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Case:
    name: str
    meta: dict[str, Any]
    inputs: np.ndarray
    expected: np.ndarray
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict)
    #: outputs of named inner layers of the solution, to localise a wrong output
    probes: dict[str, np.ndarray] = field(default_factory=dict)


def save_cases(path: str | Path, cases: list[Case]) -> None:
    """Write cases to ``path`` byte-for-byte reproducibly (fixed zip timestamps)."""
    arrays: dict[str, np.ndarray] = {}
    for case in cases:
        arrays[f"{case.name}/meta"] = np.frombuffer(json.dumps(case.meta, sort_keys=True).encode(), np.uint8)
        arrays[f"{case.name}/inputs"] = np.asarray(case.inputs)
        arrays[f"{case.name}/expected"] = np.asarray(case.expected)
        for layer, value in sorted(case.probes.items()):
            arrays[f"{case.name}/probes/{layer}"] = np.asarray(value)
        for layer, values in sorted(case.weights.items()):
            for i, value in enumerate(values):
                arrays[f"{case.name}/weights/{layer}/{i}"] = np.asarray(value)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, arrays[key], allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buffer.getvalue())


def load_cases(path: str | Path) -> dict[str, Case]:
    """Read a case file; a missing file is a grader set-up problem, said plainly."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"reference file {path.name} is missing: hidden tests must run through the course's "
            "grader (nbgrader with this course's nbgrader_config.py)"
        )
    cases: dict[str, Case] = {}
    with np.load(path, allow_pickle=False) as data:
        keys = list(data.keys())
        names = sorted({key.split("/", 1)[0] for key in keys})
        for name in names:
            weights: dict[str, list[np.ndarray]] = {}
            for key in sorted(k for k in keys if k.startswith(f"{name}/weights/")):
                layer, index = key[len(f"{name}/weights/"):].rsplit("/", 1)
                weights.setdefault(layer, []).append((int(index), data[key]))
            cases[name] = Case(
                name=name,
                meta=json.loads(bytes(data[f"{name}/meta"]).decode()),
                inputs=data[f"{name}/inputs"],
                expected=data[f"{name}/expected"],
                weights={layer: [v for _, v in sorted(items, key=lambda t: t[0])]
                         for layer, items in weights.items()},
                probes={key[len(f"{name}/probes/"):]: data[key]
                        for key in keys if key.startswith(f"{name}/probes/")},
            )
    return cases


def random_weights(model, seed: int, scale: float = 0.5) -> dict[str, list[np.ndarray]]:
    """Fresh random values for every weighted layer of ``model``, by layer name.

    Batch-norm statistics get positive variances; everything is float32.
    """
    rng = np.random.default_rng(seed)
    weights: dict[str, list[np.ndarray]] = {}
    for layer in model.layers:
        values = layer.get_weights()
        if not values:
            continue
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = values
            new = [rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                   rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)]
        else:
            new = []
            for v in values:
                fan_in = int(np.prod(v.shape[:-1])) if v.ndim > 1 else 1
                new.append(rng.normal(0, scale / np.sqrt(max(fan_in, 1)), v.shape) if v.ndim > 1
                           else rng.normal(0, 0.1, v.shape))
        weights[layer.name] = [np.asarray(v, dtype=np.float32) for v in new]
    return weights
