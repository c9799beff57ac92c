"""Typical mistakes (mutants) and alternative correct solutions for `residual`."""

from dlcourse.authoring.mutants import alternative as _correct
from dlcourse.authoring.mutants import mutant as _mutant

_RESIDUAL = '''
def residual_block(x, filters, stride=1, name="res"):
    def conv(t, n, k, s, suffix, bias=False):
        return keras.layers.Conv2D(n, k, strides=s, padding="same", use_bias=bias, name=f"{{name}}_{{suffix}}")(t)

    def bn(t, suffix):
        return keras.layers.BatchNormalization(name=f"{{name}}_{{suffix}}")(t)

    y = keras.layers.ReLU()(bn(conv(x, filters, 3, {s1}, "conv1"{bias}), "bn1"))
    y = {tail}
    shortcut = x
    if {needs_projection}:
        shortcut = {projection}
    out = keras.layers.Add()([shortcut, y])
    return {final}
'''
_PARTS = {
    "s1": "stride", "bias": "",
    "tail": 'bn(conv(y, filters, 3, 1, "conv2"), "bn2")',
    "needs_projection": "stride != 1 or x.shape[-1] != filters",
    "projection": 'bn(conv(x, filters, 1, stride, "proj"), "proj_bn")',
    "final": "keras.layers.ReLU()(out)",
}


def _residual(**changes):
    return _RESIDUAL.format(**{**_PARTS, **changes})


_BOTTLENECK = '''
def bottleneck_block(x, filters, stride=1, name="bot"):
    def conv_bn(t, n, k, s, i):
        t = keras.layers.Conv2D(n, k, strides=s, padding="same", use_bias=False, name=f"{{name}}_conv{{i}}")(t)
        return keras.layers.BatchNormalization(name=f"{{name}}_bn{{i}}")(t)

    y = keras.layers.ReLU()(conv_bn(x, filters, 1, {s1}, 1))
    y = keras.layers.ReLU()(conv_bn(y, filters, 3, {s2}, 2))
    y = conv_bn(y, {expand}, 1, 1, 3)
    shortcut = x
    if stride != 1 or x.shape[-1] != 4 * filters:
        shortcut = keras.layers.Conv2D(4 * filters, 1, strides=stride, use_bias=False, name=f"{{name}}_proj")(x)
        shortcut = keras.layers.BatchNormalization(name=f"{{name}}_proj_bn")(shortcut)
    return keras.layers.ReLU()(keras.layers.Add()([shortcut, y]))
'''


def _bottleneck(s1="1", s2="stride", expand="4 * filters"):
    return _BOTTLENECK.format(s1=s1, s2=s2, expand=expand)


_DENSE = '''
def dense_block(x, num_layers, growth_rate, name="dense"):
    for i in range(1, num_layers + 1):
        {body}
        x = keras.layers.Concatenate()({order})
    return x
'''
_DENSE_BODY = ('y = keras.layers.BatchNormalization(name=f"{name}_layer{i}_bn")(x)\n'
               '        y = keras.layers.ReLU()(y)\n'
               '        y = keras.layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, '
               'name=f"{name}_layer{i}_conv")(y)')


def _dense(body=_DENSE_BODY, order="[x, y]"):
    return _DENSE.replace("{body}", body).replace("{order}", order)


IMPLEMENTATIONS = [
    # --- residual_block -------------------------------------------------------------
    _mutant("ReLU before the addition", "residual_block",
            _residual(tail='keras.layers.ReLU()(bn(conv(y, filters, 3, 1, "conv2"), "bn2"))', final="out")),
    _mutant("no final ReLU", "residual_block", _residual(final="out")),
    _mutant("stride on the second convolution", "residual_block",
            _residual(s1="1", tail='bn(conv(y, filters, 3, stride, "conv2"), "bn2")')),
    _mutant("projection only when channels change", "residual_block",
            _residual(needs_projection="x.shape[-1] != filters")),
    _mutant("projection without batch norm", "residual_block",
            _residual(projection='conv(x, filters, 1, stride, "proj")')),
    _mutant("second batch norm missing", "residual_block",
            _residual(tail='conv(y, filters, 3, 1, "conv2")')),
    _mutant("projection always", "residual_block", _residual(needs_projection="True")),
    _mutant("missing skip", "residual_block", _residual(final="keras.layers.ReLU()(y)")),
    _mutant("projection without the stride", "residual_block",
            _residual(projection='bn(conv(x, filters, 1, 1, "proj"), "proj_bn")')),
    _correct("kept conv bias (zeroed by the grader)", "residual_block", _residual(bias=", bias=True")),
    _correct("keras.ops add and Activation layers", "residual_block", '''
def residual_block(x, filters, stride=1, name="res"):
    c1 = keras.layers.Conv2D(filters, (3, 3), strides=(stride, stride), padding="same", use_bias=False, name=name + "_conv1")
    c2 = keras.layers.Conv2D(filters, (3, 3), padding="same", use_bias=False, name=name + "_conv2")
    y = keras.layers.Activation("relu")(keras.layers.BatchNormalization(name=name + "_bn1")(c1(x)))
    y = keras.layers.BatchNormalization(name=name + "_bn2")(c2(y))
    if stride == 1 and x.shape[-1] == filters:
        s = x
    else:
        s = keras.layers.Conv2D(filters, 1, strides=stride, padding="same", use_bias=False, name=name + "_proj")(x)
        s = keras.layers.BatchNormalization(name=name + "_proj_bn")(s)
    return keras.layers.Activation("relu")(keras.ops.add(s, y))
'''),
    # --- bottleneck_block -----------------------------------------------------------
    _mutant("stride on the first 1x1", "bottleneck_block", _bottleneck(s1="stride", s2="1")),
    _mutant("no expansion to 4*filters", "bottleneck_block", _bottleneck(expand="filters")),
    _mutant("ReLU after the last batch norm, before the addition", "bottleneck_block",
            _bottleneck().replace("y = conv_bn(y, 4 * filters, 1, 1, 3)",
                                  "y = keras.layers.ReLU()(conv_bn(y, 4 * filters, 1, 1, 3))")),
    _correct("separate helper per layer", "bottleneck_block", '''
def bottleneck_block(x, filters, stride=1, name="bot"):
    layers = keras.layers
    y = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv1")(x)
    y = layers.Activation("relu")(layers.BatchNormalization(name=f"{name}_bn1")(y))
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.Activation("relu")(layers.BatchNormalization(name=f"{name}_bn2")(y))
    y = layers.BatchNormalization(name=f"{name}_bn3")(layers.Conv2D(4 * filters, 1, use_bias=False, name=f"{name}_conv3")(y))
    if stride != 1 or x.shape[-1] != 4 * filters:
        x = layers.BatchNormalization(name=f"{name}_proj_bn")(
            layers.Conv2D(4 * filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x))
    return layers.ReLU()(layers.add([x, y]))
'''),
    _correct("kept conv biases (zeroed by the grader)", "bottleneck_block",
             _bottleneck().replace("use_bias=False", "use_bias=True")),
    # --- dense_block ----------------------------------------------------------------
    _mutant("new features first", "dense_block", _dense(order="[y, x]")),
    _mutant("post-activation (conv before batch norm)", "dense_block", _dense(body=(
        'y = keras.layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_layer{i}_conv")(x)\n'
        '        y = keras.layers.BatchNormalization(name=f"{name}_layer{i}_bn")(y)\n'
        '        y = keras.layers.ReLU()(y)'))),
    _mutant("no ReLU", "dense_block", _dense(body=_DENSE_BODY.replace("y = keras.layers.ReLU()(y)", "pass"))),
    _correct("keras.ops.concatenate and a list of features", "dense_block", '''
def dense_block(x, num_layers, growth_rate, name="dense"):
    features = [x]
    for i in range(num_layers):
        inp = features[0] if len(features) == 1 else keras.ops.concatenate(features, axis=-1)
        y = keras.layers.BatchNormalization(name=f"{name}_layer{i + 1}_bn")(inp)
        y = keras.layers.Activation("relu")(y)
        features.append(keras.layers.Conv2D(growth_rate, 3, padding="same", use_bias=False,
                                            name=f"{name}_layer{i + 1}_conv")(y))
    return keras.ops.concatenate(features, axis=-1)
'''),
]

IMPLEMENTATIONS.append(_correct(
    "running concatenation with the layers.concatenate function and kept biases", "dense_block", '''
def dense_block(x, num_layers, growth_rate, name="dense"):
    out = x
    for i in range(num_layers):
        h = keras.layers.Activation("relu")(keras.layers.BatchNormalization(name=f"{name}_layer{i + 1}_bn")(out))
        h = keras.layers.Conv2D(growth_rate, (3, 3), padding="same", name=f"{name}_layer{i + 1}_conv")(h)
        out = keras.layers.concatenate([out, h], axis=-1)
    return out
'''))

DEPENDS_ON = {"small_networks": {"residual_block", "dense_block"}}
SKIP = ("experiment-build", "experiment-run", "train", "test_small_networks_handin")
