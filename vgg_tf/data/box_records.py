"""Ground-truth boxes of a TFDS record, for localisation (Appendix A).

ILSVRC's localisation task gives each image one class and the boxes of the
objects of that class; a prediction counts when its box overlaps one of them.
The readers here give every dataset that shape: ``(label, boxes)``, the boxes
as normalised corners ``(ymin, xmin, ymax, xmax)`` (TFDS ``BBoxFeature``),
padded with zero-area rows to :data:`MAX_BOXES` so that records batch (a
zero-area box overlaps nothing, see :func:`vgg_tf.data.boxes.iou`).

- ``digits_on_canvas`` (the built-in default) and other datasets with a class
  ``label`` and ``objects`` {``bbox``, ``label``}: the objects of that class.
- ``caltech_birds2011`` and other datasets with one ``bbox`` beside ``label``.
- ``voc/2007`` and other datasets with ``objects`` but no image label: the
  image's class is that of its largest object (VOC images hold several
  classes; ILSVRC's task has one per image), its boxes those of that class.
- ``imagenet2012`` with ILSVRC's localisation files in the manual dir
  (``LOC_train_solution.csv``, ``LOC_val_solution.csv``, as the challenge
  ships them: ``ImageId,PredictionString`` with ``wnid xmin ymin xmax ymax``
  per box, in pixels): :func:`ilsvrc_reader`. Its boxes are in pixels
  (:attr:`BoxReader.in_pixels`); they are normalised where the image's header is read.

Example:
    >>> info = tfds.builder("digits_on_canvas").info  # doctest: +SKIP
    >>> reader = box_reader(info)  # doctest: +SKIP
    >>> label, boxes = reader(example)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

#: Boxes kept per record; more are dropped (ILSVRC images rarely hold more).
MAX_BOXES = 64

#: ILSVRC's localisation ground truth, per split, as the challenge ships it.
ILSVRC_FILES = ("LOC_train_solution.csv", "LOC_val_solution.csv")


@dataclasses.dataclass(frozen=True)
class BoxReader:
    """Reads a record's class and ground-truth boxes: ``reader(example) -> (label, boxes)``.

    The label is int32, the boxes float32 ``[MAX_BOXES, 4]`` corners ``(ymin, xmin,
    ymax, xmax)``, zero-area rows padding them.

    Attributes:
        read: The function of a TFDS example that gives ``(label, boxes)``.
        in_pixels: The boxes are in pixels (ILSVRC's files), to be divided by the
            size the image's header declares (:func:`normalise`); otherwise they are
            normalised to the image already.
        lookup_table: A table ``read`` looks records up in, held with the reader
            (None when it uses none).

    Example:
        >>> reader = BoxReader(lambda example: (example["label"], example["boxes"]))
        >>> reader({"label": 3, "boxes": None})[0], reader.in_pixels
        (3, False)
    """

    read: Callable[[dict], tuple[tf.Tensor, tf.Tensor]]
    in_pixels: bool = False
    lookup_table: Any = None

    def __call__(self, example: dict) -> tuple[tf.Tensor, tf.Tensor]:
        return self.read(example)


def _pad(boxes: tf.Tensor) -> tf.Tensor:
    boxes = tf.cast(boxes[:MAX_BOXES], tf.float32)
    padded = tf.pad(boxes, [[0, MAX_BOXES - tf.shape(boxes)[0]], [0, 0]])
    return tf.ensure_shape(padded, [MAX_BOXES, 4])


def _objects(features) -> tfds.features.FeatureConnector | None:
    objects = features["objects"] if "objects" in features else None  # noqa: SIM401 (no .get)
    if isinstance(objects, tfds.features.Sequence):
        inner = objects.feature
        if "bbox" in inner and isinstance(inner["bbox"], tfds.features.BBoxFeature):
            return objects
    return None


def _area(boxes: tf.Tensor) -> tf.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_reader(info: tfds.core.DatasetInfo) -> BoxReader | None:
    """The reader of a dataset's normalised boxes, or None.

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

            return BoxReader(read)

        def read_largest(example):
            found = example["objects"]
            labels = tf.cast(found["label"], tf.int32)
            largest = tf.argmax(_area(tf.cast(found["bbox"], tf.float32)), output_type=tf.int32)
            label = labels[largest]
            return label, _pad(tf.boolean_mask(found["bbox"], tf.equal(labels, label)))

        return BoxReader(read_largest)
    bbox = features["bbox"] if "bbox" in features else None  # noqa: SIM401 (FeaturesDict)
    if has_label and isinstance(bbox, tfds.features.BBoxFeature):
        return BoxReader(
            lambda example: (tf.cast(example["label"], tf.int32), _pad(example["bbox"][None]))
        )
    return None


def class_feature(info: tfds.core.DatasetInfo) -> tfds.features.ClassLabel | None:
    """The ClassLabel of a box dataset without supervised keys (VOC: the objects' labels)."""
    objects = _objects(info.features)
    if objects is not None and isinstance(objects.feature["label"], tfds.features.ClassLabel):
        return objects.feature["label"]
    return None


def _read_solution(path: str, class_index: dict[str, int]):
    """``{image id: [(class, ymin, xmin, ymax, xmax), ...]}`` of a LOC_*_solution.csv."""
    found = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            words = row["PredictionString"].split()
            if len(words) % 5:
                raise ValueError(
                    f"{path}: image {row['ImageId']!r} has a PredictionString of "
                    f"{len(words)} words; expected 'wnid xmin ymin xmax ymax' per box."
                )
            boxes = []
            for i in range(0, len(words), 5):
                wnid, xmin, ymin, xmax, ymax = words[i : i + 5]
                if wnid not in class_index:
                    raise ValueError(
                        f"{path}: image {row['ImageId']!r} names class {wnid!r}, "
                        "which the dataset does not have."
                    )
                boxes.append(
                    (class_index[wnid], float(ymin), float(xmin), float(ymax), float(xmax))
                )
            found[row["ImageId"]] = boxes
    return found


def ilsvrc_reader(manual_dir: str | None, class_names: Sequence[str]) -> BoxReader | None:
    """ILSVRC's localisation boxes for TFDS ``imagenet2012``, from the manual dir.

    Reads whichever of :data:`ILSVRC_FILES` are in ``manual_dir`` (None when
    neither is). Records are matched by their ``file_name`` without extension
    (``n01440764_10026``, ``ILSVRC2012_val_00000001``); a record without boxes
    of its class gets none (localisation leaves it out). Boxes are in pixels.

    Raises:
        ValueError: A malformed line, or a class the dataset does not have.
    """
    paths = [os.path.join(manual_dir, f) for f in ILSVRC_FILES] if manual_dir else []
    paths = [p for p in paths if os.path.isfile(p)]
    if not paths:
        return None
    class_index = {name: i for i, name in enumerate(class_names)}
    solutions = {}
    for path in paths:
        solutions.update(_read_solution(path, class_index))
    ids = sorted(solutions)
    lengths = np.array([len(solutions[i]) for i in ids], np.int64)
    rows = np.array([box for i in ids for box in solutions[i]], np.float32).reshape(-1, 5)
    starts = tf.constant(np.concatenate([[0], np.cumsum(lengths)[:-1]]), tf.int64)
    lengths = tf.constant(lengths)
    classes, corners = tf.constant(rows[:, 0].astype(np.int32)), tf.constant(rows[:, 1:])
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(ids), tf.range(len(ids), dtype=tf.int64)),
        default_value=-1,
    )

    def read(example):
        label = tf.cast(example["label"], tf.int32)
        stem = tf.strings.regex_replace(example["file_name"], r"^.*/|\.[^.]*$", "")
        row = table.lookup(stem)
        start = tf.where(row >= 0, tf.gather(starts, tf.maximum(row, 0)), 0)
        count = tf.where(row >= 0, tf.gather(lengths, tf.maximum(row, 0)), 0)
        found = tf.equal(classes[start : start + count], label)
        return label, _pad(tf.boolean_mask(corners[start : start + count], found))

    return BoxReader(read, in_pixels=True, lookup_table=table)


def normalise(boxes: tf.Tensor, image_bytes: tf.Tensor) -> tf.Tensor:
    """Pixel corner boxes divided by the size the image's header declares.

    Raises (InvalidArgument) for bytes that are no image, as decoding would.
    """
    from vgg_tf.data import images

    size = tf.cast(images.declared_size(image_bytes), tf.float32)
    return boxes / tf.tile(size, [2])
