"""Every lecture figure draws with the Agg backend and shows the right numbers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from dlcourse import architectures as arch
from dlcourse import figures


@pytest.fixture(scope="module")
def keras():
    from dlcourse import runtime

    runtime.setup()
    import keras

    return keras


def _texts(fig: Figure) -> str:
    parts = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    return "\n".join(parts)


def _check(fig: Figure) -> Figure:
    assert isinstance(fig, Figure)
    assert fig.number not in plt.get_fignums()  # closed: a notebook shows it once
    fig.canvas.draw()
    return fig


def test_receptive_field_2d_titles() -> None:
    fig = _check(figures.plot_receptive_field_2d((1, 2, 4)))
    text = _texts(fig)
    for field in ("3x3", "7x7", "15x15"):
        assert f"field {field}" in text


def test_receptive_field_1d() -> None:
    fig = _check(figures.plot_receptive_field_1d([1, 2, 4, 8]))
    assert "16 input steps" in _texts(fig)
    fig = _check(figures.plot_receptive_field_1d([1, 2], kernel_size=3, causal=False))
    assert "7 input steps" in _texts(fig)


def test_unrolled_rnn() -> None:
    text = _texts(_check(figures.plot_unrolled_rnn(steps=3)))
    assert "$x_3$" in text and "$h_t$" in text


def test_lstm_gates_match_keras(keras) -> None:
    layer = keras.layers.LSTM(5, return_sequences=True)
    x = np.sin(np.linspace(0, 6, 40, dtype="float32"))[:, None]
    h = layer(x[None])[0].numpy()
    traces = figures._lstm_gate_traces(layer, x)
    assert traces["forget"].shape == (40, 5)
    # the traces reproduce Keras' own hidden state
    np.testing.assert_allclose(traces["output"] * np.tanh(traces["cell"]), h, atol=1e-5)
    fig = _check(figures.plot_lstm_gates(x, layer, sampling_rate=10, signal_name="PPG"))
    assert "forget gate" in _texts(fig) and "time (s)" in _texts(fig)


def test_layer_graph_inception_block(keras) -> None:
    x = keras.Input((16, 16, 8))
    stem = keras.layers.Conv2D(8, 3, padding="same", name="stem")(x)
    a = keras.layers.Conv2D(4, 1, name="a")(stem)
    b = keras.layers.Conv2D(2, 1, name="b_reduce")(stem)
    b = keras.layers.BatchNormalization(name="b_bn")(b)
    b = keras.layers.Activation("relu", name="b_relu")(b)
    b = keras.layers.Conv2D(4, 3, padding="same", name="b")(b)
    p = keras.layers.MaxPooling2D(3, 1, padding="same", name="pool")(stem)
    out = keras.layers.Concatenate(name="cat")([a, b, p])
    model = keras.Model(x, out)
    fig = _check(figures.plot_layer_graph(model, "cat", title="block"))
    text = _texts(fig)
    assert "input (16, 16, 8)" in text  # the block starts where the branches split
    assert "1x1 conv, 2 + BN + relu" in text  # batch norm and ReLU folded into the conv
    assert "3x3 max pool" in text and "concatenate" in text
    assert "stem" not in text and "3x3 conv, 8" not in text
    pos = figures._branch_layout(["s", "a", "b", "m"], {("s", "a"), ("s", "b"), ("a", "m"),
                                                        ("b", "m")})
    assert pos["m"] == (0.0, -2) and pos["a"][0] == -pos["b"][0]


def test_layer_graph_resnet(keras) -> None:
    resnet = keras.applications.ResNet50(weights=None)
    text = _texts(_check(figures.plot_layer_graph(resnet, "conv2_block1_out")))
    assert "input (56, 56, 64)" in text and "add" in text and "1x1 conv, 256 + BN" in text


def test_dense_connectivity() -> None:
    text = _texts(_check(figures.plot_dense_connectivity(4, 32, 64)))
    # layer i reads 64 + (i - 1) * 32 channels; the block ends with 64 + 4 * 32
    for label in ("layer 1\n64 ch in", "layer 4\n160 ch in", "output\n192 ch"):
        assert label in text
    assert "224 ch" not in text and "15 connections" in text


def test_unet_feature_maps() -> None:
    fig = _check(figures.plot_unet_feature_maps(arch.unet_feature_maps((64, 64), 2, 16)))
    text = _texts(fig)
    assert "16x16\n64 ch" in text and "skip connection" in text


def test_curves_and_comparisons() -> None:
    _check(figures.plot_curves({"plain": [1, 0.1, 0.01], "residual": [1, 0.8, 0.7]},
                               "layer", "gradient", logy=True, title="t"))
    fig = _check(figures.plot_complexity_vs_accuracy([1e6, 1e8], [70.0, 75.0], ["a", "b"],
                                                     multiply_adds=[1e9, 2e9]))
    assert "a" in _texts(fig)
    fig = _check(figures.plot_complexity_vs_accuracy(
        [1e6, 1.1e6, 1e8], [70.0, 70.1, 75.0], ["first", "second", "third"],
        multiply_adds=[1e9, 1e9, 2e9], evaluation=["10-crop", "single crop", "single crop"]))
    text = _texts(fig)
    assert "10-crop evaluation" in text and "single crop evaluation" in text
    assert "5 G multiply-adds" in text  # a legend for the marker area
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    boxes = [t.get_window_extent(renderer) for t in fig.axes[0].texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    fig = _check(figures.plot_curves({"plain": [0.0, 1e-3, 1.0]}, "layer", "g", logy=True))
    assert "plain: exactly 0 (1 points)" in _texts(fig)
    fig = _check(figures.plot_runs({"a": [[1, 0.5], [1.2, 0.4]], "b": [[1, 0.9], [1, 0.8]]},
                                   "epoch", "loss"))
    assert "a (mean of 2 seeds)" in _texts(fig)
    fig = _check(figures.plot_cost_comparison([16, 32], [1e9, 4e9], [1e7, 2e7]))
    assert "100x" in _texts(fig)
    fig = _check(figures.plot_memory_growth([32, 64], [1e6, 4e6], [3e7, 2.4e8],
                                            {"net": (100, 280)}))
    assert "x2.8" in _texts(fig)


def test_images_and_patches() -> None:
    rng = np.random.default_rng(0)
    images = rng.random((2, 32, 32, 1)).astype("float32")
    masks = rng.integers(0, 4, (2, 32, 32))
    names = ("background", "left ventricle", "myocardium", "right ventricle")
    _check(figures.plot_images(list(images), titles=["a", "b"]))
    fig = _check(figures.plot_patches(images[0], masks[0], [(5, 5), (16, 20)], 11, names))
    assert f"label: {names[masks[0][5, 5]]}" in _texts(fig)
    fig = _check(figures.plot_connectivity(rng.random((100, 100))))
    assert "10,000 weights" in _texts(fig) and "121 weights" in _texts(fig)
    assert "1x1 pixel" in _texts(fig)  # the single pixel is pointed out


def test_patch_boxes_take_their_label_colour() -> None:
    from matplotlib.colors import to_hex

    image = np.zeros((32, 32), "float32")
    mask = np.zeros((32, 32), int)
    mask[10:20, 10:20] = 1
    names = ("background", "left ventricle")
    fig = _check(figures.plot_patches(image, mask, [(15, 15), (2, 2)], 11, names))
    boxes = [p for p in fig.axes[0].patches]
    assert to_hex(boxes[0].get_edgecolor()) == figures.CLASS_COLOURS[1]
    assert to_hex(boxes[1].get_edgecolor()) != figures.CLASS_COLOURS[1]
    assert "zero" in _texts(fig)


def test_slice_probabilities_and_volume_views() -> None:
    probs = np.eye(4)[[1, 1, 2, 2, 3, 0]].astype(float)
    labels = np.array([1, 1, 2, 2, 3, 0])
    fig = _check(figures.plot_slice_probabilities(probs, labels, ("none", "a", "b", "c")))
    assert len(fig.axes) == 3
    vol = np.zeros((4, 8, 8), "float32")
    fig = _check(figures.plot_volume_views({"v": (vol, (5.0, 1.0, 1.0))}))
    assert "v: along the slices" in _texts(fig)
