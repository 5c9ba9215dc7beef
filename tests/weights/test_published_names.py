"""``imagenet-D`` (and the other published nets) wherever a model is taken, through one loader.

The published file is written in its real layout (keras.applications' Keras 2
HDF5 for D) with random weights at a small width (read from the file, as the
published files' is) into a temporary Keras cache ($KERAS_HOME), its checksum
recorded as the published table would: nothing is downloaded. The commands run
in a child process that records the same checksum before running ``bin/<name>``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import vgg_tf
from vgg_tf.configs import finetune
from vgg_tf.data.constants import IMAGENET_MEAN_RGB
from vgg_tf.inference import protocol
from vgg_tf.training import loop
from vgg_tf.weights import files, loading, published

TINY = 1 / 16
KEY = ("D", True)  # keras.applications' VGG16 with its top
_KERAS_NAMES = {"fc6": "fc1", "fc7": "fc2", "fc8": "predictions"}


def write_keras_applications_d(path):
    """keras.applications' VGG16 file layout (Keras 2 HDF5, fc1/fc2/predictions) holding a
    random net D of width 1/16 with the 224 crop's fc6 and 1,000 classes."""
    keras.utils.set_random_seed(7)
    model = vgg_tf.VGG("D", width_multiplier=TINY, kernel_initializer="glorot")
    layers = [
        (_KERAS_NAMES.get(layer.name, layer.name), layer.get_weights())
        for layer in model.layers
        if layer.weights  # (the softmax layer, named predictions here, is not in the file)
    ]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name, _ in layers]
        for name, arrays in layers:
            group = f.create_group(name)
            names = [f"{name}_{kind}_1:0" for kind in ("W", "b")][: len(arrays)]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for n, array in zip(names, arrays):
                group.create_dataset(n, data=array)
    return path


@pytest.fixture
def keras_cache(tmp_path, monkeypatch):
    """A Keras cache holding net D's published file, its md5 the one recorded for it."""
    file = published.KERAS_APPLICATIONS_FILES[KEY]
    home = tmp_path / "keras_home"
    (home / "models").mkdir(parents=True)
    path = write_keras_applications_d(home / "models" / file.fname)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setitem(
        published.KERAS_APPLICATIONS_FILES, KEY, dataclasses.replace(file, file_hash=md5)
    )
    return path, md5


def _photo_folder(root, classes=("astronaut", "coffee"), per_class=4, side=64):
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        image = getattr(data, name)()
        for i in range(per_class):
            y, x = rng.integers(0, 200, 2)
            crop = image[y : y + 256, x : x + 256]
            Image.fromarray(crop).resize((side, side)).save(root / name / f"{i}.png")
    return root


# --- What a name records, read without loading it -------------------------------------------


def test_a_published_name_records_its_convention_and_file_without_reading_it(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME", raising=False)  # no file anywhere: nothing is read
    config = loading.recorded_config("imagenet-D")
    assert config["mean_rgb"] == list(IMAGENET_MEAN_RGB) and config["crop_size"] == 224
    assert config["weights_format"] == "keras_applications" and config["variant"] == "D"
    assert config["weights_url"] == published.KERAS_APPLICATIONS_FILES[KEY].url
    assert loading.recorded_config("imagenet-vgg11_bn")["batch_norm_epsilon"] == 1e-5
    origin = loading.origin_of("imagenet-E")
    assert origin["model"] == "imagenet-E"
    assert origin["path"] == published.KERAS_APPLICATIONS_FILES[("E", True)].cache_path
    # A file or folder of that name is a path, read as one.
    (tmp_path / "imagenet-D").mkdir()
    monkeypatch.chdir(tmp_path)
    assert not loading.is_published_name("imagenet-D")
    assert loading.recorded_config("imagenet-D") == {}
    with pytest.raises(ValueError, match="Cannot load a model from 'imagenet-D'"):
        loading.load_model("imagenet-D")


def test_imagenet_d_loads_as_a_model_that_subtracts_its_own_mean(keras_cache):
    path, _ = keras_cache
    trained = loading.load_model("imagenet-D")
    assert trained.path == str(path) and trained.includes_preprocessing
    assert trained.mean_rgb == IMAGENET_MEAN_RGB and trained.num_classes == 1000
    # The file's arrays (its first kernel reversed from Caffe's BGR), the mean inside.
    for name, arrays in files.read_weights(path).layers.items():
        for ours, theirs in zip(trained.model.get_layer(name).get_weights(), arrays):
            np.testing.assert_array_equal(ours, theirs)


# --- Fine-tuning from a name ------------------------------------------------------------------


def test_a_run_from_imagenet_d_may_have_the_current_directory_as_workdir(
    tmp_path, monkeypatch, encode
):
    """``--init_from imagenet-D --workdir .`` was refused: the name was taken for the path
    ``./imagenet-D``, inside the workdir. A file of that name there is still refused."""
    for name in ("cat", "dog"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(4):
            image = np.full((40, 40, 3), 60 * i, np.uint8)
            (tmp_path / "photos" / name / f"{i}.png").write_bytes(encode(image, "PNG"))
    monkeypatch.chdir(tmp_path)
    config = finetune.get_config()
    config.update(
        dict(
            dataset="photos",
            variant="D",
            init_from="imagenet-D",
            width_multiplier=TINY,
            batch_size=4,
        )
    )
    run = loop.set_up(config, ".", overwrite=False)  # checks the workdir; writes nothing
    assert run.run_config["started_from"]["model"] == "imagenet-D"
    (tmp_path / "imagenet-D").mkdir()
    with pytest.raises(ValueError, match="'imagenet-D' is inside this run's workdir"):
        loop.set_up(config, ".", overwrite=False)


@pytest.mark.slow
def test_finetune_from_imagenet_d_on_a_folder_records_what_it_started_from(tmp_path, keras_cache):
    path, _ = keras_cache
    config = finetune.get_config()
    config.update(
        dict(
            dataset=str(_photo_folder(tmp_path / "photos")),
            variant="D",
            init_from="imagenet-D",
            width_multiplier=TINY,
            batch_size=4,
            epochs=1,
            freeze="all_but_head",  # everything but fc8 stays as the file has it
        )
    )
    loop.train_and_evaluate(config, str(tmp_path / "run"))
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["init_from"] == "imagenet-D"
    assert recorded["mean_rgb"] == list(IMAGENET_MEAN_RGB)  # the weights' own
    origin = recorded["started_from"]
    assert origin["model"] == "imagenet-D" and origin["path"] == str(path)
    assert origin["weights_url"] == published.KERAS_APPLICATIONS_FILES[KEY].url
    assert origin["weights_format"] == "keras_applications"
    trained = loading.load_model(tmp_path / "run")
    assert trained.includes_preprocessing and trained.mean_rgb == IMAGENET_MEAN_RGB
    source = files.read_weights(path).layers
    for name in ("block1_conv1", "block5_conv3", "fc6", "fc7"):
        for ours, theirs in zip(trained.model.get_layer(name).get_weights(), source[name]):
            np.testing.assert_array_equal(ours, theirs)
    assert trained.model.get_layer("fc8").get_weights()[0].shape == (256, 2)  # a new head


# --- The commands ---------------------------------------------------------------------------

# bin/<name> in a child process whose published table records the test file's checksum.
_WITH_CHECKSUM = r"""
import dataclasses, runpy, sys
from vgg_tf.weights import published
key = ("D", True)
file = published.KERAS_APPLICATIONS_FILES[key]
published.KERAS_APPLICATIONS_FILES[key] = dataclasses.replace(file, file_hash=sys.argv[1])
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_commands_take_imagenet_d(tmp_path, keras_cache, bin_command, subprocess_env, encode):
    path, md5 = keras_cache
    env = subprocess_env(KERAS_HOME=os.environ["KERAS_HOME"])

    def run(name, *flags):
        script = bin_command(name)[1]
        result = subprocess.run(
            [sys.executable, "-c", _WITH_CHECKSUM, md5, script, *map(str, flags)],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        return result

    photos = _photo_folder(tmp_path / "photos")
    trained = run(
        "train",
        "--config=finetune",
        "--variant",
        "D",
        f"--dataset={photos}",
        "--init_from=imagenet-D",
        "--workdir",
        tmp_path / "run",
        "--config.width_multiplier=0.0625",
        "--batch_size=4",
        "--epochs=1",
    )
    assert (
        "Initialised 15 layers" in trained.stdout and "fc8 is initialised afresh" in trained.stdout
    )
    assert json.loads((tmp_path / "run" / "config.json").read_text())["started_from"]["path"] == (
        str(path)
    )
    # bin/evaluate needs ImageNet's 1,000 classes: a folder of 1,000 one-image classes.
    thousand = tmp_path / "thousand"
    blob = encode(np.full((40, 40, 3), (200, 120, 40), np.uint8), "PNG")
    for c in range(1000):
        (thousand / f"c{c:03d}").mkdir(parents=True)
        (thousand / f"c{c:03d}" / "0.png").write_bytes(blob)
    evaluated = run(
        "evaluate",
        "--model=imagenet-D",
        f"--dataset={thousand}",
        "--split=train",
        "--max_examples=2",
        "--protocol=single",
    )
    assert "top-1 err (%)" in evaluated.stdout and "D (imagenet)" in evaluated.stdout
    run("export", "--model=imagenet-D", "--export_dir", tmp_path / "export", "--scales=224")
    run(
        "features",
        "--model=imagenet-D",
        f"--dataset={photos}",
        "--split=train",
        "--scales=224",
        "--output",
        tmp_path / "features.npz",
    )
    assert np.load(tmp_path / "features.npz")["features"].shape == (8, 256)
    image = tmp_path / "photos" / "coffee" / "0.png"
    predicted = run("predict", image, "--model=imagenet-D", "--scales=224", "--top=1")
    # The served graph answers as vgg_tf's own dense protocol does on the same image.
    served = tf.saved_model.load(str(tmp_path / "export" / "1"))
    probabilities = served.signatures["serving_default"](
        image_bytes=tf.constant([image.read_bytes()])
    )["probabilities"].numpy()[0]
    evaluator = protocol.ModelEvaluator(loading.load_model("imagenet-D"), scales=[224])
    expected = evaluator.probabilities("dense", tf.io.decode_png(image.read_bytes(), channels=3))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    best = loading.load_model("imagenet-D").class_names[int(np.argmax(expected))]
    assert best in predicted.stdout
