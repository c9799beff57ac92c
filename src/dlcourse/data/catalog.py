"""Every file the data package produces: where it lives and how it is built.

Public splits carry their seed here. Reserved (test) splits have ``seed=None``:
their seeds live only in the instructor's ``solutions/`` folder
(``HIDDEN_SEEDS_FILE``), which the student release does not contain, so no
code shipped to students can rebuild a test split. A reserved split is a
``hidden_*`` file that lies in the folder of every practical that grades with it:
its copies are found there, not listed per practical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import cardiac, ct, signals
from .paths import REPO_ROOT

HIDDEN_SEEDS_FILE = "solutions/hidden_data_seeds.json"


@dataclass(frozen=True)
class Split:
    """One split of one data set and the files (repo-relative) that hold it."""

    key: str
    file: str  # data/<name> for a public split, hidden_<name> for a reserved one
    build: Callable[[int], dict[str, np.ndarray]]
    seed: int | None
    description: str

    @property
    def reserved(self) -> bool:
        return self.seed is None

    @property
    def paths(self) -> tuple[str, ...]:
        """The files that hold it, repo-relative: a reserved split's copy in each practical's
        folder that has one."""
        if not self.reserved:
            return (self.file,)
        return tuple(sorted(p.relative_to(REPO_ROOT).as_posix()
                            for p in (REPO_ROOT / "solutions").glob(f"*/{self.file}")))


def _cardiac(n: int) -> Callable[[int], dict[str, np.ndarray]]:
    return lambda seed: cardiac.generate_cardiac(n, seed)


def _ct(per_class: int) -> Callable[[int], dict[str, np.ndarray]]:
    return lambda seed: ct.generate_ct(per_class, seed)


def _signals(split: str) -> Callable[[int], dict[str, np.ndarray]]:
    return lambda seed: signals.build_signal_split(split, seed)


SPLITS: tuple[Split, ...] = (
    Split("cardiac/train", "data/cardiac_train.npz", _cardiac(cardiac.PUBLIC_SPLITS["train"][1]),
          cardiac.PUBLIC_SPLITS["train"][0], "synthetic cardiac MR, training"),
    Split("cardiac/val", "data/cardiac_val.npz", _cardiac(cardiac.PUBLIC_SPLITS["val"][1]),
          cardiac.PUBLIC_SPLITS["val"][0], "synthetic cardiac MR, validation"),
    Split("cardiac/test", "hidden_cardiac_test.npz", _cardiac(cardiac.TEST_SIZE),
          None, "synthetic cardiac MR, reserved test"),
    Split("ct/train", "data/ct_train.npz", _ct(ct.PUBLIC_SPLITS["train"][1]),
          ct.PUBLIC_SPLITS["train"][0], "synthetic CT slices, training"),
    Split("ct/val", "data/ct_val.npz", _ct(ct.PUBLIC_SPLITS["val"][1]),
          ct.PUBLIC_SPLITS["val"][0], "synthetic CT slices, validation"),
    Split("ct/test", "hidden_ct_test.npz",
          _ct(ct.TEST_PER_CLASS), None, "synthetic CT slices, reserved test"),
    Split("signals/recordings", "data/ppg_recordings.npz", lambda seed: signals.build_recordings(),
          0, "heartpy's PPG recordings with beat annotations"),
    Split("signals/train", "data/signals_train.npz", _signals("train"),
          signals.PUBLIC_SEEDS["train"], "PPG beat windows, training"),
    Split("signals/val", "data/signals_val.npz", _signals("val"),
          signals.PUBLIC_SEEDS["val"], "PPG beat windows, validation"),
    Split("signals/test", "hidden_signal_test.npz", _signals("test"),
          None, "PPG beat windows, reserved test (synthetic subjects only)"),
)


def split(key: str) -> Split:
    """Look one split up by key, e.g. ``"ct/val"``."""
    for item in SPLITS:
        if item.key == key:
            return item
    raise KeyError(f"unknown split {key!r}; known: {', '.join(s.key for s in SPLITS)}")
