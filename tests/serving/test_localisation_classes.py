"""One class ranking for localisation: bin/evaluate --task localisation, bin/predict --localiser
and the localisation SavedModel name the classes the classifier's dense protocol (§3.2: its own
scales, each image with its flip) ranks first."""

import numpy as np
import pytest
import tensorflow as tf
from skimage import data

from vgg_tf.data.box_records import MAX_BOXES
from vgg_tf.evaluation import localisation as localisation_eval
from vgg_tf.inference.localiser import Localiser
from vgg_tf.inference.protocol import ModelEvaluator
from vgg_tf.serving import localisation as serving_localisation
from vgg_tf.serving import predict as predict_lib
from vgg_tf.training import network
from vgg_tf.weights import loading
from vgg_tf.weights.trained import TrainedModel


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model, tiny_run_config, make_workdir):
    """A classifier trained with flips at S in [32, 64] (test scales 32, 48, 64) and a box
    net at S = 64 whose windows predict a box half their size."""
    root = tmp_path_factory.mktemp("localisation_runs")
    classifier = make_workdir(
        root / "classifier",
        model=tiny_model(seed=7),
        config=tiny_run_config(scale_min=32, scale_max=64, flip=True),
    )
    config = tiny_run_config(task="localisation", head="scr", scale_min=64, scale_max=64)
    box_model = network.build_model(config, 10)
    fc8 = box_model.get_layer("fc8")
    fc8.set_weights([np.zeros_like(fc8.get_weights()[0]), np.float32([0.5, 0.5, 0.5, 0.5])])
    boxes = make_workdir(root / "boxes", model=box_model, config=config)
    return classifier, boxes


@pytest.fixture(scope="module")
def photo(tmp_path_factory, encode):
    """A real photograph (300 x 451), as a PNG file, and its pixels."""
    path = tmp_path_factory.mktemp("photo") / "chelsea.png"
    path.write_bytes(encode(data.chelsea(), "PNG"))
    return path, data.chelsea()


def test_evaluate_predict_and_the_saved_model_name_the_dense_protocols_classes(
    runs, photo, tmp_path
):
    classifier_dir, boxes_dir = runs
    path, pixels = photo
    classifier = loading.load_model(classifier_dir)
    image = tf.constant(pixels, tf.float32)
    # The classifier's dense protocol at its own scales, with the flip (bin/evaluate).
    evaluator = ModelEvaluator(classifier)
    assert evaluator.scales_for("dense") == (32, 48, 64) and classifier.flip
    probabilities = evaluator.probabilities("dense", image)
    expected = np.argsort(-probabilities, kind="stable")[:5]
    # Left out, the flip or the classifier's scales would change the posteriors.
    unflipped = TrainedModel(classifier.model, {**classifier.config, "flip": False}, "u", "u")
    assert (
        np.abs(ModelEvaluator(unflipped).probabilities("dense", image) - probabilities).max() > 1e-4
    )
    at_box_scale = ModelEvaluator(classifier, scales=[64]).probabilities("single", image)
    assert np.abs(at_box_scale - probabilities).max() > 1e-4

    # The localiser bin/evaluate --task localisation runs.
    localiser = Localiser([loading.load_model(boxes_dir)], classifier)
    assert localiser.class_scales == (32, 48, 64) and localiser.scales == (64,)
    found = localiser.localise(image)
    assert found["classes"].numpy().tolist() == expected.tolist()
    np.testing.assert_allclose(found["scores"].numpy(), probabilities[expected], atol=1e-6)
    boxes = found["boxes"].numpy()
    # Its error counts a class among those five as found, the sixth as not.
    sixth = int(np.argsort(-probabilities, kind="stable")[5])
    sixth_box = localiser.localise_classes(image, [sixth]).numpy()[0]
    examples = [
        (pixels, (int(expected[4]), _padded(boxes[4])), b"fifth"),
        (pixels, (sixth, _padded(sixth_box)), b"sixth"),
    ]
    errors, _ = localisation_eval.dense_errors(localiser, examples, ["dense"], 2, verbose=0)
    assert errors == {"dense": 0.5}

    # bin/predict --localiser.
    result = predict_lib.predict(
        [path], classifier_dir, boxes=predict_lib.Boxes([str(boxes_dir)]), verbose=0
    )
    (answer,) = result.images
    assert [c.index for c in answer.classes] == expected.tolist()
    size = np.tile(pixels.shape[:2], 2)
    np.testing.assert_allclose([c.box for c in answer.classes], boxes * size, atol=1e-3)

    # The localisation SavedModel.
    version = serving_localisation.export_localisation(
        [str(boxes_dir)], str(classifier_dir), tmp_path / "served", verbose=0
    )
    serve = tf.saved_model.load(version).signatures["serving_default"]
    served = serve(image_bytes=tf.constant([path.read_bytes()]))
    assert served["classes"].numpy()[0].tolist() == expected.tolist()
    np.testing.assert_allclose(served["scores"].numpy()[0], probabilities[expected], atol=1e-5)
    np.testing.assert_allclose(served["boxes"].numpy()[0], boxes * size, atol=1e-2)


def _padded(box):
    return np.pad(np.float32([box]), [[0, MAX_BOXES - 1], [0, 0]])
