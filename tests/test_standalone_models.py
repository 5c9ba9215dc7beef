"""A saved model stands alone: plain Keras, fed raw RGB pixels, gives vgg_tf's answers.

Every ``model.keras`` vgg_tf saves for users (a training run's, an imported
workdir's) takes RGB pixels in [0, 255] and subtracts its mean RGB in its first
layer, so a script that knows nothing of vgg_tf (here: a fresh process in which
vgg_tf cannot be imported) gets the answers vgg_tf's own evaluation gives, and an
imported keras.applications file gives keras.applications' own answers.
"""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest

from vgg_tf.data import pipeline
from vgg_tf.data.constants import IMAGENET_MEAN_RGB
from vgg_tf.inference import protocol
from vgg_tf.training import loop
from vgg_tf.weights import loading

# What a user's script does, in a process where vgg_tf cannot be imported.
_PLAIN_KERAS = r"""
import importlib.abc, json, sys

class NoVggTf(importlib.abc.MetaPathFinder):  # vgg_tf may be installed: make it unreachable
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "vgg_tf":
            raise ImportError("a saved model must not need vgg_tf")

sys.meta_path.insert(0, NoVggTf())
import keras
import numpy as np

model = keras.models.load_model(sys.argv[1])
images = np.load(sys.argv[2])
assert images.dtype == np.uint8
probabilities = np.asarray(model(images, training=False))
modules = sorted(m for m in sys.modules if m.split(".")[0] == "vgg_tf")
print("RESULT" + json.dumps({"probabilities": probabilities.tolist(), "modules": modules}))
"""


def plain_keras_probabilities(model_path, images, tmp_path, subprocess_env):
    """``keras.models.load_model(model_path)(images)`` in a fresh process without vgg_tf."""
    np.save(tmp_path / "images.npy", images)
    env = subprocess_env()
    env.pop("PYTHONPATH")  # the checkout is not importable either
    result = subprocess.run(
        [sys.executable, "-c", _PLAIN_KERAS, str(model_path), str(tmp_path / "images.npy")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
    answer = json.loads(line[len("RESULT") :])
    assert answer["modules"] == []
    return np.asarray(answer["probabilities"], np.float32)


def photos(size: int, count: int = 4) -> np.ndarray:
    """Real colour photographs (scikit-image's), RGB uint8, ``(count, size, size, 3)``."""
    from PIL import Image
    from skimage import data

    names = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field")[:count]
    return np.stack(
        [
            np.asarray(Image.fromarray(getattr(data, n)()).resize((size, size), Image.BILINEAR))
            for n in names
        ]
    )


@pytest.fixture
def photo_folder(tmp_path):
    """Two classes of 48 x 48 crops of two photographs, 8 each, as PNG files."""
    from PIL import Image
    from skimage import data

    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for name in ("astronaut", "coffee"):
        (root / name).mkdir(parents=True)
        image = getattr(data, name)()
        for i in range(8):
            y, x = rng.integers(0, 300, 2)
            crop = Image.fromarray(image[y : y + 192, x : x + 192]).resize((48, 48))
            crop.save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_a_runs_model_keras_in_plain_keras_gives_vgg_tfs_single_crop_answers(
    tmp_path, photo_folder, subprocess_env, monkeypatch, tiny_recipe
):
    streams = []  # what the run trains and validates on

    def spy(make):
        def dataset(source, stream, **options):
            streams.append(stream)
            return make(source, stream, **options)

        return dataset

    for name in ("train_dataset", "eval_dataset"):
        monkeypatch.setattr(pipeline, name, spy(getattr(pipeline, name)))
    # Net A: a net without LRN, so plain Keras knows every layer.
    config = tiny_recipe(
        dataset=str(photo_folder), epochs=1, batch_size=8, scale_max=48, checkpoint_every_steps=100
    )
    loop.train_and_evaluate(config, str(tmp_path / "run"))
    # Pixels in, for training and validation alike: the net subtracts the mean, once.
    assert streams and all(stream.mean_rgb is None for stream in streams)
    trained = loading.load_model(tmp_path / "run")
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["mean_rgb"]
    assert trained.includes_preprocessing and trained.mean_rgb == pytest.approx(recorded)
    images = photos(32)
    # vgg_tf's single-crop evaluation: at Q = the crop, a crop-size image is one crop.
    evaluator = protocol.ModelEvaluator(trained, scales=[32])
    expected = np.stack([evaluator.probabilities("single", image) for image in images])
    got = plain_keras_probabilities(
        tmp_path / "run" / "model.keras", images, tmp_path, subprocess_env
    )
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # The mean matters here: the model fed pixels less the mean answers otherwise.
    twice = trained.model.predict_on_batch(images - np.float32(trained.mean_rgb))
    assert np.abs(twice - expected).max() > 1e-3


def write_keras2_h5(path, model):
    """A keras.applications weight file (Keras 2's HDF5 layout) of ``model``'s weights:
    the file's ``layer_names``, per layer ``weight_names`` and one dataset each."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.1.5"
        for layer in model.layers:
            group = f.create_group(layer.name)
            arrays = layer.get_weights()
            names = [f"{layer.name}_{kind}_1:0" for kind in ("W", "b")][: len(arrays)]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, array in zip(names, arrays):
                group.create_dataset(name, data=array)
    return path


@pytest.mark.slow
def test_an_imported_keras_applications_workdir_in_plain_keras_gives_keras_applications_answers(
    tmp_path, run_bin, subprocess_env
):
    """bin/import_weights on a keras.applications VGG16 file (random weights, its real
    layout and size); the workdir's model.keras on raw uint8 RGB equals keras.applications'
    VGG16 fed its own preprocess_input (BGR less the Caffe mean)."""
    keras.utils.set_random_seed(1)
    theirs = keras.applications.VGG16(weights=None)
    kernel, bias = theirs.get_layer("predictions").get_weights()
    theirs.get_layer("predictions").set_weights([kernel * 20, bias])  # an informative softmax
    source = write_keras2_h5(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5", theirs)
    run_bin("import_weights", source, "--workdir", tmp_path / "imported", timeout=600)
    images = photos(224, count=3)
    expected = theirs.predict_on_batch(
        keras.applications.vgg16.preprocess_input(images.astype("float32"))
    )
    assert expected.max() > 0.02  # far from the uniform 0.001: the classes are told apart
    got = plain_keras_probabilities(
        tmp_path / "imported" / "model.keras", images, tmp_path, subprocess_env
    )
    np.testing.assert_allclose(got, expected, atol=1e-5)
    config = json.loads((tmp_path / "imported" / "config.json").read_text())
    assert config["weights_format"] == "keras_applications"
    assert tuple(config["mean_rgb"]) == IMAGENET_MEAN_RGB
    # keras.applications' own preprocess_input (BGR, mean subtracted) is not this model's input.
    wrong = loading.load_model(tmp_path / "imported").model.predict_on_batch(
        keras.applications.vgg16.preprocess_input(images.astype("float32"))
    )
    assert np.abs(wrong - expected).max() > 1e-3
