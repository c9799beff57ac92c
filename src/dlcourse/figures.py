"""Lecture figures: pictures that say more than a paragraph would.

Every function returns a :class:`matplotlib.figure.Figure` and closes it in
pyplot, so a notebook cell shows it exactly once (as its value) and tests can
draw them with the Agg backend. Numbers shown in figures come from
:mod:`dlcourse.architectures` or from Keras models, never typed in.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patches
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from dlcourse.architectures import receptive_fields

if TYPE_CHECKING:
    import keras

__all__ = [
    "CLASS_COLOURS",
    "plot_complexity_vs_accuracy",
    "plot_connectivity",
    "plot_cost_comparison",
    "plot_curves",
    "plot_dense_connectivity",
    "plot_images",
    "plot_layer_graph",
    "plot_lstm_gates",
    "plot_memory_growth",
    "plot_patches",
    "plot_receptive_field_1d",
    "plot_receptive_field_2d",
    "plot_runs",
    "plot_slice_probabilities",
    "plot_unet_feature_maps",
    "plot_unrolled_rnn",
    "plot_volume_views",
]

#: Overlay colours for label maps: background (transparent), then one per class.
CLASS_COLOURS = ("#00000000", "#e41a1c", "#4daf4a", "#377eb8", "#ff7f00", "#984ea3")


def _done(fig: Figure) -> Figure:
    """Detach a finished figure from pyplot so notebooks show it once."""
    fig.tight_layout()
    plt.close(fig)
    return fig


def _overlay_cmap(num_classes: int) -> ListedColormap:
    return ListedColormap(list(CLASS_COLOURS[:num_classes]))


# --------------------------------------------------------------------------
# Images, patches, segmentations
# --------------------------------------------------------------------------


def plot_images(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    cmap: str = "gray",
    size: float = 2.4,
) -> Figure:
    """Show a row of images (2D, or 3D with one channel) side by side."""
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(np.squeeze(images[i]), cmap=cmap)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    return _done(fig)


def plot_connectivity(image: np.ndarray, kernel_sizes: Sequence[int | None] = (None, 1, 11)) -> Figure:
    """Which input pixels one hidden unit sees: all of them, or a small kernel.

    ``None`` stands for a fully connected unit. The title of each panel gives
    the number of weights that unit needs.
    """
    image = np.squeeze(image)
    h, w = image.shape
    fig, axes = plt.subplots(1, len(kernel_sizes), figsize=(3 * len(kernel_sizes), 3.2))
    for ax, k in zip(np.atleast_1d(axes), kernel_sizes, strict=True):
        ax.imshow(image, cmap="gray")
        ax.set_axis_off()
        if k is None:
            ax.add_patch(patches.Rectangle((-0.5, -0.5), w, h, fill=True, alpha=0.35, color="C1"))
            ax.set_title(f"fully connected\n{h * w:,} weights per unit", fontsize=9)
        else:
            y0, x0 = h // 2 - k // 2, w // 2 - k // 2
            ax.add_patch(
                patches.Rectangle((x0 - 0.5, y0 - 0.5), k, k, fill=True, alpha=0.6, color="C1")
            )
            if k < max(h, w) / 20:  # too small to see at this scale: ring it and point at it
                ax.add_patch(patches.Circle((w // 2, h // 2), radius=max(h, w) / 14, fill=False,
                                            color="C1", lw=2))
                ax.annotate(f"{k}x{k} pixel{'s' if k > 1 else ''}", (w // 2, h // 2 - max(h, w) / 14),
                            xytext=(w // 2, h * 0.08), ha="center", fontsize=8, color="C1",
                            arrowprops={"arrowstyle": "->", "color": "C1"})
            ax.set_title(f"{k}x{k} kernel\n{k * k:,} weight{'s' if k > 1 else ''}, shared", fontsize=9)
    return _done(fig)


def plot_patches(
    image: np.ndarray,
    mask: np.ndarray,
    centres: Sequence[tuple[int, int]],
    patch_size: int,
    class_names: Sequence[str],
) -> Figure:
    """Sliding-window training pairs: a patch around a pixel, labelled by that pixel."""
    image, half = np.squeeze(image), patch_size // 2
    padded = np.pad(image, half, mode="constant")
    n = len(centres)
    fig, axes = plt.subplots(1, n + 1, figsize=(2.4 * (n + 1), 2.8))
    axes[0].imshow(image, cmap="gray")
    axes[0].imshow(mask, cmap=_overlay_cmap(len(class_names)), alpha=0.35,
                   vmin=0, vmax=len(class_names) - 1, interpolation="nearest")
    axes[0].set_title("image and labels", fontsize=9)
    for i, (r, c) in enumerate(centres):
        # each box takes the overlay colour of its label (background, transparent in the
        # overlay, gets yellow), so a red box is always a left-ventricle patch
        label = int(mask[r, c])
        colour = CLASS_COLOURS[label] if label > 0 else "#ffd700"
        axes[0].add_patch(patches.Rectangle((c - half, r - half), patch_size, patch_size,
                                            fill=False, color=colour, lw=1.5))
        axes[0].plot(c, r, "+", color=colour)
        axes[i + 1].imshow(padded[r:r + patch_size, c:c + patch_size], cmap="gray")
        axes[i + 1].plot(half, half, "+", color=colour, ms=12, mew=2)
        axes[i + 1].set_title(f"label: {class_names[label]}", fontsize=9, color=colour)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.text(0.5, 0.02, "patches that reach past the image border are padded with zeros (black)",
             ha="center", fontsize=8, color="0.3")
    plt.close(fig)
    return fig


# --------------------------------------------------------------------------
# Curves and comparisons
# --------------------------------------------------------------------------


def plot_curves(
    curves: Mapping[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logy: bool = False,
    x: Sequence[float] | None = None,
) -> Figure:
    """Several named curves on one axis (training losses, gradient sizes, ...)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    zeros: list[tuple[np.ndarray, str]] = []
    for name, values in curves.items():
        xs = np.arange(1, len(values) + 1) if x is None else np.asarray(x)
        values = np.asarray(values, dtype=float)
        if logy and (values <= 0).any():
            # a log axis cannot show 0 (e.g. a gradient that underflowed in float32):
            # draw those points as triangles on the bottom edge instead of dropping them
            zeros.append((xs[values <= 0], name))
            values = np.where(values > 0, values, np.nan)
        ax.plot(xs, values, marker="o", ms=3, label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if logy:
        ax.set_yscale("log")
        for i, (xs0, name) in enumerate(zeros):
            ax.plot(xs0, np.full(len(xs0), ax.get_ylim()[0]), "v", color=f"C{list(curves).index(name)}",
                    ms=6, clip_on=False, label=f"{name}: exactly 0 ({len(xs0)} points)",
                    zorder=3 + i)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _done(fig)


def plot_complexity_vs_accuracy(
    params: Sequence[float],
    top1: Sequence[float],
    labels: Sequence[str],
    multiply_adds: Sequence[float] | None = None,
    evaluation: Sequence[str] | None = None,
) -> Figure:
    """Top-1 accuracy against parameter count; marker area from multiply-adds if given.

    ``evaluation`` (e.g. "10-crop", "single crop") gives each protocol its own
    marker, because ten-crop testing adds about a point of accuracy and the
    points are not comparable across protocols. Labels are placed greedily
    where they overlap neither another label nor a marker.
    """
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(8, 4.8))
    params_m = np.asarray(params, dtype=float) / 1e6
    top1 = np.asarray(top1, dtype=float)
    gmacs = None if multiply_adds is None else np.asarray(multiply_adds, float) / 1e9

    def area(g: np.ndarray | float) -> np.ndarray | float:
        return 15 + 25 * g

    sizes = 40 if gmacs is None else area(gmacs)
    protocols = list(dict.fromkeys(evaluation)) if evaluation is not None else [None]
    markers = dict(zip(protocols, ("o", "s", "D", "^"), strict=False))
    for k, proto in enumerate(protocols):
        keep = np.ones(len(params_m), bool) if proto is None else np.array(
            [e == proto for e in evaluation])  # type: ignore[union-attr]
        ax.scatter(params_m[keep], top1[keep], s=np.broadcast_to(sizes, params_m.shape)[keep],
                   alpha=0.6, color=f"C{k}", edgecolor="k", marker=markers[proto],
                   label=None if proto is None else f"{proto} evaluation")
    ax.set_xscale("log")
    ax.set_xlim(params_m.min() / 1.6, params_m.max() * 2.2)
    ax.set_ylim(top1.min() - 1.5, top1.max() + 1.5)
    ax.set(xlabel="parameters (millions, log scale)", ylabel="ImageNet top-1 accuracy (%)")
    ax.grid(alpha=0.3, which="both")

    # greedy label placement in display coordinates
    if not hasattr(fig.canvas, "get_renderer"):  # a canvas without a renderer: draw with Agg
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    taken = []
    for (px, py) in ax.transData.transform(np.column_stack([params_m, top1])):
        taken.append(_bbox(px - 6, py - 6, px + 6, py + 6))
    offsets = [(6, 4), (6, -12), (-6, 4), (-6, -12), (8, -4), (-8, -4), (0, 10), (0, -16),
               (14, 12), (14, -20), (-14, 12), (-14, -20)]
    order = np.argsort(-top1)
    for i in order:
        for dx, dy in offsets:
            text = ax.annotate(labels[i], (params_m[i], top1[i]), xytext=(dx, dy),
                               textcoords="offset points", fontsize=8,
                               ha="left" if dx >= 0 else "right")
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(t) for t in taken):
                taken.append(box)
                break
            text.remove()
        else:  # no free spot: accept the first one
            text = ax.annotate(labels[i], (params_m[i], top1[i]), xytext=offsets[0],
                               textcoords="offset points", fontsize=8)
            taken.append(text.get_window_extent(renderer))

    handles: list[Any] = []
    names: list[str] = []
    for k, proto in enumerate(protocols):
        if proto is not None:
            handles.append(Line2D([], [], ls="", marker=markers[proto], color=f"C{k}", mec="k",
                                  alpha=0.6, markersize=7))
            names.append(f"{proto} evaluation")
    if gmacs is not None:
        for g in (1, 5, 15):
            handles.append(Line2D([], [], ls="", marker="o", color="0.6", mec="k",
                                  markersize=float(np.sqrt(area(g)))))
            names.append(f"{g} G multiply-adds")
        ax.set_title("marker area: multiply-adds per image at the model's input size", fontsize=9)
    if handles:
        ax.legend(handles, names, fontsize=7, loc="upper left", labelspacing=1.0)
    return _done(fig)


def _bbox(x0: float, y0: float, x1: float, y1: float) -> Any:
    """A display-space box (for label placement)."""
    from matplotlib.transforms import Bbox

    return Bbox([[x0, y0], [x1, y1]])


def plot_runs(
    runs: Mapping[str, Sequence[Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logy: bool = False,
    styles: Mapping[str, str] | None = None,
) -> Figure:
    """Curves repeated over seeds: the mean as a line, the min-max range shaded.

    One run is no evidence that one model beats another; showing every seed's
    range makes the spread visible next to the difference.
    """
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for k, (name, curves) in enumerate(runs.items()):
        arr = np.asarray(curves, dtype=float)
        xs = np.arange(1, arr.shape[1] + 1)
        colour = f"C{k}"
        ls = (styles or {}).get(name, "-")
        ax.plot(xs, arr.mean(0), ls, marker="o", ms=3, color=colour,
                label=f"{name} (mean of {len(arr)} seeds)")
        ax.fill_between(xs, arr.min(0), arr.max(0), color=colour, alpha=0.2, lw=0)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if logy:
        ax.set_yscale("log")
    ax.set_title((title + "\n" if title else "") + "shaded: range over seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _done(fig)


def plot_cost_comparison(
    image_sizes: Sequence[int], sliding: Sequence[float], dense: Sequence[float]
) -> Figure:
    """Multiply-adds to label every pixel: patch by patch versus in one pass."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.plot(image_sizes, sliding, "o-", label="sliding window (one patch per pixel)")
    ax.plot(image_sizes, dense, "s-", label="fully convolutional (whole image once)")
    for n, s, d in zip(image_sizes, sliding, dense, strict=True):
        ax.annotate(f"{s / d:,.0f}x", (n, np.sqrt(float(s) * float(d))), ha="center", fontsize=8,
                    color="0.3")
    ax.set_yscale("log")
    ax.set(xlabel="image size (pixels per side)", ylabel="multiply-adds")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _done(fig)


def plot_memory_growth(
    image_sizes: Sequence[int],
    memory_2d: Sequence[float],
    memory_3d: Sequence[float],
    params: Mapping[str, tuple[int, int]],
) -> Figure:
    """2D versus 3D: parameters of the same networks, and feature-map memory.

    ``params`` maps a network name to its (2D, 3D) parameter counts; memories
    are bytes of one feature map for images of ``image_sizes`` pixels per side.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    names = list(params)
    xs = np.arange(len(names))
    left.bar(xs - 0.2, [params[n][0] for n in names], 0.4, label="2D")
    left.bar(xs + 0.2, [params[n][1] for n in names], 0.4, label="3D")
    for x, n in zip(xs, names, strict=True):
        left.annotate(f"x{params[n][1] / params[n][0]:.1f}", (x + 0.2, params[n][1]),
                      ha="center", va="bottom", fontsize=8)
    left.set_xticks(xs, names, fontsize=8)
    left.set(ylabel="parameters", title="same layers, 2D vs 3D kernels")
    left.legend(fontsize=8)
    gib = 2.0**30
    right.plot(image_sizes, np.asarray(memory_2d) / gib, "o-", label="2D image (n x n)")
    right.plot(image_sizes, np.asarray(memory_3d) / gib, "s-", label="3D volume (n x n x n)")
    right.set_yscale("log")
    right.set(xlabel="n (voxels per side)", ylabel="GiB", title="one feature map, 64 channels")
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=8)
    return _done(fig)


# --------------------------------------------------------------------------
# Receptive fields of dilated convolutions
# --------------------------------------------------------------------------


def plot_receptive_field_2d(dilations: Sequence[int] = (1, 2, 4), kernel_size: int = 3) -> Figure:
    """Stacked dilated 3x3 convolutions on a pixel grid, one panel per layer.

    Dots are the taps of that layer's kernel around the centre pixel, the
    shaded square is the receptive field after that layer.
    """
    fields = receptive_fields([kernel_size] * len(dilations), dilations)
    n = fields[-1] + 2
    c = n // 2
    fig, axes = plt.subplots(1, len(dilations), figsize=(3.2 * len(dilations), 3.5))
    for ax, d, f in zip(np.atleast_1d(axes), dilations, fields, strict=True):
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
        ax.grid(which="minor", color="0.85", lw=0.5)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.add_patch(patches.Rectangle((c - f // 2 - 0.5, c - f // 2 - 0.5), f, f, color="C0",
                                       alpha=0.25))
        offsets = (np.arange(kernel_size) - kernel_size // 2) * d
        for dy in offsets:
            for dx in offsets:
                ax.plot(c + dx, c + dy, "o", color="C3", ms=6)
        ax.set_title(f"{d}-dilated 3x3: field {f}x{f}", fontsize=10)
    return _done(fig)


def plot_receptive_field_1d(
    dilations: Sequence[int], kernel_size: int = 2, causal: bool = True
) -> Figure:
    """A stack of 1D (dilated) convolutions over time and the inputs one output sees."""
    fields = receptive_fields([kernel_size] * len(dilations), dilations)
    n = fields[-1] + 4
    levels = len(dilations) + 1
    fig, ax = plt.subplots(figsize=(min(0.32 * n + 1.5, 14), 0.8 * levels + 1))
    active = {levels - 1: {n - 3 if causal else n // 2}}
    for level in range(levels - 1, 0, -1):
        d = dilations[level - 1]
        taps = np.arange(kernel_size) * d if causal else (np.arange(kernel_size) - kernel_size // 2) * d
        below = set()
        for p in active[level]:
            for t in taps:
                q = p - t if causal else p + t
                below.add(q)
                ax.plot([q, p], [level - 1, level], color="C3", lw=1.2, zorder=1)
        active[level - 1] = below
    for level in range(levels):
        xs = np.arange(n)
        on = np.isin(xs, sorted(active[level]))
        ax.scatter(xs[~on], [level] * int((~on).sum()), s=30, color="0.85", zorder=2)
        ax.scatter(xs[on], [level] * int(on.sum()), s=40, color="C3", zorder=3)
        name = "input" if level == 0 else f"dilation {dilations[level - 1]}"
        ax.text(-1.2, level, name, ha="right", va="center", fontsize=9)
    ax.set_xlim(-7, n)
    ax.set_axis_off()
    ax.set_title(f"one output sees {fields[-1]} input steps "
                 f"({len(dilations)} layers, kernel {kernel_size})", fontsize=10)
    return _done(fig)


# --------------------------------------------------------------------------
# Recurrent networks
# --------------------------------------------------------------------------


def _box(ax: Any, x: float, y: float, text: str, colour: str = "C0", w: float = 0.8,
         h: float = 0.5) -> None:
    ax.add_patch(patches.FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                        boxstyle="round,pad=0.05", fc=colour, ec="k", alpha=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=9, color="white")


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], **kwargs: Any) -> None:
    ax.annotate("", xy=end, xytext=start,
                arrowprops={"arrowstyle": "->", "lw": 1.2, "color": "k", **kwargs})


def plot_unrolled_rnn(steps: int = 4) -> Figure:
    """A recurrent cell with its loop (left) and the same cell unrolled in time (right).

    The unrolled picture is a deep feedforward network whose layers all share
    one set of weights: backpropagation through time trains it.
    """
    fig, ax = plt.subplots(figsize=(2.0 + 1.5 * steps, 3))
    _box(ax, 0, 1, "A")
    ax.text(0, 0, "$x_t$", ha="center", va="center")
    ax.text(0, 2, "$h_t$", ha="center", va="center")
    _arrow(ax, (0, 0.2), (0, 0.7))
    _arrow(ax, (0, 1.3), (0, 1.8))
    ax.annotate("", xy=(0.42, 0.9), xytext=(0.42, 1.1),
                arrowprops={"arrowstyle": "->", "connectionstyle": "arc3,rad=-2.2", "lw": 1.2})
    ax.text(1.1, 1, "=", fontsize=18, ha="center", va="center")
    for t in range(steps):
        x = 2 + 1.5 * t
        _box(ax, x, 1, "A")
        ax.text(x, 0, f"$x_{t + 1}$", ha="center", va="center")
        ax.text(x, 2, f"$h_{t + 1}$", ha="center", va="center")
        _arrow(ax, (x, 0.2), (x, 0.7))
        _arrow(ax, (x, 1.3), (x, 1.8))
        if t:
            _arrow(ax, (x - 1.05, 1), (x - 0.45, 1))
    ax.text(2 + 1.5 * steps - 0.7, 1, "...", fontsize=14, va="center")
    ax.set_xlim(-0.7, 2 + 1.5 * steps)
    ax.set_ylim(-0.4, 2.4)
    ax.set_axis_off()
    return _done(fig)


def _lstm_gate_traces(layer: keras.layers.Layer, sequence: np.ndarray) -> dict[str, np.ndarray]:
    """Gate activations of a Keras LSTM layer over one sequence (time, features).

    Everything is measured on Keras's own ``LSTMCell`` with the layer's weights,
    one step at a time from the real trajectory (h, c): the gates are not
    re-derived from the equations. The cell state is affine in c_prev with slope
    f, so f is the change of c_t when c_prev grows by 1; a copy of the cell whose
    candidate is pinned to 1 gives c_t = i from c_prev = 0; one with candidate
    and input gate pinned to 1 gives c_t = 1, hence h_t = o * tanh(1).
    """
    import keras

    weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
    units = weights[1].shape[0]

    def cell_with(pinned_blocks: tuple[int, ...]) -> keras.layers.Layer:
        kernel, recurrent, bias = (w.copy() for w in weights)
        for block in pinned_blocks:  # zero weights, large bias: the block's activation saturates at 1
            cols = slice(block * units, (block + 1) * units)
            kernel[:, cols], recurrent[:, cols], bias[cols] = 0.0, 0.0, 30.0
        cell = keras.layers.LSTMCell(units, activation=layer.activation,
                                     recurrent_activation=layer.recurrent_activation)
        cell.build((None, kernel.shape[0]))
        cell.set_weights([kernel, recurrent, bias])
        return cell

    # Keras's gate blocks are [input | forget | candidate | output].
    real, candidate_one, candidate_and_input_one = cell_with(()), cell_with((2,)), cell_with((0, 2))
    h, c = np.zeros((1, units), np.float32), np.zeros((1, units), np.float32)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("input", "forget", "output", "cell")}
    for x_t in np.asarray(sequence, dtype=np.float32):
        x2 = np.repeat(x_t[None], 2, axis=0)
        h2, c2 = np.concatenate([h, h]), np.concatenate([c, c + 1.0])
        h_next, (_, c_next) = real(x2, [h2, c2])
        c_next = keras.ops.convert_to_numpy(c_next)
        _, (_, c_i) = candidate_one(x2[:1], [h, np.zeros_like(c)])
        h_o, _ = candidate_and_input_one(x2[:1], [h, np.zeros_like(c)])
        forget = c_next[1] - c_next[0]
        gates = (keras.ops.convert_to_numpy(c_i)[0], forget,
                 keras.ops.convert_to_numpy(h_o)[0] / np.tanh(1.0), c_next[0])
        for key, value in zip(out, gates, strict=True):
            out[key].append(value)
        h, c = keras.ops.convert_to_numpy(h_next)[:1], c_next[:1]
    return {k: np.stack(v) for k, v in out.items()}


def plot_lstm_gates(
    sequence: np.ndarray,
    layer: keras.layers.Layer,
    sampling_rate: float | None = None,
    signal_name: str = "input",
) -> Figure:
    """The input, forget and output gates and the cell state of an LSTM over time.

    ``sequence`` is one input of shape (time, features) and ``layer`` a built
    Keras LSTM; every row of a heat map is one unit.
    """
    traces = _lstm_gate_traces(layer, sequence)
    steps = len(sequence)
    t = np.arange(steps) / (sampling_rate or 1.0)
    extent = (t[0], t[-1], traces["cell"].shape[1] - 0.5, -0.5)
    fig = plt.figure(figsize=(8, 7.5))
    grid = fig.add_gridspec(5, 2, width_ratios=(40, 1), hspace=0.25, wspace=0.03)
    axes = [fig.add_subplot(grid[i, 0]) for i in range(5)]
    axes[0].plot(t, np.asarray(sequence)[:, 0], color="k", lw=1)
    axes[0].set_xlim(t[0], t[-1])
    axes[0].set_ylabel(signal_name, fontsize=9)
    rows = (("input", "input gate $i_t$"), ("forget", "forget gate $f_t$"),
            ("output", "output gate $o_t$"))
    for ax, (key, label) in zip(axes[1:4], rows, strict=True):
        im = ax.imshow(traces[key].T, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                       extent=extent, interpolation="nearest")
        ax.set_ylabel(label, fontsize=9)
    fig.colorbar(im, cax=fig.add_subplot(grid[1:4, 1]))
    lim = float(np.abs(traces["cell"]).max()) or 1.0
    im = axes[4].imshow(traces["cell"].T, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                        extent=extent, interpolation="nearest")
    axes[4].set_ylabel("cell state $c_t$", fontsize=9)
    fig.colorbar(im, cax=fig.add_subplot(grid[4, 1]))
    for ax in axes[:4]:
        ax.tick_params(labelbottom=False)
    axes[4].set_xlabel("time (s)" if sampling_rate else "time step")
    plt.close(fig)
    return fig


def plot_dense_connectivity(num_layers: int = 4, growth_rate: int = 32, channels_in: int = 64) -> Figure:
    """A dense block: every layer reads the concatenation of all earlier outputs.

    Box labels give the channels each layer receives; the block's output has
    ``channels_in + num_layers * growth_rate`` channels.
    """
    fig, ax = plt.subplots(figsize=(1.9 * (num_layers + 2), 2.8))
    xs = np.arange(num_layers + 2) * 1.9
    names = ["input"] + [f"layer {i}" for i in range(1, num_layers + 1)] + ["output"]
    for i, (x, name) in enumerate(zip(xs, names, strict=True)):
        # layer i reads the block input and the i - 1 earlier outputs; the output box
        # holds the block input and all num_layers outputs
        c = channels_in + max(i - 1, 0) * growth_rate
        if i == num_layers + 1:
            c = channels_in + num_layers * growth_rate
        text = f"{name}\n{c} ch in" if 0 < i <= num_layers else f"{name}\n{c} ch"
        ax.text(x, 0, text, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.4", "fc": "#dbe9f6" if 0 < i <= num_layers
                      else "0.9", "ec": "0.4"})
        for j in range(i):
            rad = -0.35 if (i - j) > 1 else 0.0
            ax.annotate("", xy=(x - 0.5, 0.12 if rad else 0), xytext=(xs[j] + 0.5, 0.12 if rad else 0),
                        arrowprops={"arrowstyle": "->", "color": f"C{j}", "lw": 1,
                                    "connectionstyle": f"arc3,rad={rad}"})
    ax.set_xlim(-0.9, xs[-1] + 0.9)
    ax.set_ylim(-0.6, 1.6)
    ax.set_axis_off()
    ax.set_title(f"dense block: growth rate {growth_rate}, "
                 f"{(num_layers + 1) * (num_layers + 2) // 2} connections", fontsize=10)
    return _done(fig)


# --------------------------------------------------------------------------
# Architectures drawn from Keras models
# --------------------------------------------------------------------------


def _parents(layer: Any) -> list[Any]:
    nodes = getattr(layer, "_inbound_nodes", [])
    return [n.operation for n in nodes[0].parent_nodes] if nodes else []


def _describe(layer: Any) -> str:
    kind = type(layer).__name__
    if kind.startswith("Conv") and hasattr(layer, "filters"):
        k = "x".join(str(v) for v in layer.kernel_size)
        stride = "/2" if max(layer.strides) > 1 else ""
        return f"{k} conv{stride}, {layer.filters}"
    if "Pooling" in kind and hasattr(layer, "pool_size"):
        k = "x".join(str(v) for v in layer.pool_size)
        return f"{k} {'max' if 'Max' in kind else 'avg'} pool"
    names = {"Concatenate": "concatenate", "Add": "add  +", "BatchNormalization": "batch norm",
             "ZeroPadding2D": "zero pad", "InputLayer": "input"}
    if kind == "Activation":
        return getattr(layer.activation, "__name__", "activation")
    if kind == "ReLU":
        return "relu"
    if kind == "Dense":
        return f"dense, {layer.units}"
    return names.get(kind, kind)


def _nearest_common_ancestor(model: keras.Model, layer: Any) -> Any:
    order = {lay.name: i for i, lay in enumerate(model.layers)}

    def ancestors(start: Any) -> set[str]:
        seen, todo = {start.name}, [start]
        while todo:
            for p in _parents(todo.pop()):
                if p.name not in seen:
                    seen.add(p.name)
                    todo.append(p)
        return seen

    merge = layer
    while len(_parents(merge)) == 1:
        merge = _parents(merge)[0]
    common = set.intersection(*(ancestors(p) for p in _parents(merge)))
    return model.get_layer(max(common, key=order.__getitem__))


def _branch_layout(
    nodes: Sequence[str], edges: set[tuple[str, str]]
) -> dict[str, tuple[float, float]]:
    """Positions for a block drawing: one column per branch, merges centred below.

    ``nodes`` must be in topological order. A node's row is its longest path
    from the block input; a node continues its parent's column unless the parent
    splits into several branches; a merge sits between the branches it joins.
    """
    parents = {n: [a for a, b in edges if b == n] for n in nodes}
    merges = {n for n in nodes if len(parents[n]) > 1}
    children = {n: [b for b in nodes if n in parents[b] and b not in merges] for n in nodes}
    pos: dict[str, tuple[float, float]] = {}
    for n in nodes:
        ps = parents[n]
        row = 1 + max((-pos[p][1] for p in ps), default=-1)
        if not ps:
            x = 0.0
        elif n in merges:
            x = float(np.mean([pos[p][0] for p in ps]))
        else:
            siblings = children[ps[0]]
            x = pos[ps[0]][0] + siblings.index(n) - (len(siblings) - 1) / 2
        pos[n] = (x, -row)
    return pos


def plot_layer_graph(
    model: keras.Model,
    last: str,
    first: str | None = None,
    collapse: bool = True,
    title: str | None = None,
) -> Figure:
    """Draw the layers of a Keras model between two layers as a graph.

    ``first`` defaults to the layer where the branches that end in ``last``
    split (the block's input). With ``collapse`` a batch norm and activation
    that follow a convolution are folded into its box, as papers draw them.
    """
    end = model.get_layer(last)
    start = model.get_layer(first) if first else _nearest_common_ancestor(model, end)
    order = [lay.name for lay in model.layers]
    lo, hi = order.index(start.name), order.index(end.name)
    # nodes on a path start -> end: ancestors of end that descend from start
    keep = {start.name}
    for lay in model.layers[lo + 1:hi + 1]:
        if any(p.name in keep for p in _parents(lay)):
            keep.add(lay.name)
    needed, todo = {end.name}, [end]
    while todo:
        for p in _parents(todo.pop()):
            if p.name in keep and p.name not in needed:
                needed.add(p.name)
                todo.append(p)
    layers = [lay for lay in model.layers[lo:hi + 1] if lay.name in needed]
    label = {lay.name: _describe(lay) for lay in layers}
    label[start.name] = f"input {tuple(start.output.shape[1:])}"
    owner = {lay.name: lay.name for lay in layers}
    if collapse:
        for lay in layers:
            ps = [p for p in _parents(lay) if p.name in owner]
            kind = type(lay).__name__
            if lay is not end and len(ps) == 1 and kind in {"BatchNormalization", "Activation", "ReLU"}:
                head = owner[ps[0].name]
                if head != start.name and label[head].split(",")[0].endswith(("conv", "conv/2")):
                    owner[lay.name] = head
                    suffix = "BN" if kind == "BatchNormalization" else label[lay.name]
                    label[head] += f" + {suffix}"
    nodes = [lay for lay in layers if owner[lay.name] == lay.name]
    edges = set()
    for lay in layers:
        for p in _parents(lay):
            if p.name in owner and owner[p.name] != owner[lay.name]:
                edges.add((owner[p.name], owner[lay.name]))
    pos = _branch_layout([lay.name for lay in nodes], edges)
    xs = [x for x, _ in pos.values()]
    levels = 1 - min(y for _, y in pos.values())
    width = max(xs) - min(xs) + 1
    fig, ax = plt.subplots(figsize=(max(2.6 * width, 4.5), 0.85 * levels + 0.8))
    for a, b in edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        bend = 0.5 if (x0 == x1 and y0 - y1 > 1) else 0.0  # a skip drawn beside the path
        ax.annotate("", xy=(x1, y1 + 0.2), xytext=(x0, y0 - 0.2),
                    arrowprops={"arrowstyle": "->", "color": "0.3", "lw": 1,
                                "connectionstyle": f"arc3,rad={bend}"})
    for name, (x, y) in pos.items():
        kind = label[name].split(" ")[0]
        colour = {"input": "0.9", "concatenate": "#fde0c5", "add": "#fde0c5"}.get(kind, "#dbe9f6")
        ax.text(x, y, label[name], ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.35", "fc": colour, "ec": "0.4"})
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(-levels + 0.5, 0.5)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return _done(fig)


def plot_unet_feature_maps(maps: Sequence[tuple[str, tuple[int, ...], int]]) -> Figure:
    """The U of a U-Net: one box per block, height from its size, width from its channels.

    ``maps`` comes from :func:`dlcourse.architectures.unet_feature_maps`.
    """
    depth = (len(maps) - 1) // 2
    top = maps[0][1][0]
    fig, ax = plt.subplots(figsize=(10, 4.2))
    pos = {}
    for i, (name, size, channels) in enumerate(maps):
        level = i if i <= depth else 2 * depth - i
        x, y = i * 1.0, -level * 1.1
        h = 0.25 + 0.6 * size[0] / top
        w = 0.12 + 0.07 * np.log2(channels)
        ax.add_patch(patches.Rectangle((x - w / 2, y - h / 2), w, h, fc="#9ecae1", ec="k"))
        ax.text(x, y - h / 2 - 0.08, "x".join(map(str, size)) + f"\n{channels} ch",
                ha="center", va="top", fontsize=7.5)
        pos[name] = (x, y, w)
    for a, b in itertools.pairwise(maps):
        (x0, y0, w0), (x1, y1, w1) = pos[a[0]], pos[b[0]]
        style = "C3" if y1 < y0 else "C2"
        ax.annotate("", xy=(x1 - w1 / 2, y1), xytext=(x0 + w0 / 2, y0),
                    arrowprops={"arrowstyle": "->", "color": style, "lw": 1.5})
    for i in range(depth):
        (x0, y0, w0), (x1, _, w1) = pos[f"enc{i}"], pos[f"dec{i}"]
        ax.annotate("", xy=(x1 - w1 / 2, y0 + 0.05), xytext=(x0 + w0 / 2, y0 + 0.05),
                    arrowprops={"arrowstyle": "->", "color": "0.5", "ls": "--"})
    ax.plot([], [], color="C3", label="2x2 max pool, then conv block")
    ax.plot([], [], color="C2", label="2x upsample, then conv block")
    ax.plot([], [], color="0.5", ls="--", label="skip connection (concatenate)")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_xlim(-0.7, len(maps) - 0.3)
    ax.set_ylim(-depth * 1.1 - 1.1, 0.7)
    ax.set_axis_off()
    return _done(fig)


# --------------------------------------------------------------------------
# Localisation along a scan from per-slice predictions
# --------------------------------------------------------------------------


def plot_slice_probabilities(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    organs: Sequence[int] | None = None,
) -> Figure:
    """Per-slice class probabilities along a scan, with the true extent of each organ.

    ``probs`` is ``(slices, classes)`` in scan order (head first), ``labels``
    the true class per slice. Each organ gets a row: its probability curve and,
    shaded, the slices that truly show it; the predicted extent is the run of
    slices where that organ has the highest probability.
    """
    organs = list(range(1, len(class_names))) if organs is None else list(organs)
    z = np.arange(len(labels))
    fig, axes = plt.subplots(len(organs), 1, figsize=(7, 1.3 * len(organs) + 0.6), sharex=True,
                             squeeze=False)
    predicted = probs.argmax(1)
    for ax, organ in zip(axes[:, 0], organs, strict=True):
        colour = CLASS_COLOURS[organ] if organ < len(CLASS_COLOURS) else f"C{organ}"
        ax.fill_between(z, 0, 1, where=labels == organ, step="mid", color="0.85",
                        label="slices that show it")
        ax.plot(z, probs[:, organ], color=colour, lw=1.5, label="predicted probability")
        hits = z[predicted == organ]
        ax.plot(hits, np.full(hits.shape, 1.06), "|", color="k", ms=6, clip_on=False,
                label="highest-scoring class")
        ax.set_ylim(0, 1)
        ax.set_ylabel(class_names[organ], fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="upper right", ncol=3, bbox_to_anchor=(1, 1.6))
    axes[-1, 0].set_xlabel("slice position along the scan (head to feet)")
    return _done(fig)


def plot_volume_views(volumes: Mapping[str, tuple[np.ndarray, tuple[float, float, float]]]) -> Figure:
    """In-plane and through-plane views of volumes drawn at their true voxel spacing.

    ``volumes`` maps a name to ``(volume (z, y, x), spacing (z, y, x) in mm)``.
    Each volume gets its middle axial slice and its middle sagittal reformat,
    both with extents in millimetres, so thick slices show as steps.
    """
    fig, axes = plt.subplots(len(volumes), 2, figsize=(6, 3 * len(volumes)), squeeze=False)
    for row, (name, (vol, (dz, dy, dx))) in zip(axes, volumes.items(), strict=True):
        nz, ny, nx = vol.shape
        row[0].imshow(vol[nz // 2], cmap="gray", interpolation="nearest",
                      extent=(0, nx * dx, ny * dy, 0))
        row[0].set_title(f"{name}: in-plane slice", fontsize=9)
        row[1].imshow(vol[:, :, nx // 2], cmap="gray", interpolation="nearest",
                      extent=(0, ny * dy, nz * dz, 0))
        row[1].set_title(f"{name}: along the slices", fontsize=9)
        for ax in row:
            ax.set_xlabel("mm", fontsize=8)
            ax.set_ylabel("mm", fontsize=8)
            ax.tick_params(labelsize=7)
    return _done(fig)
