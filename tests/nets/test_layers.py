import keras
import numpy as np
import pytest
import tensorflow as tf

from vgg_tf.nets.layers import LocalResponseNormalization, PatchMatmulConv2D


def _lrn_reference(x, size=5, bias=2.0, alpha=1e-4, beta=0.75):
    """Krizhevsky et al. 2012, §3.3, written out with loops over channels."""
    channels = x.shape[-1]
    out = np.empty_like(x)
    for c in range(channels):
        lo, hi = max(0, c - size // 2), min(channels, c + size // 2 + 1)
        out[..., c] = x[..., c] / (bias + alpha * np.sum(x[..., lo:hi] ** 2, axis=-1)) ** beta
    return out


def test_matches_krizhevsky_formula_with_undivided_alpha():
    x = np.random.default_rng(0).normal(scale=30.0, size=(2, 3, 3, 9)).astype(np.float32)
    got = LocalResponseNormalization()(x).numpy()
    np.testing.assert_allclose(got, _lrn_reference(x), rtol=1e-5)
    # Caffe's convention (alpha / size) gives a different answer on the same input.
    assert not np.allclose(got, _lrn_reference(x, alpha=1e-4 / 5), rtol=1e-5)


def test_config_round_trip_and_serialization():
    layer = LocalResponseNormalization(size=3, bias=1.0, alpha=2e-4, beta=0.5, name="lrn")
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == "vgg_tf>LocalResponseNormalization"
    clone = keras.saving.deserialize_keras_object(config)
    assert (clone.size, clone.bias, clone.alpha, clone.beta) == (3, 1.0, 2e-4, 0.5)


@pytest.mark.parametrize("size", [0, 4, -1])
def test_rejects_even_or_non_positive_size(size):
    with pytest.raises(ValueError, match=f"size={size}"):
        LocalResponseNormalization(size=size)


def test_inside_tf_function_and_a_model_with_the_papers_constants():
    """The defaults are Krizhevsky's n=5, k=2, alpha=1e-4, beta=0.75, and the layer computes
    the formula on random input in a tf.function and inside a saved and reloaded model."""
    layer = LocalResponseNormalization()
    assert (layer.size, layer.bias, layer.alpha, layer.beta) == (5, 2.0, 1e-4, 0.75)
    # Large activations, so that the sum of squares moves the denominator far from k.
    x = np.random.default_rng(1).normal(scale=60.0, size=(2, 5, 4, 11)).astype(np.float32)
    expected = _lrn_reference(x)
    assert np.abs(expected - x / 2.0**0.75).max() > 0.1 * np.abs(x).mean()  # not just x / k^beta
    fn = tf.function(lambda t: layer(t))
    np.testing.assert_allclose(fn(tf.constant(x)), expected, rtol=1e-5)
    model = keras.Sequential([keras.Input((None, None, 11)), LocalResponseNormalization()])
    np.testing.assert_allclose(model(x), expected, rtol=1e-5)


def test_patch_matmul_conv2d_equals_conv2d(tmp_path):
    x = tf.random.stateless_normal([2, 9, 13, 16], seed=[1, 2])
    reference = keras.layers.Conv2D(24, 4, activation="relu")
    layer = PatchMatmulConv2D(24, 4, activation="relu")
    reference(x), layer(x)
    layer.set_weights([w + 0.1 for w in reference.get_weights()])
    reference.set_weights(layer.get_weights())
    assert isinstance(layer, keras.layers.Conv2D)
    np.testing.assert_allclose(layer(x), reference(x), atol=1e-5)
    assert layer(x).shape == (2, 6, 10, 24)
    model = keras.Sequential([keras.Input((None, None, 16)), layer])
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(
        keras.models.load_model(tmp_path / "m.keras")(x), model(x), atol=1e-6
    )


@pytest.mark.parametrize("kwargs", [dict(strides=2), dict(padding="same"), dict(dilation_rate=2)])
def test_patch_matmul_conv2d_rejects_what_it_does_not_compute(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=f"PatchMatmulConv2D got .*'{name}'"):
        PatchMatmulConv2D(4, 3, **kwargs)
