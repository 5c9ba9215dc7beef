"""Workdirs, exports and outputs on a filesystem TensorFlow serves (gs://, s3://, hdfs://),
tried on its in-memory one (ram://): train, checkpoint, resume, export and load a tiny run
there; a refused run leaves it as it found it; a search, evaluation and features write there.
"""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from vgg_tf import workdir as workdir_lib
from vgg_tf.evaluation import classification, features
from vgg_tf.evaluation.datasets import DatasetSplit
from vgg_tf.inference import heatmaps, protocol
from vgg_tf.serving import export
from vgg_tf.training import loop, tuning
from vgg_tf.training import recipe as config_lib
from vgg_tf.weights import loading, transfer


def _tiny_digits_recipe(tiny_recipe, **changes):
    """About a dozen steps an epoch, a checkpoint every 5."""
    settings = dict(batch_size=128, learning_rate=0.01, epochs=1, checkpoint_every_steps=5)
    return tiny_recipe(**{**settings, **changes})


def _glob(pattern):
    return sorted(path.rsplit("/", 1)[-1] for path in tf.io.gfile.glob(pattern))


def test_train_resume_export_and_serve_all_under_ram(
    tmp_path, ram_dir, tiny_recipe, capsys, encode
):
    """Issue 22's acceptance: a run, its checkpoints, its resume and its export on an object
    store, with nothing of it on the local disk."""
    run = f"{ram_dir}/run"
    config = _tiny_digits_recipe(tiny_recipe)
    first = loop.train_and_evaluate(config, run, progress="none")
    for name in ("config.json", "model.keras", "metrics.csv", "learning_curves.png", "logs"):
        assert tf.io.gfile.exists(f"{run}/{name}"), name
    assert "checkpoint" in tf.io.gfile.listdir(f"{run}/checkpoints")
    last = max(int(n.split("-")[1].split(".")[0]) for n in _glob(f"{run}/checkpoints/*.index"))
    assert workdir_lib.read_config(run)["epochs"] == 1
    assert not any(".tmp-" in name or "tmp-" in name for name in tf.io.gfile.listdir(run))
    capsys.readouterr()

    # Raising the epochs resumes from the last checkpoint, on ram:// as on a disk.
    config.epochs = 2
    second = loop.train_and_evaluate(config, run, progress="none")
    out = capsys.readouterr().out
    resumed = re.search(r"Resumed from (\S+) at step (\d+)", out)
    assert resumed, out[-2000:]
    assert resumed[1] == f"{run}/checkpoints/ckpt-{last}" and int(resumed[2]) == last
    assert workdir_lib.read_config(run)["epochs"] == 2 and second["epochs"] == 2
    with tf.io.gfile.GFile(f"{run}/metrics.csv") as f:
        assert [line.split(",")[0] for line in f.read().splitlines()] == ["epoch", "1", "2"]
    assert second["val_top1_error"] <= first["val_top1_error"] + 0.2  # it kept training

    # Exported to ram:// and served from there.
    version = export.export_saved_model(run, f"{ram_dir}/export", scales=[32], verbose=0)
    assert version == f"{ram_dir}/export/1"
    assert tf.io.gfile.listdir(f"{ram_dir}/export") == ["1"]  # no hidden temporary left
    served = tf.saved_model.load(version)
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    png = encode(image, "PNG")
    answer = served.signatures["serving_default"](image_bytes=tf.constant([png]))
    probabilities = answer["probabilities"].numpy()
    assert probabilities.shape == (1, 10)
    evaluator = protocol.ModelEvaluator(loading.load_model(run), scales=[32])
    expected = evaluator.probabilities("dense", tf.io.decode_png(png, channels=3))
    np.testing.assert_allclose(probabilities[0], expected, atol=1e-5)
    assert not list(tmp_path.iterdir())  # nothing went to the local disk instead


class _FailOnThirdBatch(keras.callbacks.Callback):
    """Fails the run once the loss of two steps went to TensorBoard (logs/train)."""

    def on_train_batch_end(self, batch, logs=None):
        if batch >= 2:
            assert tf.io.gfile.listdir(f"{self.workdir}/logs") == ["train"]
            raise RuntimeError("the third batch failed")

    def __init__(self, workdir):
        super().__init__()
        self.workdir = workdir


def test_a_refused_or_failed_run_leaves_a_remote_workdir_as_it_found_it(ram_dir, tiny_recipe):
    """A run refused at its start, or failing before its first checkpoint (after its
    TensorBoard files were written), removes what it added on ram:// too."""
    too_big = _tiny_digits_recipe(tiny_recipe, batch_size=4096)
    with pytest.raises(ValueError, match="batch_size=4096 is larger"):
        loop.train_and_evaluate(too_big, f"{ram_dir}/runs/new", progress="none")
    assert not tf.io.gfile.exists(f"{ram_dir}/runs")
    failing = _tiny_digits_recipe(tiny_recipe, log_every_steps=1)
    new = f"{ram_dir}/runs/new"
    with pytest.raises(RuntimeError, match="the third batch failed"):
        loop.train_and_evaluate(failing, new, progress="none", callbacks=[_FailOnThirdBatch(new)])
    assert not tf.io.gfile.exists(f"{ram_dir}/runs")
    kept = f"{ram_dir}/kept"
    workdir_lib.write_json(f"{kept}/notes.json", {"the": "user's"})
    with pytest.raises(RuntimeError, match="the third batch failed"):
        loop.train_and_evaluate(failing, kept, progress="none", callbacks=[_FailOnThirdBatch(kept)])
    assert tf.io.gfile.listdir(kept) == ["notes.json"]


def test_a_search_lives_on_a_remote_filesystem(ram_dir):
    """search.json, the trials' folders, trials.csv and best_config.py on ram://; a rerun
    with other settings is refused there, and --overwrite starts over."""
    recipe = config_lib.paper_recipe()
    recipe.update(dataset="digits", variant="A", crop_size=32, scale_min=32, scale_max=48)
    trained = []

    def stand_in(config, workdir, strategy=None):
        trained.append(workdir)
        return {"val_top1_error": float(config.learning_rate), "val_loss": 1.0}

    settings = tuning.SearchSettings(max_trials=2, trial_epochs=1)
    result = tuning.search(recipe, f"{ram_dir}/tuning", settings=settings, train_fn=stand_in)
    project = f"{ram_dir}/tuning/digits_A"
    assert result.project_dir == project and len(trained) == 2
    assert all(workdir.startswith(f"{project}/trial_") for workdir in trained)
    names = set(tf.io.gfile.listdir(project))
    assert {"search.json", "trials.csv", "best_config.py", "oracle.json"} <= names
    with tf.io.gfile.GFile(f"{project}/best_config.py") as f:
        assert "def get_config" in f.read()
    with tf.io.gfile.GFile(f"{project}/trials.csv") as f:
        assert len(f.read().splitlines()) == 3  # a header and two trials
    recipe.weight_decay = 0.1
    with pytest.raises(ValueError, match="holds a search with other settings"):
        tuning.search(recipe, f"{ram_dir}/tuning", settings=settings, train_fn=stand_in)
    tuning.search(recipe, f"{ram_dir}/tuning", settings=settings, train_fn=stand_in, overwrite=True)
    with tf.io.gfile.GFile(f"{project}/search.json") as f:
        assert json.load(f)["recipe"]["weight_decay"] == 0.1


def test_evaluation_and_features_read_and_write_remote_paths(ram_dir, tfds_dir, tiny_model):
    run = f"{ram_dir}/runs/digits_A"
    workdir_lib.save_model(tiny_model(), f"{run}/model.keras")
    workdir_lib.write_config(run, {"variant": "A", "crop_size": 32, "scale_min": 32})
    data = DatasetSplit("digits", data_dir=str(tfds_dir), max_examples=4)
    rows = classification.evaluate(
        [run],
        data,
        ["dense"],
        scales=[32],
        image_outputs=classification.ImageOutputs(predictions=f"{ram_dir}/out/pred.jsonl"),
        output=f"{ram_dir}/out/table.json",
        verbose=0,
    )
    with tf.io.gfile.GFile(f"{ram_dir}/out/table.json") as f:
        assert json.load(f)["rows"] == json.loads(json.dumps(rows))
    with tf.io.gfile.GFile(f"{ram_dir}/out/pred.jsonl") as f:
        assert len(f.read().splitlines()) == 4
    descriptor = features.Descriptor(scales=(32,))
    feature_set = features.extract_features(run, data, descriptor, verbose=0)
    for name in ("feats.npz", "feats.npy"):
        written = features.save_features(feature_set, f"{ram_dir}/out/{name}")
        assert all(tf.io.gfile.exists(path) for path in written)
        back = features.load_features(f"{ram_dir}/out/{name}")
        np.testing.assert_array_equal(back.features, feature_set.features)
        assert back.filenames == feature_set.filenames and back.scales == (32,)
    assert sorted(tf.io.gfile.listdir(f"{ram_dir}/out")) == [
        "feats.json",
        "feats.npy",
        "feats.npz",
        "pred.jsonl",
        "table.json",
    ]


def test_init_from_and_heatmaps_read_and_write_remote_paths(ram_dir, tiny_model):
    """--init_from reads a remote run's weights; a heatmap PNG goes to a remote folder."""
    run = f"{ram_dir}/runs/digits_A"
    model = tiny_model()
    workdir_lib.save_model(model, f"{run}/model.keras")
    copied = transfer.read_layer_weights(run)
    np.testing.assert_array_equal(copied["fc8"][0], model.get_layer("fc8").get_weights()[0])
    pixels = np.zeros([4, 6, 3], np.uint8)
    heatmaps.write_png(pixels, f"{ram_dir}/maps/first.png")
    with tf.io.gfile.GFile(f"{ram_dir}/maps/first.png", "rb") as f:
        np.testing.assert_array_equal(tf.io.decode_png(f.read()).numpy(), pixels)
