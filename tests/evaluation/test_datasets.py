"""Which images an evaluation reads (vgg_tf.evaluation.datasets.DatasetSplit), and the dataset
the models trained on (trained_on, the default of bin/evaluate and bin/features)."""

import pytest
import tensorflow as tf

from vgg_tf.data.images import ImageLimits
from vgg_tf.evaluation.datasets import DatasetSplit, trained_on


def test_the_test_split_by_default_and_its_first_n_images(digits, tfds_dir):
    data = DatasetSplit("digits", data_dir=str(tfds_dir), max_examples=5)
    assert data.split_of(digits) == "test" and data.count(digits, "test") == 5
    assert DatasetSplit("digits", split="train[:10]").split_of(digits) == "train[:10]"
    assert DatasetSplit("digits").count(digits, "test") == digits.num_examples("test")
    names = [name for _, _, name in data.decoded(digits, "test").as_numpy_iterator()]
    assert len(names) == 5


def test_the_limits_reach_the_decoder(digits):
    # The digits are 8 x 8: a limit of 60 pixels refuses every one of them, and a split
    # without one good image is an error.
    data = DatasetSplit("digits", max_examples=3, limits=ImageLimits(max_pixels=60))
    with pytest.raises(tf.errors.InvalidArgumentError, match="over the size limits"):
        list(data.decoded(digits, "test").as_numpy_iterator())
    assert len(list(DatasetSplit("digits", max_examples=3).decoded(digits, "test"))) == 3


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(max_examples=0), "max_examples=0 is not accepted; expected a positive integer"),
        (dict(max_examples=2.5), "max_examples=2.5 is not accepted"),
        (dict(dataset=""), "dataset='' is not accepted; expected a TFDS name"),
    ],
)
def test_bad_choices_are_refused_naming_the_value(changes, message):
    with pytest.raises(ValueError, match=message):
        DatasetSplit(**{"dataset": "digits", **changes})


def test_trained_on_reads_the_workdirs_config(tmp_path, make_workdir):
    first = make_workdir(tmp_path / "a", model=False, dataset="/data/photos")
    second = make_workdir(tmp_path / "b", model=False, dataset="/data/photos")
    choice = trained_on([str(first), second / "model.keras"], "digits")
    assert choice.dataset == "/data/photos"
    assert choice.reason == (
        f"dataset: /data/photos (what {first}, {second / 'model.keras'} trained on)"
    )


def test_trained_on_names_imagenet_for_published_weights():
    assert trained_on(["imagenet-D"], "digits").dataset == "imagenet2012"


def test_trained_on_falls_back_to_the_default_and_says_so(tmp_path, make_workdir):
    bare = tmp_path / "bare" / "model.keras"
    choice = trained_on([str(bare)], "digits_on_canvas")
    assert choice.dataset == "digits_on_canvas"
    assert choice.reason == (
        f"dataset: digits_on_canvas (the default: no training dataset recorded by {bare})"
    )
    # A model that records nothing goes with one that does.
    run = make_workdir(tmp_path / "run", model=False, dataset="digits")
    assert trained_on([str(bare), str(run)], "x").dataset == "digits"


def test_trained_on_refuses_models_of_different_datasets(tmp_path, make_workdir):
    first = make_workdir(tmp_path / "a", model=False, dataset="digits")
    second = make_workdir(tmp_path / "b", model=False, dataset="/data/photos")
    with pytest.raises(ValueError) as caught:
        trained_on([str(first), str(second)], "digits")
    assert str(caught.value) == (
        f"The models were trained on different datasets ({first}: digits, {second}: "
        "/data/photos); pass --dataset to name the one to evaluate on."
    )
