"""The notebook figures draw what they claim: overlays, legends, titles and beat markers."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure

from dlcourse.data import (
    CARDIAC_CLASS_NAMES,
    CT_CLASS_NAMES,
    load_cardiac,
    load_ct_slices,
    load_recordings,
    load_signals,
    show_cardiac,
    show_ct,
    show_recording,
    show_signal,
)
from dlcourse.data.plots import beat_centres


def _renders(fig: Figure) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")


@pytest.fixture(scope="module")
def cardiac():
    images, masks = load_cardiac("val")
    return images[:4], masks[:4]


def test_show_cardiac(cardiac):
    images, masks = cardiac
    fig = show_cardiac(images, masks, n=3)
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["reference 0", "reference 1", "reference 2"]
    for ax in axes:
        assert len(ax.get_images()) == 2  # the slice and the label overlay
        assert len(ax.collections) >= 2  # label contours
    legend_texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert legend_texts == list(CARDIAC_CLASS_NAMES[1:])
    _renders(fig)


def test_show_cardiac_with_predictions(cardiac):
    images, masks = cardiac
    probabilities = np.eye(4, dtype=np.float32)[masks]
    fig = show_cardiac(images, masks, n=2, predictions=probabilities)
    titles = [ax.get_title() for ax in fig.get_axes()]
    assert titles == ["reference 0", "reference 1", "prediction 0", "prediction 1"]


def test_show_ct_titles_are_class_names():
    images, labels = load_ct_slices("val")
    fig = show_ct(images, labels, n=8)
    axes = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == [CT_CLASS_NAMES[k] for k in labels[:8]]
    wrong = (labels[:5] + 1) % len(CT_CLASS_NAMES)
    fig = show_ct(images[:5], labels[:5], n=5, predictions=wrong, columns=3)
    visible = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert len(visible) == 5
    assert visible[0].get_title() == f"{CT_CLASS_NAMES[labels[0]]} / {CT_CLASS_NAMES[wrong[0]]}"
    assert matplotlib.colors.to_hex(visible[0].title.get_color()) == matplotlib.colors.to_hex("tab:red")
    _renders(fig)


def test_show_signal_marks_every_beat():
    x, y = load_signals("val")
    fig = show_signal(x, y, n=2)
    axes = fig.get_axes()
    assert len(axes) == 2
    for i, ax in enumerate(axes):
        beats = len(beat_centres(y[i]))
        assert beats >= 2 and ax.get_title() == f"window {i}: {beats} beats"
        markers = [line for line in ax.get_lines() if line.get_marker() == "v"]
        assert len(markers) == 1 and len(markers[0].get_xdata()) == beats
    probabilities = np.stack([1 - y, y], axis=-1).astype(np.float32)
    fig = show_signal(x[0], y[0], predictions=probabilities[:1])
    assert len(fig.get_axes()) == 2  # the window and the probability axis
    _renders(fig)


def test_show_recording():
    recording = load_recordings()["data3"]
    fig = show_recording(recording, start=100, seconds=8)
    ax = fig.get_axes()[0]
    assert ax.get_title().startswith("data3")
    beats = next(line for line in ax.get_lines() if line.get_marker() == "v")
    assert 5 <= len(beats.get_xdata()) <= 25


def test_beat_centres():
    assert beat_centres(np.array([0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1])).tolist() == [2, 8]
