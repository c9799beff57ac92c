def residual_block(x, filters, stride=1, name="res"):
    """ResNet's basic block: two 3x3 convolutions plus a shortcut."""
    y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = keras.layers.ReLU()(keras.layers.BatchNormalization(name=f"{name}_bn1")(y))
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    # Mistake: ReLU before the addition instead of after it.
    y = keras.layers.ReLU()(keras.layers.BatchNormalization(name=f"{name}_bn2")(y))
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    return keras.layers.Add()([shortcut, y])
