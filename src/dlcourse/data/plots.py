"""Notebook-ready figures of the course data sets.

Each function returns a ``matplotlib.figure.Figure`` that is not registered
with pyplot: returned as the last value of a notebook cell it is shown once
(no duplicate from the inline backend), and it works under any backend (Agg
in tests and CI).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .cardiac import CARDIAC_CLASS_NAMES
from .ct import CT_CLASS_NAMES
from .signals import SIGNAL_FS, Recording

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the package
    from matplotlib.figure import Figure

CLASS_COLOURS = ("tab:red", "tab:green", "tab:blue")  # left ventricle, myocardium, right ventricle


def _pick(count: int, n: int) -> np.ndarray:
    """The first ``n`` indices (deterministic: the same figure on every run)."""
    return np.arange(min(n, count))


def _squeeze(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    return images[..., 0] if images.ndim == 4 else images


def show_cardiac(
    images: np.ndarray,
    masks: np.ndarray,
    n: int = 4,
    *,
    predictions: np.ndarray | None = None,
    class_names: Sequence[str] = CARDIAC_CLASS_NAMES,
    alpha: float = 0.35,
) -> Figure:
    """Slices with the labels as colour overlay and contours, and a legend of class names.

    With ``predictions`` (labels, or per-class probabilities (N, H, W, C)) a second
    row shows them the same way, to compare with the reference row.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    images, masks = _squeeze(images), np.asarray(masks)
    rows = [("reference", masks)]
    if predictions is not None:
        pred = np.asarray(predictions)
        rows.append(("prediction", pred.argmax(-1) if pred.ndim == 4 else pred))
    idx = _pick(len(images), n)
    fig = Figure(figsize=(2.6 * len(idx), 2.8 * len(rows) + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), len(idx), squeeze=False))
    colours = ListedColormap(CLASS_COLOURS)
    for r, (row_name, labels) in enumerate(rows):
        for c, i in enumerate(idx):
            ax = axes[r, c]
            lo, hi = np.percentile(images[i], [1, 99.5])
            ax.imshow(images[i], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            overlay = np.ma.masked_equal(labels[i].astype(int), 0)
            ax.imshow(overlay, cmap=colours, vmin=0.5, vmax=3.5, alpha=alpha, interpolation="nearest")
            for k, colour in enumerate(CLASS_COLOURS, start=1):
                if (labels[i] == k).any():
                    ax.contour(labels[i] == k, levels=[0.5], colors=[colour], linewidths=1.0)
            ax.set_title(f"{row_name} {i}", fontsize=9)
            ax.set_axis_off()
    handles = [Patch(color=colour, label=name) for colour, name in zip(CLASS_COLOURS, class_names[1:], strict=True)]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    return fig


def show_ct(
    images: np.ndarray,
    labels: np.ndarray,
    n: int = 8,
    *,
    predictions: np.ndarray | None = None,
    class_names: Sequence[str] = CT_CLASS_NAMES,
    window: tuple[float, float] = (-600.0, 400.0),
    columns: int = 4,
) -> Figure:
    """CT slices (HU, displayed with ``window``) titled with their class names.

    With ``predictions`` (class indices or probabilities) the title reads
    "true / predicted", in red where they differ.
    """
    from matplotlib.figure import Figure

    images, labels = _squeeze(images), np.asarray(labels)
    idx = _pick(len(images), n)
    cols = min(columns, len(idx))
    rows = int(np.ceil(len(idx) / cols))
    fig = Figure(figsize=(2.4 * cols, 2.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    pred = None
    if predictions is not None:
        pred = np.asarray(predictions)
        pred = pred.argmax(-1) if pred.ndim == 2 else pred
    for ax in axes[len(idx):]:
        ax.set_visible(False)
    for ax, i in zip(axes, idx, strict=False):
        ax.imshow(images[i], cmap="gray", vmin=window[0], vmax=window[1], interpolation="nearest")
        title, colour = class_names[int(labels[i])], "black"
        if pred is not None:
            title = f"{class_names[int(labels[i])]} / {class_names[int(pred[i])]}"
            colour = "black" if int(pred[i]) == int(labels[i]) else "tab:red"
        ax.set_title(title, fontsize=9, color=colour)
        ax.set_axis_off()
    return fig


def beat_centres(labels: np.ndarray) -> np.ndarray:
    """Centre index of every run of 1s in a per-sample label vector."""
    labels = np.asarray(labels).astype(np.int8).ravel()
    edges = np.diff(np.concatenate([[0], labels, [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return (starts + stops - 1) // 2


def show_signal(
    x: np.ndarray,
    y: np.ndarray | None = None,
    n: int = 3,
    *,
    predictions: np.ndarray | None = None,
    fs: float = SIGNAL_FS,
) -> Figure:
    """Signal windows with beats marked: shaded label regions and a marker at each beat.

    ``x`` is (N, T, 1), (N, T) or one window (T,) or (T, 1); ``y`` per-sample
    labels of the same length. ``predictions`` (beat probabilities (N, T), or (N, T, 2)
    softmax) are drawn on a second axis.
    """
    from matplotlib.figure import Figure

    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., 0]
    elif x.ndim == 2 and x.shape[1] == 1:  # one window (T, 1)
        x = x[:, 0][None, :]
    elif x.ndim == 1:
        x = x[None, :]
    if y is not None:
        y = np.asarray(y).reshape(len(x), -1)
    prob = None
    if predictions is not None:
        prob = np.asarray(predictions)
        if prob.shape[-1] == 2 and prob.size == 2 * x.size:  # softmax over {no beat, beat}
            prob = prob[..., 1]
        prob = prob.reshape(len(x), -1)
    idx = _pick(len(x), n)
    fig = Figure(figsize=(10, 2.2 * len(idx)), layout="constrained")
    axes = fig.subplots(len(idx), 1, squeeze=False)[:, 0]
    t = np.arange(x.shape[1]) / fs
    for ax, i in zip(axes, idx, strict=True):
        ax.plot(t, x[i], color="tab:blue", linewidth=1.0, label="signal")
        title = f"window {i}"
        if y is not None:
            ax.fill_between(t, x[i].min(), x[i].max(), where=y[i] > 0, color="tab:orange",
                            alpha=0.25, step="mid", label="beat label")
            centres = beat_centres(y[i])
            ax.plot(t[centres], x[i][centres], "v", color="tab:red", label="beat")
            title += f": {len(centres)} beats"
        if prob is not None:
            twin = ax.twinx()
            twin.plot(t, prob[i], color="tab:green", linewidth=1.0, label="predicted probability")
            twin.set_ylim(-0.05, 1.05)
            twin.set_ylabel("p(beat)")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("ADC counts")
    axes[-1].set_xlabel("time (s)")
    axes[0].legend(loc="upper right", fontsize=8)
    return fig


def show_recording(recording: Recording, start: float = 0.0, seconds: float = 10.0) -> Figure:
    """A stretch of a raw recording (``load_recordings()[name]``) with annotated beats and unreliable parts."""
    from matplotlib.figure import Figure

    fs = recording.fs
    lo = int(start * fs)
    hi = min(int((start + seconds) * fs), recording.signal.size)
    t = np.arange(lo, hi) / fs
    sig = recording.signal[lo:hi]
    fig = Figure(figsize=(10, 2.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(t, sig, color="tab:blue", linewidth=1.0, label="PPG")
    peaks = recording.peaks[(recording.peaks >= lo) & (recording.peaks < hi)]
    ax.plot(peaks / fs, recording.signal[peaks], "v", color="tab:red", label="beat")
    bad = ~recording.reliable[lo:hi]
    if bad.any():
        ax.fill_between(t, sig.min(), sig.max(), where=bad, color="0.6", alpha=0.3, label="not used")
    ax.set_title(f"{recording.name}: {recording.description}", fontsize=9)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("ADC counts")
    ax.legend(loc="upper right", fontsize=8)
    return fig
