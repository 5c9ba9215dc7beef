import gc
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import vgg_tf
from vgg_tf.nets import builder as models
from vgg_tf.nets import specs
from vgg_tf.nets.layers import LocalResponseNormalization
from vgg_tf.weights import transfer

TINY = dict(crop_size=32, width_multiplier=1 / 16, classes=10)

# Table 2 of the paper, exact counts with 1000 classes (../shared/DESIGN.md).
PARAMS_1000 = {
    "A": 132_863_336,
    "A-LRN": 132_863_336,
    "B": 133_047_848,
    "C": 133_638_952,
    "D": 138_357_544,
    "E": 143_667_240,
}


def _free():
    keras.backend.clear_session()
    gc.collect()


@pytest.mark.slow
def test_full_size_parameter_counts_and_cost():
    for variant, expected in PARAMS_1000.items():
        model = vgg_tf.VGG(variant, kernel_initializer="glorot")  # quicker to draw than N(0, 0.01)
        assert model.count_params() == expected, variant
        if variant == "D":
            assert vgg_tf.count_macs(model) / 1e9 == pytest.approx(15.47, rel=0.01)
        del model
        _free()


def test_named_builders_map_to_variants():
    builders = {
        "A": vgg_tf.VGG11,
        "A-LRN": vgg_tf.VGG11_LRN,
        "B": vgg_tf.VGG13,
        "C": vgg_tf.VGG16_C,
        "D": vgg_tf.VGG16,
        "E": vgg_tf.VGG19,
    }
    assert tuple(builders) == vgg_tf.VARIANTS
    for variant, builder in builders.items():
        a = builder(**TINY)
        b = vgg_tf.VGG(variant, **TINY)
        assert a.count_params() == b.count_params()
        # A and A-LRN have the same parameters: the layers tell them apart.
        assert [(type(layer).__name__, layer.name) for layer in a.layers] == [
            (type(layer).__name__, layer.name) for layer in b.layers
        ], variant
        assert models.count_weight_layers(a) == specs.SPECS[variant].num_weight_layers
        assert a.name == builder.__name__.lower()
    # VGG11_LRN is A with Krizhevsky's LRN (n=5, k=2, alpha=1e-4, beta=0.75) right after the
    # first conv, and nowhere else; its parameters are A's.
    lrn_net, plain = vgg_tf.VGG11_LRN(**TINY), vgg_tf.VGG11(**TINY)
    lrns = [layer for layer in lrn_net.layers if isinstance(layer, LocalResponseNormalization)]
    assert [layer.name for layer in lrns] == ["lrn"]
    assert not any(isinstance(layer, LocalResponseNormalization) for layer in plain.layers)
    names = [layer.name for layer in lrn_net.layers]
    assert names[names.index("lrn") - 1 : names.index("lrn") + 2] == [
        "block1_conv1",
        "lrn",
        "block1_pool",
    ]
    assert [n for n in names if n != "lrn"] == [layer.name for layer in plain.layers]
    assert lrn_net.count_params() == plain.count_params()
    assert (lrns[0].size, lrns[0].bias, lrns[0].alpha, lrns[0].beta) == (5, 2.0, 1e-4, 0.75)
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    conv1 = keras.Model(lrn_net.input, lrn_net.get_layer("block1_conv1").output)(x).numpy()
    after = keras.Model(lrn_net.input, lrns[0].output)(x).numpy()
    np.testing.assert_allclose(after, _lrn(conv1), rtol=1e-5, atol=1e-6)
    assert not np.allclose(after, conv1, rtol=1e-3)  # the layer does normalise


def _lrn(x, size=5, bias=2.0, alpha=1e-4, beta=0.75):
    """Krizhevsky et al. 2012, section 3.3, over the channels of ``x`` (NumPy)."""
    out = np.empty_like(x)
    for c in range(x.shape[-1]):
        lo, hi = max(0, c - size // 2), min(x.shape[-1], c + size // 2 + 1)
        out[..., c] = x[..., c] / (bias + alpha * np.sum(x[..., lo:hi] ** 2, axis=-1)) ** beta
    return out


def test_layer_names_follow_the_documented_scheme():
    model = vgg_tf.VGG("C", **TINY)
    names = [layer.name for layer in model.layers]
    assert names[1:4] == ["block1_conv1", "block1_conv2", "block1_pool"]
    assert "block3_conv3" in names and model.get_layer("block3_conv3").kernel_size == (1, 1)
    assert names[-7:] == [
        "flatten",
        "fc6",
        "fc6_dropout",
        "fc7",
        "fc7_dropout",
        "fc8",
        "predictions",
    ]
    lrn = vgg_tf.VGG("A-LRN", **TINY)
    lrn_names = [layer.name for layer in lrn.layers]
    assert lrn_names[1:4] == ["block1_conv1", "lrn", "block1_pool"]


def _copy_from_keras_applications(ours, theirs):
    rename = {"fc1": "fc6", "fc2": "fc7", "predictions": "fc8"}
    for layer in theirs.layers:
        if layer.weights:
            ours.get_layer(rename.get(layer.name, layer.name)).set_weights(layer.get_weights())


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant, reference", [("D", keras.applications.VGG16), ("E", keras.applications.VGG19)]
)
def test_matches_keras_applications_with_the_same_weights(variant, reference):
    keras.utils.set_random_seed(1)
    theirs = reference(weights=None, classifier_activation=None)
    ours = vgg_tf.VGG(variant, kernel_initializer="glorot", classifier_activation=None)
    _copy_from_keras_applications(ours, theirs)
    images = np.random.default_rng(0).uniform(-120, 130, size=(2, 224, 224, 3)).astype("float32")
    expected = theirs.predict_on_batch(images)
    got = ours.predict_on_batch(images)
    assert np.std(expected) > 1e-3  # logits that carry signal, not a vanished output
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    del theirs, ours
    _free()


@pytest.mark.slow
def test_save_and_load_in_a_fresh_process(tmp_path):
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    pixels = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    np.save(tmp_path / "pixels.npy", pixels)
    expected = {}
    for variant in vgg_tf.VARIANTS:
        model = vgg_tf.VGG(variant, kernel_initializer="glorot", weight_decay=5e-4, **TINY)
        path = tmp_path / f"{variant}.keras"
        model.save(path)
        expected[variant] = model.predict_on_batch(images).tolist()
    # A model that subtracts its own mean takes uint8 pixels, after loading too.
    raw = vgg_tf.VGG("D", kernel_initializer="glorot", include_preprocessing=True, **TINY)
    raw.save(tmp_path / "D_raw.keras")
    expected["D_raw"] = raw.predict_on_batch(pixels).tolist()
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    # D and E load with plain Keras; A-LRN needs `import vgg_tf` for its LRN layer.
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np, keras
        root = {str(tmp_path)!r}
        images = np.load(root + "/images.npy")
        expected = json.load(open(root + "/expected.json"))
        for variant in ("D", "E"):
            m = keras.models.load_model(f"{{root}}/{{variant}}.keras")
            np.testing.assert_array_equal(m.predict_on_batch(images), expected[variant])
        m = keras.models.load_model(root + "/D_raw.keras")
        pixels = np.load(root + "/pixels.npy")
        np.testing.assert_array_equal(m.predict_on_batch(pixels), expected["D_raw"])
        assert "vgg_tf" not in sys.modules
        import vgg_tf
        for variant in vgg_tf.VARIANTS:
            m = keras.models.load_model(f"{{root}}/{{variant}}.keras", safe_mode=True)
            np.testing.assert_array_equal(m.predict_on_batch(images), expected[variant])
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_feature_extractor_follows_keras_applications():
    features = vgg_tf.VGG("B", include_top=False, width_multiplier=1 / 16)
    assert features.input_shape == (None, None, None, 3)
    assert features(np.zeros((1, 64, 96, 3), "float32")).shape == (1, 2, 3, 32)
    for pooling in ("avg", "max"):
        pooled = vgg_tf.VGG("B", include_top=False, pooling=pooling, input_shape=(40, 50, 3))
        assert pooled.output_shape == (None, 512)
    tensor = keras.Input((32, 32, 3))
    model = vgg_tf.VGG("A", input_tensor=tensor, classifier_activation=None, **TINY)
    assert model.inputs[0] is tensor
    logits = model(np.ones((3, 32, 32, 3), "float32"))
    assert logits.shape == (3, 10)
    assert not np.allclose(np.sum(logits, axis=-1), 1.0)
    probs = vgg_tf.VGG("A", **TINY)(np.ones((3, 32, 32, 3), "float32"))
    np.testing.assert_allclose(np.sum(probs, axis=-1), 1.0, rtol=1e-5)


def test_weight_decay_has_caffe_meaning():
    model = vgg_tf.VGG("A", weight_decay=5e-4, kernel_initializer="glorot", **TINY)
    kernels = [w for w in model.trainable_weights if "kernel" in w.path]
    expected_loss = 0.5 * 5e-4 * sum(float(tf.reduce_sum(k**2)) for k in kernels)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected_loss, rel=1e-5)
    assert len(model.losses) == len(kernels)  # kernels only, biases are not decayed
    with tf.GradientTape() as tape:
        penalty = tf.add_n(model.losses)
    grads = tape.gradient(penalty, kernels)
    np.testing.assert_allclose(grads[0], 5e-4 * kernels[0].numpy(), rtol=1e-5)


def test_initializers():
    paper = vgg_tf.VGG("A", width_multiplier=1 / 4, crop_size=32, classes=10)
    kernel, bias = paper.get_layer("fc7").get_weights()
    assert np.std(kernel) == pytest.approx(0.01, rel=0.05)
    assert not bias.any()
    glorot = vgg_tf.VGG("A", kernel_initializer="glorot", width_multiplier=1 / 4, crop_size=32)
    kernel = glorot.get_layer("fc7").get_weights()[0]
    assert np.std(kernel) == pytest.approx(
        np.sqrt(2 / (kernel.shape[0] + kernel.shape[1])), rel=0.05
    )


def test_batch_norm_and_dropout_options():
    model = vgg_tf.VGG("A", batch_norm=True, dropout=0.3, **TINY)
    names = [layer.name for layer in model.layers]
    assert names[1:5] == ["block1_conv1", "block1_conv1_bn", "block1_conv1_relu", "block1_pool"]
    assert model.get_layer("fc6_dropout").rate == 0.3
    no_dropout = vgg_tf.VGG("A", dropout=0.0, **TINY)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in no_dropout.layers)


# --- The input: include_preprocessing and preprocess_input -------------------------------


def test_include_preprocessing_takes_pixels_and_subtracts_the_mean_before_the_first_conv():
    mean = (120.5, 110.25, 100.0)
    common = dict(kernel_initializer="glorot", **TINY)
    raw = vgg_tf.VGG("B", include_preprocessing=True, mean_rgb=mean, **common)
    plain = vgg_tf.VGG("B", **common)
    names = [layer.name for layer in raw.layers]
    assert names[:3] == ["image", models.MEAN_LAYER, "block1_conv1"]
    assert [n for n in names if n != models.MEAN_LAYER] == [layer.name for layer in plain.layers]
    assert raw.count_params() == plain.count_params()  # no weights: the same files load
    transfer.load_layer_weights(plain, transfer.read_layer_weights(raw))
    assert models.included_mean_rgb(raw) == mean and models.included_mean_rgb(plain) is None
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    centred = pixels.astype("float32") - np.asarray(mean, "float32")
    first = keras.Model(raw.input, raw.get_layer(models.MEAN_LAYER).output)
    np.testing.assert_array_equal(first(pixels), centred)  # exactly x - mean, in float32
    # The same net as subtracting in the pipeline: zero padding pads the mean pixel in both.
    expected = plain.predict_on_batch(centred)
    assert np.std(expected) > 1e-3
    for feed in (pixels, pixels.astype("float32"), tf.constant(pixels)):
        np.testing.assert_allclose(raw.predict_on_batch(feed), expected, rtol=1e-5, atol=1e-6)
    # Channels first: the subtraction follows the transpose to channels last.
    first_format = vgg_tf.VGG(
        "B", include_preprocessing=True, mean_rgb=mean, data_format="channels_first", **common
    )
    names = [layer.name for layer in first_format.layers]
    assert names[1:4] == [models.FORMAT_LAYERS[0], models.MEAN_LAYER, "block1_conv1"]
    transfer.load_layer_weights(first_format, transfer.read_layer_weights(raw))
    np.testing.assert_allclose(
        first_format.predict_on_batch(_nchw(pixels)), expected, rtol=1e-5, atol=1e-6
    )
    # Without a mean: ImageNet's (keras.applications' weights take it), or the channels' own.
    default = vgg_tf.VGG16(include_top=False, include_preprocessing=True, width_multiplier=1 / 16)
    assert models.included_mean_rgb(default) == (123.68, 116.779, 103.939)
    gray = vgg_tf.VGG(
        "A",
        include_top=False,
        include_preprocessing=True,
        mean_rgb=[33.3],
        input_shape=(None, None, 1),
        width_multiplier=1 / 16,
    )
    assert models.included_mean_rgb(gray) == (33.3,)


def test_mean_subtraction_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = vgg_tf.VGG("A", include_preprocessing=True, **TINY)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    layer = model.get_layer(models.MEAN_LAYER)
    assert layer.compute_dtype == "float32" and model.get_layer("block1_conv1").compute_dtype == (
        "bfloat16"
    )
    pixels = np.full((1, 32, 32, 3), 200, "uint8")
    got = keras.Model(model.input, layer.output)(pixels)
    np.testing.assert_array_equal(
        got[0, 0, 0], np.float32(200) - np.float32([123.68, 116.779, 103.939])
    )


def test_preprocess_input_keeps_rgb_where_keras_applications_turns_it_to_bgr(global_channels_first):
    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype("uint8")
    ours = vgg_tf.preprocess_input(pixels, data_format="channels_last")
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, pixels - np.float32([123.68, 116.779, 103.939]))
    keras.config.set_image_data_format("channels_last")
    theirs = keras.applications.vgg16.preprocess_input(pixels.astype("float32"))
    np.testing.assert_allclose(ours[..., ::-1], theirs, rtol=1e-6)  # the same numbers, BGR
    keras.config.set_image_data_format("channels_first")
    # Channels first (Keras' global format here), tensors in and out, another mean.
    mean = (1.0, 2.0, 3.0)
    got = vgg_tf.preprocess_input(tf.constant(_nchw(pixels)), mean)
    assert isinstance(got, tf.Tensor) and got.dtype == tf.float32
    np.testing.assert_array_equal(got.numpy(), _nchw(pixels) - np.float32(mean)[:, None, None])
    with pytest.raises(ValueError, match=r"\(2, 8, 8, 3\) are not accepted.*3 channels on axis -3"):
        vgg_tf.preprocess_input(pixels)
    with pytest.raises(ValueError, match=r"mean_rgb=\[\[1\]\] is not accepted"):
        vgg_tf.preprocess_input(pixels, [[1]], data_format="channels_last")


def test_weights_argument_loads_keras_and_h5_files(tmp_path):
    source = vgg_tf.VGG("D", kernel_initializer="glorot", **TINY)
    source.save(tmp_path / "d.keras")
    source.save_weights(tmp_path / "d.weights.h5")
    images = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype("float32")
    for name in ("d.keras", "d.weights.h5"):
        loaded = vgg_tf.VGG("D", weights=tmp_path / name, **TINY)
        np.testing.assert_array_equal(loaded(images), source(images))
    with pytest.raises(ValueError, match=r"d.weights.h5.*classes=5"):
        vgg_tf.VGG("D", weights=tmp_path / "d.weights.h5", **{**TINY, "classes": 5})
    with pytest.raises(ValueError, match=r"'fc8' \(classes differ\?\).*\(256, 5\).*\(256, 10\)"):
        vgg_tf.VGG("D", weights=tmp_path / "d.keras", **{**TINY, "classes": 5})


def test_init_from_net_a_copies_exactly_the_paper_layers(tmp_path):
    net_a = vgg_tf.VGG("A", kernel_initializer="glorot", **TINY)
    net_a.save(tmp_path / "model.keras")
    for variant in ("B", "C", "D", "E"):
        deep = vgg_tf.VGG(variant, **TINY)
        before = {layer.name: layer.get_weights() for layer in deep.layers if layer.weights}
        copied = vgg_tf.init_from_net_a(deep, tmp_path)  # a workdir holding model.keras
        assert copied == list(vgg_tf.NET_A_TRANSFER_LAYERS)
        for name, weights in before.items():
            now = deep.get_layer(name).get_weights()
            if name in copied:
                for got, want in zip(now, net_a.get_layer(name).get_weights()):
                    np.testing.assert_array_equal(got, want)
            else:
                for got, want in zip(now, weights):
                    np.testing.assert_array_equal(got, want)


def test_init_from_net_a_refuses_mismatched_shapes():
    net_a = vgg_tf.VGG("A", **TINY)
    deep = vgg_tf.VGG("E", **{**TINY, "classes": 7})
    with pytest.raises(ValueError, match=r"'fc8'.*\(256, 7\).*\(256, 10\)"):
        vgg_tf.init_from_net_a(deep, net_a)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(variant="F"), r"'F'.*A, A-LRN, B, C, D, E"),
        (
            dict(variant="D", input_shape=(16, 16, 3), include_top=False),
            r"\(16, 16, 3\).*at least 32",
        ),
        (
            dict(variant="D", input_shape=(3, 64, 64), include_top=False),
            r"\(3, 64, 64\) is too small.*\(height, width, channels\).*'channels_last'",
        ),
        (
            dict(
                variant="D",
                input_shape=(64, 64, 3),
                include_top=False,
                data_format="channels_first",
            ),
            r"\(64, 64, 3\) is too small.*\(channels, height, width\).*'channels_first'",
        ),
        (dict(variant="D", input_shape=(64, 64, 0), include_top=False), r"channels=0.*>= 1"),
        (
            dict(variant="D", input_shape=(64, 64), include_top=False),
            r"\(64, 64\).*\(height, width, channels\)",
        ),
        (dict(variant="D", crop_size=48), r"crop_size=48.*multiple of 32"),
        (dict(variant="D", crop_size=0), r"crop_size=0.*positive multiple of 32"),
        (
            dict(variant="D", input_shape=(64, 96, 3)),
            r"\(64, 96, 3\).*square.*multiple of 32.*include_top=False",
        ),
        (dict(variant="D", input_shape=(48, 48, 3)), r"\(48, 48, 3\).*square.*multiple of 32"),
        (dict(variant="D", input_shape=(None, None, 3)), r"\(None, None, 3\).*static side"),
        (
            dict(variant="D", input_shape=(3, 64, 96), data_format="channels_first"),
            r"\(3, 64, 96\).*square.*\(3, 224, 224\)",
        ),
        (
            dict(variant="D", input_shape=(64, 64, 3), crop_size=224),
            r"\(64, 64, 3\) conflicts with crop_size=224.*crop_size=64",
        ),
        (
            dict(variant="D", data_format="NCHW"),
            r"data_format='NCHW'.*channels_last, channels_first",
        ),
        (
            dict(variant="D", weights="/no/such/file.keras"),
            r"/no/such/file.keras.*or the path to",
        ),
        (dict(variant="C", weights="imagenet"), r"No ImageNet weights are published for net C"),
        (dict(variant="D", pooling="mean", include_top=False), r"'mean'.*'avg', 'max'"),
        (dict(variant="D", kernel_initializer="lecun"), r"'lecun'.*paper, glorot, he"),
        (dict(variant="D", classes=0), r"classes=0.*positive"),
        (
            dict(variant="D", include_preprocessing="yes"),
            r"include_preprocessing='yes' is not accepted; expected True",
        ),
        (
            dict(variant="D", mean_rgb=(1, 2, 3)),
            r"mean_rgb=\(1, 2, 3\) is given with include_preprocessing=False",
        ),
        (
            dict(variant="D", include_preprocessing=True, mean_rgb=(1, 2)),
            r"mean_rgb=\(1, 2\) is not accepted; expected 3 finite numbers",
        ),
        (
            dict(variant="D", include_preprocessing=True, mean_rgb=(1, 2, float("nan"))),
            r"expected 3 finite numbers",
        ),
        (
            dict(
                variant="D", include_preprocessing=True, include_top=False, input_shape=(64, 64, 1)
            ),
            r"include_preprocessing=True needs mean_rgb",
        ),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        vgg_tf.VGG(**kwargs)


def test_summary_table_is_computed_from_models():
    from vgg_tf.nets import summary

    rows = summary.summary_rows(image_size=32, classes=10)
    assert [r["variant"] for r in rows] == list(vgg_tf.VARIANTS)
    assert [r["weight_layers"] for r in rows] == [11, 11, 13, 16, 16, 19]
    d = rows[4]
    assert d["params"] == vgg_tf.VGG("D", crop_size=32, classes=10).count_params()
    table = summary.format_table(rows)
    assert "VGG16_C" in table and f"{d['params']:,}" in table


# --- keras.applications drop-in: data formats, channels, input_shape as the crop ----------


@pytest.fixture
def global_channels_first():
    """Keras' global image_data_format set to channels_first for one test."""
    before = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    yield
    keras.config.set_image_data_format(before)


def _channels_first_reference(theirs, images):
    """keras.applications' channels_first answer, on CPUs with or without NCHW kernels."""
    try:
        return theirs.predict_on_batch(images)
    except tf.errors.UnimplementedError:  # "only supports the NHWC tensor format on the CPU"
        pass
    channels, height, width = theirs.input_shape[1:]
    keras.config.set_image_data_format("channels_last")
    try:
        nhwc = keras.applications.VGG16(
            weights=None,
            input_shape=(height, width, channels),
            classes=theirs.output_shape[-1],
            classifier_activation=None,
        )
    finally:
        keras.config.set_image_data_format("channels_first")
    for layer in theirs.layers:
        if layer.weights:
            nhwc.get_layer(layer.name).set_weights(layer.get_weights())
    return nhwc.predict_on_batch(_nhwc(images))


def _nhwc(images):
    return np.ascontiguousarray(np.transpose(images, (0, 2, 3, 1)))


def _nchw(images):
    return np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2)))


def _trunk_formats(model):
    return {
        layer.name: layer.data_format
        for layer in model.layers
        if hasattr(layer, "data_format") and not isinstance(layer, keras.layers.Permute)
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(input_shape=(64, 64), classes=10),  # top (fc6 sees a 2x2 map: flatten order)
        dict(include_top=False, input_shape=(None, None)),  # feature map
        dict(include_top=False, input_shape=(None, None), pooling="max"),
    ],
    ids=["top", "feature_map", "pooled"],
)
def test_channels_first_equals_channels_last_on_transposed_input(tmp_path, kwargs):
    side = kwargs.pop("input_shape")
    common = dict(kernel_initializer="glorot", width_multiplier=1 / 16, **kwargs)
    last = vgg_tf.VGG("B", input_shape=side + (3,), data_format="channels_last", **common)
    last.save(tmp_path / "last.keras")
    # Weights given as a channels-last file load into the channels-first model by name.
    first = vgg_tf.VGG(
        "B",
        input_shape=(3,) + side,
        data_format="channels_first",
        weights=tmp_path / "last.keras",
        **common,
    )
    assert first.input_shape == (None, 3) + side
    assert set(_trunk_formats(first).values()) == {"channels_last"}  # runs everywhere
    images = np.random.default_rng(0).uniform(-100, 100, size=(2, 64, 64, 3)).astype("float32")
    expected = last.predict_on_batch(images)
    got = first.predict_on_batch(_nchw(images))
    if expected.ndim == 4:  # the feature map comes back channels first
        assert first.output_shape == (None, 32, None, None)
        expected = _nchw(expected)
    assert np.std(expected) > 1e-3
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    first.save(tmp_path / "first.keras")
    loaded = keras.models.load_model(tmp_path / "first.keras")
    np.testing.assert_array_equal(loaded.predict_on_batch(_nchw(images)), got)
    assert models.data_format_of(loaded) == "channels_first"


def test_channels_first_weights_file_loads_across_formats(tmp_path):
    common = dict(kernel_initializer="glorot", **TINY)
    first = vgg_tf.VGG("A", data_format="channels_first", **common)
    first.save_weights(tmp_path / "first.weights.h5")
    last = vgg_tf.VGG(
        "A", data_format="channels_last", weights=tmp_path / "first.weights.h5", **common
    )
    for layer in last.layers:
        for got, want in zip(layer.get_weights(), first.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(got, want)


def test_global_image_data_format_is_followed(global_channels_first):
    common = dict(kernel_initializer="glorot", **TINY)
    by_default = vgg_tf.VGG16(**common)
    assert by_default.input_shape == (None, 3, 32, 32)
    assert models.data_format_of(by_default) == "channels_first"
    assert models.crop_size_of(by_default) == 32
    assert vgg_tf.VGG("A", include_top=False, width_multiplier=1 / 16).output_shape == (
        None,
        32,
        None,
        None,
    )
    # An explicit keyword wins over the global setting, and every layer of both
    # models runs channels_last whatever the global setting says.
    explicit = vgg_tf.VGG16(data_format="channels_last", **common)
    assert explicit.input_shape == (None, 32, 32, 3)
    assert set(_trunk_formats(explicit).values()) == {"channels_last"}
    assert set(_trunk_formats(by_default).values()) == {"channels_last"}
    transfer.load_layer_weights(explicit, transfer.read_layer_weights(by_default))
    images = np.random.default_rng(1).uniform(-100, 100, size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        by_default.predict_on_batch(_nchw(images)),
        explicit.predict_on_batch(images),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("channels", [1, 4])
def test_any_channel_count_without_weights(tmp_path, channels):
    images = np.random.default_rng(0).normal(size=(2, 64, 64, channels)).astype("float32")
    for pooling, out in ((None, (2, 2, 2, 32)), ("avg", (2, 32)), ("max", (2, 32))):
        features = vgg_tf.VGG(
            "A-LRN",
            include_top=False,
            pooling=pooling,
            input_shape=(None, None, channels),
            width_multiplier=1 / 16,
        )
        assert features(images).shape == out
    top = vgg_tf.VGG("C", input_shape=(64, 64, channels), width_multiplier=1 / 16, classes=5)
    assert top.get_layer("block1_conv1").kernel.shape == (3, 3, channels, 4)
    assert top(images).shape == (2, 5)
    first = vgg_tf.VGG(
        "C",
        input_shape=(channels, 64, 64),
        data_format="channels_first",
        width_multiplier=1 / 16,
        classes=5,
    )
    assert first(_nchw(images)).shape == (2, 5)
    # With a weights file the channel count must be the file's.
    top.save(tmp_path / "c.keras")
    top.save_weights(tmp_path / "c.weights.h5")
    with pytest.raises(
        ValueError,
        match=r"'block1_conv1' \(input channels differ\?\).*"
        rf"\(3, 3, 3, 4\).*\(3, 3, {channels}, 4\)",
    ):
        vgg_tf.VGG(
            "C",
            input_shape=(64, 64, 3),
            width_multiplier=1 / 16,
            classes=5,
            weights=tmp_path / "c.keras",
        )
    with pytest.raises(ValueError, match=r"input shape \(None, 64, 64, 3\).*input channels"):
        vgg_tf.VGG(
            "C",
            input_shape=(64, 64, 3),
            width_multiplier=1 / 16,
            classes=5,
            weights=tmp_path / "c.weights.h5",
        )


def test_input_shape_with_the_top_sets_the_crop_size():
    model = vgg_tf.VGG("A", input_shape=(64, 64, 3), classes=10, width_multiplier=1 / 16)
    assert models.crop_size_of(model) == 64
    assert model.get_layer("fc6").kernel.shape[0] == 2 * 2 * 32  # fc6 sees the 2x2 block5 map
    assert model(np.zeros((1, 64, 64, 3), "float32")).shape == (1, 10)
    same = vgg_tf.VGG("A", input_shape=(64, 64, 3), **{**TINY, "crop_size": 64})
    assert same.count_params() == model.count_params()
    first = vgg_tf.VGG(
        "A", input_shape=(3, 96, 96), data_format="channels_first", width_multiplier=1 / 16
    )
    assert models.crop_size_of(first) == 96 and first.get_layer("fc6").kernel.shape[0] == 9 * 32
    assert models.crop_size_of(vgg_tf.VGG("A", width_multiplier=1 / 16)) == 224  # the default
    # An input tensor's shape stands for input_shape, as its size decides fc6.
    tensor = keras.Input((64, 64, 1))
    from_tensor = vgg_tf.VGG("A", input_tensor=tensor, classes=10, width_multiplier=1 / 16)
    assert models.crop_size_of(from_tensor) == 64
    with pytest.raises(ValueError, match=r"\(64, 64, 1\) conflicts with crop_size=32"):
        vgg_tf.VGG("A", input_tensor=tensor, **TINY)


def test_crop_size_of_lives_in_models_and_fcn_reexports_it():
    from vgg_tf.nets import fcn

    assert fcn.crop_size_of is models.crop_size_of
    with pytest.raises(ValueError, match=r"input shape \(None, None, None, 3\).*square crop"):
        models.crop_size_of(vgg_tf.VGG("A", include_top=False, width_multiplier=1 / 16))


def test_channels_first_matches_keras_applications_at_64_pixels(global_channels_first):
    """keras.applications.VGG16 follows the global format and builds fc1 for the input size.

    Its NCHW convolutions run only where TensorFlow's oneDNN path is on; elsewhere its
    answer is read from a channels_last copy with the same weights (Keras' Flatten puts a
    channels_first map in (h, w, c) order, so fc1 is the same matrix in both formats).
    Ours transpose at the input and run on every CPU.
    """
    keras.utils.set_random_seed(2)
    theirs = keras.applications.VGG16(
        weights=None, input_shape=(3, 64, 64), classes=10, classifier_activation=None
    )
    ours = vgg_tf.VGG16(input_shape=(3, 64, 64), classes=10, classifier_activation=None)
    assert ours.count_params() == theirs.count_params()
    _copy_from_keras_applications(ours, theirs)
    images = np.random.default_rng(0).uniform(-120, 130, size=(2, 3, 64, 64)).astype("float32")
    expected = _channels_first_reference(theirs, images)
    assert np.std(expected) > 1e-3
    np.testing.assert_allclose(ours.predict_on_batch(images), expected, atol=1e-4, rtol=1e-4)
    del theirs, ours
    _free()
