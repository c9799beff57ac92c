"""Synthetic axial CT slices: which organ does this slice show?

Mirrors the lecture's "organ localization in CT" example (one prediction per
slice) for the Inception and ResNet practicals. Each 64 x 64 slice is a whole
body cross-section in Hounsfield units at one of four levels: the thorax
(lungs), the upper abdomen (liver), the mid abdomen (kidneys) or a level with
none of them (lower abdomen and pelvis: bowel, bladder, iliac bones). Patients
differ in size, build (fat), position on the table, rotation, arms up or down,
contrast phase (none or portal-venous) and noise, so the organ has to be
recognised by shape and texture wherever it lies: pixel-wise linear models
fall clearly behind small CNNs (see benchmarks/bench_data_ct.py).

Values are raw Hounsfield units (air -1000, fat ~-100, water 0, soft tissue
40-60, enhanced organs up to ~250, bone up to ~1000), stored as int16 like a
CT scanner does; windowing/scaling belongs inside the model.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ._raster import Angles, block_mean, ellipse, fine_axis, rotate, stamp_disks
from .checksums import load_verified
from .errors import DataError
from .paths import data_file

CT_CLASS_NAMES: tuple[str, ...] = ("none", "lungs", "liver", "kidneys")
IMAGE_SIZE = 64
SUPERSAMPLING = 2
# Public splits: seed and slices per class. The test split's seed lives in solutions/.
PUBLIC_SPLITS: dict[str, tuple[int, int]] = {"train": (805011, 450), "val": (805012, 100)}
TEST_PER_CLASS = 100
FILE_NAMES = {"train": "ct_train.npz", "val": "ct_val.npz"}


class _Slice:
    """One slice being painted: fine grid, body frame and HU canvas."""

    def __init__(self, rng: np.random.Generator, size: int, factor: int) -> None:
        self.rng = rng
        self.spacing = rng.uniform(4.2, 7.5)
        axis = fine_axis(size, factor, self.spacing)
        self.yy, self.xx = np.meshgrid(axis, axis, indexing="ij")
        # Patient pose: lateral and vertical shift, small roll, body size and build.
        self.cx = rng.uniform(-50.0, 50.0)
        self.cy = rng.uniform(-40.0, 25.0)
        self.roll = rng.uniform(-0.25, 0.25)
        self.a = rng.uniform(125.0, 195.0)  # half width
        self.b = self.a * rng.uniform(0.6, 0.82)  # half depth (anterior-posterior)
        self.x, self.y = rotate(self.xx, self.yy, self.cx, self.cy, self.roll)
        self.hu = np.full(self.xx.shape, -1000.0, dtype=np.float32)

    def disks(self, where, centres, radii, values) -> None:
        """Discs given in body coordinates (x to the patient's left, y posterior)."""
        c, s = math.cos(self.roll), math.sin(self.roll)
        pts = [(self.cx + px * c - py * s, self.cy + px * s + py * c) for px, py in centres]
        stamp_disks(self.hu, where, self.xx, self.yy, pts, radii, values)

    def blob(self, cx: float, cy: float, a: float, b: float, tilt: float = 0.0, wobble: float = 0.1) -> np.ndarray:
        """An irregular ellipse in body coordinates (mask), computed inside its bounding box only."""
        c, s = math.cos(self.roll), math.sin(self.roll)
        px, py = self.cx + cx * c - cy * s, self.cy + cx * s + cy * c
        reach = 1.45 * max(a, b)  # bumps are clipped at -0.5, so d < 2 inside
        axis = self.xx[0]
        rows = slice(int(np.searchsorted(axis, py - reach)), int(np.searchsorted(axis, py + reach)))
        cols = slice(int(np.searchsorted(axis, px - reach)), int(np.searchsorted(axis, px + reach)))
        u, v = rotate(self.x[rows, cols], self.y[rows, cols], cx, cy, tilt)
        d = ellipse(u, v, 0.0, 0.0, a, b)
        bumps = Angles(u * np.float32(1.0 / a), v * np.float32(1.0 / b)).smooth(self.rng, 3, wobble)
        mask = np.zeros(self.xx.shape, dtype=bool)
        mask[rows, cols] = d * (np.float32(1.0) + np.maximum(bumps, np.float32(-0.5))) < 1.0
        return mask


def _paint_body(sl: _Slice, contrast: float) -> dict[str, np.ndarray]:
    """Table, skin/fat, muscle wall, spine, aorta: what every level shares."""
    rng, a, b = sl.rng, sl.a, sl.b
    # Scanner table: a curved plate under the patient.
    table_y = b + rng.uniform(5.0, 15.0)
    plate = (sl.y > table_y) & (sl.y < table_y + 9.0) & (np.abs(sl.x) < a + 40.0)
    sl.hu[plate] = rng.uniform(-300.0, 100.0)
    body = sl.blob(0.0, 0.0, a, b, wobble=0.04)
    fat_mm = rng.uniform(8.0, 45.0)
    wall = sl.blob(0.0, 0.0, a - fat_mm, b - 0.7 * fat_mm, wobble=0.05)
    inner_a, inner_b = a - fat_mm - rng.uniform(8.0, 16.0), b - 0.7 * fat_mm - rng.uniform(8.0, 14.0)
    cavity = sl.blob(0.0, -0.05 * b, inner_a, inner_b, wobble=0.05)
    sl.hu[body] = rng.uniform(-120.0, -80.0)
    sl.hu[wall] = rng.uniform(35.0, 60.0)
    sl.hu[cavity] = rng.uniform(-110.0, -70.0)  # visceral fat, filled by the organs below
    # Spine: vertebral body, canal, paraspinal muscles, at the back of the cavity.
    spine_y = inner_b * rng.uniform(0.55, 0.75)
    muscles = [(side * 28.0, spine_y + 30.0) for side in (-1.0, 1.0)]
    sl.disks(body, muscles, [rng.uniform(20.0, 28.0)] * 2, [rng.uniform(40.0, 60.0)] * 2)
    radius = rng.uniform(15.0, 21.0)
    sl.disks(body, [(0.0, spine_y)] * 2 + [(0.0, spine_y + radius + 9.0)] * 2,
             [radius, radius - 3.0, 9.0, 6.0],
             [rng.uniform(500.0, 900.0), rng.uniform(150.0, 300.0), rng.uniform(400.0, 800.0), 20.0])
    aorta = (rng.uniform(5.0, 20.0), spine_y - radius - rng.uniform(10.0, 16.0))
    sl.disks(cavity, [aorta], [rng.uniform(9.0, 14.0)], [45.0 + 180.0 * contrast])
    return {"body": body, "cavity": cavity, "spine_y": np.float32(spine_y),
            "inner": np.array([inner_a, inner_b], dtype=np.float32)}


def _bowel(sl: _Slice, where: np.ndarray, count: int, region: tuple[float, float, float, float], contrast: float) -> None:
    """Bowel: loops with gas, fluid, faeces or oral contrast, colon segments, soft-tissue clusters.

    Gas pockets look like lung and fluid-filled clusters like liver to a model that
    only weighs pixel positions; a CNN has to tell them apart by shape and texture.
    """
    rng = sl.rng
    x0, x1, y0, y1 = region
    if rng.random() < 0.6:  # a cluster of collapsed/fluid-filled loops: a large soft-tissue region
        cluster = sl.blob(rng.uniform(x0, x1), rng.uniform(y0, y1), rng.uniform(30.0, 70.0),
                          rng.uniform(25.0, 55.0), rng.uniform(0, np.pi), 0.15) & where
        sl.hu[cluster] = rng.uniform(20.0, 60.0) + 40.0 * contrast
    oral = rng.random() < 0.3
    centres = np.column_stack([rng.uniform(x0, x1, count), rng.uniform(y0, y1, count)])
    radii = rng.uniform(7.0, 18.0, count)
    sl.disks(where, centres, radii, np.full(count, 40.0 + 40.0 * contrast))
    kinds = rng.choice(4, size=count, p=[0.3, 0.35, 0.2, 0.15])
    contents = np.select(
        [kinds == 0, kinds == 1, kinds == 2],
        [np.full(count, -1000.0), rng.uniform(0.0, 30.0, count), rng.uniform(-400.0, 50.0, count)],
        rng.uniform(150.0, 350.0, count) if oral else rng.uniform(0.0, 30.0, count),
    )
    sl.disks(where, centres, radii - rng.uniform(1.5, 3.5, count), contents)
    for _ in range(int(rng.integers(0, 3))):  # colon segments, often gas-distended
        cx, cy, rad = rng.uniform(x0, x1), rng.uniform(y0, y1), rng.uniform(14.0, 30.0)
        sl.disks(where, [(cx, cy)] * 2, [rad, rad - 3.0],
                 [40.0 + 30.0 * contrast, -1000.0 if rng.random() < 0.6 else rng.uniform(-300.0, 40.0)])


def _ribs(sl: _Slice, inner: np.ndarray, count: int, arc: float) -> None:
    rng = sl.rng
    angles = rng.uniform(-arc, arc, count) + np.where(rng.random(count) < 0.5, 0.0, np.pi)
    pts = [(1.02 * inner[0] * math.sin(t), -1.02 * inner[1] * math.cos(t)) for t in angles]
    sl.disks(None, pts, rng.uniform(4.0, 7.0, count), rng.uniform(300.0, 800.0, count))


def _thorax(sl: _Slice, parts: dict, contrast: float) -> None:
    rng, cavity, (ia, ib) = sl.rng, parts["cavity"], parts["inner"]
    lung_hu = rng.uniform(-900.0, -760.0)
    for side in (-1.0, 1.0):
        lung = sl.blob(side * ia * rng.uniform(0.42, 0.52), rng.uniform(-0.1, 0.05) * ib,
                       ia * rng.uniform(0.4, 0.5), ib * rng.uniform(0.75, 0.9), rng.uniform(-0.2, 0.2), 0.1)
        lung &= cavity
        sl.hu[lung] = lung_hu + 60.0 * np.clip(sl.y[lung] / ib, -1.0, 1.0)  # dependent density
        count = int(rng.integers(6, 16))
        pts = np.column_stack([side * rng.uniform(0.15, 0.9, count) * ia, rng.uniform(-0.8, 0.8, count) * ib])
        sl.disks(lung, pts, rng.uniform(2.0, 5.0, count), rng.uniform(-50.0, 80.0, count))
    # Heart and great vessels in the mediastinum, sternum in front, ribs around.
    heart = sl.blob(rng.uniform(0.0, 0.25) * ia, -rng.uniform(0.05, 0.3) * ib, ia * rng.uniform(0.25, 0.35),
                    ib * rng.uniform(0.4, 0.55), rng.uniform(-0.6, 0.2), 0.08) & cavity
    sl.hu[heart] = 45.0 + 170.0 * contrast * rng.uniform(0.7, 1.1)
    sl.disks(None, [(0.0, -ib - 6.0)], [rng.uniform(7.0, 11.0)], [rng.uniform(300.0, 600.0)])
    _ribs(sl, parts["inner"], int(rng.integers(6, 12)), 1.2)


def _liver_level(sl: _Slice, parts: dict, contrast: float) -> None:
    rng, cavity, (ia, ib) = sl.rng, parts["cavity"], parts["inner"]
    _bowel(sl, cavity, int(rng.integers(0, 5)), (-0.2 * ia, 0.8 * ia, -0.8 * ib, 0.0), contrast)
    liver = sl.blob(-ia * rng.uniform(0.25, 0.55), -ib * rng.uniform(-0.1, 0.25), ia * rng.uniform(0.3, 0.65),
                    ib * rng.uniform(0.45, 0.85), rng.uniform(-0.5, 0.5), 0.15) & cavity
    sl.hu[liver] = 55.0 + 60.0 * contrast + rng.uniform(-10.0, 10.0)
    count = int(rng.integers(3, 9))
    pts = np.column_stack([-rng.uniform(0.1, 0.7, count) * ia, rng.uniform(-0.5, 0.4, count) * ib])
    sl.disks(liver, pts, rng.uniform(3.0, 7.0, count), 40.0 + rng.uniform(40.0, 140.0, count) * contrast)
    if rng.random() < 0.3:  # gallbladder
        sl.disks(liver, [(-0.2 * ia, -0.3 * ib)], [rng.uniform(10.0, 16.0)], [rng.uniform(0.0, 20.0)])
    # Stomach on the left, supine: gas floats on top of the fluid.
    sx, sy, sr = ia * rng.uniform(0.2, 0.5), -ib * rng.uniform(0.1, 0.45), rng.uniform(25.0, 45.0)
    stomach = (((sl.x - sx) ** 2 + (sl.y - sy) ** 2) < sr * sr) & cavity
    sl.hu[stomach] = 40.0 + 30.0 * contrast
    inner = (((sl.x - sx) ** 2 + (sl.y - sy) ** 2) < (sr - 4.0) ** 2) & cavity
    sl.hu[inner] = rng.uniform(0.0, 30.0)
    sl.hu[inner & (sl.y < sy - rng.uniform(-0.3, 0.8) * sr)] = -1000.0
    # Spleen at the back on the left.
    spleen = sl.blob(ia * rng.uniform(0.55, 0.75), ib * rng.uniform(0.1, 0.4), ia * rng.uniform(0.15, 0.25),
                     ib * rng.uniform(0.25, 0.4), rng.uniform(-0.8, 0.0), 0.1) & cavity
    sl.hu[spleen] = 50.0 + 70.0 * contrast + rng.uniform(-10.0, 10.0)
    _ribs(sl, parts["inner"], int(rng.integers(3, 8)), 1.5)


def _kidney(sl: _Slice, side: float, spine_y: float, contrast: float) -> None:
    rng = sl.rng
    cx, cy = side * rng.uniform(45.0, 65.0), spine_y - rng.uniform(-10.0, 15.0)
    a, b = rng.uniform(22.0, 32.0), rng.uniform(15.0, 22.0)
    tilt = side * rng.uniform(0.3, 0.9)
    outer = sl.blob(cx, cy, a, b, tilt, 0.06)
    sl.hu[outer] = 35.0 + 150.0 * contrast + rng.uniform(-10.0, 10.0)
    medulla = sl.blob(cx, cy, 0.65 * a, 0.6 * b, tilt, 0.1)
    sl.hu[medulla] = 35.0 + rng.uniform(60.0, 120.0) * contrast
    sinus = sl.blob(cx - side * 0.45 * a, cy, 0.35 * a, 0.3 * b, tilt, 0.1)
    sl.hu[sinus & outer] = rng.uniform(-90.0, 10.0)


def _kidney_level(sl: _Slice, parts: dict, contrast: float) -> None:
    rng, cavity, (ia, ib) = sl.rng, parts["cavity"], parts["inner"]
    _bowel(sl, cavity, int(rng.integers(4, 12)), (-0.8 * ia, 0.8 * ia, -0.8 * ib, 0.2 * ib), contrast)
    sides = (-1.0, 1.0) if rng.random() < 0.8 else ((-1.0,) if rng.random() < 0.5 else (1.0,))
    for side in sides:
        _kidney(sl, side, float(parts["spine_y"]), contrast)
    psoas = [(side * 30.0, float(parts["spine_y"]) - 5.0) for side in (-1.0, 1.0)]
    sl.disks(cavity, psoas, rng.uniform(8.0, 15.0, 2), rng.uniform(40.0, 60.0, 2))


def _lower_level(sl: _Slice, parts: dict, contrast: float) -> None:
    rng, cavity, (ia, ib) = sl.rng, parts["cavity"], parts["inner"]
    _bowel(sl, cavity, int(rng.integers(6, 16)), (-0.85 * ia, 0.85 * ia, -0.85 * ib, 0.5 * ib), contrast)
    psoas = [(side * rng.uniform(30.0, 50.0), float(parts["spine_y"]) - 8.0) for side in (-1.0, 1.0)]
    sl.disks(cavity, psoas, rng.uniform(12.0, 20.0, 2), rng.uniform(40.0, 60.0, 2))
    if rng.random() < 0.6:  # pelvis: iliac wings and often the bladder
        for side in (-1.0, 1.0):
            wing = sl.blob(side * ia * rng.uniform(0.55, 0.75), ib * rng.uniform(0.2, 0.45), ia * 0.3,
                           rng.uniform(6.0, 10.0), side * rng.uniform(0.5, 1.0), 0.05)
            sl.hu[wing] = rng.uniform(300.0, 700.0)
        if rng.random() < 0.6:
            bladder = sl.blob(0.0, -ib * rng.uniform(0.3, 0.6), rng.uniform(25.0, 50.0), rng.uniform(20.0, 35.0),
                              0.0, 0.06) & cavity
            sl.hu[bladder] = rng.uniform(0.0, 20.0)


_LEVELS = (_lower_level, _thorax, _liver_level, _kidney_level)


def _arms(sl: _Slice) -> None:
    """Arms down beside the body (patients who cannot raise them)."""
    rng = sl.rng
    for side in (-1.0, 1.0):
        cx = side * (sl.a + rng.uniform(25.0, 55.0))
        cy = rng.uniform(-0.2, 0.3) * sl.b
        arm = sl.blob(cx, cy, rng.uniform(35.0, 50.0), rng.uniform(40.0, 55.0), 0.0, 0.05)
        sl.hu[arm] = rng.uniform(-110.0, -80.0)
        sl.hu[sl.blob(cx, cy, 28.0, 32.0, 0.0, 0.1)] = rng.uniform(40.0, 60.0)
        sl.disks(None, [(cx, cy)] * 2, [10.0, 6.0], [rng.uniform(600.0, 1000.0), rng.uniform(100.0, 300.0)])


def render_ct_slice(rng: np.random.Generator, label: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """One slice of class ``label`` in HU (int16, size x size)."""
    sl = _Slice(rng, size, SUPERSAMPLING)
    contrast = 0.0 if rng.random() < 0.25 else rng.uniform(0.7, 1.2)
    parts = _paint_body(sl, contrast)
    _LEVELS[label](sl, parts, contrast)
    if rng.random() < 0.15:
        _arms(sl)
    image = block_mean(sl.hu, SUPERSAMPLING)
    sigma = rng.uniform(8.0, 25.0)
    from scipy import ndimage  # imported here: loading the data must not pay for scipy

    noise = ndimage.gaussian_filter(rng.normal(0.0, 1.0, image.shape), 0.6, mode="wrap")
    image = image + noise * (sigma / noise.std())
    return np.clip(np.rint(image), -1024, 3071).astype(np.int16)


def generate_ct(per_class: int, seed: int, size: int = IMAGE_SIZE) -> dict[str, np.ndarray]:
    """``per_class`` slices of each class from ``seed``, shuffled: images int16 HU, labels uint8."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(len(CT_CLASS_NAMES), dtype=np.uint8), per_class))
    images = np.empty((labels.size, size, size), dtype=np.int16)
    for i, label in enumerate(labels):
        images[i] = render_ct_slice(rng, int(label), size)
    return {"images": images, "labels": labels}


def load_ct_slices(
    split: str = "train", path: str | os.PathLike | None = None, *, verify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """CT slices for the Inception and ResNet practicals.

    Returns images float32 (N, 64, 64, 1) in Hounsfield units (raw: scale inside
    the model) and labels int64 (N,) indexing ``CT_CLASS_NAMES``; classes are
    balanced. ``split`` is "train" or "val" (bundled); "test" is reserved and
    needs ``path`` to the hidden file.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', not {split!r}")
    if split == "test" and path is None:
        raise ValueError(
            "the CT test split is reserved for grading and not bundled; "
            "pass path= to the hidden file (hidden_ct_test.npz)"
        )
    file = path if path is not None else data_file(FILE_NAMES[split])
    arrays = load_verified(file, f"ct/{split}", verify=verify)
    try:
        images, labels = arrays["images"], arrays["labels"]
    except KeyError as err:
        raise DataError(f"{file}: missing array {err} (expected 'images' and 'labels')") from None
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise DataError(f"{file}: images {images.shape} and labels {labels.shape} do not match")
    if labels.size and labels.max() >= len(CT_CLASS_NAMES):
        raise DataError(f"{file}: label values outside 0..{len(CT_CLASS_NAMES) - 1}")
    return images.astype(np.float32)[..., None], labels.astype(np.int64)
