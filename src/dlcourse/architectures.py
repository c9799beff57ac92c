"""Architecture arithmetic for the lectures: parameters, receptive fields, cost.

The slides quote numbers (10,000 weights, 27 parameters, 138,357,544 for
VGG-16, the dilated network's table). The lectures recompute every one of them
from Keras models with the helpers here, so a student can check any number by
changing an argument instead of trusting a slide.

Only counting and small lecture-model builders live here; drawing lives in
:mod:`dlcourse.figures`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # keras is imported lazily: importing this module stays cheap
    import keras

__all__ = [
    "DILATED_NETWORK",
    "GOOGLENET_INCEPTION_MODULES",
    "IMAGENET_RESULTS",
    "LayerRow",
    "LayerSpec",
    "PublishedResult",
    "alexnet",
    "batchnorm_params",
    "conv_params",
    "count_params_by_row",
    "dense_params",
    "dilated_network",
    "feature_map_bytes",
    "format_layer_table",
    "layer_table",
    "lenet5",
    "multiply_adds",
    "recap_cnn",
    "receptive_fields",
    "receptive_fields_of_model",
    "sliding_window_cost",
    "small_unet",
    "unet_feature_maps",
]


# --------------------------------------------------------------------------
# Counting parameters
# --------------------------------------------------------------------------


def _as_tuple(kernel_size: int | Sequence[int], dims: int) -> tuple[int, ...]:
    if isinstance(kernel_size, int):
        return (kernel_size,) * dims
    return tuple(int(k) for k in kernel_size)


def dense_params(n_inputs: int, n_units: int, use_bias: bool = True) -> int:
    """Weights of a fully connected layer: every input meets every unit once."""
    return n_inputs * n_units + (n_units if use_bias else 0)


def conv_params(
    kernel_size: int | Sequence[int],
    c_in: int,
    c_out: int,
    use_bias: bool = True,
    dims: int = 2,
) -> int:
    """Weights of a convolution: one kernel per (input, output) channel pair.

    The count does not depend on the image size, which is the whole point of
    weight sharing. ``kernel_size`` is an int (square/cubic kernel in ``dims``
    dimensions) or a tuple such as ``(3, 3, 3)``; dilation adds no weights.
    """
    taps = math.prod(_as_tuple(kernel_size, dims))
    return taps * c_in * c_out + (c_out if use_bias else 0)


def batchnorm_params(channels: int) -> int:
    """Batch normalisation stores four numbers per channel.

    Two are trained (scale, offset) and two are running statistics (mean,
    variance); Keras' ``count_params`` and the slides count all four.
    """
    return 4 * channels


def feature_map_bytes(spatial: Sequence[int], channels: int, bytes_per_value: int = 4) -> int:
    """Memory of one feature map of one image (float32 by default)."""
    return math.prod(spatial) * channels * bytes_per_value


# --------------------------------------------------------------------------
# Receptive fields
# --------------------------------------------------------------------------


def receptive_fields(
    kernel_sizes: Sequence[int],
    dilations: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> list[int]:
    """Receptive field (in input pixels, along one axis) after each layer.

    A layer with kernel ``k`` and dilation ``d`` widens the field by
    ``(k - 1) * d`` steps of the current input spacing; a stride multiplies
    that spacing for every later layer.
    """
    n = len(kernel_sizes)
    dilations = [1] * n if dilations is None else list(dilations)
    strides = [1] * n if strides is None else list(strides)
    if len(dilations) != n or len(strides) != n:
        raise ValueError(
            f"kernel_sizes ({n}), dilations ({len(dilations)}) and strides "
            f"({len(strides)}) must have the same length"
        )
    field, jump, out = 1, 1, []
    for k, d, s in zip(kernel_sizes, dilations, strides, strict=True):
        if k < 1 or d < 1 or s < 1:
            raise ValueError(f"kernel, dilation and stride must be >= 1, got {k}, {d}, {s}")
        field += (k - 1) * d * jump
        jump *= s
        out.append(field)
    return out


def _first(value: Any) -> int:
    return int(value[0]) if isinstance(value, (tuple, list)) else int(value)


def _parents(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    nodes = getattr(layer, "_inbound_nodes", [])
    if not nodes:
        return []
    return [node.operation for node in nodes[0].parent_nodes]


def _window(layer: keras.layers.Layer) -> tuple[int, int, int] | None:
    """(kernel, dilation, stride) along the first spatial axis, or None."""
    if hasattr(layer, "kernel_size") and hasattr(layer, "strides"):
        dilation = _first(getattr(layer, "dilation_rate", 1))
        return _first(layer.kernel_size), dilation, _first(layer.strides)
    if hasattr(layer, "pool_size") and hasattr(layer, "strides"):
        return _first(layer.pool_size), 1, _first(layer.strides)
    return None


def receptive_fields_of_model(model: keras.Model) -> dict[str, int]:
    """Receptive field of every layer of a Keras model, read from its graph.

    Works on branching models too (inception, residual): where paths merge, the
    widest field wins. Layers without a window (activations, batch
    normalisation, add, concatenate) pass the field of their input on.
    """
    field: dict[str, int] = {}
    jump: dict[str, int] = {}
    for layer in model.layers:
        parents = [p for p in _parents(layer) if p.name in field]
        f_in = max((field[p.name] for p in parents), default=1)
        j_in = max((jump[p.name] for p in parents), default=1)
        window = _window(layer)
        if window is None:
            field[layer.name], jump[layer.name] = f_in, j_in
        else:
            k, d, s = window
            field[layer.name] = f_in + (k - 1) * d * j_in
            jump[layer.name] = j_in * s
    return field


# --------------------------------------------------------------------------
# Tables the way the slides count them
# --------------------------------------------------------------------------


def count_params_by_row(model: keras.Model) -> list[tuple[str, int]]:
    """Parameters per weight layer, a batch norm added to the layer it follows.

    Keras lists a convolution and its batch normalisation as two layers; papers
    and slides usually count them as one row. Layers without weights are left
    out.
    """
    rows: list[list[Any]] = []
    index: dict[str, int] = {}
    for layer in model.layers:
        n = layer.count_params()
        if n == 0:
            continue
        parents = _parents(layer)
        is_bn = type(layer).__name__ == "BatchNormalization"
        if is_bn and len(parents) == 1 and parents[0].name in index:
            rows[index[parents[0].name]][1] += n
            index[layer.name] = index[parents[0].name]
            continue
        index[layer.name] = len(rows)
        rows.append([layer.name, n])
    return [(name, int(n)) for name, n in rows]


@dataclass(frozen=True)
class LayerRow:
    """One row of a layer table such as the dilated network's slide."""

    name: str
    kernel: int
    dilation: int
    field: int
    channels: int
    params: int


def layer_table(model: keras.Model) -> list[LayerRow]:
    """One row per convolution: kernel, dilation, receptive field, channels, params.

    Parameters follow :func:`count_params_by_row` (a batch norm counts with its
    convolution), receptive fields follow :func:`receptive_fields_of_model`.
    """
    fields = receptive_fields_of_model(model)
    params = dict(count_params_by_row(model))
    rows = []
    for layer in model.layers:
        if layer.name not in params or not hasattr(layer, "kernel_size"):
            continue
        k, d, _ = _window(layer)  # type: ignore[misc]
        rows.append(
            LayerRow(layer.name, k, d, fields[layer.name], int(layer.filters), params[layer.name])
        )
    return rows


def format_layer_table(rows: Iterable[LayerRow]) -> str:
    """The table laid out like the slide: one column per layer."""
    rows = list(rows)
    lines = {
        "Layer": [str(i + 1) for i in range(len(rows))],
        "Convolution": [f"{r.kernel}x{r.kernel}" for r in rows],
        "Dilation": [str(r.dilation) for r in rows],
        "Field": [f"{r.field}x{r.field}" for r in rows],
        "Channels": [str(r.channels) for r in rows],
        "Parameters": [f"{r.params:,}" for r in rows],
    }
    width = max(len(c) for cells in lines.values() for c in cells)
    head = max(len(h) for h in lines)
    return "\n".join(
        f"{h:<{head}}  " + " ".join(c.rjust(width) for c in cells) for h, cells in lines.items()
    )


# --------------------------------------------------------------------------
# Two classic networks, for counting
# --------------------------------------------------------------------------


def lenet5(input_shape: tuple[int, int, int] = (32, 32, 1), classes: int = 10) -> keras.Model:
    """A LeNet-5-like network (LeCun et al., 1998), for its parameter count.

    Simplified the usual way: every C3 map sees all S2 maps, average pooling
    without weights, a plain dense output instead of RBF units.
    """
    import keras

    layers = keras.layers
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(6, 5, activation="tanh", name="C1"),
        layers.AveragePooling2D(2, name="S2"),
        layers.Conv2D(16, 5, activation="tanh", name="C3"),
        layers.AveragePooling2D(2, name="S4"),
        layers.Flatten(),
        layers.Dense(120, activation="tanh", name="C5"),
        layers.Dense(84, activation="tanh", name="F6"),
        layers.Dense(classes, activation="softmax", name="output"),
    ], name="lenet5")


def recap_cnn(input_shape: tuple[int, int, int] = (64, 64, 1), classes: int = 4) -> keras.Model:
    """The three-part CNN of the recap (convolution, subsampling, dense), for CT slices in HU.

    Lecture 1 trains it to introduce the recipe; lecture 5 trains it again for
    the closing demo, so both use this one definition.
    """
    import keras

    layers = keras.layers
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Rescaling(1 / 1000),               # Hounsfield units to roughly [-1, 1]
        layers.Conv2D(16, 3, activation="relu"),  # convolution -> 16 feature maps
        layers.MaxPooling2D(2),                   # subsampling
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),      # fully connected classifier
        layers.Dense(classes, activation="softmax"),
    ], name="recap_cnn")


def alexnet(input_shape: tuple[int, int, int] = (227, 227, 3), classes: int = 1000) -> keras.Model:
    """AlexNet (Krizhevsky et al., 2012) as one tower, for its parameter count.

    The original split most layers over two GPUs, which removes some
    connections; this single-tower version has slightly more weights. Local
    response normalisation is left out (it has no weights).
    """
    import keras

    layers = keras.layers
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(96, 11, strides=4, activation="relu", name="conv1"),
        layers.MaxPooling2D(3, 2, name="pool1"),
        layers.Conv2D(256, 5, padding="same", activation="relu", name="conv2"),
        layers.MaxPooling2D(3, 2, name="pool2"),
        layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3"),
        layers.Conv2D(384, 3, padding="same", activation="relu", name="conv4"),
        layers.Conv2D(256, 3, padding="same", activation="relu", name="conv5"),
        layers.MaxPooling2D(3, 2, name="pool5"),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(4096, activation="relu", name="fc6"),
        layers.Dropout(0.5),
        layers.Dense(4096, activation="relu", name="fc7"),
        layers.Dense(classes, activation="softmax", name="fc8"),
    ], name="alexnet")


# --------------------------------------------------------------------------
# GoogLeNet's table
# --------------------------------------------------------------------------

#: The nine inception modules of GoogLeNet (Szegedy et al., "Going deeper with
#: convolutions", CVPR 2015, Table 1): name -> (input channels, filters), with
#: filters in the table's order (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj).
GOOGLENET_INCEPTION_MODULES: dict[str, tuple[int, tuple[int, int, int, int, int, int]]] = {
    "3a": (192, (64, 96, 128, 16, 32, 32)),
    "3b": (256, (128, 128, 192, 32, 96, 64)),
    "4a": (480, (192, 96, 208, 16, 48, 64)),
    "4b": (512, (160, 112, 224, 24, 64, 64)),
    "4c": (512, (128, 128, 256, 24, 64, 64)),
    "4d": (512, (112, 144, 288, 32, 64, 64)),
    "4e": (528, (256, 160, 320, 32, 128, 128)),
    "5a": (832, (256, 160, 320, 32, 128, 128)),
    "5b": (832, (384, 192, 384, 48, 128, 128)),
}


# --------------------------------------------------------------------------
# The dilated network of the slides
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    """One convolution of a plain stack: size, dilation, width, bias or batch norm."""

    kernel: int
    dilation: int
    channels: int
    batch_norm: bool = False


#: The ten-layer dilated network on the slides (Wolterink et al., "Dilated
#: convolutional neural networks for cardiovascular MR segmentation in
#: congenital heart disease", RAMBO/HVSMR workshop at MICCAI 2016, LNCS 10129,
#: 2017): 3x3 convolutions with dilations doubling to 32, then 1x1 layers; layers
#: 8 and 9 use batch normalisation instead of a bias; three output classes.
DILATED_NETWORK: tuple[LayerSpec, ...] = (
    LayerSpec(3, 1, 32),
    LayerSpec(3, 1, 32),
    LayerSpec(3, 2, 32),
    LayerSpec(3, 4, 32),
    LayerSpec(3, 8, 32),
    LayerSpec(3, 16, 32),
    LayerSpec(3, 32, 32),
    LayerSpec(3, 1, 32, batch_norm=True),
    LayerSpec(1, 1, 192, batch_norm=True),
    LayerSpec(1, 1, 3),
)


def dilated_network(
    input_shape: tuple[int | None, int | None, int] = (None, None, 1),
    spec: Sequence[LayerSpec] = DILATED_NETWORK,
    padding: str = "valid",
    name: str = "dilated_cnn",
) -> keras.Model:
    """Build a plain stack of (dilated) convolutions, softmax over the last layer.

    With ``padding="valid"`` the network is fully convolutional: a patch as
    large as the receptive field gives one output pixel, a larger image gives a
    whole map at once. Layers are named ``layer1``, ``layer2``, ...; a batch
    norm is ``layer<i>_bn``.
    """
    import keras

    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i, s in enumerate(spec, start=1):
        last = i == len(spec)
        x = keras.layers.Conv2D(
            s.channels,
            s.kernel,
            dilation_rate=s.dilation,
            padding=padding,
            use_bias=not s.batch_norm,
            name=f"layer{i}",
        )(x)
        if s.batch_norm:
            x = keras.layers.BatchNormalization(name=f"layer{i}_bn")(x)
        x = keras.layers.Activation("softmax" if last else "relu", name=f"layer{i}_act")(x)
    return keras.Model(inputs, x, name=name)


# --------------------------------------------------------------------------
# Cost: multiply-adds, sliding window versus fully convolutional
# --------------------------------------------------------------------------


def multiply_adds(model: keras.Model) -> int:
    """Multiply-adds of one forward pass of one image (convolutions and dense layers).

    Needs a model built for a fixed input size. A convolution costs one
    multiply-add per weight per output position, so cost grows with the output
    size even though the parameter count does not.
    """
    total = 0
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a nested model, e.g. ConvNeXt's downsampling stages
            total += multiply_adds(layer)
            continue
        kind = type(layer).__name__
        if kind in {"Conv1D", "Conv2D", "Conv3D"}:
            out = layer.output.shape
            positions = math.prod(int(v) for v in out[1:-1])
            c_in = int(layer.input.shape[-1]) // int(getattr(layer, "groups", 1))
            total += positions * math.prod(layer.kernel_size) * c_in * int(layer.filters)
        elif kind == "DepthwiseConv2D":
            out = layer.output.shape
            total += math.prod(int(v) for v in out[1:]) * math.prod(layer.kernel_size)
        elif kind == "SeparableConv2D":  # depthwise k x k per channel, then pointwise 1x1
            out = layer.output.shape
            positions = math.prod(int(v) for v in out[1:-1])
            c_in = int(layer.input.shape[-1]) * int(layer.depth_multiplier)
            total += positions * c_in * (math.prod(layer.kernel_size) + int(layer.filters))
        elif kind == "Dense":  # applied at every position when the input is a feature map
            positions = math.prod(int(v) for v in layer.input.shape[1:-1])
            total += positions * int(layer.input.shape[-1]) * int(layer.units)
    return total


def sliding_window_cost(
    build: Callable[[tuple[int, int, int]], keras.Model],
    field: int,
    image_sizes: Sequence[int],
    channels: int = 1,
) -> tuple[list[int], list[int]]:
    """Multiply-adds to label every pixel of square images, two ways.

    ``build(shape)`` returns the network for an input shape; ``field`` is its
    receptive field. Sliding window: one ``field x field`` patch per pixel.
    Fully convolutional: the whole (padded) image once, so neighbouring pixels
    share their intermediate results.
    """
    per_patch = multiply_adds(build((field, field, channels)))
    sliding, dense = [], []
    for n in image_sizes:
        sliding.append(per_patch * n * n)
        dense.append(multiply_adds(build((n + field - 1, n + field - 1, channels))))
    return sliding, dense


# --------------------------------------------------------------------------
# U-Net shapes and a small lecture U-Net
# --------------------------------------------------------------------------


def unet_feature_maps(
    input_size: Sequence[int] = (256, 256),
    depth: int = 4,
    base_filters: int = 64,
) -> list[tuple[str, tuple[int, ...], int]]:
    """(name, spatial size, channels) of every block of a U-Net, input to output.

    Each pooling halves every spatial axis and the next block doubles the
    channels; the decoder mirrors the encoder. Works for 2D and 3D sizes.
    """
    size = tuple(int(s) for s in input_size)
    if any(s % 2**depth for s in size):
        raise ValueError(f"input size {size} is not divisible by 2**depth = {2**depth}")
    maps = []
    for i in range(depth):
        maps.append((f"enc{i}", tuple(s // 2**i for s in size), base_filters * 2**i))
    maps.append(("bottleneck", tuple(s // 2**depth for s in size), base_filters * 2**depth))
    for i in reversed(range(depth)):
        maps.append((f"dec{i}", tuple(s // 2**i for s in size), base_filters * 2**i))
    return maps


def small_unet(
    input_shape: tuple[int, ...],
    num_classes: int,
    depth: int = 2,
    base_filters: int = 8,
) -> keras.Model:
    """A small encoder-decoder with skip connections, fast enough to train in a lecture.

    Each level holds two 3x3 convolutions with ReLU; the decoder upsamples by
    nearest neighbour and concatenates the encoder features of the same size.
    Works for 2D inputs ``(H, W, C)`` and 3D inputs ``(D, H, W, C)``.
    """
    import keras

    dims = len(input_shape) - 1
    conv = keras.layers.Conv2D if dims == 2 else keras.layers.Conv3D
    pool = keras.layers.MaxPooling2D if dims == 2 else keras.layers.MaxPooling3D
    up = keras.layers.UpSampling2D if dims == 2 else keras.layers.UpSampling3D

    def block(x: Any, filters: int) -> Any:
        for _ in range(2):
            x = conv(filters, 3, padding="same", activation="relu")(x)
        return x

    inputs = keras.Input(input_shape)
    x, skips = inputs, []
    for i in range(depth):
        x = block(x, base_filters * 2**i)
        skips.append(x)
        x = pool(2)(x)
    x = block(x, base_filters * 2**depth)
    for i in reversed(range(depth)):
        x = keras.layers.Concatenate()([up(2)(x), skips[i]])
        x = block(x, base_filters * 2**i)
    outputs = conv(num_classes, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=f"small_unet_{dims}d")


# --------------------------------------------------------------------------
# Published ImageNet results for the complexity-versus-accuracy plot
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedResult:
    """A top-1 ImageNet (ILSVRC-2012 validation) accuracy and where it was published."""

    keras_name: str  # constructor in keras.applications
    label: str
    top1: float  # percent
    evaluation: str  # test-time protocol, which differs between papers
    reference: str


#: Top-1 accuracies as the architecture papers report them. Protocols differ
#: (single centre crop versus ten crops), so differences of about one percent
#: between rows from different papers mean little.
IMAGENET_RESULTS: tuple[PublishedResult, ...] = (
    PublishedResult("VGG16", "VGG-16", 71.93, "10-crop",
                    "He et al., Deep residual learning, CVPR 2016, Table 3"),
    PublishedResult("ResNet50", "ResNet-50", 77.15, "10-crop",
                    "He et al., Deep residual learning, CVPR 2016, Table 3"),
    PublishedResult("ResNet101", "ResNet-101", 78.25, "10-crop",
                    "He et al., Deep residual learning, CVPR 2016, Table 3"),
    PublishedResult("ResNet152", "ResNet-152", 78.57, "10-crop",
                    "He et al., Deep residual learning, CVPR 2016, Table 3"),
    PublishedResult("InceptionV3", "Inception-v3", 78.8, "single crop",
                    "Szegedy et al., Rethinking the Inception architecture, CVPR 2016"),
    PublishedResult("InceptionResNetV2", "Inception-ResNet-v2", 80.1, "single crop",
                    "Szegedy et al., Inception-v4, Inception-ResNet, AAAI 2017"),
    PublishedResult("Xception", "Xception", 79.0, "single crop",
                    "Chollet, Xception, CVPR 2017"),
    PublishedResult("DenseNet121", "DenseNet-121", 74.98, "single crop",
                    "Huang et al., Densely connected convolutional networks, CVPR 2017, Table 3"),
    PublishedResult("DenseNet201", "DenseNet-201", 77.42, "single crop",
                    "Huang et al., Densely connected convolutional networks, CVPR 2017, Table 3"),
    PublishedResult("MobileNet", "MobileNet", 70.6, "single crop",
                    "Howard et al., MobileNets, arXiv 2017"),
    PublishedResult("MobileNetV2", "MobileNetV2", 72.0, "single crop",
                    "Sandler et al., MobileNetV2, CVPR 2018"),
    PublishedResult("ConvNeXtTiny", "ConvNeXt-T", 82.1, "single crop",
                    "Liu et al., A ConvNet for the 2020s, CVPR 2022"),
)
