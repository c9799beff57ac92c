def inception_module(x, filters, name):
    """GoogLeNet's inception module with 1x1 bottlenecks."""
    f1, r3, f3, r5, f5, pool_proj = filters

    def conv(t, n, k, suffix):
        return keras.layers.Conv2D(n, k, padding="same", activation="relu", name=f"{name}_{suffix}")(t)

    branch1 = conv(x, f1, 1, "1x1")
    branch3 = conv(conv(x, r3, 1, "3x3_reduce"), f3, 3, "3x3")
    branch5 = conv(conv(x, r5, 1, "5x5_reduce"), f5, 5, "5x5")
    pooled = keras.layers.MaxPooling2D(3, strides=1, padding="same")(x)
    branch_pool = conv(pooled, pool_proj, 1, "pool_proj")
    # Mistake: the 5x5 branch comes before the 3x3 branch.
    return keras.layers.Concatenate()([branch1, branch5, branch3, branch_pool])
