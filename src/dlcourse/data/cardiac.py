"""Synthetic short-axis cine MR slices with left/right ventricle and myocardium labels.

Why synthetic: ACDC, the public benchmark the lecture's U-Net example comes
from, may not be redistributed, and a 2-hour practical needs data that a small
U-Net learns on a laptop CPU. Each slice is drawn from a geometric model of a
short-axis bSSFP image (bright blood, dark myocardium, bright fat, dark lungs,
body wall, liver, descending aorta, spine) with the variation that makes real
data hard: heart size (base to apex, diastole and systole), shape, position,
rotation, wall thickness, papillary muscles and trabeculae, apical slices
without right ventricle, basal slices cutting the atria, contrast, smooth coil
bias field, partial-volume averaging (the scene is rendered 4x finer and
averaged), through-plane mixing at the apex, point-spread blur, respiratory
ghosts and Rician noise.
Images are stored as 12-bit scanner integers, labels follow ACDC's annotation
rules (papillary muscles belong to the cavity; the right-ventricular wall is
background) with the course's label order.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ._raster import Angles, block_mean, ellipse, fine_axis, stamp_disks
from .checksums import load_verified
from .errors import DataError
from .paths import data_file

CARDIAC_CLASS_NAMES: tuple[str, ...] = (
    "background",
    "left ventricle",
    "myocardium",
    "right ventricle",
)
IMAGE_SIZE = 64
SUPERSAMPLING = 4
# Public splits: seed and number of slices. The test split's seed is kept in
# solutions/ only (see regenerate.py); its size is listed here.
PUBLIC_SPLITS: dict[str, tuple[int, int]] = {"train": (805001, 1000), "val": (805002, 200)}
TEST_SIZE = 300
FILE_NAMES = {"train": "cardiac_train.npz", "val": "cardiac_val.npz"}


def _render(rng: np.random.Generator, size: int, factor: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Render one slice: float image (blood ~ 1), label map and pixel spacing in mm."""
    spacing = rng.uniform(1.8, 2.8)
    n = size * factor
    axis = fine_axis(size, factor, spacing)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")

    # Heart pose: centre offset, direction of the right ventricle (image left, +-40 deg).
    cx, cy = rng.uniform(-14, 14, size=2)
    phi = np.pi + rng.uniform(-0.7, 0.7)
    cos_phi, sin_phi = np.float32(math.cos(phi)), np.float32(math.sin(phi))
    dx, dy = xx - np.float32(cx), yy - np.float32(cy)
    u = dx * cos_phi + dy * sin_phi
    v = -dx * sin_phi + dy * cos_phi
    r = np.sqrt(u * u + v * v)
    angles = Angles(u, v, r)

    def to_image(pu: float, pv: float) -> tuple[float, float]:
        return cx + pu * cos_phi - pv * sin_phi, cy + pu * sin_phi + pv * cos_phi

    def disks(where: np.ndarray, centres: list, radii: list, values: list) -> None:
        stamp_disks(image, where, xx, yy, centres, radii, values)

    # Slice level z (0 base .. 1 apex) and cardiac phase c (0 diastole .. 1 systole).
    z = rng.uniform(0.0, 1.0)
    c = rng.uniform(0.0, 0.15) if rng.random() < 0.5 else rng.uniform(0.85, 1.0)
    base_radius = rng.uniform(19.0, 30.0)
    r_endo0 = base_radius * (1.0 - 0.72 * z**2) * (1.0 - 0.33 * c)
    wall = rng.uniform(6.0, 11.0) * (1.0 + 0.45 * c) * (1.0 - 0.15 * z)
    # Shape: smooth irregularity, septum flattened by the right ventricle (D shape),
    # sometimes a thinned (infarcted) segment.
    cos1, sin1 = angles.harmonics[0]
    septum = np.maximum(cos1, 0.0) ** 4
    r_endo = r_endo0 * (1.0 + angles.smooth(rng, 3, 0.09)) * (1.0 - rng.uniform(0.0, 0.2) * septum)
    wall_theta = wall * (1.0 + angles.smooth(rng, 2, 0.2))
    if rng.random() < 0.3:
        toward = rng.uniform(0, 2 * np.pi)
        facing = cos1 * np.float32(math.cos(toward)) + sin1 * np.float32(math.sin(toward))
        wall_theta = wall_theta * (1.0 - rng.uniform(0.3, 0.6) * np.maximum(facing, 0.0) ** 6)
    r_epi = r_endo + np.maximum(wall_theta, 2.5)
    cavity = r < r_endo
    inside_epi = r < r_epi
    lv_wall = inside_epi & ~cavity
    epi_mean = r_endo0 + wall

    # Right ventricle: a crescent (ellipse minus the LV) that shrinks towards the apex.
    rv_end = rng.uniform(0.85, 0.97)
    depth = rng.uniform(13.0, 27.0) * max(0.0, 1.0 - z / rv_end) ** 0.5 * (1.0 - 0.35 * c)
    rv_shape = None
    rv_cavity = rv_wall = np.zeros_like(cavity)
    if depth > 3.0:
        a = rng.uniform(0.55, 0.8) * (epi_mean + depth)
        b = rng.uniform(1.0, 1.35) * (epi_mean + 3.0)
        shift = epi_mean + depth - a
        tilt = rng.uniform(-0.25, 0.25)
        rv_shape = (shift * math.cos(tilt), shift * math.sin(tilt), a, b, tilt)
        rv_d = ellipse(u, v, *rv_shape)
        rv_cavity = (rv_d < 1.0) & ~inside_epi
        t_rv = rng.uniform(2.0, 4.0)
        grown = ellipse(u, v, rv_shape[0], rv_shape[1], a + t_rv, b + t_rv, tilt) < 1.0
        rv_wall = grown & ~rv_cavity & ~inside_epi
    heart = inside_epi | rv_cavity | rv_wall

    # Contrast of this scan (bSSFP-like, blood ~ 1).
    blood = rng.uniform(0.6, 1.05)
    myo = rng.uniform(0.18, 0.34)
    fat = rng.uniform(0.7, 0.95)
    muscle = rng.uniform(0.22, 0.34)
    lung = rng.uniform(0.02, 0.07)

    image = np.zeros((n, n), dtype=np.float32)
    # Body: ellipse whose anterior wall lies beyond the right ventricle; fat, muscle, lungs.
    body_a = rng.uniform(95.0, 120.0)
    front = epi_mean + (depth if rv_shape is not None else 0.0) + rng.uniform(8.0, 35.0)
    body_d = ellipse(u, v, front - body_a, rng.uniform(-25, 25), body_a,
                      rng.uniform(135.0, 170.0), rng.uniform(-0.3, 0.3))
    subcut = rng.uniform(5.0, 18.0) / body_a
    muscle_layer = rng.uniform(6.0, 14.0) / body_a
    body = body_d < 1.0
    image[body] = fat
    image[body_d < (1.0 - subcut) ** 2] = muscle
    thorax = body_d < (1.0 - subcut - muscle_layer) ** 2
    image[thorax] = lung
    count = int(rng.integers(4, 12))
    disks(thorax, rng.uniform(-size / 2, size / 2, (count, 2)) * spacing,
          rng.uniform(1.5, 3.5, count), rng.uniform(0.3, 0.7, count))

    # Liver below the diaphragm (a large disc), more often in apical slices.
    if rng.random() < 0.35 + 0.4 * z:
        angle = rng.uniform(-0.6, 0.6) + (np.pi / 2 if rng.random() < 0.5 else -np.pi / 2)
        radius = rng.uniform(70.0, 140.0)
        dist = epi_mean + rng.uniform(0.0, 20.0) + radius
        lu, lv = np.float32(dist * math.cos(angle)), np.float32(dist * math.sin(angle))
        liver = thorax & ((u - lu) ** 2 + (v - lv) ** 2 < np.float32(radius * radius))
        image[liver] = myo * rng.uniform(1.0, 1.6)
        count = int(rng.integers(1, 4))
        disks(liver, rng.uniform(-size / 2, size / 2, (count, 2)) * spacing,
              rng.uniform(2.0, 4.0, count), np.full(count, blood * 0.8))

    # Mediastinum: soft tissue hugging the heart, part of it epicardial fat.
    margin = rng.uniform(6.0, 18.0) * (1.0 + angles.smooth(rng, 3, 0.5))
    mediastinum = r < r_epi + np.maximum(margin, 2.0)
    fat_band = r < r_epi + rng.uniform(2.0, 6.0)
    if rv_shape is not None:
        cu, cv, a, b, tilt = rv_shape
        mediastinum |= ellipse(u, v, cu, cv, a + 8.0, b + 8.0, tilt) < 1.0
        fat_band |= rv_d < 1.3
    mediastinum &= thorax
    image[mediastinum] = myo * rng.uniform(1.0, 1.7)
    fat_where = angles.smooth(rng, 3, 1.0) > rng.uniform(-0.3, 1.2)
    image[fat_band & fat_where & mediastinum & ~heart] = fat
    if z < 0.15 and rng.random() < 0.6:
        # Basal slices cut the atria: bright blood next to the ventricles, yet background.
        ang = np.pi + rng.uniform(-0.6, 0.6)
        rad = rng.uniform(12.0, 20.0)
        dist = epi_mean + 0.6 * rad
        disks(thorax & ~heart, [to_image(dist * math.cos(ang), dist * math.sin(ang))], [rad],
              [blood * rng.uniform(0.8, 1.0)])

    # Descending aorta (bright blood, background) and spine behind the left ventricle.
    behind = np.pi + rng.uniform(-0.9, 0.9)
    if rng.random() < 0.85:
        radius = rng.uniform(8.0, 13.0)
        dist = epi_mean + radius + rng.uniform(4.0, 20.0)
        aorta = to_image(dist * math.cos(behind), dist * math.sin(behind))
        spine_dist = dist + radius + rng.uniform(15.0, 25.0)
        spine = to_image(spine_dist * math.cos(behind), spine_dist * math.sin(behind))
        disks(body, [aorta, aorta, spine, spine], [radius + 1.5, radius, 17.0, 15.0],
              [myo, blood * rng.uniform(0.75, 1.0), rng.uniform(0.08, 0.15), rng.uniform(0.4, 0.6)])

    # The heart itself, labels following ACDC's rules.
    image[rv_wall | lv_wall] = myo
    pool = blood * (1.0 + 0.1 * angles.smooth(rng, 2, 1.0))
    # Through-plane partial volume near the apex: the thick slice mixes in myocardium.
    apex_mix = min(max((z - 0.6) / 0.4, 0.0), 1.0) * rng.uniform(0.2, 0.6)
    pool = pool * (1.0 - apex_mix) + myo * apex_mix
    image[cavity] = pool[cavity]
    image[rv_cavity] = blood * rng.uniform(0.8, 1.0)
    # Trabeculae and papillary muscles: dark spots inside the cavities, labelled as cavity.
    count = int(rng.integers(3, 12))
    ang = rng.uniform(0, 2 * np.pi, count)
    rad = r_endo0 * rng.uniform(0.75, 1.0, count)
    centres = [to_image(rd * math.cos(a), rd * math.sin(a)) for rd, a in zip(rad, ang, strict=True)]
    disks(cavity, centres, rng.uniform(0.8, 2.5, count), myo * rng.uniform(1.0, 1.5, count))
    if r_endo0 > 9.0 and 0.15 < z < 0.85:
        sides = np.pi + np.array([-1.0, 1.0]) * rng.uniform(0.5, 1.1, 2)
        rads = r_endo0 * rng.uniform(0.6, 0.8, 2)
        centres = [to_image(rd * math.cos(ang), rd * math.sin(ang)) for rd, ang in zip(rads, sides, strict=True)]
        disks(cavity, centres, r_endo0 * rng.uniform(0.1, 0.2, 2), myo * rng.uniform(1.0, 1.3, 2))
    if rv_shape is not None:
        count = int(rng.integers(0, 6))
        cu, cv, a, b, tilt = rv_shape
        ang = rng.uniform(0, 2 * np.pi, count)
        pts = [(cu + 0.8 * a * math.cos(t), cv + 0.8 * b * math.sin(t)) for t in ang]
        disks(rv_cavity, [to_image(pu, pv) for pu, pv in pts], rng.uniform(1.0, 3.0, count),
              myo * rng.uniform(1.0, 1.5, count))

    labels = np.zeros((n, n), dtype=np.uint8)
    labels[cavity] = 1
    labels[lv_wall] = 2
    labels[rv_cavity] = 3
    return image, labels, spacing


def _acquire(rng: np.random.Generator, hires: np.ndarray, size: int, factor: int) -> np.ndarray:
    """Partial volume, blur, coil bias field, Rician noise and scanner scaling."""
    image = block_mean(hires, factor)
    from scipy import ndimage  # imported here: loading the data must not pay for scipy

    image = ndimage.gaussian_filter(image, rng.uniform(0.4, 1.0), mode="nearest")
    if rng.random() < 0.3:
        # Respiratory/flow ghosts: faint shifted copies along the phase-encoding axis.
        axis = int(rng.integers(0, 2))
        image = image + rng.uniform(0.05, 0.15) * np.roll(image, int(rng.integers(8, size - 8)), axis=axis)
    grid = np.linspace(-1.0, 1.0, size)
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    terms = (gx, gy, gx * gx, gx * gy, gy * gy)
    # A smooth positive field close to exp(polynomial), built from exact arithmetic only
    # (vectorised exp/cos may differ in the last bit between CPUs; products do not).
    poly = sum(rng.normal(0.0, s) * t for s, t in zip((0.2, 0.2, 0.1, 0.1, 0.1), terms, strict=True))
    image = image * (1.0 + 0.5 * np.clip(poly, -1.5, 1.5)) ** 2
    sigma = rng.uniform(0.03, 0.12)
    real = image + rng.normal(0.0, sigma, image.shape)
    imag = rng.normal(0.0, sigma, image.shape)
    image = np.sqrt(real * real + imag * imag)
    gain = 600.0 * math.exp(rng.normal(0.0, 0.3))
    return np.clip(np.rint(image * gain), 0, 4095).astype(np.uint16)


def _downsample_labels(labels: np.ndarray, size: int, factor: int) -> np.ndarray:
    """Majority label of each low-resolution pixel (how a rater labels partial volumes)."""
    classes = len(CARDIAC_CLASS_NAMES)
    block = (np.arange(size)[:, None] * size + np.arange(size)[None, :]).repeat(factor, 0).repeat(factor, 1)
    counts = np.bincount((block * classes + labels).ravel(), minlength=size * size * classes)
    # argmax takes the lowest label on ties, as a deterministic rater would.
    return counts.reshape(size, size, classes).argmax(axis=-1).astype(np.uint8)


def generate_cardiac(n: int, seed: int, size: int = IMAGE_SIZE) -> dict[str, np.ndarray]:
    """``n`` slices from ``seed``: images uint16 (n, size, size), masks uint8, spacing float32 (mm)."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size), dtype=np.uint16)
    masks = np.empty((n, size, size), dtype=np.uint8)
    spacing = np.empty(n, dtype=np.float32)
    for i in range(n):
        hires, labels, spacing[i] = _render(rng, size, SUPERSAMPLING)
        images[i] = _acquire(rng, hires, size, SUPERSAMPLING)
        masks[i] = _downsample_labels(labels, size, SUPERSAMPLING)
    return {"images": images, "masks": masks, "spacing_mm": spacing}


def _check_arrays(arrays: dict[str, np.ndarray], source: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        images, masks = arrays["images"], arrays["masks"]
    except KeyError as err:
        raise DataError(f"{source}: missing array {err} (expected 'images' and 'masks')") from None
    if images.ndim != 3 or masks.shape != images.shape:
        raise DataError(f"{source}: images {images.shape} and masks {masks.shape} do not match")
    if masks.size and masks.max() >= len(CARDIAC_CLASS_NAMES):
        raise DataError(f"{source}: mask values outside 0..3")
    return images, masks


def load_cardiac(
    split: str = "train", path: str | os.PathLike | None = None, *, verify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Cardiac MR slices for the U-Net practical.

    Returns images float32 (N, 64, 64, 1) in raw scanner units (normalise inside
    the model) and masks uint8 (N, 64, 64) with labels 0 background, 1 left
    ventricle, 2 myocardium, 3 right ventricle. ``split`` is "train" or "val"
    (bundled); "test" is reserved and needs ``path`` to the hidden file.
    ``verify`` checks the file against the checksum registry.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', not {split!r}")
    if split == "test" and path is None:
        raise ValueError(
            "the cardiac test split is reserved for grading and not bundled; "
            "pass path= to the hidden file (hidden_cardiac_test.npz)"
        )
    file = path if path is not None else data_file(FILE_NAMES[split])
    arrays = load_verified(file, f"cardiac/{split}", verify=verify)
    images, masks = _check_arrays(arrays, str(file))
    return images.astype(np.float32)[..., None], masks.astype(np.uint8)
