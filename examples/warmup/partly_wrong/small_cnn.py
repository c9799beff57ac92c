def small_cnn(input_shape, num_classes):
    """A two-layer CNN classifier; returns a keras.Model."""
    # Typical mistake: 'valid' padding and a missing ReLU on conv2.
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs)
