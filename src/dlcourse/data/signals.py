"""PPG beat detection windows for the LSTM practical, and the raw recordings behind them.

Task: for every sample of a 4-second window (50 Hz, 200 samples), is a
heartbeat's systolic peak within +-2 samples (+-40 ms)? That is sequence
labelling, the LSTM's home ground (``return_sequences=True``, softmax over
{no beat, beat} per time step), with a clinically meaningful output: beat
times give heart rate and its variability. Next-window forecasting was the
alternative; it rewards smooth extrapolation more than rhythm, and its error
is hard to interpret, so it was not chosen.

Sources: the three PPG recordings that ship inside heartpy 1.2.7 (MIT
licence, see data/README.md), annotated with ``ppg.detect_beats`` and used
only where the annotation is reliable, plus synthetic subjects from
``ppg.synthesize_ppg``. Train and validation hold different real recordings
(no overlap); the reserved test split is synthetic subjects only, from a seed
kept in solutions/: the real recordings are installed on every student's
machine, so they cannot be held out.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .checksums import load_verified
from .errors import DataError, MissingDataError
from .paths import data_file
from .ppg import detect_beats, reliable_mask, synthesize_ppg

SIGNAL_FS = 50.0
WINDOW = 200
BEAT_TOLERANCE = 2
PUBLIC_SEEDS = {"train": 805021, "val": 805022}
# Synthetic subjects per split: (subjects, seconds each, window stride in samples).
SYNTHETIC = {"train": (100, 60.0, 100), "val": (20, 60.0, WINDOW), "test": (30, 60.0, WINDOW)}
# Real recordings per split (never the test split) and their window stride.
REAL = {"train": (("data3", 50),), "val": (("data", WINDOW), ("data2", WINDOW)), "test": ()}
SOURCES = ("synthetic", "data", "data2", "data3")
FILE_NAMES = {"train": "signals_train.npz", "val": "signals_val.npz"}
RECORDINGS_FILE = "ppg_recordings.npz"

# The recordings inside the heartpy 1.2.7 wheel (sha256 from its RECORD file).
HEARTPY_FILES = {
    "data": ("data.csv", "b06b8049008b3d9391cd2b9a3b90510b3734426b8833a6de7b7b323b4bda7179",
             "PPG, 100 Hz, 25 s (heartpy example 0)"),
    "data2": ("data2.csv", "7d85f0d33b04395409e81d614b9bd82541208cc3edfbc5a49b5129ae3cb573b9",
              "PPG, ~117 Hz from its millisecond timer, 128 s (heartpy example 1)"),
    "data3": ("data3.csv", "16eedaa7c97c6ca873e7e424d27a84dcd043d4eca0e4f7611d2a37969192b7ea",
              "PPG, ~100.4 Hz from its time stamps, 11 min (heartpy example 2)"),
}


@dataclass(frozen=True)
class Recording:
    """A raw recording at its own rate, with beat annotations and where they are reliable."""

    name: str
    signal: np.ndarray  # float32 ADC counts
    fs: float
    peaks: np.ndarray  # int64 sample indices of systolic peaks
    reliable: np.ndarray  # bool per sample
    description: str

    @property
    def seconds(self) -> float:
        return self.signal.size / self.fs


def heartpy_data_dir() -> Path:
    """heartpy's bundled data folder, found without importing heartpy."""
    spec = importlib.util.find_spec("heartpy")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError("heartpy is not installed (pip install heartpy==1.2.7); "
                               "it is needed only to rebuild the signal data")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_heartpy_recording(name: str) -> tuple[np.ndarray, float]:
    """Signal and sampling rate of one heartpy recording, checked against the wheel's hash."""
    file_name, sha, _ = HEARTPY_FILES[name]
    path = heartpy_data_dir() / file_name
    if not path.is_file():
        raise MissingDataError(f"heartpy recording not found: {path}")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != sha:
        raise DataError(f"{path}: not the file shipped in heartpy 1.2.7 (sha256 mismatch)")
    rows = list(csv.reader(raw.decode("ascii").splitlines()))
    if name == "data":
        return np.array([float(r[0]) for r in rows]), 100.0
    values = np.array([float(r[1]) for r in rows[1:]])
    if name == "data2":
        timer_ms = np.array([float(r[0]) for r in rows[1:]])
        return values, 1000.0 * (timer_ms.size - 1) / (timer_ms[-1] - timer_ms[0])
    stamps = [dt.datetime.fromisoformat(r[0]) for r in rows[1:]]
    seconds = (stamps[-1] - stamps[0]).total_seconds()
    return values, (values.size - 1) / seconds


def build_recordings() -> dict[str, np.ndarray]:
    """Arrays of ``ppg_recordings.npz``: each recording with its annotation."""
    return {name: array.copy() for name, array in _annotated_recordings().items()}


@lru_cache(maxsize=1)
def _annotated_recordings() -> dict[str, np.ndarray]:
    """Read and annotate once per process (three splits are built from them)."""
    arrays: dict[str, np.ndarray] = {}
    for name in HEARTPY_FILES:
        values, fs = read_heartpy_recording(name)
        peaks = detect_beats(values, fs)
        arrays[f"{name}_signal"] = values.astype(np.float32)
        arrays[f"{name}_fs"] = np.array(fs, dtype=np.float64)
        arrays[f"{name}_peaks"] = peaks.astype(np.int64)
        arrays[f"{name}_reliable"] = reliable_mask(values, fs, peaks)
    return arrays


def load_recordings(path: str | os.PathLike | None = None, *, verify: bool = True) -> dict[str, Recording]:
    """The three real PPG recordings (from heartpy's wheel) with beat annotations, for demos."""
    file = path if path is not None else data_file(RECORDINGS_FILE)
    arrays = load_verified(file, "signals/recordings", verify=verify)
    out = {}
    for name, (_, _, description) in HEARTPY_FILES.items():
        try:
            out[name] = Recording(name, arrays[f"{name}_signal"], float(arrays[f"{name}_fs"]),
                                  arrays[f"{name}_peaks"], arrays[f"{name}_reliable"], description)
        except KeyError as err:
            raise DataError(f"{file}: missing array {err}") from None
    return out


def resample(x: np.ndarray, fs: float, peaks: np.ndarray, reliable: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """To ``SIGNAL_FS``: anti-alias, interpolate, round to ADC counts; move peaks and mask along."""
    from scipy import signal as sps

    sos = sps.butter(4, 0.4 * SIGNAL_FS, fs=fs, output="sos")
    smooth = sps.sosfiltfilt(sos, np.asarray(x, dtype=np.float64))
    n = int(np.floor((x.size - 1) / fs * SIGNAL_FS)) + 1
    t_new = np.arange(n) / SIGNAL_FS
    t_old = np.arange(x.size) / fs
    out = np.rint(np.interp(t_new, t_old, smooth))
    new_peaks = []
    for p in peaks:
        q = round(p / fs * SIGNAL_FS)
        lo, hi = max(q - 1, 0), min(q + 2, n)
        if lo < hi:
            new_peaks.append(lo + int(np.argmax(out[lo:hi])))
    index = np.minimum(np.rint(t_new * fs).astype(np.int64), x.size - 1)
    return out, np.unique(np.asarray(new_peaks, dtype=np.int64)), reliable[index]


def beat_labels(n: int, peaks: np.ndarray, tolerance: int = BEAT_TOLERANCE) -> np.ndarray:
    """Per-sample labels: 1 where a peak lies within +-``tolerance`` samples."""
    labels = np.zeros(n, dtype=np.uint8)
    for offset in range(-tolerance, tolerance + 1):
        idx = peaks + offset
        labels[idx[(idx >= 0) & (idx < n)]] = 1
    return labels


def _windows(x: np.ndarray, labels: np.ndarray, usable: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    starts = [s for s in range(0, x.size - WINDOW + 1, stride) if usable[s : s + WINDOW].all()]
    if not starts:
        return np.empty((0, WINDOW)), np.empty((0, WINDOW), dtype=np.uint8)
    return np.stack([x[s : s + WINDOW] for s in starts]), np.stack([labels[s : s + WINDOW] for s in starts])


def build_signal_split(split: str, seed: int) -> dict[str, np.ndarray]:
    """Windows of one split: synthetic subjects from ``seed`` plus this split's real recordings."""
    rng = np.random.default_rng(seed)
    subjects, seconds, stride = SYNTHETIC[split]
    xs, ys, source, subject = [], [], [], []
    for k in range(subjects):
        counts, peaks = synthesize_ppg(rng, seconds, SIGNAL_FS)
        wx, wy = _windows(counts, beat_labels(counts.size, peaks), np.ones(counts.size, bool), stride)
        xs.append(wx)
        ys.append(wy)
        source += [0] * len(wx)
        subject += [k] * len(wx)
    if REAL[split]:
        recordings = build_recordings()
        for name, real_stride in REAL[split]:
            values = recordings[f"{name}_signal"].astype(np.float64)
            fs = float(recordings[f"{name}_fs"])
            x50, p50, ok50 = resample(values, fs, recordings[f"{name}_peaks"], recordings[f"{name}_reliable"])
            wx, wy = _windows(x50, beat_labels(x50.size, p50), ok50, real_stride)
            xs.append(wx)
            ys.append(wy)
            source += [SOURCES.index(name)] * len(wx)
            subject += [-1] * len(wx)
    x = np.concatenate(xs).astype(np.float32)[..., None]
    y = np.concatenate(ys).astype(np.uint8)
    order = rng.permutation(len(x))
    return {"x": x[order], "y": y[order], "source": np.asarray(source, np.int8)[order],
            "subject": np.asarray(subject, np.int16)[order]}


def load_signals(
    split: str = "train",
    path: str | os.PathLike | None = None,
    *,
    verify: bool = True,
    return_source: bool = False,
) -> tuple[np.ndarray, ...]:
    """PPG windows for the LSTM practical.

    Returns ``x`` float32 (N, 200, 1): 4 s of PPG at 50 Hz in raw ADC counts
    (normalise inside the model), and ``y`` uint8 (N, 200): 1 where a systolic
    peak lies within +-2 samples, else 0. With ``return_source=True`` also an
    int8 (N,) array indexing ``SOURCES`` ("synthetic" or the real recording).
    ``split`` is "train" or "val"; "test" is reserved and needs ``path``.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', not {split!r}")
    if split == "test" and path is None:
        raise ValueError(
            "the signal test split is reserved for grading and not bundled; "
            "pass path= to the hidden file (hidden_signal_test.npz)"
        )
    file = path if path is not None else data_file(FILE_NAMES[split])
    arrays = load_verified(file, f"signals/{split}", verify=verify)
    try:
        x, y, source = arrays["x"], arrays["y"], arrays["source"]
    except KeyError as err:
        raise DataError(f"{file}: missing array {err} (expected 'x', 'y', 'source')") from None
    if x.ndim != 3 or y.shape != x.shape[:2] or source.shape != x.shape[:1]:
        raise DataError(f"{file}: x {x.shape}, y {y.shape} and source {source.shape} do not match")
    if y.size and y.max() > 1:
        raise DataError(f"{file}: labels outside {{0, 1}}")
    x, y = x.astype(np.float32), y.astype(np.uint8)
    return (x, y, source.astype(np.int8)) if return_source else (x, y)
