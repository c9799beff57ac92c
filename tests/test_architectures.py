"""The lecture's architecture arithmetic reproduces every number on the slides."""

from __future__ import annotations

import itertools

import pytest

from dlcourse import architectures as arch

SLIDE_FIELDS = [3, 5, 9, 17, 33, 65, 129, 131, 131, 131]
SLIDE_PARAMS = [320, 9248, 9248, 9248, 9248, 9248, 9248, 9344, 6912, 579]


@pytest.fixture(scope="module")
def keras():
    from dlcourse import runtime

    runtime.setup()
    import keras

    return keras


@pytest.fixture(scope="module")
def dilated(keras):
    return arch.dilated_network()


def test_kernel_size_slides() -> None:
    assert arch.dense_params(100 * 100, 1, use_bias=False) == 10_000
    assert arch.conv_params(1, 1, 1, use_bias=False) == 1
    assert arch.conv_params(11, 1, 1, use_bias=False) == 121


def test_smaller_kernels_slide() -> None:
    assert arch.conv_params(7, 1, 1, use_bias=False) == 49
    assert 3 * arch.conv_params(3, 1, 1, use_bias=False) == 27
    # and the stack sees as far as the big kernel
    assert arch.receptive_fields([3, 3, 3])[-1] == arch.receptive_fields([7])[-1] == 7


def test_conv_params_matches_keras(keras) -> None:
    for layer, shape, args in [
        (keras.layers.Conv2D(16, 3), (8, 8, 5), ((3, 5, 16),)),
        (keras.layers.Conv2D(4, (1, 5), use_bias=False), (8, 8, 3), (((1, 5), 3, 4, False),)),
        (keras.layers.Conv3D(8, 3), (6, 6, 6, 2), ((3, 2, 8, True, 3),)),
    ]:
        layer.build((None, *shape))
        assert layer.count_params() == arch.conv_params(*args[0])


def test_batchnorm_params(keras) -> None:
    bn = keras.layers.BatchNormalization()
    bn.build((None, 4, 4, 192))
    assert bn.count_params() == arch.batchnorm_params(192) == 768


def test_receptive_fields_slide_table() -> None:
    kernels = [3] * 8 + [1, 1]
    dilations = [1, 1, 2, 4, 8, 16, 32, 1, 1, 1]
    assert arch.receptive_fields(kernels, dilations) == SLIDE_FIELDS


def test_receptive_fields_yu_koltun_figure() -> None:
    assert arch.receptive_fields([3, 3, 3], [1, 2, 4]) == [3, 7, 15]


def test_receptive_fields_with_strides() -> None:
    # 3x3 conv, 2x2 pool stride 2, 3x3 conv: the second conv steps two pixels
    assert arch.receptive_fields([3, 2, 3], strides=[1, 2, 1]) == [3, 4, 8]


def test_receptive_fields_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        arch.receptive_fields([3, 3], [1])
    with pytest.raises(ValueError, match=">= 1"):
        arch.receptive_fields([3, 0])


def test_dilated_network_rows(dilated) -> None:
    rows = arch.count_params_by_row(dilated)
    assert [n for _, n in rows] == SLIDE_PARAMS
    assert dilated.count_params() == sum(SLIDE_PARAMS)
    # Keras itself lists the two batch norms as separate layers
    assert len([lay for lay in dilated.layers if lay.count_params()]) == 12


def test_layer_table_is_the_slide(dilated) -> None:
    table = arch.layer_table(dilated)
    assert [r.field for r in table] == SLIDE_FIELDS
    assert [r.params for r in table] == SLIDE_PARAMS
    assert [r.channels for r in table] == [32] * 8 + [192, 3]
    assert [r.dilation for r in table] == [1, 1, 2, 4, 8, 16, 32, 1, 1, 1]
    text = arch.format_layer_table(table)
    assert "131x131" in text and "9,344" in text and "6,912" in text
    assert text.splitlines()[0].split() == ["Layer", *map(str, range(1, 11))]


def test_dilated_network_is_fully_convolutional(keras, dilated) -> None:
    import numpy as np

    assert dilated.predict(np.zeros((1, 131, 131, 1)), verbose=0).shape == (1, 1, 1, 3)
    assert dilated.predict(np.zeros((1, 140, 150, 1)), verbose=0).shape == (1, 10, 20, 3)


def test_vgg16(keras) -> None:
    vgg = keras.applications.VGG16(weights=None)
    assert vgg.count_params() == 138_357_544
    fields = arch.receptive_fields_of_model(vgg)
    assert fields["block1_conv2"] == 5
    assert fields["block5_conv3"] == 196
    assert arch.multiply_adds(vgg) == 15_470_264_320


def test_receptive_fields_of_branching_model(keras) -> None:
    x = keras.Input((None, None, 1))
    a = keras.layers.Conv2D(1, 1, name="a")(x)
    b = keras.layers.Conv2D(1, 5, padding="same", name="b")(x)
    m = keras.Model(x, keras.layers.Concatenate(name="cat")([a, b]))
    fields = arch.receptive_fields_of_model(m)
    assert (fields["a"], fields["b"], fields["cat"]) == (1, 5, 5)


def test_count_params_by_row_resnet_block(keras) -> None:
    resnet = keras.applications.ResNet50(weights=None)
    rows = dict(arch.count_params_by_row(resnet))
    assert rows["conv2_block1_1_conv"] == 64 * 64 + 64 + 4 * 64
    assert "conv2_block1_1_bn" not in rows
    assert sum(rows.values()) == resnet.count_params()


def test_multiply_adds(keras) -> None:
    m = keras.Sequential([keras.Input((10, 10, 2)), keras.layers.Conv2D(4, 3),
                          keras.layers.Flatten(), keras.layers.Dense(5)])
    assert arch.multiply_adds(m) == 8 * 8 * 9 * 2 * 4 + 8 * 8 * 4 * 5


def test_sliding_window_cost(keras) -> None:
    sliding, dense = arch.sliding_window_cost(lambda s: arch.dilated_network(s), 131, [16, 32])
    per_patch = arch.multiply_adds(arch.dilated_network((131, 131, 1)))
    assert sliding == [per_patch * 16 * 16, per_patch * 32 * 32]
    assert all(d < s for s, d in zip(sliding, dense, strict=True))


def test_unet_feature_maps() -> None:
    maps = arch.unet_feature_maps((64, 64), depth=2, base_filters=16)
    assert maps == [
        ("enc0", (64, 64), 16), ("enc1", (32, 32), 32), ("bottleneck", (16, 16), 64),
        ("dec1", (32, 32), 32), ("dec0", (64, 64), 16),
    ]
    assert arch.unet_feature_maps((16, 32, 32), depth=1, base_filters=8)[1] == (
        "bottleneck", (8, 16, 16), 16)
    with pytest.raises(ValueError, match="divisible"):
        arch.unet_feature_maps((100, 100), depth=3)


def test_small_unet_2d_and_3d(keras) -> None:
    import numpy as np

    m2 = arch.small_unet((32, 32, 1), 4, depth=2, base_filters=4)
    m3 = arch.small_unet((8, 16, 16, 1), 4, depth=2, base_filters=4)
    assert m2.output.shape[1:] == (32, 32, 4)
    assert m3.output.shape[1:] == (8, 16, 16, 4)
    out = m2.predict(np.zeros((1, 32, 32, 1)), verbose=0)
    assert np.allclose(out.sum(-1), 1.0, atol=1e-5)
    # 3x3x3 kernels hold three times the weights of 3x3 kernels (biases aside)
    assert 2.5 < m3.count_params() / m2.count_params() < 3.0


def test_feature_map_bytes() -> None:
    assert arch.feature_map_bytes((256, 256), 64) == 256 * 256 * 64 * 4
    assert arch.feature_map_bytes((8, 8, 8), 1, bytes_per_value=2) == 1024


def test_imagenet_results_name_keras_models(keras) -> None:
    names = [r.keras_name for r in arch.IMAGENET_RESULTS]
    assert len(set(names)) == len(names)
    for r in arch.IMAGENET_RESULTS:
        assert hasattr(keras.applications, r.keras_name)
        assert 60 < r.top1 < 90
        assert any(str(year) in r.reference for year in range(2012, 2025))


def test_classic_networks(keras) -> None:
    assert arch.lenet5().count_params() == 61_706
    alex = arch.alexnet()
    assert alex.count_params() == 62_378_344
    rows = dict(arch.count_params_by_row(alex))
    assert rows["conv1"] == 11 * 11 * 3 * 96 + 96
    assert rows["fc6"] == 6 * 6 * 256 * 4096 + 4096


def test_multiply_adds_separable(keras) -> None:
    m = keras.Sequential([keras.Input((8, 8, 4)),
                          keras.layers.SeparableConv2D(6, 3, padding="same")])
    assert arch.multiply_adds(m) == 8 * 8 * (4 * 9 + 4 * 6)


def test_recap_cnn(keras) -> None:
    model = arch.recap_cnn((64, 64, 1), 4)
    assert model.count_params() == 406_532  # lecture 1 prints it
    assert tuple(model.layers[-1].output.shape) == (None, 4)


def test_googlenet_table_is_consistent() -> None:
    """Each module's output channels (1x1 + 3x3 + 5x5 + pool proj) feed the next module."""
    modules = list(arch.GOOGLENET_INCEPTION_MODULES.values())
    for (_, f), (c_next, _) in itertools.pairwise(modules):
        assert f[0] + f[2] + f[4] + f[5] == c_next
    last = modules[-1][1]
    assert last[0] + last[2] + last[4] + last[5] == 1024


def test_fit_over_seeds_equals_fresh_models(keras) -> None:
    """Reusing one compiled model across seeds gives what a new model per seed gives."""
    import numpy as np

    from dlcourse.experiments import fit_over_seeds, over_seeds, spread

    x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")

    def build():
        return keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                                 keras.layers.BatchNormalization(),
                                 keras.layers.Dense(2, activation="softmax")])

    def train(model):
        return model.fit(x, y, epochs=2, batch_size=16, verbose=0).history["loss"]

    def fresh(seed):
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
        return train(model)

    settings = dict(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    reused = fit_over_seeds(build, settings, train, [1, 2, 3])
    assert np.allclose(reused, over_seeds(fresh, [1, 2, 3]), rtol=1e-5)
    assert spread([0.5, 0.7, 0.6]) == "0.600 (range 0.500-0.700, 3 seeds)"


def test_soft_dice_loss_is_zero_for_a_perfect_map_and_ignores_the_background(keras) -> None:
    import numpy as np

    from dlcourse.experiments import sparse_soft_dice_loss

    labels = np.zeros((1, 4, 4), np.int32)
    labels[0, :2, :2] = 1
    labels[0, 2:, 2:] = 2
    perfect = np.eye(3, dtype=np.float32)[labels]
    loss = sparse_soft_dice_loss(3, eps=1e-6)
    assert float(loss(labels, perfect)) < 1e-5
    # Class 1 missed entirely (called background): its score is 0, class 2's is 1.
    missed = perfect.copy()
    missed[0, :2, :2] = [1, 0, 0]
    assert abs(float(loss(labels, missed)) - 0.5) < 1e-5
    # With the background in, the same mistake costs less: background 2*8/(8+12), class 1: 0, class 2: 1.
    with_background = sparse_soft_dice_loss(3, first_class=0, eps=1e-6)
    assert abs(float(with_background(labels, missed)) - (1 - (2 * 8 / (8 + 12) + 0 + 1) / 3)) < 1e-5
