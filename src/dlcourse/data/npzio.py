"""Byte-reproducible ``.npz`` files and strict reading.

``np.savez_compressed`` stamps the current time into the zip headers, so two
identical runs give different bytes and a checksum could never be committed.
Here every header field is fixed; the bytes then depend only on the arrays
and on the zlib build (other zlib builds may compress differently, which is
why the registry also stores a hash of the array contents).
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import DataError, MissingDataError

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_COMPRESS_LEVEL = 9


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of a compressed ``.npz`` holding ``arrays``, with every zip header field fixed."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(
                buffer, np.asarray(array, order="C"), version=(1, 0), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=_COMPRESS_LEVEL)
    return out.getvalue()


def write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray] | bytes) -> Path:
    """Write a reproducible ``.npz`` (arrays, or bytes from ``npz_bytes``) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = arrays if isinstance(arrays, bytes) else npz_bytes(arrays)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` (no pickles); any damage becomes a DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"data file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: np.asarray(archive[name]) for name in archive.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as err:
        raise DataError(f"{path}: corrupt or truncated .npz file ({err})") from err


def content_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """Hash of names, dtypes, shapes and values: equal arrays give equal hashes on any machine."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.asarray(arrays[name], order="C")
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        array = array.astype(dtype, copy=False)
        digest.update(f"{name}|{dtype.str}|{array.shape}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
