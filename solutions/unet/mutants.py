"""Typical mistakes (mutants) and alternative correct solutions for `unet`.

Each entry replaces one solution cell. Mutants must lose marks on their own
grade_id only; alternatives must keep full marks.
"""

from dlcourse.authoring.mutants import alternative as _correct
from dlcourse.authoring.mutants import mutant as _mutant

# --- receptive_field ----------------------------------------------------------------

_RF = '''
def receptive_field(kernel_sizes, dilations):
    if len(kernel_sizes) != len(dilations):
        raise ValueError("lengths differ")
    fields, field = [], {start}
    for k, d in zip(kernel_sizes, dilations):
        field {update}
        fields.append(field)
    return fields
'''


def _rf(start="1", update="+= (k - 1) * d"):
    return _RF.format(start=start, update=update)


# --- build_unet: a correct U-Net with its pieces as parameters ----------------------

_UNET = '''
def build_unet(input_shape, num_classes, depth=4, base_filters=16):
    if input_shape[0] % 2**depth or input_shape[1] % 2**depth:
        raise ValueError(f"{{input_shape[0]}}x{{input_shape[1]}} not divisible by {{2**depth}}")
    L = keras.layers

    def block(x, filters, name):
        for i in (1, 2):
            x = L.Conv2D(filters, 3, padding="same", use_bias={bias}, name=f"{{name}}_conv{{i}}")(x)
            {norm_act}
        return x

    inputs = keras.Input(input_shape)
    x, skips = inputs, []
    for i in range(depth):
        x = block(x, {enc_filters}, f"enc{{i}}")
        {pool_and_skip}
    x = block(x, {bottleneck_filters}, "bottleneck")
    for i in reversed(range(depth)):
        up = {upsample}
        x = L.Concatenate()({order})
        x = block(x, base_filters * 2**i, f"dec{{i}}")
    return keras.Model(inputs, {head})
'''
_PARTS = {
    "bias": "False",
    "norm_act": 'x = L.ReLU()(L.BatchNormalization(name=f"{name}_bn{i}")(x))',
    "enc_filters": "base_filters * 2**i",
    "pool_and_skip": "skips.append(x)\n        x = L.MaxPooling2D(2)(x)",
    "bottleneck_filters": "base_filters * 2**depth",
    "upsample": 'L.Conv2DTranspose(base_filters * 2**i, 2, strides=2, name=f"dec{i}_up")(x)',
    "order": "[up, skips[i]]",
    "head": 'L.Conv2D(num_classes, 1, activation="softmax", name="head")(x)',
}


def _unet(**changes):
    return _UNET.format(**{**_PARTS, **changes})


# --- dice_coefficient ---------------------------------------------------------------

_DICE = '''
def dice_coefficient(y_true, y_pred, eps=1e-7):
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    axes = {axes}
    inter = np.sum(t * p, axis=axes)
    total = {total}
    return float(np.mean({ratio}))
'''
_DICE_PARTS = {"axes": "(0, 1, 2)", "total": "np.sum(t, axis=axes) + np.sum(p, axis=axes)",
               "ratio": "(2 * inter + eps) / (total + eps)"}


def _dice(**changes):
    return _DICE.format(**{**_DICE_PARTS, **changes})


# --- fully_convolutional ------------------------------------------------------------

_FCN = '''
def fully_convolutional(patch_model):
    inputs = keras.Input((None, None, 1))
    x, grid = inputs, None
    for layer in patch_model.layers[1:]:
        if isinstance(layer, keras.layers.Flatten):
            grid = tuple(layer.input.shape[1:])
            continue
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            size = grid[:2] if grid else (1, 1)
            conv = keras.layers.Conv2D(layer.units, size, activation={activation})
            x = conv(x)
            conv.set_weights([{kernel}, bias])
            grid = None
        else:
            x = layer(x)
    return keras.Model(inputs, x)
'''


def _fcn(activation="layer.activation", kernel="kernel.reshape(*size, -1, layer.units)"):
    return _FCN.format(activation=activation, kernel=kernel)


IMPLEMENTATIONS = [
    # --- receptive_field ------------------------------------------------------------
    _mutant("dilation ignored", "receptive_field", _rf(update="+= k - 1")),
    _mutant("field starts at 0", "receptive_field", _rf(start="0")),
    _mutant("dilated kernel spans k * d pixels", "receptive_field", _rf(update="+= k * d - 1")),
    _mutant("dilation multiplies the field", "receptive_field", _rf(update="= field * d + k - 1")),
    _mutant("no ValueError for unequal lengths", "receptive_field", '''
def receptive_field(kernel_sizes, dilations):
    fields, field = [], 1
    for k, d in zip(kernel_sizes, dilations):
        field += (k - 1) * d
        fields.append(field)
    return fields
'''),
    _mutant("only the final field", "receptive_field", '''
def receptive_field(kernel_sizes, dilations):
    if len(kernel_sizes) != len(dilations):
        raise ValueError("lengths differ")
    return 1 + sum((k - 1) * d for k, d in zip(kernel_sizes, dilations))
'''),
    _mutant("borrows the lectures' helper", "receptive_field", '''
def receptive_field(kernel_sizes, dilations):
    from dlcourse.architectures import receptive_fields
    if len(kernel_sizes) != len(dilations):
        raise ValueError("lengths differ")
    return receptive_fields(kernel_sizes, dilations)
'''),
    _correct("itertools.accumulate", "receptive_field", '''
def receptive_field(kernel_sizes, dilations):
    from itertools import accumulate
    if len(kernel_sizes) != len(dilations):
        raise ValueError(f"{len(kernel_sizes)} != {len(dilations)}")
    return list(accumulate(((k - 1) * d for k, d in zip(kernel_sizes, dilations)), initial=1))[1:]
'''),
    _correct("recursive, numpy ints", "receptive_field", '''
def receptive_field(kernel_sizes, dilations):
    if len(kernel_sizes) != len(dilations):
        raise ValueError("kernel_sizes and dilations differ in length")
    if not kernel_sizes:
        return []
    before = receptive_field(kernel_sizes[:-1], dilations[:-1])
    last = before[-1] if before else 1
    return before + [np.int64(last + (kernel_sizes[-1] - 1) * dilations[-1])]
'''),
    # --- fully_convolutional --------------------------------------------------------
    _mutant("dense kernel reshaped channels-first", "fully_convolutional",
            _fcn(kernel="kernel.reshape(-1, *size, layer.units).transpose(1, 2, 0, 3)")),
    _mutant("activations dropped", "fully_convolutional", _fcn(activation="None")),
    _correct("fresh layers for everything", "fully_convolutional", '''
def fully_convolutional(patch_model):
    inputs = keras.Input((None, None, 1))
    x = inputs
    pending = []
    flat_shape = None
    for layer in patch_model.layers[1:]:
        config = layer.get_config()
        if isinstance(layer, keras.layers.Flatten):
            flat_shape = layer.input.shape[1:]
            continue
        if isinstance(layer, keras.layers.Dense):
            k, b = layer.get_weights()
            h, w, c = flat_shape if flat_shape is not None else (1, 1, k.shape[0])
            new = keras.layers.Conv2D(layer.units, (h, w), activation=config["activation"])
            x = new(x)
            new.set_weights([k.reshape(h, w, c, layer.units), b])
            flat_shape = None
        else:
            new = type(layer).from_config(config)
            x = new(x)
            if layer.weights:
                new.set_weights(layer.get_weights())
    return keras.Model(inputs, x)
'''),
    # --- build_unet -----------------------------------------------------------------
    _mutant("skip taken after pooling", "build_unet",
            _unet(pool_and_skip="x = L.MaxPooling2D(2)(x)\n        skips.append(x)")),
    _mutant("concatenation order [skip, up]", "build_unet", _unet(order="[skips[i], up]")),
    _mutant("upsampling by UpSampling2D + Conv2D", "build_unet",
            _unet(upsample='L.Conv2D(base_filters * 2**i, 2, padding="same", name=f"dec{i}_up")'
                           '(L.UpSampling2D(2)(x))')),
    _mutant("ReLU on the transposed convolution", "build_unet",
            _unet(upsample='L.Conv2DTranspose(base_filters * 2**i, 2, strides=2, activation="relu", '
                           'name=f"dec{i}_up")(x)')),
    _mutant("sigmoid head", "build_unet",
            _unet(head='L.Conv2D(num_classes, 1, activation="sigmoid", name="head")(x)')),
    _mutant("ReLU before batch norm", "build_unet",
            _unet(norm_act='x = L.BatchNormalization(name=f"{name}_bn{i}")(L.ReLU()(x))')),
    _mutant("average pooling", "build_unet",
            _unet(pool_and_skip="skips.append(x)\n        x = L.AveragePooling2D(2)(x)")),
    _mutant("filters do not double", "build_unet", _unet(enc_filters="base_filters")),
    _mutant("bottleneck as wide as the last level", "build_unet",
            _unet(bottleneck_filters="base_filters * 2**(depth - 1)")),
    _mutant("no ReLU after the second batch norm", "build_unet",
            _unet(norm_act='x = L.BatchNormalization(name=f"{name}_bn{i}")(x)\n'
                           '            x = L.ReLU()(x) if i == 1 else x')),
    _mutant("no size check", "build_unet", _unet().replace(
        '    if input_shape[0] % 2**depth or input_shape[1] % 2**depth:\n'
        '        raise ValueError(f"{input_shape[0]}x{input_shape[1]} not divisible by {2**depth}")\n', '')),
    _mutant("skip from the upsampled path (no encoder skip)", "build_unet",
            _unet(order="[up, up]")),
    _correct("kept conv biases (zeroed by the grader)", "build_unet", _unet(bias="True")),
    _correct("linear head with a separate Softmax layer", "build_unet",
             _unet(head='L.Softmax(axis=-1)(L.Conv2D(num_classes, 1, name="head")(x))')),
    _correct("recursive construction with keras.ops.concatenate", "build_unet", '''
def build_unet(input_shape, num_classes, depth=4, base_filters=16):
    h, w = input_shape[:2]
    factor = 2 ** depth
    if h % factor or w % factor:
        raise ValueError(f"input size {h}x{w} is not divisible by 2**depth={factor}")

    def block(x, filters, name):
        x = keras.layers.Conv2D(filters, (3, 3), padding="same", use_bias=False, name=name + "_conv1")(x)
        x = keras.layers.Activation("relu")(keras.layers.BatchNormalization(name=name + "_bn1")(x))
        x = keras.layers.Conv2D(filters, (3, 3), padding="same", use_bias=False, name=name + "_conv2")(x)
        return keras.layers.Activation("relu")(keras.layers.BatchNormalization(name=name + "_bn2")(x))

    def level(x, i):
        if i == depth:
            return block(x, base_filters * 2**depth, "bottleneck")
        skip = block(x, base_filters * 2**i, f"enc{i}")
        below = level(keras.layers.MaxPool2D(pool_size=(2, 2))(skip), i + 1)
        up = keras.layers.Conv2DTranspose(base_filters * 2**i, (2, 2), strides=(2, 2), name=f"dec{i}_up")(below)
        return block(keras.ops.concatenate([up, skip], axis=-1), base_filters * 2**i, f"dec{i}")

    inputs = keras.Input(shape=input_shape)
    logits = keras.layers.Conv2D(num_classes, 1, name="head")(level(inputs, 0))
    return keras.Model(inputs, keras.layers.Activation("softmax")(logits))
'''),
    # --- dice_coefficient -----------------------------------------------------------
    _mutant("background left out", "dice_coefficient", _dice(ratio="((2 * inter + eps) / (total + eps))[1:]")),
    _mutant("Dice per image, then averaged", "dice_coefficient", _dice(axes="(1, 2)")),
    _mutant("thresholded prediction", "dice_coefficient", _dice().replace(
        "    axes =", "    p = np.eye(p.shape[-1])[p.argmax(-1)]\n    axes =")),
    _mutant("no eps", "dice_coefficient", _dice(ratio="2 * inter / total")),
    _mutant("Jaccard instead of Dice", "dice_coefficient", _dice(ratio="(inter + eps) / (total - inter + eps)")),
    _mutant("squared denominator", "dice_coefficient",
            _dice(total="np.sum(t ** 2, axis=axes) + np.sum(p ** 2, axis=axes)")),
    _mutant("numerator without the factor 2", "dice_coefficient", _dice(ratio="(inter + eps) / (total + eps)")),
    _correct("per-class loop", "dice_coefficient", '''
def dice_coefficient(y_true, y_pred, eps=1e-7):
    scores = []
    for c in range(y_true.shape[-1]):
        t, p = y_true[..., c].astype(float), y_pred[..., c].astype(float)
        scores.append((2.0 * (t * p).sum() + eps) / (t.sum() + p.sum() + eps))
    return float(sum(scores) / len(scores))
'''),
    _correct("flattened einsum", "dice_coefficient", '''
def dice_coefficient(y_true, y_pred, eps=1e-7):
    c = y_true.shape[-1]
    t = np.reshape(y_true, (-1, c)).astype(np.float64)
    p = np.reshape(y_pred, (-1, c)).astype(np.float64)
    dice = (2 * np.einsum("nc,nc->c", t, p) + eps) / (t.sum(0) + p.sum(0) + eps)
    return float(dice.mean())
'''),
    # --- dice_loss ------------------------------------------------------------------
    _mutant("NumPy instead of keras.ops", "dice_loss", '''
def dice_loss(y_true, y_pred, eps=1e-7):
    t, p = np.asarray(y_true), np.asarray(y_pred)
    d = (2 * (t * p).sum((0, 1, 2)) + eps) / (t.sum((0, 1, 2)) + p.sum((0, 1, 2)) + eps)
    return 1.0 - d.mean()
'''),
    _mutant("Dice instead of 1 - Dice", "dice_loss", '''
def dice_loss(y_true, y_pred, eps=1e-7):
    y_true = keras.ops.cast(y_true, y_pred.dtype)
    inter = keras.ops.sum(y_true * y_pred, axis=(0, 1, 2))
    total = keras.ops.sum(y_true, axis=(0, 1, 2)) + keras.ops.sum(y_pred, axis=(0, 1, 2))
    return keras.ops.mean((2.0 * inter + eps) / (total + eps))
'''),
    _correct("negative mean over a loop of classes", "dice_loss", '''
def dice_loss(y_true, y_pred, eps=1e-7):
    y_true = keras.ops.cast(y_true, "float32")
    terms = []
    for c in range(y_pred.shape[-1]):
        t, p = y_true[..., c], y_pred[..., c]
        terms.append((2.0 * keras.ops.sum(t * p) + eps) / (keras.ops.sum(t) + keras.ops.sum(p) + eps))
    return 1.0 - keras.ops.mean(keras.ops.stack(terms))
'''),
]

#: grade_ids whose tests may also fail when a function they build on is wrong.
DEPENDS_ON = {"segmentation_model": {"build_unet"}}
#: cells the one-kernel run leaves out: training, evaluation, the timing experiments and the hand-in test.
SKIP = ("patch-train", "sliding-speed", "plot-unet", "train", "evaluate", "unet3d",
        "test_segmentation_model_handin")
