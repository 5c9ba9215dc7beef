"""The evaluation table's error rates: top-5 only where it means something."""

import numpy as np

from vgg_tf.evaluation import classification
from vgg_tf.inference.protocol import ModelEvaluator
from vgg_tf.weights.trained import TrainedModel

CONFIG = {"variant": "A", "crop_size": 32, "scale_min": 32, "scale_max": 32}


def _rows(tiny_model, classes):
    evaluator = ModelEvaluator(TrainedModel(tiny_model(classes=classes), CONFIG, "mem", "A"))
    rng = np.random.default_rng(0)
    images = [(rng.integers(0, 256, [32, 32, 3], dtype=np.uint8), i % classes) for i in range(6)]
    return classification.evaluate_images([evaluator], images, ["single"], verbose=0)


def test_top5_error_is_left_out_for_five_classes_or_fewer(tiny_model):
    (few,) = _rows(tiny_model, classes=3)
    assert few["top5_error"] is None and 0 <= few["top1_error"] <= 100
    assert classification.format_table([few]).splitlines()[-1].split()[-1] == "-"
    (many,) = _rows(tiny_model, classes=10)
    assert 0 <= many["top5_error"] <= many["top1_error"]
    assert classification.format_table([many]).splitlines()[-1].split()[-1] != "-"
