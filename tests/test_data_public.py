"""ACDC and OrganAMNIST loaders on tiny fixtures written in the real file formats."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from dlcourse.data import (
    ORGANAMNIST_CLASS_NAMES,
    DataError,
    MissingDataError,
    load_acdc,
    load_organamnist,
)

nib = pytest.importorskip("nibabel")

SPACING = 1.5  # mm, like ACDC's in-plane resolution


def _acdc_volume(shape=(48, 40, 3)) -> tuple[np.ndarray, np.ndarray]:
    """A blob heart: LV disc, myocardial ring, RV crescent (ACDC labels: 1 RV, 2 MYO, 3 LV)."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    r = np.hypot(rows - 24, cols - 22)
    rv = np.hypot(rows - 24, cols - 10)
    gt = np.zeros(shape, dtype=np.uint8)
    image = np.full(shape, 50, dtype=np.int16)
    for z in range(shape[2] - 1):  # the last slice has no labels (above the base)
        gt[..., z][(rv < 9) & (r >= 10)] = 1
        gt[..., z][(r >= 6) & (r < 10)] = 2
        gt[..., z][r < 6] = 3
    image[gt == 3] = 400
    image[gt == 1] = 380
    image[gt == 2] = 120
    return image, gt


def _write_patient(folder: Path, frames=(1, 4), info=True) -> None:
    folder.mkdir(parents=True)
    name = folder.name
    affine = np.diag([SPACING, SPACING, 10.0, 1.0])
    image, gt = _acdc_volume()
    for frame in frames:
        nib.save(nib.Nifti1Image(image, affine), folder / f"{name}_frame{frame:02d}.nii.gz")
        nib.save(nib.Nifti1Image(gt, affine), folder / f"{name}_frame{frame:02d}_gt.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((48, 40, 3, 5), np.int16), affine), folder / f"{name}_4d.nii.gz")
    if info:
        (folder / "Info.cfg").write_text(f"ED: {frames[0]}\nES: {frames[1]}\nGroup: NOR\nHeight: 180.0\n")


@pytest.fixture
def acdc_root(tmp_path: Path) -> Path:
    root = tmp_path / "ACDC" / "database" / "training"
    _write_patient(root / "patient001")
    _write_patient(root / "patient002", frames=(1, 7))
    return tmp_path / "ACDC" / "database"


def test_acdc_slices_in_course_format(acdc_root):
    images, masks = load_acdc(acdc_root)
    # 2 patients x 2 phases x 2 labelled slices (the unlabelled slice is dropped).
    assert images.shape == (8, 64, 64, 1) and images.dtype == np.float32
    assert masks.shape == (8, 64, 64) and masks.dtype == np.uint8
    assert set(np.unique(masks)) == {0, 1, 2, 3}
    # Remapped: the bright central disc (ACDC 3, LV) is course label 1, the ring 2, the crescent 3.
    assert images[0, ..., 0][masks[0] == 1].mean() == pytest.approx(400, abs=30)
    assert images[0, ..., 0][masks[0] == 2].mean() == pytest.approx(120, abs=40)
    assert images[0, ..., 0][masks[0] == 3].mean() == pytest.approx(380, abs=40)
    # Resampled from 1.5 mm to 2.2 mm: areas shrink by (1.5 / 2.2) ** 2.
    _, gt = _acdc_volume()
    expected = (gt[..., 0] == 3).sum() * (SPACING / 2.2) ** 2
    assert (masks[0] == 1).sum() == pytest.approx(expected, rel=0.15)
    # Cropped around the heart: the LV sits near the centre.
    centre = np.argwhere(masks[0] == 1).mean(axis=0)
    assert np.all(np.abs(centre - 32) < 8)


def test_acdc_options(acdc_root):
    images, _ = load_acdc(acdc_root, patients=["patient002"], phases=("ED",), include_empty=True, size=32)
    assert images.shape == (3, 32, 32, 1)
    native, _ = load_acdc(acdc_root / "training", spacing_mm=SPACING)
    assert native.shape[0] == 8


def test_acdc_without_info_uses_every_annotated_frame(tmp_path):
    _write_patient(tmp_path / "patient010", frames=(1, 3), info=False)
    images, _masks = load_acdc(tmp_path)
    assert images.shape[0] == 4


def test_acdc_missing_folder_names_the_expected_layout(tmp_path):
    missing = tmp_path / "acdc"
    with pytest.raises(MissingDataError, match=re.escape(str(missing))) as info:
        load_acdc(missing)
    assert "patient001_frame01.nii.gz" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError, match="patientXXX"):
        load_acdc(tmp_path / "empty")


def test_acdc_damaged_nifti(tmp_path):
    _write_patient(tmp_path / "patient001")
    (tmp_path / "patient001" / "patient001_frame01.nii.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(DataError, match="patient001_frame01"):
        load_acdc(tmp_path)


def _organamnist(path: Path, labels_max: int = 10) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("val", 4), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, labels_max + 1, (n, 1)).astype(np.uint8)
    np.savez(path, **arrays)
    return path


def test_organamnist_splits(tmp_path):
    path = _organamnist(tmp_path / "organamnist.npz")
    for split, n in (("train", 12), ("val", 4), ("test", 6)):
        images, labels = load_organamnist(path, split)
        assert images.shape == (n, 28, 28, 1) and images.dtype == np.float32
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert images.max() <= 255 and labels.max() < len(ORGANAMNIST_CLASS_NAMES)
    by_folder, _ = load_organamnist(tmp_path, "val")
    assert by_folder.shape[0] == 4
    assert ORGANAMNIST_CLASS_NAMES[6] == "liver" and len(ORGANAMNIST_CLASS_NAMES) == 11


def test_organamnist_errors(tmp_path):
    with pytest.raises(MissingDataError, match=re.escape(str(tmp_path / "organamnist.npz"))):
        load_organamnist(tmp_path)
    np.savez(tmp_path / "wrong.npz", images=np.zeros((2, 28, 28)))
    with pytest.raises(DataError, match="train_images"):
        load_organamnist(tmp_path / "wrong.npz")
    bad = _organamnist(tmp_path / "bad.npz", labels_max=40)
    with pytest.raises(DataError, match="labels outside"):
        load_organamnist(bad)
    with pytest.raises(ValueError, match="split"):
        load_organamnist(bad, "validation")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataError, match=r"broken\.npz"):
        load_organamnist(tmp_path / "broken.npz")
