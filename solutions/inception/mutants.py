"""Typical mistakes (mutants) and alternative correct solutions for `inception`.

Each entry replaces one solution cell. Mutants must lose marks on their own
grade_id only; alternatives must keep full marks.
"""

from dlcourse.authoring.mutants import alternative as _correct
from dlcourse.authoring.mutants import mutant as _mutant

# A correct module with its pieces as parameters, so each mutant changes one thing.
_MODULE = '''
def inception_module(x, filters, name):
    f1, r3, f3, r5, f5, pool_proj = filters

    def conv(t, n, k, suffix, activation="relu", padding="same", use_bias=True):
        return keras.layers.Conv2D(n, k, padding=padding, activation=activation, use_bias=use_bias,
                                   name=f"{{name}}_{{suffix}}")(t)

    branch1 = conv(x, f1, 1, "1x1")
    branch3 = {branch3}
    branch5 = {branch5}
    pooled = {pool}
    branch_pool = conv(pooled, pool_proj, 1, "pool_proj")
    return keras.layers.Concatenate(axis={axis})({order})
'''
_PARTS = {
    "branch3": 'conv(conv(x, r3, 1, "3x3_reduce"), f3, 3, "3x3")',
    "branch5": 'conv(conv(x, r5, 1, "5x5_reduce"), f5, 5, "5x5")',
    "pool": 'keras.layers.MaxPooling2D(3, strides=1, padding="same")(x)',
    "axis": "-1",
    "order": "[branch1, branch3, branch5, branch_pool]",
}


def _module(**changes):
    return _MODULE.format(**{**_PARTS, **changes})


IMPLEMENTATIONS = [
    # --- inception_module: 10 typical mistakes -------------------------------------
    _mutant("concat order 3x3/5x5 swapped", "inception_module",
            _module(order="[branch1, branch5, branch3, branch_pool]")),
    _mutant("pool branch first", "inception_module",
            _module(order="[branch_pool, branch1, branch3, branch5]")),
    _mutant("valid padding on the 3x3", "inception_module",
            _module(branch3='conv(conv(x, r3, 1, "3x3_reduce"), f3, 3, "3x3", padding="valid")')),
    _mutant("no ReLU after the 5x5", "inception_module",
            _module(branch5='conv(conv(x, r5, 1, "5x5_reduce"), f5, 5, "5x5", activation=None)')),
    _mutant("no ReLU after the 3x3 reduce", "inception_module",
            _module(branch3='conv(conv(x, r3, 1, "3x3_reduce", activation=None), f3, 3, "3x3")')),
    _mutant("missing 5x5 bottleneck", "inception_module",
            _module(branch5='conv(x, f5, 5, "5x5")')),
    _mutant("average instead of max pooling", "inception_module",
            _module(pool='keras.layers.AveragePooling2D(3, strides=1, padding="same")(x)')),
    _mutant("pooling with stride 2", "inception_module",
            _module(pool='keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)')),
    _mutant("3x3 kernel in the 5x5 branch", "inception_module",
            _module(branch5='conv(conv(x, r5, 1, "5x5_reduce"), f5, 3, "5x5")')),
    _mutant("reduce filters swapped", "inception_module",
            _module(branch3='conv(conv(x, r5, 1, "3x3_reduce"), f3, 3, "3x3")',
                    branch5='conv(conv(x, r3, 1, "5x5_reduce"), f5, 5, "5x5")')),
    _mutant("layer misnamed", "inception_module",
            _module(branch3='conv(conv(x, r3, 1, "reduce3"), f3, 3, "3x3")')),
    _mutant("no bias", "inception_module",
            _module(branch3='conv(conv(x, r3, 1, "3x3_reduce", use_bias=False), f3, 3, "3x3")')),
    # --- inception_module: correct alternatives ------------------------------------
    _correct("separate ReLU layers and keras.ops.concatenate", "inception_module", '''
def inception_module(x, filters, name):
    f1, r3, f3, r5, f5, pool_proj = filters
    relu = keras.layers.ReLU
    pool = keras.layers.MaxPooling2D(pool_size=(3, 3), strides=(1, 1), padding="same")(x)
    p = relu()(keras.layers.Conv2D(pool_proj, (1, 1), name=name + "_pool_proj")(pool))
    b5 = relu()(keras.layers.Conv2D(r5, 1, name=name + "_5x5_reduce")(x))
    b5 = relu()(keras.layers.Conv2D(f5, 5, padding="same", name=name + "_5x5")(b5))
    b3 = relu()(keras.layers.Conv2D(r3, 1, name=name + "_3x3_reduce")(x))
    b3 = relu()(keras.layers.Conv2D(f3, 3, padding="same", name=name + "_3x3")(b3))
    b1 = relu()(keras.layers.Conv2D(f1, 1, name=name + "_1x1")(x))
    return keras.ops.concatenate([b1, b3, b5, p], axis=3)
'''),
    _correct("Activation layers, functional concatenate, named everything", "inception_module", '''
def inception_module(x, filters, name):
    sizes = dict(zip(["1x1", "3x3_reduce", "3x3", "5x5_reduce", "5x5", "pool_proj"], filters))

    def unit(t, key, k):
        t = keras.layers.Conv2D(sizes[key], k, padding="same", name=f"{name}_{key}")(t)
        return keras.layers.Activation("relu", name=f"{name}_{key}_relu")(t)

    outs = [unit(x, "1x1", 1),
            unit(unit(x, "3x3_reduce", 1), "3x3", 3),
            unit(unit(x, "5x5_reduce", 1), "5x5", 5),
            unit(keras.layers.MaxPool2D(3, 1, "same", name=f"{name}_maxpool")(x), "pool_proj", 1)]
    return keras.layers.concatenate(outs, name=f"{name}_output")
'''),
    # --- auxiliary_classifier: typical mistakes ------------------------------------
    _mutant("no softmax", "auxiliary_classifier", '''
def auxiliary_classifier(x, num_classes, name):
    y = keras.layers.AveragePooling2D(5, strides=3)(x)
    y = keras.layers.Conv2D(128, 1, activation="relu", name=f"{name}_conv")(y)
    y = keras.layers.Flatten()(y)
    y = keras.layers.Dense(1024, activation="relu", name=f"{name}_fc")(y)
    y = keras.layers.Dropout(0.7)(y)
    return keras.layers.Dense(num_classes, name=f"{name}_out")(y)
'''),
    _mutant("max instead of average pooling", "auxiliary_classifier", '''
def auxiliary_classifier(x, num_classes, name):
    y = keras.layers.MaxPooling2D(5, strides=3)(x)
    y = keras.layers.Conv2D(128, 1, activation="relu", name=f"{name}_conv")(y)
    y = keras.layers.Flatten()(y)
    y = keras.layers.Dense(1024, activation="relu", name=f"{name}_fc")(y)
    y = keras.layers.Dropout(0.7)(y)
    return keras.layers.Dense(num_classes, activation="softmax", name=f"{name}_out")(y)
'''),
    _mutant("pool stride 2", "auxiliary_classifier", '''
def auxiliary_classifier(x, num_classes, name):
    y = keras.layers.AveragePooling2D(5, strides=2)(x)
    y = keras.layers.Conv2D(128, 1, activation="relu", name=f"{name}_conv")(y)
    y = keras.layers.Flatten()(y)
    y = keras.layers.Dense(1024, activation="relu", name=f"{name}_fc")(y)
    y = keras.layers.Dropout(0.7)(y)
    return keras.layers.Dense(num_classes, activation="softmax", name=f"{name}_out")(y)
'''),
    _mutant("no ReLU after the dense layer", "auxiliary_classifier", '''
def auxiliary_classifier(x, num_classes, name):
    y = keras.layers.AveragePooling2D(5, strides=3)(x)
    y = keras.layers.Conv2D(128, 1, activation="relu", name=f"{name}_conv")(y)
    y = keras.layers.Flatten()(y)
    y = keras.layers.Dense(1024, name=f"{name}_fc")(y)
    y = keras.layers.Dropout(0.7)(y)
    return keras.layers.Dense(num_classes, activation="softmax", name=f"{name}_out")(y)
'''),
    _mutant("no ReLU after the 1x1 convolution", "auxiliary_classifier", '''
def auxiliary_classifier(x, num_classes, name):
    y = keras.layers.AveragePooling2D(5, strides=3)(x)
    y = keras.layers.Conv2D(128, 1, name=f"{name}_conv")(y)
    y = keras.layers.Flatten()(y)
    y = keras.layers.Dense(1024, activation="relu", name=f"{name}_fc")(y)
    y = keras.layers.Dropout(0.7)(y)
    return keras.layers.Dense(num_classes, activation="softmax", name=f"{name}_out")(y)
'''),
    # --- auxiliary_classifier: correct alternatives --------------------------------
    _correct("softmax in a layer after the output Dense", "auxiliary_classifier", '''
def auxiliary_classifier(x, num_classes, name):
    y = keras.layers.AvgPool2D(pool_size=5, strides=3, padding="valid")(x)
    y = keras.layers.ReLU()(keras.layers.Conv2D(128, 1, name=f"{name}_conv")(y))
    y = keras.layers.Reshape((-1,))(y)
    y = keras.layers.ReLU()(keras.layers.Dense(1024, name=f"{name}_fc")(y))
    y = keras.layers.Dropout(rate=0.7)(y)
    return keras.layers.Softmax()(keras.layers.Dense(num_classes, name=f"{name}_out")(y))
'''),
    _correct("Activation layers", "auxiliary_classifier", '''
def auxiliary_classifier(x, num_classes, name):
    y = keras.layers.AveragePooling2D((5, 5), (3, 3))(x)
    y = keras.layers.Conv2D(128, (1, 1), name=name + "_conv")(y)
    y = keras.layers.Activation("relu")(y)
    y = keras.layers.Flatten()(y)
    y = keras.layers.Activation("relu")(keras.layers.Dense(1024, name=name + "_fc")(y))
    y = keras.layers.Dropout(0.7)(y)
    y = keras.layers.Dense(num_classes, name=name + "_out")(y)
    return keras.layers.Activation("softmax")(y)
'''),
    # --- parameter counting --------------------------------------------------------
    _mutant("bias forgotten", "conv_params", '''
def conv_params(kernel_size, c_in, c_out, use_bias=True):
    return kernel_size * kernel_size * c_in * c_out
'''),
    _mutant("input channels forgotten", "conv_params", '''
def conv_params(kernel_size, c_in, c_out, use_bias=True):
    return kernel_size * kernel_size * c_out + (c_out if use_bias else 0)
'''),
    _mutant("borrows the lectures' helper", "conv_params", '''
def conv_params(kernel_size, c_in, c_out, use_bias=True):
    from dlcourse.architectures import conv_params as lecture_count
    return lecture_count(kernel_size, c_in, c_out, use_bias)
'''),
    _correct("numpy product", "conv_params", '''
def conv_params(kernel_size, c_in, c_out, use_bias=True):
    import numpy as np
    return int(np.prod([kernel_size, kernel_size, c_in, c_out])) + int(use_bias) * c_out
'''),
    _mutant("reduce convolutions not counted", "params_inception", '''
def params_inception(c_in, filters, bottlenecks=True):
    f1, r3, f3, r5, f5, pool_proj = filters
    if not bottlenecks:
        return conv_params(1, c_in, f1) + conv_params(3, c_in, f3) + conv_params(5, c_in, f5)
    return (conv_params(1, c_in, f1) + conv_params(3, r3, f3) + conv_params(5, r5, f5)
            + conv_params(1, c_in, pool_proj))
'''),
    _mutant("naive module with a pool projection", "params_inception", '''
def params_inception(c_in, filters, bottlenecks=True):
    f1, r3, f3, r5, f5, pool_proj = filters
    total = conv_params(1, c_in, f1) + conv_params(1, c_in, pool_proj)
    if not bottlenecks:
        return total + conv_params(3, c_in, f3) + conv_params(5, c_in, f5)
    return total + conv_params(1, c_in, r3) + conv_params(3, r3, f3) + conv_params(1, c_in, r5) + conv_params(5, r5, f5)
'''),
]

#: grade_ids whose tests may also fail when a function they build on is wrong: only work built
#: on a graded function (a network). A graded function that calls another one (params_inception
#: calls conv_params) is tested with a reference version of it, so it may not appear here.
DEPENDS_ON = {
    "mini_googlenet": {"inception_module", "auxiliary_classifier"},
}
#: cells the one-kernel run leaves out: training and the hand-in test.
SKIP = ("train", "plot-history", "test_mini_googlenet_handin")
