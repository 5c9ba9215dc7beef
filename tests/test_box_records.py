"""vgg_tf.box_records: ground-truth boxes read from TFDS features of several layouts."""

from __future__ import annotations

import types

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from vgg_tf import box_records

CLASSES = tfds.features.ClassLabel(num_classes=5)


def _info(**features):
    return types.SimpleNamespace(features=tfds.features.FeaturesDict(
        {"image": tfds.features.Image(shape=(None, None, 3)), **features}))


def _objects():
    return tfds.features.Sequence({"bbox": tfds.features.BBoxFeature(), "label": CLASSES})


def test_objects_of_the_image_class_padded_with_zero_area_rows():
    read = box_records.box_reader(_info(label=CLASSES, objects=_objects()))
    example = {"label": tf.constant(3, tf.int64), "objects": {
        "bbox": tf.constant([[0.1, 0.1, 0.5, 0.5], [0.2, 0.2, 0.9, 0.9], [0.0, 0.5, 0.4, 1.0]]),
        "label": tf.constant([3, 1, 3], tf.int64)}}
    label, boxes = read(example)
    assert int(label) == 3 and boxes.shape == (box_records.MAX_BOXES, 4)
    np.testing.assert_allclose(boxes[:2], [[0.1, 0.1, 0.5, 0.5], [0.0, 0.5, 0.4, 1.0]])
    assert not np.any(boxes[2:])


def test_without_an_image_label_the_largest_object_gives_the_class():
    info = _info(objects=_objects())  # VOC's layout
    read = box_records.box_reader(info)
    example = {"objects": {
        "bbox": tf.constant([[0.0, 0.0, 0.2, 0.2], [0.1, 0.1, 0.9, 0.9], [0.5, 0.5, 0.6, 0.6]]),
        "label": tf.constant([2, 4, 4], tf.int64)}}
    label, boxes = read(example)
    assert int(label) == 4
    np.testing.assert_allclose(boxes[:2], [[0.1, 0.1, 0.9, 0.9], [0.5, 0.5, 0.6, 0.6]])
    assert box_records.class_feature(info).num_classes == 5


def test_one_bbox_beside_the_label():
    read = box_records.box_reader(_info(label=CLASSES, bbox=tfds.features.BBoxFeature()))
    label, boxes = read({"label": tf.constant(1, tf.int64),
                         "bbox": tf.constant([0.2, 0.3, 0.4, 0.5])})
    assert int(label) == 1
    np.testing.assert_allclose(boxes[0], [0.2, 0.3, 0.4, 0.5])


def test_a_dataset_without_boxes_has_no_reader():
    assert box_records.box_reader(_info(label=CLASSES)) is None
