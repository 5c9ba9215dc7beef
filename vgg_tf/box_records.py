"""Ground-truth boxes of a TFDS record, for localisation (Appendix A).

ILSVRC's localisation task gives each image one class and the boxes of the
objects of that class; a prediction counts when its box overlaps one of them.
The readers here give every dataset that shape: ``(label, boxes)``, the boxes
as normalised corners ``(ymin, xmin, ymax, xmax)`` (TFDS ``BBoxFeature``),
padded with zero-area rows to :data:`MAX_BOXES` so that records batch (a
zero-area box overlaps nothing, see :func:`vgg_tf.boxes.iou`).

- ``digits_on_canvas`` (the built-in default) and other datasets with a class
  ``label`` and ``objects`` {``bbox``, ``label``}: the objects of that class.
- ``caltech_birds2011`` and other datasets with one ``bbox`` beside ``label``.
- ``voc/2007`` and other datasets with ``objects`` but no image label: the
  image's class is that of its largest object (VOC images hold several
  classes; ILSVRC's task has one per image), its boxes those of that class.

Example:
    >>> info = tfds.builder("digits_on_canvas").info  # doctest: +SKIP
    >>> read = box_reader(info)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf
import tensorflow_datasets as tfds

#: Boxes kept per record; more are dropped (ILSVRC images rarely hold more).
MAX_BOXES = 64

BoxReader = Callable[[dict], tuple[tf.Tensor, tf.Tensor]]


def _pad(boxes: tf.Tensor) -> tf.Tensor:
    boxes = tf.cast(boxes[:MAX_BOXES], tf.float32)
    padded = tf.pad(boxes, [[0, MAX_BOXES - tf.shape(boxes)[0]], [0, 0]])
    return tf.ensure_shape(padded, [MAX_BOXES, 4])


def _objects(features) -> tfds.features.FeatureConnector | None:
    objects = features["objects"] if "objects" in features else None
    if isinstance(objects, tfds.features.Sequence):
        inner = objects.feature
        if "bbox" in inner and isinstance(inner["bbox"], tfds.features.BBoxFeature):
            return objects
    return None


def _area(boxes: tf.Tensor) -> tf.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_reader(info: tfds.core.DatasetInfo) -> BoxReader | None:
    """A function ``example -> (label int32, boxes float32 [MAX_BOXES, 4])``, or None.

    None when the dataset has no boxes a localisation net can learn from.
    """
    features = info.features
    objects = _objects(features)
    has_label = "label" in features and isinstance(features["label"], tfds.features.ClassLabel)
    if objects is not None and "label" in objects.feature:
        if has_label:
            def read(example):
                label = tf.cast(example["label"], tf.int32)
                found = example["objects"]
                same = tf.equal(tf.cast(found["label"], tf.int32), label)
                return label, _pad(tf.boolean_mask(found["bbox"], same))
            return read

        def read_largest(example):
            found = example["objects"]
            labels = tf.cast(found["label"], tf.int32)
            largest = tf.argmax(_area(tf.cast(found["bbox"], tf.float32)), output_type=tf.int32)
            label = labels[largest]
            return label, _pad(tf.boolean_mask(found["bbox"], tf.equal(labels, label)))
        return read_largest
    if has_label and isinstance(features["bbox"] if "bbox" in features else None,
                                tfds.features.BBoxFeature):
        return lambda example: (tf.cast(example["label"], tf.int32), _pad(example["bbox"][None]))
    return None


def class_feature(info: tfds.core.DatasetInfo) -> tfds.features.ClassLabel | None:
    """The ClassLabel of a box dataset without supervised keys (VOC: the objects' labels)."""
    objects = _objects(info.features)
    if objects is not None and isinstance(objects.feature["label"], tfds.features.ClassLabel):
        return objects.feature["label"]
    return None
