"""The checksum registry: what every bundled or hidden file must contain.

``checksums.json`` (next to this module, written by ``regenerate``) records
for each split the sha256 of the file bytes, a hash of the array contents and
the arrays' dtypes and shapes. A file passes when its bytes match, or, when it
was re-compressed by another zlib build, when its arrays match; anything else
is a DataError naming the file. Hidden splits are listed too: a hash reveals
nothing about the data.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, MissingDataError
from .npzio import content_sha256, file_sha256, read_npz

REGISTRY_PATH = Path(__file__).with_name("checksums.json")


@lru_cache(maxsize=1)
def _cached_registry(mtime_ns: int) -> dict[str, Any]:
    with open(REGISTRY_PATH, encoding="utf-8") as handle:
        return json.load(handle)


def registry() -> dict[str, Any]:
    """The parsed registry (re-read when the file changes)."""
    if not REGISTRY_PATH.is_file():
        raise MissingDataError(f"checksum registry missing: {REGISTRY_PATH}")
    return _cached_registry(REGISTRY_PATH.stat().st_mtime_ns)


def entry(key: str) -> dict[str, Any]:
    """The registry entry of one split, e.g. ``"cardiac/train"``."""
    datasets = registry()["datasets"]
    if key not in datasets:
        raise DataError(f"no checksum registered for {key!r} in {REGISTRY_PATH}")
    return datasets[key]


def describe_arrays(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """dtype and shape of each array, as stored in the registry."""
    return {
        name: {"dtype": np.dtype(a.dtype).str, "shape": list(a.shape)}
        for name, a in sorted(arrays.items())
    }


def load_verified(path: str | os.PathLike, key: str, verify: bool = True) -> dict[str, np.ndarray]:
    """Read ``path`` and prove it holds split ``key``; raise a DataError naming the file if not."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"data file for {key} not found: {path}")
    if not verify:
        return read_npz(path)
    expected = entry(key)
    actual_sha = file_sha256(path)
    arrays = read_npz(path)
    if actual_sha != expected["sha256"] and content_sha256(arrays) != expected["content_sha256"]:
        raise DataError(
            f"{path}: checksum mismatch for {key}: sha256 {actual_sha}, expected "
            f"{expected['sha256']} (file modified, truncated or from another version; "
            "restore it from git or run `python -m dlcourse.data.regenerate`)"
        )
    if describe_arrays(arrays) != expected["arrays"]:
        raise DataError(f"{path}: arrays do not match the registry entry of {key}")
    return arrays
