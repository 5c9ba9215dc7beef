"""vgg_tf.inference.localiser: the dense localisation protocol and its SavedModel."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from vgg_tf.inference import localiser as localise
from vgg_tf.nets.fcn import to_fully_convolutional
from vgg_tf.serving import localisation as serving_localisation
from vgg_tf.training import network
from vgg_tf.weights.trained import TrainedModel

QUADRANTS = [[0.0, 0.0, 0.5, 0.5], [0.0, 0.5, 0.5, 1.0], [0.5, 0.0, 1.0, 0.5], [0.5, 0.5, 1.0, 1.0]]


def _box_net(tiny_run_config, head="scr", box=(0.5, 0.5, 1.0, 1.0), classes=10, seed=0):
    """A tiny localisation net (S = Q = 64) whose every location predicts ``box`` relative
    to its window, for every class."""
    config = tiny_run_config(task="localisation", head=head, scale_min=64, scale_max=64)
    keras_model = network.build_model({**config, "seed": seed}, classes)
    fc8 = keras_model.get_layer("fc8")
    kernel, bias = fc8.get_weights()
    fc8.set_weights([np.zeros_like(kernel), np.tile(np.float32(box), bias.size // 4)])
    return TrainedModel(keras_model, config, f"/runs/{head}", f"A ({head})")


@pytest.fixture(scope="module")
def classifier(tiny_model, tiny_run_config):
    return TrainedModel(
        tiny_model(seed=3),
        tiny_run_config(scale_min=64, scale_max=64),
        "/runs/classifier",
        "A (classifier)",
    )


@pytest.fixture(scope="module")
def photos():
    """Real photographs (scikit-image's), as JPEG bytes, and their sizes."""
    from skimage import data

    arrays = [data.astronaut(), data.chelsea(), data.coffee()]
    return [tf.io.encode_jpeg(a).numpy() for a in arrays], [a.shape[:2] for a in arrays]


def test_the_box_head_made_fully_convolutional_equals_the_dense_head(tiny_run_config):
    trained = _box_net(tiny_run_config, head="pcr")
    rng = np.random.default_rng(0)
    fc8 = trained.model.get_layer("fc8")
    fc8.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in fc8.get_weights()])
    crops = rng.uniform(-100, 100, (2, 32, 32, 3)).astype(np.float32)
    dense_head = trained.model(crops).numpy()
    fcn = to_fully_convolutional(trained.model, head="logits")(crops).numpy()
    assert dense_head.shape == (2, 40) and fcn.shape == (2, 1, 1, 40)
    np.testing.assert_allclose(fcn[:, 0, 0], dense_head, rtol=1e-4, atol=1e-4)


def test_each_location_gives_a_box_in_its_window_and_the_classifier_picks_one(
    tiny_run_config, classifier
):
    # At Q = 64 a 32 crop gives a 2x2 map: the four quadrants. A net predicting
    # its whole window gives the quadrants; they overlap nowhere, so none merge.
    localiser = localise.Localiser([_box_net(tiny_run_config)], classifier)
    image = tf.random.stateless_uniform([64, 64, 3], [1, 2], maxval=255.0)
    found = localiser.localise(image)
    assert found["classes"].shape == (5,) and found["boxes"].shape == (5, 4)
    for box in found["boxes"].numpy():
        assert min(np.abs(np.array(QUADRANTS) - box).max(axis=1)) < 1e-6, box
    # localise_classes gives the same box for a class as localise does.
    again = localiser.localise_classes(image, found["classes"][:2]).numpy()
    np.testing.assert_allclose(again, found["boxes"].numpy()[:2], atol=1e-6)


def test_each_class_takes_the_window_where_the_classifier_believes_in_it_most(
    tiny_run_config, classifier
):
    # The four quadrants do not merge, so each class's box is the one window whose
    # posterior of that class is highest: the classifier's score map at Q = 64, by hand.
    localiser = localise.Localiser([_box_net(tiny_run_config)], classifier)
    image = tf.random.stateless_uniform([64, 64, 3], [11, 12], maxval=255.0)
    fcn = to_fully_convolutional(classifier.model, head="logits")
    logits = fcn((image - np.float32(classifier.mean_rgb))[None]).numpy()[0]  # Q = 64: as is
    posteriors = tf.nn.softmax(logits).numpy().reshape(4, 10)  # row-major, as the quadrants
    best_window = posteriors.argmax(axis=0)
    assert len(set(best_window.tolist())) > 1  # equal weights would pick one window for all
    boxes = localiser.localise_classes(image, tf.range(10)).numpy()
    np.testing.assert_allclose(boxes, np.array(QUADRANTS)[best_window], atol=1e-6)


def test_overlapping_boxes_merge_into_their_mean(tiny_run_config, classifier):
    # With 2x2 offsets at Q = 64 the windows are 16 pixels apart, 3x3 of them; each box is
    # 1.5 windows (48 pixels) wide, centred on its window. Neighbours match by OverFeat's
    # score 16 / (48 sqrt 2) + 1/3 = 0.57 < 1, so all nine merge, into their mean: the
    # centred square [8, 56] of the image, which no single box is (the first one, centred
    # at (16, 16), is [-8, 40], clipped [0, 0.625]).
    options = localise.LocaliserOptions(offsets=2)
    assert (options.merge, options.merge_threshold) == ("overfeat", 1.0)
    localiser = localise.Localiser(
        [_box_net(tiny_run_config, box=(0.5, 0.5, 1.5, 1.5))], classifier, options=options
    )
    image = tf.random.stateless_uniform([64, 64, 3], [1, 2], maxval=255.0)
    np.testing.assert_allclose(
        localiser.localise(image)["boxes"].numpy(),
        np.tile([0.125, 0.125, 0.875, 0.875], (5, 1)),
        atol=1e-6,
    )


def test_pcr_boxes_are_read_per_class_and_nets_fuse(tiny_run_config, classifier):
    # PCR: class c's box is c / 10 of the window wide, so classes get different boxes.
    pcr = _box_net(tiny_run_config, head="pcr")
    fc8 = pcr.model.get_layer("fc8")
    bias = np.array([[0.5, 0.5, (c + 1) / 10, (c + 1) / 10] for c in range(10)], np.float32)
    fc8.set_weights([fc8.get_weights()[0], bias.ravel()])
    localiser = localise.Localiser([pcr], classifier)
    image = tf.random.stateless_uniform([64, 64, 3], [3, 4], maxval=255.0)
    classes = tf.constant([0, 9], tf.int32)
    boxes = localiser.localise_classes(image, classes).numpy()
    sides = boxes[:, 2] - boxes[:, 0]
    np.testing.assert_allclose(sides, [0.05, 0.5], atol=1e-6)  # of the window: half the image
    fused = localise.Localiser([pcr, _box_net(tiny_run_config)], classifier)
    assert fused.localise(image)["boxes"].shape == (5, 4)


def test_nets_that_subtract_their_own_mean_are_given_pixels(tiny_run_config, classifier):
    # Every run's nets subtract their mean themselves (include_preprocessing); with the same
    # weights they localise as the nets fed pixels less the mean.
    import vgg_tf

    plain = _box_net(tiny_run_config, head="pcr")
    fc8 = plain.model.get_layer("fc8")
    rng = np.random.default_rng(2)
    fc8.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in fc8.get_weights()])
    mean = plain.config["mean_rgb"]
    raw_box_model = network.build_model(plain.config, 10, mean_rgb=mean)
    raw_box_model.set_weights(plain.model.get_weights())
    raw_classifier_model = vgg_tf.VGG(
        "A",
        classes=10,
        crop_size=32,
        width_multiplier=1 / 16,
        include_preprocessing=True,
        mean_rgb=mean,
    )
    raw_classifier_model.set_weights(classifier.model.get_weights())
    raw_box = TrainedModel(raw_box_model, plain.config, "/runs/raw_pcr", "A (raw pcr)")
    raw_classifier = TrainedModel(raw_classifier_model, classifier.config, "/runs/raw", "A (raw)")
    assert raw_box.includes_preprocessing and raw_classifier.includes_preprocessing
    image = tf.random.stateless_uniform([64, 80, 3], [9, 10], maxval=255.0)
    theirs = localise.Localiser([plain], classifier).localise(image)
    ours = localise.Localiser([raw_box], raw_classifier).localise(image)
    assert ours["classes"].numpy().tolist() == theirs["classes"].numpy().tolist()
    for key in ("scores", "boxes"):
        np.testing.assert_allclose(ours[key].numpy(), theirs[key].numpy(), atol=1e-5)


def test_refuses_classifiers_as_box_nets_and_mismatched_heads(tiny_run_config, classifier):
    with pytest.raises(ValueError, match="is not a localisation net"):
        localise.Localiser([classifier], classifier)
    with pytest.raises(ValueError, match="is a localisation net .*; expected a classifier"):
        localise.Localiser([_box_net(tiny_run_config)], _box_net(tiny_run_config))
    five = TrainedModel(classifier.model, {**classifier.config}, "/runs/c", "c")
    pcr = _box_net(tiny_run_config, head="pcr", classes=5)
    with pytest.raises(
        ValueError,
        match=r"has 20 outputs; with the classifier's 10 classes "
        r"expected 40",
    ):
        localise.Localiser([pcr], five)


_LOADER = r"""
import importlib.abc, json, sys

class NoVggTf(importlib.abc.MetaPathFinder):  # vgg_tf may be installed: make it unreachable
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "vgg_tf":
            raise ImportError("vgg_tf must not be needed to serve")

sys.meta_path.insert(0, NoVggTf())
import tensorflow as tf
path, files = sys.argv[1], sys.argv[2:]
data = [open(f, "rb").read() for f in files]
result = {}
with tf.compat.v1.Session(graph=tf.Graph()) as sess:
    meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
    sig = meta.signature_def["serving_default"]
    feed = sig.inputs["image_bytes"].name
    fetch = {k: v.name for k, v in sig.outputs.items()}
    out = sess.run(fetch, {feed: data})
    result["out"] = {k: (v.astype(str) if v.dtype == object else v).tolist() for k, v in out.items()}
    result["empty"] = {k: list(v.shape) for k, v in sess.run(fetch, {feed: []}).items()}
    mixed = sess.run(fetch, {feed: [b"these bytes are no image", data[1]]})
    result["mixed"] = {k: (v.astype(str) if v.dtype == object else v).tolist() for k, v in mixed.items()}
    strict = meta.signature_def["serving_strict"]
    strict_fetch = {k: v.name for k, v in strict.outputs.items()}
    try:
        sess.run(strict_fetch, {strict.inputs["image_bytes"].name: [b"these bytes are no image"]})
        result["bad"] = "no error"
    except tf.errors.InvalidArgumentError:
        result["bad"] = "InvalidArgument"
result["modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "vgg_tf")
print("RESULT" + json.dumps(result))
"""


@pytest.mark.slow
def test_exported_boxes_through_the_tf1_loader_on_photographs(
    tiny_run_config, classifier, photos, tmp_path, make_workdir, subprocess_env
):
    net = _box_net(tiny_run_config, box=(0.5, 0.5, 0.5, 0.5))
    box_dir = make_workdir(tmp_path / "scr", model=net.model, config=net.config)
    classifier_dir = make_workdir(
        tmp_path / "cls", model=classifier.model, config=classifier.config
    )
    version = serving_localisation.export_localisation(
        [str(box_dir)], str(classifier_dir), tmp_path / "export", top_k=3, verbose=0
    )
    data, sizes = photos
    files = []
    for i, blob in enumerate(data):
        files.append(tmp_path / f"photo{i}.jpg")
        files[-1].write_bytes(blob)
    script = tmp_path / "load.py"
    script.write_text(_LOADER)
    env = subprocess_env(TF_CPP_MIN_LOG_LEVEL="3")
    del env["PYTHONPATH"]  # serving needs TensorFlow, not vgg_tf
    proc = subprocess.run(
        [sys.executable, str(script), version, *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["modules"] == []
    boxes = np.array(result["out"]["boxes"])
    assert boxes.shape == (3, 3, 4) and np.array(result["out"]["classes"]).shape == (3, 3)
    for box, (height, width) in zip(boxes, sizes):
        assert (
            np.all(box >= 0)
            and np.all(box[:, [0, 2]] <= height)
            and np.all(box[:, [1, 3]] <= width)
        )
        assert np.all(box[:, 2] > box[:, 0]) and np.all(box[:, 3] > box[:, 1])
    # The same boxes as the library's Localiser gives, in pixels.
    localiser = localise.Localiser([net], classifier, top_k=3)
    image = tf.cast(tf.io.decode_jpeg(data[1], channels=3), tf.float32)
    expected = localiser.localise(image)["boxes"].numpy() * np.tile(sizes[1], 2)
    np.testing.assert_allclose(boxes[1], expected, atol=1e-2)
    assert result["empty"] == {
        "boxes": [0, 3, 4],
        "classes": [0, 3],
        "scores": [0, 3],
        "labels": [0, 3],
        "ok": [0],
        "error": [0],
    }
    assert result["out"]["ok"] == [True] * 3 and result["out"]["error"] == [""] * 3
    # Batch-safe: a bad image fails its own row; the photograph beside it is answered as
    # it is alone.
    mixed = result["mixed"]
    assert mixed["ok"] == [False, True]
    assert mixed["error"][0].startswith("Unsupported image format") and mixed["error"][1] == ""
    assert mixed["classes"][0] == [-1] * 3 and mixed["labels"][0] == [""] * 3
    assert np.all(np.array(mixed["boxes"][0]) == 0) and np.all(np.array(mixed["scores"][0]) == 0)
    for key in ("boxes", "classes", "scores", "labels"):
        assert mixed[key][1] == result["out"][key][1], key
    assert result["bad"] == "InvalidArgument"  # serving_strict: the call fails


def test_classification_commands_refuse_a_localisation_net(tiny_run_config, tmp_path):
    from vgg_tf.inference import protocol as evaluate
    from vgg_tf.serving import export

    net = _box_net(tiny_run_config)
    with pytest.raises(ValueError, match="is a localisation net .*--task localisation"):
        evaluate.ModelEvaluator(net)
    with pytest.raises(ValueError, match="is a localisation net"):
        export.export_saved_model(net, tmp_path / "export", verbose=0)
    assert not (tmp_path / "export").exists()


def test_offsets_shift_the_input_and_their_windows(tiny_run_config, classifier):
    net = _box_net(tiny_run_config)
    paper = localise.Localiser([net], classifier)
    assert paper._shifts(64, 32) == [(0, 0)]
    shifted = localise.Localiser([net], classifier, options=localise.LocaliserOptions(offsets=2))
    assert shifted._shifts(64, 32) == [(0, 0), (0, 16), (16, 0), (16, 16)]
    four = localise.Localiser([net], classifier, options=localise.LocaliserOptions(offsets=4))
    assert four._shifts(48, 32) == [
        (dy, dx) for dy in (0, 8, 16) for dx in (0, 8, 16)
    ]  # 24 would leave less than a crop
    # Every window of the 16-pixel grid is a candidate; boxes half a window wide, centred
    # on their windows, do not overlap and stay on that grid.
    small = localise.Localiser(
        [_box_net(tiny_run_config, box=(0.5, 0.5, 0.5, 0.5))],
        classifier,
        options=localise.LocaliserOptions(offsets=2),
    )
    grid = [
        [a + 0.125, b + 0.125, a + 0.375, b + 0.375] for a in (0, 0.25, 0.5) for b in (0, 0.25, 0.5)
    ]
    image = tf.random.stateless_uniform([64, 64, 3], [7, 8], maxval=255.0)
    for box in small.localise(image)["boxes"].numpy():
        assert min(np.abs(np.array(grid) - box).max(axis=1)) < 1e-6, box
    with pytest.raises(ValueError, match=r"offsets=0 is not accepted; expected an integer in"):
        localise.LocaliserOptions(offsets=0)


def test_cropped_windows_are_each_run_alone_as_in_training(tiny_run_config, classifier):
    net = _box_net(tiny_run_config, head="pcr")
    rng = np.random.default_rng(1)
    fc8 = net.model.get_layer("fc8")
    fc8.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in fc8.get_weights()])
    cropped = localise.Localiser(
        [net], classifier, options=localise.LocaliserOptions(windows="crops")
    )
    dense = localise.Localiser([net], classifier)
    box_net = cropped._nets.value[0]
    inputs = tf.constant(rng.uniform(-100, 100, (1, 80, 112, 3)), tf.float32)
    for dy, dx in [(0, 0), (8, 16)]:
        found = cropped._window_map(box_net, inputs, dy, dx).numpy()
        assert found.shape == ((80 - dy) // 32, (112 - dx) // 32, 40)
        for i in range(found.shape[0]):
            for j in range(found.shape[1]):
                y, x = dy + 32 * i, dx + 32 * j
                alone = net.model(inputs[:, y : y + 32, x : x + 32]).numpy()[0]
                np.testing.assert_allclose(found[i, j], alone, rtol=1e-4, atol=1e-4)
        # Densely, the same windows also see the image around them.
        seen_densely = dense._window_map(box_net, inputs, dy, dx).numpy()
        assert seen_densely.shape == found.shape
        assert not np.allclose(seen_densely, found, atol=1e-3)
    image = tf.random.stateless_uniform([64, 96, 3], [1, 2], maxval=255.0)
    for found in (cropped.localise(image)["boxes"], cropped.localise_classes(image, [4])):
        assert np.isfinite(found.numpy()).all()
    with pytest.raises(ValueError, match=r"windows='tiles' is not accepted; expected one of"):
        localise.LocaliserOptions(windows="tiles")
    with pytest.raises(
        ValueError, match=r"merge_threshold=1.5 is not accepted with merge='iou'; expected an IoU"
    ):
        localise.LocaliserOptions(merge="iou", merge_threshold=1.5)
    with pytest.raises(ValueError, match=r"merge_threshold=-1 is not accepted with merge='over"):
        localise.LocaliserOptions(merge_threshold=-1)
    with pytest.raises(ValueError, match=r"merge='nms' is not accepted; expected one of"):
        localise.LocaliserOptions(merge="nms")
    assert localise.LocaliserOptions(merge="iou").merge_threshold == 0.5
