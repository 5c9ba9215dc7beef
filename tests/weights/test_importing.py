"""vgg_tf.weights: keras.applications, torchvision and timm files import into the same networks.

Every file here is written in its published layout with random weights: the
keras.applications ones by keras.applications' own models (Keras 2 HDF5,
read back by Keras' legacy loader as a check of the layout), the torchvision
and timm ones as safetensors with their key names. The reference outputs come
from the source framework's arithmetic: keras.applications' models fed their
own ``preprocess_input``, and a numpy forward pass written as torch computes it
(NCHW, (x/255 - mean)/std, BN in eval mode with eps 1e-5, (c, h, w) flatten).

Small widths (vgg_tf's width_multiplier, read from the file) keep most cases
fast at the real 224 input the FC head needs; full-size networks check the
real shapes once per layout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import zipfile

import h5py
import keras
import numpy as np
import pytest
from safetensors.numpy import save_file

import vgg_tf
from vgg_tf.data.constants import IMAGENET_MEAN_RGB
from vgg_tf.nets import builder, specs
from vgg_tf.weights import conventions, loading, published, transfer
from vgg_tf.weights import files as weight_files
from vgg_tf.weights import importing as weights

TINY = 1 / 16  # conv widths 4..32, FC 256
# torchvision's transforms.Normalize for ImageNet, written out (the reference's own numbers).
TORCH_MEAN, TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TORCHVISION_MEAN_RGB = (123.675, 116.28, 103.53)
TORCH_INSTALLED = weight_files.torch_available()


# --- Files in the published layouts ----------------------------------------------------


def torchvision_state(variant, batch_norm=False, width=1.0, classes=1000, top=True, seed=0):
    """A torchvision-layout VGG state dict with random weights (He-scaled, so signals live)."""
    rng = np.random.default_rng(seed)

    def normal(shape, fan_in):
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))

    state, index, channels = {}, 0, 3
    for block in specs.SPECS[variant].blocks:
        for kernel, filters in block:
            out = max(1, round(filters * width))
            state[f"features.{index}.weight"] = normal(
                (out, channels, kernel, kernel), channels * kernel * kernel
            )
            state[f"features.{index}.bias"] = normal((out,), 50)
            if batch_norm:
                bn = f"features.{index + 1}"
                state[f"{bn}.weight"] = rng.uniform(0.5, 1.5, out).astype(np.float32)
                state[f"{bn}.bias"] = normal((out,), 50)
                state[f"{bn}.running_mean"] = normal((out,), 50)
                state[f"{bn}.running_var"] = rng.uniform(0.5, 2.0, out).astype(np.float32)
                state[f"{bn}.num_batches_tracked"] = np.array(1000, np.int64)
            index += 3 if batch_norm else 2
            channels = out
        index += 1  # max-pool
    if top:
        units = max(1, round(4096 * width))
        for n, (out, fan_in) in zip(
            (0, 3, 6), ((units, channels * 49), (units, units), (classes, units))
        ):
            state[f"classifier.{n}.weight"] = normal((out, fan_in), fan_in)
            state[f"classifier.{n}.bias"] = normal((out,), 50)
    return state


def to_timm(state):
    """timm's layout of the same weights (timm's own _filter_fn for vgg*.tv_in1k)."""
    out = {}
    for key, value in state.items():
        key_out = (
            key.replace("classifier.0", "pre_logits.fc1")
            .replace("classifier.3", "pre_logits.fc2")
            .replace("classifier.6", "head.fc")
        )
        if key == "classifier.0.weight":
            value = value.reshape(value.shape[0], -1, 7, 7)
        if key == "classifier.3.weight":
            value = value.reshape(value.shape[0], value.shape[1], 1, 1)
        out[key_out] = np.ascontiguousarray(value)
    return out


def write_keras2_h5(path, layers):
    """Keras 2's HDF5 weight layout: ``layers`` is [(layer name, [arrays])] in model order.

    As keras.applications' files: the file's ``layer_names``, per layer group
    ``weight_names`` (``<layer>_W_1:0``, ``<layer>_b_1:0``) and one dataset each.
    """
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name, _ in layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.1.5"
        for name, arrays in layers:
            group = f.create_group(name)
            names = [f"{name}_{kind}_1:0" for kind in ("W", "b")][: len(arrays)]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for n, array in zip(names, arrays):
                group.create_dataset(n, data=array)
    return path


def keras_layers(model):
    return [(layer.name, layer.get_weights()) for layer in model.layers]


def photo(size=224, name="astronaut"):
    """A real photograph (scikit-image's), RGB uint8, resized to a square."""
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(getattr(data, name)()).resize((size, size), Image.BILINEAR))


# --- The reference: torch's arithmetic in numpy --------------------------------------------


def _conv(x, w, b):
    c, h, wd = x.shape
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    out = np.zeros((w.shape[0], h * wd), x.dtype)
    for i in range(k):
        for j in range(k):
            out += w[:, :, i, j] @ xp[:, i : i + h, j : j + wd].reshape(c, -1)
    return out.reshape(-1, h, wd) + b[:, None, None]


def torch_forward(state, variant, image, batch_norm=False, top=True):
    """torchvision's VGG in eval mode, in numpy: logits, or the block5 map (C, H, W)."""
    x = image.astype(np.float32) / 255.0
    x = ((x - np.asarray(TORCH_MEAN)) / np.asarray(TORCH_STD)).astype(np.float32)
    return forward_normalised(state, variant, np.transpose(x, (2, 0, 1)), batch_norm, top)


def forward_normalised(state, variant, x, batch_norm=False, top=True):
    """The network on an input already normalised, (C, H, W)."""
    index = 0
    for block in specs.SPECS[variant].blocks:
        for _ in block:
            x = _conv(x, state[f"features.{index}.weight"], state[f"features.{index}.bias"])
            if batch_norm:
                bn = f"features.{index + 1}"
                x = (x - state[f"{bn}.running_mean"][:, None, None]) / np.sqrt(
                    state[f"{bn}.running_var"][:, None, None] + 1e-5
                ) * state[f"{bn}.weight"][:, None, None] + state[f"{bn}.bias"][:, None, None]
            x = np.maximum(x, 0)
            index += 3 if batch_norm else 2
        c, h, w = x.shape
        x = x.reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))
        index += 1
    if not top:
        return x
    x = x.reshape(-1)  # torch.flatten: (c, h, w) order
    for n in (0, 3, 6):
        x = state[f"classifier.{n}.weight"] @ x + state[f"classifier.{n}.bias"]
        if n != 6:
            x = np.maximum(x, 0)
    return x


def log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def assert_same_classifier(ours_probs, reference_logits=None, reference_probs=None):
    """Log-probabilities within 1e-3 and the same top-1 (the issue's acceptance)."""
    ours = np.log(np.asarray(ours_probs, np.float64).reshape(-1))
    theirs = (
        log_softmax(reference_logits).reshape(-1)
        if reference_probs is None
        else np.log(np.asarray(reference_probs, np.float64).reshape(-1))
    )
    assert np.max(np.abs(ours - theirs)) < 1e-3, np.max(np.abs(ours - theirs))
    assert ours.argmax() == theirs.argmax()
    # Random weights still give a peaked enough answer for top-1 to mean something.
    assert theirs.max() - np.sort(theirs)[-2] > 1e-3


def run_vgg_tf(model, image, mean_rgb):
    x = (image.astype(np.float32) - np.asarray(mean_rgb, np.float32))[None]
    return model.predict_on_batch(x)


# --- torchvision and timm layouts ----------------------------------------------------------


@pytest.mark.parametrize("layout", ["torchvision", "timm"])
@pytest.mark.parametrize(
    "variant,batch_norm",
    [
        ("A", False),
        ("B", False),
        ("D", False),
        ("E", False),
        ("A", True),
        ("E", True),
    ],
)
def test_state_dicts_match_the_numpy_reference(tmp_path, variant, batch_norm, layout):
    state = torchvision_state(variant, batch_norm, width=TINY, seed=len(variant) + batch_norm)
    path = tmp_path / "model.safetensors"
    save_file(state if layout == "torchvision" else to_timm(state), str(path))
    imported = weight_files.read_weights(path)
    assert (imported.variant, imported.batch_norm, imported.include_top) == (
        variant,
        batch_norm,
        True,
    )
    assert (imported.classes, imported.width_multiplier) == (1000, TINY)
    assert imported.source_format == layout
    assert imported.mean_rgb == TORCHVISION_MEAN_RGB
    model = weights.import_weights(path)
    image = photo()
    assert_same_classifier(
        run_vgg_tf(model, image, imported.mean_rgb),
        torch_forward(state, variant, image, batch_norm),
    )
    if batch_norm:
        assert model.get_layer("block1_conv1_bn").epsilon == weight_files.TORCH_BN_EPSILON


@pytest.mark.slow
def test_full_size_vgg16_state_dict_matches_the_numpy_reference(tmp_path):
    # The real shapes once (the parametrised test above covers every layout at 1/16 width).
    state = torchvision_state("D")
    save_file(state, str(tmp_path / "tv.safetensors"))
    imported = weight_files.read_weights(tmp_path / "tv.safetensors")
    model = weights.build_imported(imported)
    assert model.count_params() == 138_357_544
    image = photo()
    assert_same_classifier(
        run_vgg_tf(model, image, TORCHVISION_MEAN_RGB),
        torch_forward(state, "D", image),
    )


def test_timm_layout_gives_the_same_keras_arrays(tmp_path):
    # timm's fc6 (a 7x7 conv) and fc7 (a 1x1 conv) become torchvision's Linear layers.
    state = torchvision_state("E", batch_norm=True, width=TINY)
    save_file(state, str(tmp_path / "tv.safetensors"))
    save_file(to_timm(state), str(tmp_path / "timm.safetensors"))
    tv = weight_files.read_weights(tmp_path / "tv.safetensors").layers
    timm = weight_files.read_weights(tmp_path / "timm.safetensors").layers
    assert tv.keys() == timm.keys()
    for name, arrays in tv.items():
        for a, b in zip(arrays, timm[name]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "variant,batch_norm", [("A", False), ("B", False), ("E", False), ("B", True)]
)
def test_full_width_conv_trunks_match_the_numpy_reference(tmp_path, variant, batch_norm):
    # A file without the classifier (a trunk) imports as include_top=False, any input size.
    state = torchvision_state(variant, batch_norm, top=False, seed=3)
    save_file(state, str(tmp_path / "trunk.safetensors"))
    model = weights.import_weights(tmp_path / "trunk.safetensors")
    assert not transfer.include_top_of(model)
    image = photo(64, "coffee")
    ours = run_vgg_tf(model, image, TORCHVISION_MEAN_RGB)[0]
    theirs = np.transpose(torch_forward(state, variant, image, batch_norm, top=False), (1, 2, 0))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_the_first_conv_folds_torchvisions_normalisation_exactly(tmp_path):
    # vgg_tf's input x - 255*mean is torch's (x/255 - mean)/std times 255*std.
    state = torchvision_state("A", width=TINY, top=False)
    save_file(state, str(tmp_path / "trunk.safetensors"))
    kernel = weight_files.read_weights(tmp_path / "trunk.safetensors").layers["block1_conv1"][0]
    torch_kernel = np.transpose(state["features.0.weight"], (2, 3, 1, 0))
    np.testing.assert_allclose(
        kernel * 255 * np.asarray(TORCH_STD)[:, None], torch_kernel, rtol=1e-6
    )
    np.testing.assert_allclose(TORCHVISION_MEAN_RGB, 255 * np.asarray(TORCH_MEAN), rtol=1e-12)


def test_vgg_builders_take_state_dict_files(tmp_path):
    state = torchvision_state("A", batch_norm=True, width=TINY)
    path = tmp_path / "vgg11_bn.safetensors"
    save_file(state, str(path))
    imported = weights.import_weights(path)
    built = vgg_tf.VGG11(batch_norm=True, width_multiplier=TINY, weights=path)
    assert built.get_layer("block1_conv1_bn").epsilon == weight_files.TORCH_BN_EPSILON
    assert (
        vgg_tf.VGG11(batch_norm=True, width_multiplier=TINY).get_layer("block1_conv1_bn").epsilon
        == 1e-3
    )  # Keras' default without such weights
    for a, b in zip(imported.get_weights(), built.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The top of the file is left out for a headless net, at any input size.
    trunk = vgg_tf.VGG11(include_top=False, batch_norm=True, width_multiplier=TINY, weights=path)
    np.testing.assert_array_equal(
        trunk.get_layer("block5_conv2").get_weights()[0],
        imported.get_layer("block5_conv2").get_weights()[0],
    )
    with pytest.raises(
        ValueError, match="without batch norm; batch_norm=True|with batch norm; batch_norm=False"
    ):
        vgg_tf.VGG11(width_multiplier=TINY, weights=path)
    with pytest.raises(ValueError, match="holds net A .*not the requested B"):
        vgg_tf.VGG13(batch_norm=True, width_multiplier=TINY, weights=path)


# --- keras.applications ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name,variant", [("VGG16", "D"), ("VGG19", "E")])
def test_keras_applications_files_with_and_without_top(tmp_path, name, variant):
    application = getattr(keras.applications, name)
    preprocess = getattr(keras.applications, name.lower()).preprocess_input
    # Seeded: unseeded Glorot weights sometimes leave the top two classes within 1e-3.
    keras.utils.set_random_seed(2)
    theirs = application(weights=None)
    stem = f"{name.lower()}_weights_tf_dim_ordering_tf_kernels"
    top = write_keras2_h5(tmp_path / f"{stem}.h5", keras_layers(theirs))
    notop_layers = keras_layers(theirs)[
        : [layer.name for layer in theirs.layers].index("block5_pool") + 1
    ]
    notop = write_keras2_h5(tmp_path / f"{stem}_notop.h5", notop_layers)
    image = photo()

    ours = weights.import_weights(top)
    assert ours.count_params() == theirs.count_params()
    expected = theirs.predict_on_batch(preprocess(image[None].astype("float32")))
    assert_same_classifier(run_vgg_tf(ours, image, IMAGENET_MEAN_RGB), reference_probs=expected)
    del ours, theirs

    # Without the top: Keras' own legacy loader reads the file (the layout is Keras 2's).
    theirs = application(include_top=False, weights=str(notop), input_shape=(224, 224, 3))
    expected = theirs.predict_on_batch(preprocess(image[None].astype("float32")))
    ours = weights.import_weights(notop)
    assert not transfer.include_top_of(ours) and ours.input_shape == (None, None, None, 3)
    got = run_vgg_tf(ours, image, IMAGENET_MEAN_RGB)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # A headless net also takes the file with the top (no "top/no-top mismatch" refusal).
    headless = getattr(vgg_tf, name)(include_top=False, weights=top)
    for a, b in zip(headless.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert weight_files.read_weights(top).variant == variant


def random_keras_d(tmp_path, top=False):
    """A keras.applications-layout VGG16 file with random weights (no model built)."""
    rng = np.random.default_rng(0)
    layers = [("input_1", [])]
    channels = 3
    for b, block in enumerate(specs.SPECS["D"].blocks, start=1):
        for c, (k, f) in enumerate(block, start=1):
            kernel = rng.standard_normal((k, k, channels, f), np.float32)
            layers.append((f"block{b}_conv{c}", [kernel, rng.standard_normal(f, np.float32)]))
            channels = f
        layers.append((f"block{b}_pool", []))
    if top:
        layers.append(("flatten", []))
        for name, fan_in, units in (("fc1", 25088, 4096), ("fc2", 4096, 4096)):
            kernel = rng.standard_normal((fan_in, units), np.float32)
            layers.append((name, [kernel, rng.standard_normal(units, np.float32)]))
        kernel = rng.standard_normal((4096, 1000), np.float32)
        layers.append(("predictions", [kernel, rng.standard_normal(1000, np.float32)]))
    name = "top.h5" if top else "notop.h5"
    return write_keras2_h5(tmp_path / name, layers), layers


def test_keras_applications_layout_is_converted_to_rgb(tmp_path):
    # Caffe's BGR kernel, its input channels reversed; the rest unchanged; names mapped.
    path, layers = random_keras_d(tmp_path)
    imported = weight_files.read_weights(path)
    assert (imported.variant, imported.include_top, imported.source_format) == (
        "D",
        False,
        "keras_applications",
    )
    np.testing.assert_array_equal(imported.layers["block1_conv1"][0], layers[1][1][0][:, :, ::-1])
    np.testing.assert_array_equal(imported.layers["block5_conv3"][0], layers[-2][1][0])
    assert imported.mean_rgb == IMAGENET_MEAN_RGB == (123.68, 116.779, 103.939)


# --- weights="imagenet" and "tv_in1k" ------------------------------------------------------


def _checksum(path, algorithm):
    return hashlib.new(algorithm, open(path, "rb").read()).hexdigest()


def _cache_with(tmp_path, monkeypatch, table, key, source):
    """A Keras cache ($KERAS_HOME) holding ``source`` under the published name of ``table[key]``,
    with the local file's checksum, md5 for keras.applications' files and sha256 for timm's as
    published (the download is the one step not exercised)."""
    home = tmp_path / "keras_home"
    file = table[key]
    (home / "models").mkdir(parents=True, exist_ok=True)
    os.link(source, home / "models" / file.fname)
    monkeypatch.setenv("KERAS_HOME", str(home))
    algorithm = "md5" if file.source_format == "keras_applications" else "sha256"
    checksum = _checksum(source, algorithm)
    monkeypatch.setitem(table, key, dataclasses.replace(file, file_hash=checksum))
    return home / "models" / file.fname


def test_imagenet_weights_are_read_from_keras_cache(tmp_path, monkeypatch):
    source, _ = random_keras_d(tmp_path)
    key = ("D", False)
    cached = _cache_with(tmp_path, monkeypatch, published.KERAS_APPLICATIONS_FILES, key, source)
    model = vgg_tf.VGG16(include_top=False, weights="imagenet")
    expected = weight_files.read_weights(cached).layers
    for name, arrays in expected.items():
        for a, b in zip(model.get_layer(name).get_weights(), arrays):
            np.testing.assert_array_equal(a, b)
    assert published.imagenet_weights_path("D", include_top=False) == str(cached)
    assert published.imagenet_mean_rgb("D") == IMAGENET_MEAN_RGB


def test_nets_keras_does_not_publish_come_from_timms_safetensors_without_torch(
    tmp_path, monkeypatch
):
    # Full-width trunks stand for the files (their tops are not read without include_top).
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails from here on
    image = photo(64, "coffee")
    for variant, batch_norm in (("A", False), ("B", True)):
        state = torchvision_state(variant, batch_norm, top=False, seed=4)
        path = tmp_path / f"{variant}_{batch_norm}.safetensors"
        save_file(to_timm(state), str(path))
        key = (variant, batch_norm)
        cached = _cache_with(tmp_path, monkeypatch, published.TIMM_FILES, key, path)
        model = vgg_tf.VGG(
            variant,
            include_top=False,
            batch_norm=batch_norm,
            weights="imagenet",
            include_preprocessing=True,
        )
        for name, arrays in weight_files.read_weights(cached).layers.items():
            for a, b in zip(model.get_layer(name).get_weights(), arrays):
                np.testing.assert_array_equal(a, b)
        # Raw uint8 pixels in; the model applies timm's convention (torchvision's) itself.
        ours = model.predict_on_batch(image[None])[0]
        theirs = torch_forward(state, variant, image, batch_norm, top=False).transpose(1, 2, 0)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())
        assert published.imagenet_mean_rgb(variant, batch_norm) == TORCHVISION_MEAN_RGB
    assert cached.name == "vgg13_bn.tv_in1k.safetensors"
    assert model.get_layer("block1_conv1_bn").epsilon == weight_files.TORCH_BN_EPSILON
    # "tv_in1k" names timm's files for D and E too; "imagenet" keeps keras.applications' there.
    assert published.imagenet_weights_file("D", weight_set="tv_in1k").fname == (
        "vgg16.tv_in1k.safetensors"
    )
    assert published.imagenet_weights_file("D").source_format == "keras_applications"
    for file in published.TIMM_FILES.values():
        assert file.url == (
            f"https://huggingface.co/timm/{file.fname[: -len('.safetensors')]}"
            "/resolve/main/model.safetensors"
        )


def test_pretrained_weights_with_a_new_head_load_all_but_fc8(tmp_path):
    state = torchvision_state("B", width=TINY, seed=6)
    path = tmp_path / "vgg13.safetensors"
    save_file(to_timm(state), str(path))
    imported = weight_files.read_weights(path)
    model = vgg_tf.VGG13(weights=path, classes=10, width_multiplier=TINY)
    for name, arrays in imported.layers.items():
        if name != "fc8":
            for a, b in zip(model.get_layer(name).get_weights(), arrays):
                np.testing.assert_array_equal(a, b)
    kernel, bias = model.get_layer("fc8").get_weights()
    assert kernel.shape == (256, 10) and not bias.any()  # fresh: N(0, 0.01), zero bias
    assert np.std(kernel) == pytest.approx(0.01, rel=0.2)
    # The file's own class count keeps its fc8.
    same = vgg_tf.VGG13(weights=path, width_multiplier=TINY)
    np.testing.assert_array_equal(same.get_layer("fc8").get_weights()[0], imported.layers["fc8"][0])


def test_include_preprocessing_subtracts_the_weights_own_mean(tmp_path, tiny_file):
    path, state = tiny_file
    image = photo()
    model = weights.import_weights(path, include_preprocessing=True)
    assert_same_classifier(model.predict_on_batch(image[None]), torch_forward(state, "A", image))
    built = vgg_tf.VGG11(weights=path, width_multiplier=TINY, include_preprocessing=True)
    assert builder.included_mean_rgb(built) == TORCHVISION_MEAN_RGB
    with pytest.raises(
        ValueError,
        match=r"mean_rgb=\(123.68, 116.779, 103.939\) conflicts with weights=.*vgg11.safetensors"
        r".*RGB minus \(123.675, 116.28, 103.53\)",
    ):
        vgg_tf.VGG11(
            weights=path,
            width_multiplier=TINY,
            include_preprocessing=True,
            mean_rgb=IMAGENET_MEAN_RGB,
        )
    with pytest.raises(ValueError, match=r"mean_rgb=\(1, 2\) conflicts with weights="):
        vgg_tf.VGG11(
            weights=path, width_multiplier=TINY, include_preprocessing=True, mean_rgb=(1, 2)
        )
    # A .keras file of such a model gives its mean to a model built from it, and to loaders.
    built.save(tmp_path / "raw.keras")
    again = vgg_tf.VGG11(
        weights=tmp_path / "raw.keras", width_multiplier=TINY, include_preprocessing=True
    )
    assert builder.included_mean_rgb(again) == TORCHVISION_MEAN_RGB
    trained = loading.load_model(tmp_path / "raw.keras")
    assert trained.includes_preprocessing and trained.mean_rgb == TORCHVISION_MEAN_RGB
    weights.import_weights(path).save(tmp_path / "plain.keras")
    assert not loading.load_model(tmp_path / "plain.keras").includes_preprocessing


@pytest.mark.slow
def test_vgg16_imagenet_with_ten_classes_keeps_fc6_fc7_and_starts_fc8_afresh(tmp_path, monkeypatch):
    source, layers = random_keras_d(tmp_path, top=True)
    key = ("D", True)
    _cache_with(tmp_path, monkeypatch, published.KERAS_APPLICATIONS_FILES, key, source)
    model = vgg_tf.VGG16(weights="imagenet", classes=10)
    arrays = dict(layers)
    for ours, theirs in (("fc6", "fc1"), ("fc7", "fc2"), ("block5_conv3", "block5_conv3")):
        for a, b in zip(model.get_layer(ours).get_weights(), arrays[theirs]):
            np.testing.assert_array_equal(a, b)
    kernel, bias = model.get_layer("fc8").get_weights()
    assert kernel.shape == (4096, 10) and not bias.any()
    assert np.std(kernel) == pytest.approx(0.01, rel=0.05)


@pytest.mark.parametrize(
    "table,key,build",
    [
        ("KERAS_APPLICATIONS_FILES", ("E", False), dict(variant="E")),
        ("TIMM_FILES", ("A", True), dict(variant="A", batch_norm=True)),
    ],
    ids=["keras_applications", "timm"],
)
def test_published_files_without_network_or_cache_say_where_to_put_them(
    tmp_path, monkeypatch, table, key, build
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    files = getattr(published, table)
    file = files[key]
    unreachable = f"http://127.0.0.1:9/{file.fname}"  # refused at once, as offline
    monkeypatch.setitem(files, key, dataclasses.replace(file, url=unreachable))
    with pytest.raises(ValueError) as error:
        vgg_tf.VGG(include_top=False, weights="imagenet", **build)
    message = str(error.value)
    for text in (file.fname, unreachable, str(tmp_path / "models" / file.fname), "~/.keras/models"):
        assert text in message, message
    assert not (tmp_path / "models" / file.fname).exists()


def test_pth_files_without_torch_name_the_safetensors_alternative(tmp_path, monkeypatch):
    monkeypatch.setattr(weight_files, "torch_available", lambda: False)
    # A .pth file on disk: recognised by its content (torch's zip).
    path = tmp_path / "vgg16-397923af.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(weight_files.MissingDependencyError) as error:
        weights.import_weights(path)
    message = str(error.value)
    assert isinstance(error.value, ValueError) and isinstance(error.value, ImportError)
    for text in (
        "vgg16-397923af.pth",
        "pip install torch",
        "vgg16.tv_in1k",
        "model.safetensors",
        "weights='tv_in1k'",
        "safetensors.torch",
    ):
        assert text in message, message


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            dict(variant="C"),
            r"No ImageNet weights are published for net C; .*available for A, A "
            r"\(batch_norm\), B",
        ),
        (dict(variant="A-LRN"), r"net A-LRN"),
        (dict(variant="D", width_multiplier=0.5), r"'imagenet' does not fit width_multiplier=0.5"),
        (dict(variant="D", input_shape=(64, 64, 3)), r"64x64 input with include_top=True"),
        (dict(variant="D", input_shape=(64, 64, 1), include_top=False), r"1 input channels"),
        (dict(variant="C", weights="tv_in1k"), r"net C; weights='tv_in1k' is available for A"),
        (dict(variant="D", weights="tv_in"), r"'tv_in' is neither None, 'imagenet', 'tv_in1k'"),
    ],
)
def test_published_weights_refuse_networks_the_files_do_not_fit(kwargs, message):
    kwargs.setdefault("weights", "imagenet")
    with pytest.raises(ValueError, match=message):  # before any download
        vgg_tf.VGG(**kwargs)


# --- Input conventions ------------------------------------------------------------------
# Each source's reference is its own arithmetic: keras.applications' VGG16 fed
# keras.applications.vgg16.preprocess_input (BGR minus the Caffe mean), on a file it wrote.


def test_each_convention_records_its_sources_numbers():
    keras_apps, torchvision = conventions.KERAS_APPLICATIONS, conventions.TORCHVISION
    assert (keras_apps.channel_order, keras_apps.pixel_max) == ("BGR", 255.0)
    assert keras_apps.mean == (103.939, 116.779, 123.68)  # keras.applications' BGR numbers
    assert keras_apps.mean_rgb == IMAGENET_MEAN_RGB
    assert (torchvision.channel_order, torchvision.pixel_max) == ("RGB", 1.0)
    assert torchvision.mean_rgb == (123.675, 116.28, 103.53)
    assert conventions.TIMM.mean_rgb == torchvision.mean_rgb and conventions.TIMM.name == "timm"
    for convention in conventions.CONVENTIONS.values():
        assert (convention.crop_size, convention.resize_side) == (224, 256)
        assert convention.class_names[281] == "tabby"
    with pytest.raises(ValueError, match=r"Unknown weights format 'caffe'; expected one of"):
        conventions.convention_for("caffe")
    with pytest.raises(ValueError, match=r"channel_order='RBG' is not accepted"):
        dataclasses.replace(keras_apps, channel_order="RBG")


def test_folding_gives_the_sources_first_layer_on_rgb_minus_mean():
    # One 1x1 conv: the source's (pixels in its order, range, mean, std) against vgg_tf's.
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((1, 1, 3, 5)).astype(np.float32)
    rgb = rng.uniform(0, 255, (4, 3))
    for convention in conventions.CONVENTIONS.values():
        order = [2, 1, 0] if convention.channel_order == "BGR" else [0, 1, 2]
        source_input = (rgb[:, order] * convention.pixel_max / 255 - convention.mean) / np.asarray(
            convention.std
        )
        theirs = source_input @ kernel[0, 0]
        ours = (rgb - convention.mean_rgb) @ convention.fold_into_first_conv(kernel)[0, 0]
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(3, 3, 1, 8\) is not accepted.*3 colour channels"):
        conventions.TORCHVISION.fold_into_first_conv(np.zeros((3, 3, 1, 8), np.float32))


def _keras_applications_trunk(tmp_path):
    """keras.applications' VGG16 trunk at 32 pixels and its notop file (Keras 2 layout)."""
    keras.utils.set_random_seed(3)
    theirs = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    layers = [(layer.name, layer.get_weights()) for layer in theirs.layers]
    path = write_keras2_h5(tmp_path / "vgg16_notop.h5", layers)
    return theirs, path


def test_keras_applications_file_gives_keras_answer_only_with_its_own_convention(tmp_path):
    theirs, path = _keras_applications_trunk(tmp_path)
    image = photo(32)[None]
    expected = theirs.predict_on_batch(
        keras.applications.vgg16.preprocess_input(image.astype("float32"))
    )
    assert np.std(expected) > 1e-3
    imported = weight_files.read_weights(path)
    assert imported.convention is conventions.KERAS_APPLICATIONS
    ours = vgg_tf.VGG16(include_top=False, weights=path)

    def close(got):
        return np.allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())

    assert close(ours.predict_on_batch(vgg_tf.preprocess_input(image, imported.mean_rgb)))
    raw = vgg_tf.VGG16(include_top=False, weights=path, include_preprocessing=True)
    assert close(raw.predict_on_batch(image))  # uint8 RGB in, the convention inside
    # The same file read with torchvision's convention: other answers.
    as_torchvision = dict(imported.layers)
    as_torchvision["block1_conv1"] = [
        conventions.TORCHVISION.fold_into_first_conv(theirs.get_layer("block1_conv1").kernel),
        imported.layers["block1_conv1"][1],
    ]
    wrong = vgg_tf.VGG16(include_top=False)
    transfer.load_layer_weights(wrong, as_torchvision)
    got = wrong.predict_on_batch(vgg_tf.preprocess_input(image, conventions.TORCHVISION.mean_rgb))
    assert not close(got)
    # keras.applications' own preprocess_input (BGR) on a vgg_tf model: also wrong.
    assert not close(
        ours.predict_on_batch(keras.applications.vgg16.preprocess_input(image.astype("float32")))
    )


# --- Workdirs -----------------------------------------------------------------------------


@pytest.fixture
def tiny_file(tmp_path):
    state = torchvision_state("A", width=TINY, seed=5)
    path = tmp_path / "vgg11.safetensors"
    save_file(state, str(path))
    return path, state


def test_imported_workdir_is_taken_like_a_trained_run(tmp_path, tiny_file):
    from vgg_tf.serving import export

    path, state = tiny_file
    workdir = tmp_path / "imported"
    weights.import_to_workdir(path, workdir)
    trained = loading.load_model(workdir)
    config = json.loads((workdir / "config.json").read_text())
    # The network, its input convention and test scales: what a trained run records of them.
    assert {
        "variant",
        "batch_norm",
        "width_multiplier",
        "crop_size",
        "scale_min",
        "scale_max",
        "flip",
        "mean_rgb",
        "num_classes",
        "class_names",
        "task",
    } <= set(config)
    assert config["variant"] == "A" and config["crop_size"] == 224
    assert config["weights_format"] == "torchvision" and config["weights_source"] == str(path)
    assert config["weights_url"] is None and config["batch_norm_epsilon"] is None
    assert trained.mean_rgb == TORCHVISION_MEAN_RGB
    assert trained.single_scale() == (256,) and trained.multi_scales() == (224, 256, 288)
    assert trained.flip and trained.num_classes == 1000
    assert trained.class_names[281] == "tabby"
    # The saved model takes RGB pixels and subtracts its source's mean itself.
    assert trained.includes_preprocessing and trained.mean_to_subtract is None
    image = photo()
    assert_same_classifier(
        trained.model.predict_on_batch(image[None]), torch_forward(state, "A", image)
    )
    # --init_from reads it by layer name; bin/export exports it.
    assert "fc8" in transfer.read_layer_weights(workdir)
    version = export.export_saved_model(workdir, tmp_path / "export", verbose=0)
    assert os.path.isfile(os.path.join(version, "saved_model.pb"))


def test_workdir_refuses_a_run_there_and_a_headless_file(tmp_path, tiny_file):
    path, _ = tiny_file
    weights.import_to_workdir(path, tmp_path / "w")
    with pytest.raises(ValueError, match="already holds a run.*--overwrite"):
        weights.import_to_workdir(path, tmp_path / "w")
    weights.import_to_workdir(path, tmp_path / "w", overwrite=True)
    save_file(torchvision_state("A", width=TINY, top=False), str(tmp_path / "trunk.safetensors"))
    with pytest.raises(ValueError, match="no fully-connected layers.*holds a classifier"):
        weights.import_to_workdir(tmp_path / "trunk.safetensors", tmp_path / "w2")


@pytest.mark.slow
def test_imagenet_trained_model_from_the_cache(tmp_path, monkeypatch):
    state = torchvision_state("D", seed=9)
    keras_layers_d = [("input_1", [])]
    # keras.applications' layout of a torchvision net: (h, w, in, out) kernels, BGR first conv.
    index = 0
    for b, block in enumerate(specs.SPECS["D"].blocks, start=1):
        for c, _ in enumerate(block, start=1):
            kernel = np.transpose(state[f"features.{index}.weight"], (2, 3, 1, 0))
            keras_layers_d.append((f"block{b}_conv{c}", [kernel, state[f"features.{index}.bias"]]))
            index += 2
        index += 1
    fc6 = state["classifier.0.weight"].reshape(4096, 512, 7, 7).transpose(2, 3, 1, 0)
    fc6 = fc6.reshape(-1, 4096)
    keras_layers_d += [
        ("flatten", []),
        ("fc1", [fc6, state["classifier.0.bias"]]),
        ("fc2", [state["classifier.3.weight"].T, state["classifier.3.bias"]]),
        ("predictions", [state["classifier.6.weight"].T, state["classifier.6.bias"]]),
    ]
    source = write_keras2_h5(tmp_path / "d.h5", keras_layers_d)
    key = ("D", True)
    cached = _cache_with(tmp_path, monkeypatch, published.KERAS_APPLICATIONS_FILES, key, source)
    trained = weights.imagenet_trained_model("D")
    assert trained.path == str(cached) and trained.name == "D (imagenet)"
    assert trained.mean_rgb == IMAGENET_MEAN_RGB
    assert trained.multi_scales() == (224, 256, 288) and trained.class_names[0] == "tench"
    assert trained.config["weights_url"].startswith("https://storage.googleapis.com/")
    # The cached file's BGR first conv, reversed to RGB; the torchvision arrays in it survive.
    image = photo()
    # Scaled down: these random weights expect inputs of unit scale (finite log-probabilities).
    x = (image.astype(np.float32) - np.asarray(IMAGENET_MEAN_RGB, np.float32)) / 64
    # What keras.applications computes on this file: BGR minus the Caffe mean into the convs.
    reference = forward_normalised(state, "D", np.transpose(x[..., ::-1], (2, 0, 1)))
    # The model subtracts the mean itself: it is fed the pixels that give x.
    assert trained.includes_preprocessing
    pixels = x + np.asarray(IMAGENET_MEAN_RGB, np.float32)
    assert_same_classifier(trained.model.predict_on_batch(pixels[None]), reference)


# --- Bad files ---------------------------------------------------------------------------


def _bad_files(tmp_path):
    (tmp_path / "noise.bin").write_bytes(b"not a weight file\n" * 16)
    model = vgg_tf.VGG("A", classes=3, crop_size=32, width_multiplier=TINY)
    model.save_weights(str(tmp_path / "keras3.weights.h5"))
    save_file(
        {
            "conv1.weight": np.zeros((4, 3, 7, 7), np.float32),
            "fc.weight": np.zeros((10, 4), np.float32),
        },
        str(tmp_path / "resnet.safetensors"),
    )
    nine = torchvision_state("A", width=TINY, top=False)
    nine["features.21.weight"] = np.zeros((32, 32, 3, 3), np.float32)
    nine["features.21.bias"] = np.zeros(32, np.float32)
    save_file(nine, str(tmp_path / "nine.safetensors"))
    narrow = torchvision_state("A", width=TINY)
    narrow["features.3.weight"] = np.zeros((7, 4, 3, 3), np.float32)
    narrow["features.3.bias"] = np.zeros(7, np.float32)
    save_file(narrow, str(tmp_path / "widths.safetensors"))
    fc6 = torchvision_state("A", width=TINY)
    fc6["classifier.0.weight"] = np.zeros((256, 32 * 36), np.float32)
    save_file(fc6, str(tmp_path / "fc6.safetensors"))
    half_top = torchvision_state("A", width=TINY)
    del half_top["classifier.6.weight"], half_top["classifier.6.bias"]
    save_file(half_top, str(tmp_path / "half_top.safetensors"))
    write_keras2_h5(
        tmp_path / "odd.h5",
        [("conv1_1", [np.zeros((3, 3, 3, 64), np.float32), np.zeros(64, np.float32)])],
    )


@pytest.mark.parametrize(
    "name,kwargs,message",
    [
        ("missing.h5", {}, r"missing.h5.*no such file; expected a keras.applications"),
        ("noise.bin", {}, r"noise.bin.*not a file of a known layout; expected keras.applications"),
        ("keras3.weights.h5", {}, r"keras3.weights.h5.*without Keras 2's 'layer_names'"),
        (
            "resnet.safetensors",
            {},
            r"resnet.safetensors.*not a torchvision/timm VGG state dict.*"
            r"found conv1.weight, fc.weight",
        ),
        (
            "nine.safetensors",
            {},
            r"nine.safetensors.*9 conv layers.*expected the layout of one of "
            r"VGG11 \(A, 8 convs\)",
        ),
        ("widths.safetensors", {}, r"widths.safetensors.*not VGG11's widths"),
        (
            "fc6.safetensors",
            {},
            r"fc6.safetensors.*classifier.0.weight is \(256, 1152\); expected "
            r"\(out, 1568\)",
        ),
        ("half_top.safetensors", {}, r"half_top.safetensors.*fc6, fc7 but not fc8"),
        ("odd.h5", {}, r"odd.h5.*not a keras.applications VGG file.*found conv1_1"),
        ("widths.safetensors", {"variant": "Z"}, r"Unknown VGG variant 'Z'"),
    ],
)
def test_bad_files_get_errors_naming_the_file_and_what_was_expected(
    tmp_path, name, kwargs, message
):
    _bad_files(tmp_path)
    with pytest.raises(ValueError, match=message):
        weights.import_weights(tmp_path / name, **kwargs)


def test_requests_the_file_does_not_meet(tmp_path):
    state = torchvision_state("A", width=TINY, top=False)
    save_file(state, str(tmp_path / "trunk.safetensors"))
    with pytest.raises(
        ValueError,
        match=r"holds net A \(VGG11, 8 conv layers\), not the "
        r"requested D \(VGG16\)",
    ):
        weights.import_weights(tmp_path / "trunk.safetensors", "vgg16")
    with pytest.raises(ValueError, match="no fully-connected layers.*include_top=False"):
        weights.import_weights(tmp_path / "trunk.safetensors", include_top=True)
    with pytest.raises(ValueError, match="without batch norm; batch_norm=True"):
        weights.import_weights(tmp_path / "trunk.safetensors", "vgg11_bn")
    with pytest.raises(ValueError, match="net A without LRN"):
        vgg_tf.VGG(
            "A-LRN",
            include_top=False,
            width_multiplier=TINY,
            weights=tmp_path / "trunk.safetensors",
        )


# --- The command -------------------------------------------------------------------------


@pytest.mark.slow
def test_bin_import_weights_writes_a_workdir_and_names_a_missing_file(tmp_path, tiny_file, run_bin):
    # (bin/export of such a workdir: test_predict.py's acceptance test.)
    path, _ = tiny_file
    result = run_bin("import_weights", path, "--workdir", tmp_path / "w")
    lines = result.stdout.splitlines()
    assert lines[0] == f"workdir: {tmp_path / 'w'}"
    assert "imported net A from torchvision file" in lines[1] and "1000 classes" in lines[1]
    assert "mean RGB (123.675, 116.28, 103.53)" in lines[2]
    assert "test scales 256 (single), 224/256/288 (multi)" in lines[2]
    assert not result.stderr.strip(), result.stderr
    loading.load_model(tmp_path / "w")
    bad = run_bin(
        "import_weights", tmp_path / "nothing.h5", "--workdir", tmp_path / "x", check=False
    )
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        f"error: Cannot import weights from '{tmp_path / 'nothing.h5'}': no such file; expected "
        "a keras.applications .h5, a torchvision .pth or a timm .safetensors file."
    ]
