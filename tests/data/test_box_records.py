"""vgg_tf.data.box_records: ground-truth boxes read from TFDS features of several layouts."""

from __future__ import annotations

import types

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from vgg_tf.data import box_records

CLASSES = tfds.features.ClassLabel(num_classes=5)


def _info(**features):
    return types.SimpleNamespace(
        features=tfds.features.FeaturesDict(
            {"image": tfds.features.Image(shape=(None, None, 3)), **features}
        )
    )


def _objects():
    return tfds.features.Sequence({"bbox": tfds.features.BBoxFeature(), "label": CLASSES})


def test_objects_of_the_image_class_padded_with_zero_area_rows():
    read = box_records.box_reader(_info(label=CLASSES, objects=_objects()))
    example = {
        "label": tf.constant(3, tf.int64),
        "objects": {
            "bbox": tf.constant([[0.1, 0.1, 0.5, 0.5], [0.2, 0.2, 0.9, 0.9], [0.0, 0.5, 0.4, 1.0]]),
            "label": tf.constant([3, 1, 3], tf.int64),
        },
    }
    assert not read.in_pixels  # TFDS' BBoxFeature: normalised already
    label, boxes = read(example)
    assert int(label) == 3 and boxes.shape == (box_records.MAX_BOXES, 4)
    np.testing.assert_allclose(boxes[:2], [[0.1, 0.1, 0.5, 0.5], [0.0, 0.5, 0.4, 1.0]])
    assert not np.any(boxes[2:])


def test_without_an_image_label_the_largest_object_gives_the_class():
    info = _info(objects=_objects())  # VOC's layout
    read = box_records.box_reader(info)
    example = {
        "objects": {
            "bbox": tf.constant([[0.0, 0.0, 0.2, 0.2], [0.1, 0.1, 0.9, 0.9], [0.5, 0.5, 0.6, 0.6]]),
            "label": tf.constant([2, 4, 4], tf.int64),
        }
    }
    label, boxes = read(example)
    assert int(label) == 4
    np.testing.assert_allclose(boxes[:2], [[0.1, 0.1, 0.9, 0.9], [0.5, 0.5, 0.6, 0.6]])
    assert box_records.class_feature(info).num_classes == 5


def test_one_bbox_beside_the_label():
    read = box_records.box_reader(_info(label=CLASSES, bbox=tfds.features.BBoxFeature()))
    label, boxes = read(
        {"label": tf.constant(1, tf.int64), "bbox": tf.constant([0.2, 0.3, 0.4, 0.5])}
    )
    assert int(label) == 1
    np.testing.assert_allclose(boxes[0], [0.2, 0.3, 0.4, 0.5])


def test_a_dataset_without_boxes_has_no_reader():
    assert box_records.box_reader(_info(label=CLASSES)) is None


_TRAIN_CSV = """ImageId,PredictionString
n00000002_17,n00000002 10 20 110 220 n00000002 0 0 5 5 
n00000001_3,n00000001 1 2 3 4 
"""
_VAL_CSV = """ImageId,PredictionString
ILSVRC2012_val_00000001,n00000001 5 6 7 8 n00000002 9 9 19 19 
"""


def test_ilsvrc_solution_files_give_pixel_boxes_of_the_image_class(tmp_path):
    (tmp_path / "LOC_train_solution.csv").write_text(_TRAIN_CSV)
    (tmp_path / "LOC_val_solution.csv").write_text(_VAL_CSV)
    read = box_records.ilsvrc_reader(str(tmp_path), ["n00000000", "n00000001", "n00000002"])
    assert read.in_pixels and read.lookup_table is not None

    def example(name, label):
        return {"file_name": tf.constant(name), "label": tf.constant(label, tf.int64)}

    label, boxes = read(example("n00000002_17.JPEG", 2))
    assert int(label) == 2  # ILSVRC's xmin ymin xmax ymax, here ymin xmin ymax xmax
    np.testing.assert_allclose(boxes[:2], [[20, 10, 220, 110], [0, 0, 5, 5]])
    _, boxes = read(example("ILSVRC2012_val_00000001.JPEG", 1))  # the class's box only
    np.testing.assert_allclose(boxes[:2], [[6, 5, 8, 7], [0, 0, 0, 0]])
    _, boxes = read(example("n00000000_99.JPEG", 0))  # not in the files: no box
    assert not np.any(boxes)
    assert box_records.ilsvrc_reader(str(tmp_path / "elsewhere"), ["n00000000"]) is None


def test_a_source_normalises_the_boxes_of_a_pixel_reader_only():
    from vgg_tf.data import sources

    def read(example):
        return example["label"], example["boxes"]

    def source(reader):
        return sources.Source("s", 2, ("a", "b"), "train", "val", "test", box_reader=reader)

    assert source(box_records.BoxReader(read, in_pixels=True)).boxes_in_pixels
    assert not source(box_records.BoxReader(read)).boxes_in_pixels
    assert not source(None).boxes_in_pixels


def test_ilsvrc_files_with_unknown_classes_or_short_lines_are_refused(tmp_path):
    (tmp_path / "LOC_val_solution.csv").write_text("ImageId,PredictionString\na,n9 1 2 3\n")
    with pytest.raises(ValueError, match=r"image 'a' has a PredictionString of 4 words"):
        box_records.ilsvrc_reader(str(tmp_path), ["n9"])
    (tmp_path / "LOC_val_solution.csv").write_text("ImageId,PredictionString\na,n7 1 2 3 4\n")
    with pytest.raises(ValueError, match=r"image 'a' names class 'n7', which the dataset does not"):
        box_records.ilsvrc_reader(str(tmp_path), ["n9"])


def test_pixel_boxes_reach_the_transform_normalised_and_a_bad_image_is_skipped(encode):
    from vgg_tf.data import sources

    png = encode(np.zeros([50, 200, 3], np.uint8), "PNG")
    pixel_boxes = np.zeros([2, box_records.MAX_BOXES, 4], np.float32)
    pixel_boxes[:, 0] = [10, 20, 50, 100]
    records = tf.data.Dataset.from_tensor_slices(
        (
            tf.constant([png, b"no image"]),
            (tf.constant([1, 2]), pixel_boxes),
            tf.constant([b"good.png", b"bad.png"]),
        )
    ).enumerate()

    def transform(index, image_bytes, boxes):
        return tf.zeros([1]), boxes[0]

    groups = sources.decode_skipping_bad(
        records, transform, (1,), source_name="s", split="x", limit=10, boxes_in_pixels=True
    )
    ((_, (labels, boxes)),) = list(groups)
    assert labels.numpy().tolist() == [1]
    np.testing.assert_allclose(boxes.numpy(), [[0.2, 0.1, 1.0, 0.5]])
