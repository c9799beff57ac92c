"""Loaders for public data sets the user already has on disk (nothing is downloaded).

ACDC (Automated Cardiac Diagnosis Challenge, Bernard et al., IEEE TMI 2018)
cine MR: the same task as the bundled cardiac set, so a model trained in the
practical can be tried on real scans. Its labels (1 RV, 2 myocardium, 3 LV)
are remapped to the course order (1 LV, 2 myocardium, 3 RV) and slices are
resampled to the course's pixel size and cropped to 64 x 64.

OrganAMNIST (MedMNIST v2, Yang et al., Scientific Data 2023): 11-class organ
classification on axial CT crops, the real counterpart of the CT-slice set.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import DataError, MissingDataError

ACDC_TO_COURSE = np.array([0, 3, 2, 1], dtype=np.uint8)  # ACDC 1 RV, 2 MYO, 3 LV -> course
ACDC_SPACING_MM = 2.2  # middle of the bundled set's 1.8-2.8 mm
ORGANAMNIST_CLASS_NAMES: tuple[str, ...] = (
    "bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
    "liver", "lung-left", "lung-right", "pancreas", "spleen",
)
_FRAME = re.compile(r"^(patient\d{3})_frame(\d{2})\.nii(\.gz)?$")


def _acdc_patients(root: Path) -> list[Path]:
    """Patient folders under root, root/training, root/testing or root/database/*."""
    found: list[Path] = []
    for base in (root, root / "training", root / "testing", root / "database" / "training",
                 root / "database" / "testing"):
        if base.is_dir():
            found += [p for p in base.iterdir() if p.is_dir() and re.fullmatch(r"patient\d{3}", p.name)]
    return sorted(set(found), key=lambda p: p.name)


def _info_frames(folder: Path) -> dict[str, int]:
    """ED/ES frame numbers from Info.cfg (``ED: 1``), if present."""
    info = folder / "Info.cfg"
    frames: dict[str, int] = {}
    if info.is_file():
        for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("ED", "ES") and value.strip().isdigit():
                frames[key.strip()] = int(value.strip())
    return frames


def _fit(image: np.ndarray, size: int, centre: tuple[float, float]) -> np.ndarray:
    """Crop (or zero-pad) to size x size around ``centre``."""
    out = np.zeros((size, size), dtype=image.dtype)
    top = round(centre[0]) - size // 2
    left = round(centre[1]) - size // 2
    src_y = slice(max(top, 0), min(top + size, image.shape[0]))
    src_x = slice(max(left, 0), min(left + size, image.shape[1]))
    dst_y = slice(src_y.start - top, src_y.stop - top)
    dst_x = slice(src_x.start - left, src_x.stop - left)
    out[dst_y, dst_x] = image[src_y, src_x]
    return out


def load_acdc(
    root: str | os.PathLike,
    *,
    patients: Iterable[str] | None = None,
    phases: tuple[str, ...] = ("ED", "ES"),
    size: int = 64,
    spacing_mm: float = ACDC_SPACING_MM,
    include_empty: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """2D slices of ACDC in the course's format: images float32 (N, size, size, 1), masks uint8.

    ``root`` is the folder holding ``patientXXX/`` (or its ``training``/``testing``
    parent); each patient has ``patientXXX_frameYY.nii.gz`` and
    ``patientXXX_frameYY_gt.nii.gz`` (+ ``Info.cfg`` naming the ED and ES frames;
    without it every annotated frame is used). Slices are resampled in-plane to
    ``spacing_mm`` (bilinear images, nearest labels) and cropped around the
    heart of their volume. Slices without any label are dropped unless
    ``include_empty``.
    """
    import nibabel as nib
    from scipy import ndimage

    root = Path(root).expanduser()
    if not root.is_dir():
        raise MissingDataError(
            f"ACDC folder not found: {root} (expected {root}/patient001/patient001_frame01.nii.gz "
            "and _gt.nii.gz files; register and download ACDC yourself, nothing is fetched)"
        )
    folders = _acdc_patients(root)
    if patients is not None:
        wanted = set(patients)
        folders = [f for f in folders if f.name in wanted]
    if not folders:
        raise MissingDataError(f"no ACDC patient folders (patientXXX/) under {root}")

    images, masks = [], []
    for folder in folders:
        frames = _info_frames(folder)
        wanted_frames = {frames[p] for p in phases if p in frames} if frames else None
        for path in sorted(folder.iterdir()):
            match = _FRAME.match(path.name)
            if not match or (wanted_frames is not None and int(match.group(2)) not in wanted_frames):
                continue
            gt_path = path.with_name(path.name.replace(".nii", "_gt.nii"))
            if not gt_path.is_file():
                continue
            try:
                volume_nii, gt_nii = nib.load(path), nib.load(gt_path)
                volume = np.asarray(volume_nii.dataobj, dtype=np.float32)
                gt = np.asarray(gt_nii.dataobj).astype(np.int64)
            except Exception as err:  # nibabel raises many types for damaged files
                raise DataError(f"{path}: cannot read NIfTI pair ({err})") from err
            if volume.shape != gt.shape or volume.ndim != 3:
                raise DataError(f"{path}: image {volume.shape} and labels {gt.shape} differ or are not 3D")
            if gt.min() < 0 or gt.max() > 3:
                raise DataError(f"{gt_path}: labels outside ACDC's 0..3")
            zoom = np.asarray(volume_nii.header.get_zooms()[:2], dtype=float) / spacing_mm
            labels = ACDC_TO_COURSE[gt]
            centre = None
            if labels.any():
                rows, cols = np.nonzero(labels.any(axis=2))
                centre = (rows.mean() * zoom[0], cols.mean() * zoom[1])
            for z in range(volume.shape[2]):
                if not include_empty and not labels[..., z].any():
                    continue
                img = ndimage.zoom(volume[..., z], zoom, order=1)
                lab = ndimage.zoom(labels[..., z], zoom, order=0)
                c = centre if centre is not None else (img.shape[0] / 2, img.shape[1] / 2)
                images.append(_fit(img, size, c))
                masks.append(_fit(lab, size, c))
    if not images:
        raise DataError(f"no annotated ACDC slices found under {root} for phases {phases}")
    return np.stack(images).astype(np.float32)[..., None], np.stack(masks).astype(np.uint8)


def load_organamnist(path: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """OrganAMNIST from its ``organamnist.npz`` (any MedMNIST size): images float32 (N, H, W, 1), labels int64.

    ``path`` is the .npz file or the folder holding ``organamnist.npz``; ``split``
    is "train", "val" or "test". Pixel values stay 0..255 as distributed.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "organamnist.npz"
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', not {split!r}")
    if not path.is_file():
        raise MissingDataError(
            f"OrganAMNIST file not found: {path} (expected organamnist.npz with train_images, "
            "train_labels, val_..., test_... from medmnist.com; nothing is downloaded)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = np.asarray(archive[f"{split}_images"])
            labels = np.asarray(archive[f"{split}_labels"])
    except KeyError:
        raise DataError(f"{path}: no {split}_images/{split}_labels arrays (not a MedMNIST file?)") from None
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: corrupt or truncated .npz file ({err})") from err
    labels = labels.reshape(-1)
    if images.ndim != 3 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{path}: {split}_images {images.shape} and {split}_labels do not match")
    if labels.size and (labels.min() < 0 or labels.max() >= len(ORGANAMNIST_CLASS_NAMES)):
        raise DataError(f"{path}: labels outside 0..{len(ORGANAMNIST_CLASS_NAMES) - 1}")
    return images.astype(np.float32)[..., None], labels.astype(np.int64)
