"""The bundled data sets load with the documented shapes, dtypes and content."""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from dlcourse.data import (
    BEAT_TOLERANCE,
    CARDIAC_CLASS_NAMES,
    CT_CLASS_NAMES,
    SIGNAL_FS,
    SOURCES,
    WINDOW,
    DataError,
    MissingDataError,
    data_dir,
    load_cardiac,
    load_ct_slices,
    load_recordings,
    load_signals,
)
from dlcourse.data.paths import REPO_ROOT

HIDDEN = {
    "cardiac": REPO_ROOT / "solutions/unet/hidden_cardiac_test.npz",
    "ct": REPO_ROOT / "solutions/inception/hidden_ct_test.npz",
    "ct_copy": REPO_ROOT / "solutions/residual/hidden_ct_test.npz",
    "signals": REPO_ROOT / "solutions/lstm/hidden_signal_test.npz",
}


def needs(path: Path):
    return pytest.mark.skipif(not path.is_file(), reason=f"hidden file {path.name} not here (student release)")


@pytest.mark.parametrize("split, count", [("train", 1000), ("val", 200)])
def test_cardiac_splits(split, count):
    images, masks = load_cardiac(split)
    assert images.shape == (count, 64, 64, 1) and images.dtype == np.float32
    assert masks.shape == (count, 64, 64) and masks.dtype == np.uint8
    assert set(np.unique(masks)) == {0, 1, 2, 3}
    # Raw scanner units, not normalised: 12-bit integers with a per-scan gain.
    assert images.max() > 500 and images.min() >= 0 and np.all(images == np.round(images))
    assert np.ptp([im.max() for im in images]) > 300
    fractions = np.bincount(masks.ravel(), minlength=4) / masks.size
    assert 0.75 < fractions[0] < 0.92 and all(0.02 < f < 0.1 for f in fractions[1:])
    # Every slice has a left ventricle; apical slices (roughly 1 in 8) have no right ventricle.
    assert all((m == 1).any() or (m == 2).any() for m in masks)
    without_rv = np.mean([not (m == 3).any() for m in masks])
    assert 0.05 < without_rv < 0.25
    # Bright blood, dark myocardium, in every image's own scale.
    ratios = [im[..., 0][m == 1].mean() / im[..., 0][m == 2].mean()
              for im, m in zip(images, masks, strict=True) if (m == 1).any() and (m == 2).any()]
    assert np.median(ratios) > 1.8
    # Position varies: the heart is not always in the same place.
    centres = np.array([np.argwhere(m == 1).mean(axis=0) for m in masks if (m == 1).any()])
    assert centres.std(axis=0).min() > 2.0


def test_cardiac_class_names():
    assert CARDIAC_CLASS_NAMES == ("background", "left ventricle", "myocardium", "right ventricle")


def test_reserved_splits_need_a_path():
    for loader in (load_cardiac, load_ct_slices, load_signals):
        with pytest.raises(ValueError, match="reserved"):
            loader("test")
        with pytest.raises(ValueError, match="split"):
            loader("training")


@needs(HIDDEN["cardiac"])
def test_cardiac_hidden_test_split():
    images, masks = load_cardiac("test", path=HIDDEN["cardiac"])
    train_images, _ = load_cardiac("train")
    assert images.shape == (300, 64, 64, 1) and masks.shape == (300, 64, 64)
    assert set(np.unique(masks)) == {0, 1, 2, 3}
    # Not a copy of public data.
    assert not any(np.array_equal(images[0], t) for t in train_images)


@pytest.mark.parametrize("split, per_class", [("train", 450), ("val", 100)])
def test_ct_splits(split, per_class):
    images, labels = load_ct_slices(split)
    assert images.shape == (4 * per_class, 64, 64, 1) and images.dtype == np.float32
    assert labels.shape == (4 * per_class,) and labels.dtype == np.int64
    assert np.array_equal(np.bincount(labels), [per_class] * 4)
    assert len(CT_CLASS_NAMES) == 4 and CT_CLASS_NAMES[0] == "none"
    # Hounsfield units: air at about -1000, bone well above soft tissue.
    assert images.min() == -1024 and images.max() > 400
    assert np.all(images == np.round(images))
    lungs = images[labels == CT_CLASS_NAMES.index("lungs")]
    others = images[labels != CT_CLASS_NAMES.index("lungs")]
    inside = lambda a: ((a > -950) & (a < -600)).mean()  # noqa: E731  lung parenchyma
    assert inside(lungs) > 2 * inside(others)
    # Shuffled: classes are not in blocks.
    assert np.mean(labels[1:] != labels[:-1]) > 0.5


@needs(HIDDEN["ct"])
def test_ct_hidden_test_split_is_identical_for_both_assignments():
    images, labels = load_ct_slices("test", path=HIDDEN["ct"])
    assert images.shape == (400, 64, 64, 1)
    assert np.array_equal(np.bincount(labels), [100] * 4)
    assert HIDDEN["ct"].read_bytes() == HIDDEN["ct_copy"].read_bytes()


@pytest.mark.parametrize("split", ["train", "val"])
def test_signal_splits(split):
    x, y, source = load_signals(split, return_source=True)
    assert x.ndim == 3 and x.shape[1:] == (WINDOW, 1) and x.dtype == np.float32
    assert y.shape == x.shape[:2] and y.dtype == np.uint8
    assert set(np.unique(y)) == {0, 1}
    assert 0.08 < y.mean() < 0.2
    # Both synthetic subjects and real heartpy recordings, never mixed across splits.
    real = {SOURCES[s] for s in np.unique(source) if s > 0}
    assert (source == 0).any()
    assert real == ({"data3"} if split == "train" else {"data", "data2"})
    # Raw 10-bit ADC counts.
    assert x.min() >= 0 and x.max() <= 1023
    # Beat runs are 2 * tolerance + 1 samples long where they do not touch the window edge.
    run = 2 * BEAT_TOLERANCE + 1
    row = y[np.argmax(y[:, run:-run].sum(axis=1) > 0)]
    inner = np.diff(np.concatenate([[0], row, [0]]).astype(int))
    lengths = np.flatnonzero(inner == -1) - np.flatnonzero(inner == 1)
    assert lengths.max() <= run


@needs(HIDDEN["signals"])
def test_signal_hidden_split_is_synthetic_only():
    x, _y, source = load_signals("test", path=HIDDEN["signals"], return_source=True)
    assert x.shape[1:] == (WINDOW, 1) and len(x) >= 300
    assert np.all(source == 0)


def test_recordings():
    recordings = load_recordings()
    assert set(recordings) == {"data", "data2", "data3"}
    assert recordings["data"].fs == 100.0
    assert recordings["data2"].fs == pytest.approx(117.0, abs=0.1)
    assert recordings["data3"].fs == pytest.approx(100.4, abs=0.1)
    for rec in recordings.values():
        assert rec.signal.dtype == np.float32 and rec.reliable.shape == rec.signal.shape
        assert np.all(np.diff(rec.peaks) > 0) and rec.peaks.max() < rec.signal.size
        ibi = np.diff(rec.peaks) / rec.fs
        reliable = rec.reliable[rec.peaks[1:]] & rec.reliable[rec.peaks[:-1]]
        assert 40 < 60 / np.median(ibi[reliable]) < 140  # heart rate in bpm
    assert recordings["data3"].seconds > 600
    assert 0.5 < recordings["data3"].reliable.mean() < 0.95


def test_beat_annotations_agree_with_heartpy():
    """Our annotation of the real recordings is confirmed by heartpy's own detector."""
    hp = pytest.importorskip("heartpy")
    for rec in load_recordings().values():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            working, _ = hp.process(rec.signal.astype(float), rec.fs)
        theirs = np.asarray(working["peaklist"])[np.asarray(working["binary_peaklist"]) == 1]
        ours = rec.peaks[rec.reliable[rec.peaks]]
        theirs = theirs[rec.reliable[theirs]]
        tolerance = 0.05 * rec.fs
        found = np.mean([np.abs(theirs - p).min() <= tolerance for p in ours])
        confirmed = np.mean([np.abs(ours - p).min() <= tolerance for p in theirs])
        assert found >= 0.95 and confirmed >= 0.95, (rec.name, found, confirmed)


def test_signal_rate_constant():
    assert SIGNAL_FS == 50.0 and WINDOW == 200


def test_data_dir_override(tmp_path, monkeypatch):
    shutil.copy(data_dir() / "cardiac_val.npz", tmp_path / "cardiac_val.npz")
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    images, _ = load_cardiac("val")
    assert images.shape[0] == 200
    with pytest.raises(MissingDataError, match=re.escape(str(tmp_path / "cardiac_train.npz"))):
        load_cardiac("train")


def test_missing_data_dir_names_the_path(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("DLCOURSE_DATA", str(missing))
    with pytest.raises(MissingDataError, match=re.escape(str(missing))) as info:
        load_ct_slices("train")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, DataError)


def test_hidden_file_given_for_the_wrong_split_is_rejected():
    with pytest.raises(DataError, match="checksum mismatch"):
        load_cardiac("test", path=data_dir() / "cardiac_val.npz")
