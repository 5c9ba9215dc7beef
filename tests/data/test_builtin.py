"""The built-in digits TFDS builder: prepares offline, reads like any TFDS dataset."""

import socket

import numpy as np
import pytest
import tensorflow_datasets as tfds

from vgg_tf.data.builtin import Digits


def _no_network(*args, **kwargs):
    raise OSError("the digits builder tried to reach the network")


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tfds"))
    builder = Digits(data_dir=root)
    with pytest.MonkeyPatch.context() as patch:  # offline: no connection may be opened
        patch.setattr(socket.socket, "connect", _no_network)
        patch.setattr(socket, "create_connection", _no_network)
        builder.download_and_prepare()
    builder.test_root = root
    return builder


def test_prepares_offline_into_data_dir(builder):
    assert builder.is_prepared()
    assert str(builder.data_dir).startswith(builder.test_root)  # respects data_dir


def test_splits_and_features(builder):
    info = builder.info
    assert info.splits["train"].num_examples == 1437
    assert info.splits["test"].num_examples == 360
    assert info.features["label"].names == [str(d) for d in range(10)]
    assert info.supervised_keys == ("image", "label")


def test_examples_are_real_digits(builder):
    images, labels = tfds.as_numpy(
        builder.as_dataset(split="test", as_supervised=True, batch_size=-1)
    )
    assert images.shape == (360, 8, 8, 3) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0
    assert np.array_equal(images[..., 0], images[..., 2])  # grey digits stored as RGB
    # Stratified split: every class appears in the test set in its share.
    assert np.bincount(labels, minlength=10).min() >= 30


def test_split_is_fixed(builder, tmp_path):
    again = Digits(data_dir=str(tmp_path))
    again.download_and_prepare()
    first = [ex["image"].tobytes() for ex in tfds.as_numpy(builder.as_dataset(split="test"))]
    second = [ex["image"].tobytes() for ex in tfds.as_numpy(again.as_dataset(split="test"))]
    assert sorted(first) == sorted(second)
