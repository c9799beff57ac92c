"""Where the bundled data lives.

Notebooks run from any working directory, so the data folder is found relative
to this package (src layout: ``<repo>/src/dlcourse/data`` -> ``<repo>/data``),
unless the environment variable ``DLCOURSE_DATA`` points elsewhere (an installed
package, a copied ``data/`` folder on a GPU runtime).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import MissingDataError

ENV_VAR = "DLCOURSE_DATA"
REPO_ROOT = Path(__file__).resolve().parents[3]


def data_dir() -> Path:
    """Return the bundled data folder, or raise naming the path that was tried."""
    override = os.environ.get(ENV_VAR)
    folder = Path(override).expanduser() if override else REPO_ROOT / "data"
    if not folder.is_dir():
        how = f"${ENV_VAR}={override!r}" if override else "the repository's data/ folder"
        raise MissingDataError(
            f"data folder not found: {folder} (from {how}); set {ENV_VAR} to the folder "
            "that holds cardiac_train.npz, ct_train.npz, ..."
        )
    return folder


def data_file(name: str) -> Path:
    """Path of one bundled file; raise naming the full expected path if it is absent."""
    path = data_dir() / name
    if not path.is_file():
        raise MissingDataError(
            f"bundled data file missing: {path} "
            "(restore it from git or run `python -m dlcourse.data.regenerate`)"
        )
    return path


def solutions_dir() -> Path:
    """The instructor's ``solutions/`` folder (absent in the student release)."""
    return REPO_ROOT / "solutions"
