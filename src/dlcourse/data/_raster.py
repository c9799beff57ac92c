"""Drawing helpers shared by the image generators.

Only exact IEEE arithmetic (+, -, *, /, sqrt, comparisons) touches pixel arrays:
vectorised cos/exp may differ in the last bit between CPUs, and one flipped
threshold would change a label and break bit-for-bit regeneration.
"""

from __future__ import annotations

import math

import numpy as np


def fine_axis(size: int, factor: int, spacing: float) -> np.ndarray:
    """Centres (mm, image centre = 0) of a grid ``factor`` times finer than the image."""
    return (((np.arange(size * factor) + 0.5) / factor - size / 2) * spacing).astype(np.float32)


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks: partial-volume effect of a coarse voxel."""
    n = image.shape[0] // factor
    return image.reshape(n, factor, n, factor).mean(axis=(1, 3), dtype=np.float64)


def rotate(x: np.ndarray, y: np.ndarray, cx: float, cy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in a frame centred at (cx, cy) and turned by ``angle`` (radians)."""
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    dx, dy = x - np.float32(cx), y - np.float32(cy)
    return dx * c + dy * s, dy * c - dx * s


def ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, a: float, b: float, tilt: float = 0.0) -> np.ndarray:
    """Normalised squared ellipse distance (< 1 inside)."""
    along, across = rotate(u, v, cu, cv, tilt)
    along = along * np.float32(1.0 / a)
    across = across * np.float32(1.0 / b)
    return along * along + across * across


def stamp_disks(
    image: np.ndarray,
    where: np.ndarray | None,
    xx: np.ndarray,
    yy: np.ndarray,
    centres: np.ndarray,
    radii: np.ndarray,
    values: np.ndarray,
) -> None:
    """Paint discs (image coordinates, mm) touching only their bounding boxes."""
    axis = xx[0]
    step = float(axis[1] - axis[0])
    for (px, py), rad, value in zip(
        np.asarray(centres, dtype=float).reshape(-1, 2),
        np.asarray(radii, dtype=float),
        np.asarray(values, dtype=float),
        strict=True,
    ):
        if rad < step / 4:
            continue
        lo_x = max(int(np.searchsorted(axis, px - rad)) - 1, 0)
        hi_x = int(np.searchsorted(axis, px + rad)) + 1
        lo_y = max(int(np.searchsorted(axis, py - rad)) - 1, 0)
        hi_y = int(np.searchsorted(axis, py + rad)) + 1
        if hi_x <= lo_x or hi_y <= lo_y:
            continue
        box = (slice(lo_y, hi_y), slice(lo_x, hi_x))
        dx = xx[box] - np.float32(px)
        dy = yy[box] - np.float32(py)
        disk = dx * dx + dy * dy < np.float32(rad * rad)
        if where is not None:
            disk &= where[box]
        image[box][disk] = value


class Angles:
    """cos(k*theta), sin(k*theta), k = 1..3, of the polar angle of (u, v), from exact arithmetic."""

    def __init__(self, u: np.ndarray, v: np.ndarray, r: np.ndarray | None = None) -> None:
        if r is None:
            r = np.sqrt(u * u + v * v)
        inv = np.float32(1.0) / np.maximum(r, np.float32(1e-6))
        c1, s1 = u * inv, v * inv
        c2, s2 = c1 * c1 - s1 * s1, np.float32(2.0) * s1 * c1
        self.harmonics = ((c1, s1), (c2, s2), (c2 * c1 - s2 * s1, s2 * c1 + c2 * s1))

    def smooth(self, rng: np.random.Generator, order: int, scale: float) -> np.ndarray:
        """A random smooth function of the angle (a short Fourier series, std ~ ``scale``)."""
        out = np.zeros_like(self.harmonics[0][0])
        for k, (ck, sk) in enumerate(self.harmonics[:order], start=1):
            a, b = (rng.normal(0.0, scale / k, size=2) / math.sqrt(2.0)).astype(np.float32)
            out += a * ck
            out += b * sk
        return out
