"""Tests of the Dense -> Conv2D conversion (vgg_tf.nets.fcn)."""

import gc

import keras
import numpy as np
import pytest

from vgg_tf.nets.fcn import crop_size_of, score_map_shape, to_fully_convolutional
from vgg_tf.nets.specs import VARIANTS
from vgg_tf.weights.applications import VGG


def _tiny(variant="A", **kwargs):
    kwargs.setdefault("kernel_initializer", "glorot")
    return VGG(variant, classes=10, crop_size=32, width_multiplier=1 / 16, **kwargs)


def _images(n, h, w, seed=0):
    return np.random.RandomState(seed).uniform(-120, 120, size=(n, h, w, 3)).astype("float32")


def _logits_model(model):
    return keras.Model(model.input, model.get_layer("fc8").output)


@pytest.mark.parametrize("variant", VARIANTS)
def test_tiny_equivalence_and_layers(variant):
    model = _tiny(variant)
    fcn = to_fully_convolutional(model)
    x = _images(3, 32, 32)
    np.testing.assert_allclose(fcn(x).numpy()[:, 0, 0], model(x, training=False), atol=1e-5)
    names = [layer.name for layer in fcn.layers]
    assert "fc6_dropout" not in names and "flatten" not in names
    assert names[-4:] == ["fc6", "fc7", "fc8", "predictions"]
    fc6 = fcn.get_layer("fc6")
    assert isinstance(fc6, keras.layers.Conv2D)
    assert fc6.kernel_size == (1, 1) and fc6.padding == "valid"  # crop 32 -> 1x1 block5 map
    assert fcn.get_layer("fc7").kernel_size == (1, 1)
    assert fcn.get_layer("fc8").kernel_size == (1, 1)


def test_a_model_that_subtracts_its_mean_gives_a_net_on_pixels():
    mean = (110.0, 100.5, 90.25)
    model = _tiny("D", include_preprocessing=True, mean_rgb=mean)
    fcn = to_fully_convolutional(model)
    assert [layer.name for layer in fcn.layers][1:3] == ["subtract_mean_rgb", "block1_conv1"]
    pixels = np.random.RandomState(0).randint(0, 256, size=(2, 64, 64, 3)).astype("uint8")
    np.testing.assert_allclose(
        fcn(pixels[:, :32, :32]).numpy()[:, 0, 0], model(pixels[:, :32, :32]), atol=1e-5
    )
    # On a whole image: the plain net's map on the mean-subtracted image.
    plain = _tiny("D")
    plain.set_weights(model.get_weights())
    centred = pixels.astype("float32") - np.float32(mean)
    np.testing.assert_allclose(
        fcn(pixels).numpy(), to_fully_convolutional(plain)(centred).numpy(), rtol=1e-5, atol=1e-6
    )


def test_batch_norm_and_logits_head():
    model = _tiny("B", batch_norm=True)
    # Non-trivial moving statistics, so that a copy that forgot them would differ.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            rng = np.random.RandomState(len(layer.name))
            layer.set_weights(
                [gamma, beta, rng.normal(size=mean.shape), 1 + rng.uniform(size=var.shape)]
            )
    x = _images(2, 32, 32)
    logits = to_fully_convolutional(model, head="logits")
    assert logits.layers[-1].name == "fc8"
    np.testing.assert_allclose(
        logits(x).numpy()[:, 0, 0], _logits_model(model)(x, training=False), atol=1e-4, rtol=1e-5
    )


def test_score_map_at_larger_sizes():
    model = _tiny("D")
    fcn = to_fully_convolutional(model)
    out = fcn(_images(1, 96, 160)).numpy()
    assert out.shape == (1, 3, 5, 10)
    assert (score_map_shape(96, 32), score_map_shape(160, 32)) == (3, 5)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)  # softmax at every location
    assert np.abs(out[0, 0, 0] - out[0, 2, 4]).max() > 1e-4  # locations see different windows


def test_fc6_kernel_is_the_dense_kernel_reshaped():
    model = VGG("A", classes=7, crop_size=64, width_multiplier=1 / 32, kernel_initializer="glorot")
    fcn = to_fully_convolutional(model)
    dense_kernel = model.get_layer("fc6").kernel.numpy()
    conv_kernel = fcn.get_layer("fc6").kernel.numpy()
    assert conv_kernel.shape == (2, 2, 16, dense_kernel.shape[1])
    np.testing.assert_array_equal(conv_kernel.reshape(dense_kernel.shape), dense_kernel)
    x = _images(2, 64, 64)
    np.testing.assert_allclose(fcn(x).numpy()[:, 0, 0], model(x, training=False), atol=1e-5)
    assert fcn(_images(1, 128, 96)).shape == (1, 3, 2, 7)
    assert crop_size_of(model) == 64


def test_errors():
    headless = VGG("A", include_top=False, width_multiplier=1 / 16)
    with pytest.raises(ValueError, match="include_top=True"):
        to_fully_convolutional(headless)
    with pytest.raises(ValueError, match="head 'probs'.*predictions, logits"):
        to_fully_convolutional(_tiny(), head="probs")


def test_saves_and_loads(tmp_path):
    fcn = to_fully_convolutional(_tiny("A-LRN"))
    path = tmp_path / "fcn.keras"
    fcn.save(path)
    loaded = keras.models.load_model(path)
    x = _images(1, 64, 64)
    np.testing.assert_allclose(loaded(x), fcn(x), atol=1e-6)


@pytest.mark.slow
def test_full_size_equivalence_at_224_all_six():
    """The paper's networks at full size: the 1x1 score map equals the classifier (§3.2)."""
    x = _images(1, 224, 224)
    for variant in VARIANTS:
        model = VGG(variant, kernel_initializer="glorot")
        fcn = to_fully_convolutional(model)
        assert fcn.get_layer("fc6").kernel.shape == (7, 7, 512, 4096)
        expected = model(x, training=False).numpy()
        got = fcn(x).numpy()
        assert got.shape == (1, 1, 1, 1000)
        np.testing.assert_allclose(got[:, 0, 0], expected, atol=1e-5)
        if variant == "D":  # a larger Q gives a class score map (§3.2)
            assert fcn(np.zeros((1, 256, 320, 3), "float32")).shape == (1, 2, 4, 1000)
        del model, fcn
        keras.backend.clear_session()
        gc.collect()


# --- Data formats and channel counts ------------------------------------------------------


def _nchw(images):
    return np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2)))


def test_channels_first_model_converts(tmp_path):
    last = _tiny("C")
    first = VGG(
        "C",
        classes=10,
        input_shape=(3, 32, 32),
        data_format="channels_first",
        width_multiplier=1 / 16,
    )
    for layer in last.layers:
        if layer.weights:
            first.get_layer(layer.name).set_weights(layer.get_weights())
    whole = _images(2, 96, 64)
    # Default: a channels-last FCN (what the evaluator and serving graph feed), the same
    # net as the channels-last model's.
    fcn = to_fully_convolutional(first, head="logits")
    assert fcn.input_shape == (None, None, None, 3)
    expected = to_fully_convolutional(last, head="logits")(whole).numpy()
    assert np.std(expected) > 1e-3
    np.testing.assert_allclose(fcn(whole), expected, rtol=1e-5, atol=1e-4)
    crop = _images(2, 32, 32, seed=1)
    np.testing.assert_allclose(
        fcn(crop).numpy()[:, 0, 0], _logits_model(first)(_nchw(crop)), rtol=1e-5, atol=1e-4
    )
    # On request, channels first in and out: the score map is (batch, classes, h, w).
    nchw = to_fully_convolutional(first, data_format="channels_first")
    assert nchw.input_shape == (None, 3, None, None)
    got = nchw(_nchw(whole)).numpy()
    assert got.shape == (2, 10, 3, 2)
    np.testing.assert_allclose(
        got, _nchw(to_fully_convolutional(last)(whole).numpy()), rtol=1e-5, atol=1e-5
    )
    nchw.save(tmp_path / "nchw.keras")
    np.testing.assert_allclose(
        keras.models.load_model(tmp_path / "nchw.keras")(_nchw(whole)), got, atol=1e-6
    )
    assert crop_size_of(first) == 32


def test_conversion_ignores_a_global_channels_first_setting():
    model = _tiny("A")  # built channels-last, before the switch
    before = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        fcn = to_fully_convolutional(model)
    finally:
        keras.config.set_image_data_format(before)
    x = _images(2, 32, 32)
    np.testing.assert_allclose(fcn(x).numpy()[:, 0, 0], model(x, training=False), atol=1e-5)


def test_input_channels_follow_the_model():
    model = VGG(
        "A",
        classes=6,
        input_shape=(64, 64, 1),
        width_multiplier=1 / 16,
        kernel_initializer="glorot",
    )
    fcn = to_fully_convolutional(model)
    assert fcn.input_shape == (None, None, None, 1)
    gray = np.random.RandomState(0).uniform(-100, 100, size=(2, 64, 64, 1)).astype("float32")
    np.testing.assert_allclose(fcn(gray).numpy()[:, 0, 0], model(gray, training=False), atol=1e-5)
    assert fcn(np.zeros((1, 128, 96, 1), "float32")).shape == (1, 3, 2, 6)


def test_refuses_layers_that_run_channels_first():
    inputs = keras.Input((3, 32, 32))
    x = keras.layers.Conv2D(
        4, 3, padding="same", data_format="channels_first", name="block1_conv1"
    )(inputs)
    x = keras.layers.Flatten(data_format="channels_first", name="flatten")(x)
    foreign = keras.Model(inputs, keras.layers.Dense(10, name="fc6")(x), name="nchw")
    with pytest.raises(
        ValueError,
        match=r"'block1_conv1' of model 'nchw'.*data_format="
        r"'channels_first'.*vgg_tf.VGG",
    ):
        to_fully_convolutional(foreign)
    with pytest.raises(ValueError, match=r"data_format='NCHW'.*channels_last, channels_first"):
        to_fully_convolutional(_tiny(), data_format="NCHW")
