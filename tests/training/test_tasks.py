"""vgg_tf.training.tasks: the classification and localisation losses and counts."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from vgg_tf.training import tasks

UNIT = [0.0, 0.0, 1.0, 1.0]


def _targets(labels, boxes):
    return tf.constant(labels, tf.int32), tf.constant(boxes, tf.float32)


def test_scr_loss_is_half_the_squared_distance_to_the_box_most_inside_the_crop():
    task = tasks.Localisation("scr", num_classes=3)
    # Two ground-truth boxes: a small one inside the crop, a large one mostly outside
    # it; and a zero-area pad row. The target is the one most inside: the first.
    boxes = [[[0.2, 0.2, 0.6, 0.8], [0.9, 0.9, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]]]
    target = np.array([0.5, 0.4, 0.6, 0.4])  # (cx, cy, w, h) of the first
    outputs = tf.constant([target + [0.1, -0.2, 0.0, 0.3]], tf.float32)
    loss = task.loss(_targets([2], boxes), outputs)
    np.testing.assert_allclose(loss.numpy(), [0.5 * (0.01 + 0.04 + 0.09)], rtol=1e-5)


def test_pcr_loss_reads_only_the_true_class_box():
    task = tasks.Localisation("pcr", num_classes=3)
    targets = _targets([1, 2], [[UNIT], [UNIT]])
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(2, 12)).astype(np.float32)
    base = task.loss(targets, outputs).numpy()
    others = outputs.copy()
    others[0, [0, 1, 2, 3, 8, 9, 10, 11]] += 5.0  # example 0: classes 0 and 2
    others[1, :8] -= 3.0  # example 1: classes 0 and 1
    np.testing.assert_allclose(task.loss(targets, others).numpy(), base, rtol=1e-6)
    own = outputs.copy()
    own[0, 4:8] = [0.5, 0.5, 1.0, 1.0]  # example 0's class-1 box: exactly the target
    assert task.loss(targets, own).numpy()[0] == pytest.approx(0.0, abs=1e-7)
    assert task.loss(targets, own).numpy()[1] == pytest.approx(base[1])


def test_pcr_gradient_reaches_only_the_true_class_outputs():
    task = tasks.Localisation("pcr", num_classes=3)
    outputs = tf.Variable(tf.zeros([1, 12]))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(task.loss(_targets([2], [[UNIT]]), outputs))
    grad = tape.gradient(loss, outputs).numpy()[0]
    assert np.all(grad[:8] == 0) and np.all(grad[8:] != 0)


def test_localisation_counts_hits_at_iou_over_half_and_sums_overlaps():
    task = tasks.Localisation("scr", num_classes=2)
    truth = [[[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]], [[0.0, 0.0, 0.5, 1.0], UNIT]]
    # Example 0 predicts the left half of the crop (IoU 0.5 with the whole crop: not
    # over 0.5); example 1 the top half (IoU 1 with its first box).
    outputs = tf.constant([[0.25, 0.5, 0.5, 1.0], [0.5, 0.25, 1.0, 0.5]])
    targets = _targets([0, 1], truth)
    np.testing.assert_allclose(task.best_overlaps(targets, outputs).numpy(), [0.5, 1.0], rtol=1e-6)
    totals = task.Totals(*task.counts(targets, outputs, task.loss(targets, outputs)).numpy())
    assert (totals.localised, totals.overlap, totals.examples) == pytest.approx((1.0, 1.5, 2.0))
    rates = task.rates(totals)
    assert rates["error"] == pytest.approx(0.5) and rates["mean_iou"] == pytest.approx(0.75)


def test_classification_counts_top_k_hits():
    task = tasks.Classification(3)
    logits = tf.constant([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    labels = tf.constant([0, 0])
    totals = task.Totals(*task.counts(labels, logits, task.loss(labels, logits)).numpy())
    assert (totals.top1_hits, totals.top5_hits, totals.examples) == (1.0, 2.0, 2.0)
    assert totals.loss == pytest.approx(float(tf.reduce_sum(task.loss(labels, logits))))
    rates = task.rates(totals)
    assert rates["top1_error"] == 0.5 and rates["top5_error"] == 0.0


def test_task_for_reads_the_recipe_and_refuses_unknown_names():
    assert tasks.task_for({}, 10).outputs == 10
    assert tasks.task_for({"task": "localisation", "head": "pcr"}, 10).outputs == 40
    with pytest.raises(
        ValueError, match="Unknown task 'detection'; expected one of classification, localisation"
    ):
        tasks.task_for({"task": "detection"}, 10)
    with pytest.raises(ValueError, match="Unknown head 'xyz'; expected one of scr, pcr"):
        tasks.Localisation("xyz", 10)


def test_top5_error_is_reported_only_for_more_than_five_classes():
    """Issue 20: top-5 error was printed for 5 or fewer classes, where it is always 0."""
    rates = {"loss": 0.5, "top1_error": 0.25, "top5_error": 0.0}
    few, many = tasks.Classification(5), tasks.Classification(6)
    assert list(few.metrics) == ["top1_error"] and few.describe(rates) == "top-1 error 25.00%"
    assert list(many.metrics) == ["top1_error", "top5_error"]
    assert many.describe(rates) == "top-1 error 25.00%, top-5 error 0.00%"
