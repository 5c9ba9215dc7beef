"""The offline localisation dataset: real digits on a canvas with their boxes."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from vgg_tf.data import boxes
from vgg_tf.data.builtin import DigitsOnCanvas


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tfds"))
    DigitsOnCanvas(data_dir=root).download_and_prepare()
    # Registered by name once vgg_tf.data.builtin is imported, as the sources layer asks for it.
    return tfds.builder("digits_on_canvas", data_dir=root)


@pytest.fixture(scope="module")
def test_examples(builder):
    return list(tfds.as_numpy(builder.as_dataset(split="test")))


@pytest.fixture(scope="module")
def sklearn_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    _, test = train_test_split(
        np.arange(len(digits.images)), test_size=0.2, random_state=0, stratify=digits.target
    )
    return digits, set(test.tolist())


def test_prepares_with_splits_and_features(builder):
    assert isinstance(builder, DigitsOnCanvas) and builder.is_prepared()
    info = builder.info
    assert info.splits["train"].num_examples == 2874
    assert info.splits["test"].num_examples == 360
    assert info.features["image"].shape == (64, 64, 3)
    assert info.features["objects"]["label"].names == [str(d) for d in range(10)]
    assert info.supervised_keys == ("image", "label")


def test_boxes_and_labels(builder, test_examples):
    train = list(tfds.as_numpy(builder.as_dataset(split="train").take(300)))
    targets, distractors, owners = [], [], []
    for n, example in enumerate(test_examples + train):
        bbox, labels = example["objects"]["bbox"], example["objects"]["label"]
        assert 2 <= len(bbox) <= 3 and labels[0] == example["label"]
        assert bbox.min() >= 0 and bbox.max() <= 1
        sides = (bbox[:, 2:] - bbox[:, :2]) * 64
        assert np.all(sides[:, 0] == sides[:, 1])  # squares
        assert 20 <= sides[0, 0] <= 40 and np.all((sides[1:] >= 8) & (sides[1:] <= 14))
        assert np.all(labels[1:] != example["label"])
        targets.append(bbox[0])
        distractors.extend(bbox[1:])
        owners.extend([n] * (len(bbox) - 1))
    overlaps = boxes.iou(np.stack(targets), np.stack(distractors)).numpy()
    assert np.all(overlaps[owners, np.arange(len(owners))] == 0)  # each with its own target


def test_pixels_inside_and_outside_the_boxes(test_examples):
    for example in test_examples:
        image = example["image"]
        assert np.array_equal(image[..., 0], image[..., 2])  # grey digits stored as RGB
        corners = np.round(example["objects"]["bbox"] * 64).astype(int)
        outside = np.ones((64, 64), bool)
        for ymin, xmin, ymax, xmax in corners:
            outside[ymin:ymax, xmin:xmax] = False
        assert not image[outside].any()
        ymin, xmin, ymax, xmax = corners[0]
        assert image[ymin:ymax, xmin:xmax].max() > 100  # the target's ink


def _source_digits(example, digits, resized):
    """Indices of the digits (of the whole of sklearn's set) drawn as the target and as
    the distractors that overlap no other box; ``resized``: side -> all digits enlarged."""
    corners = np.round(example["objects"]["bbox"] * 64).astype(int)
    found = []
    for k, ((ymin, xmin, ymax, xmax), label) in enumerate(
        zip(corners, example["objects"]["label"])
    ):
        others = np.delete(corners, k, axis=0)
        overlapped = (np.minimum(ymax, others[:, 2]) > np.maximum(ymin, others[:, 0])) & (
            np.minimum(xmax, others[:, 3]) > np.maximum(xmin, others[:, 1])
        )
        if k and overlapped.any():
            continue
        candidates = np.flatnonzero(digits.target == label)
        crop = example["image"][ymin:ymax, xmin:xmax, 0].astype(np.float32)
        error = np.abs(resized[ymax - ymin][candidates] - crop).max(axis=(1, 2))
        assert error.min() <= 0.6, error.min()  # the rounded bilinear enlargement
        found.append(int(candidates[error.argmin()]))
    return found


def test_test_canvases_hold_test_digits_only(test_examples, sklearn_split):
    digits, test_indices = sklearn_split
    ink = digits.images[..., None].astype(np.float32) * (255 / 16)
    resized = {
        side: tf.image.resize(ink, (side, side)).numpy()[..., 0]
        for side in [*range(8, 15), *range(20, 41)]
    }
    found = [_source_digits(example, digits, resized) for example in test_examples]
    targets = sorted(indices[0] for indices in found)
    assert targets == sorted(test_indices)  # each test digit is the target once
    assert {i for indices in found for i in indices} <= test_indices


def test_generation_is_deterministic(test_examples, tmp_path):
    # A fresh builder generates the prepared split again (encoding it is TFDS's part).
    again = DigitsOnCanvas(data_dir=str(tmp_path))._split_generators(None)["test"]

    def summary(example):
        return (
            example["image"].tobytes(),
            int(example["label"]),
            np.asarray(example["objects"]["bbox"], np.float32).tobytes(),
        )

    assert sorted(summary(example) for _, example in again) == sorted(
        summary(example) for example in test_examples
    )
