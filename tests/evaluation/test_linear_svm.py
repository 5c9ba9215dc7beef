"""Appendix B's linear SVMs (vgg_tf.evaluation.linear_svm) on a dataset whose images hold
several classes, as VOC's do: one binary SVM per class on every class an image holds, scored
in VOC-2007's mean average precision."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from vgg_tf.evaluation import features, linear_svm, measures
from vgg_tf.evaluation.datasets import DatasetSplit

COLOURS = ("red", "green", "blue")


class MultiLabelSquares(tfds.core.GeneratorBasedBuilder):
    """VOC's layout in small: ``labels`` (every class of the image) and ``objects`` (a box
    and class each), no image label. Each class is a square of its colour on grey."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(40, 48, 3)),
                    "image/filename": tfds.features.Text(),
                    "labels": tfds.features.Sequence(tfds.features.ClassLabel(names=COLOURS)),
                    "objects": tfds.features.Sequence(
                        {
                            "bbox": tfds.features.BBoxFeature(),
                            "label": tfds.features.ClassLabel(names=COLOURS),
                        }
                    ),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples("train", 0, 48),
            "test": self._generate_examples("test", 1, 24),
        }

    def _generate_examples(self, split, seed, count):
        rng = np.random.default_rng(seed)
        for i in range(count):
            image = np.full([40, 48, 3], 90, np.uint8)
            classes = sorted(rng.choice(3, size=rng.integers(1, 4), replace=False).tolist())
            objects = []
            for c in classes:
                side = int(rng.integers(10, 20))
                y, x = int(rng.integers(0, 40 - side)), int(rng.integers(0, 48 - side))
                image[y : y + side, x : x + side] = 20
                image[y : y + side, x : x + side, c] = 230
                box = tfds.features.BBox(y / 40, x / 48, (y + side) / 40, (x + side) / 48)
                objects.append({"bbox": box, "label": c})
            name = f"{split}_{i}.png"
            yield (
                name,
                {
                    "image": image,
                    "image/filename": name,
                    "labels": classes,
                    "objects": objects,
                },
            )


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    """The prepared dataset's TFDS directory and each image's classes by file name."""
    root = tmp_path_factory.mktemp("tfds_squares")
    MultiLabelSquares(data_dir=str(root)).download_and_prepare()
    classes = {}
    for split, seed, count in (("train", 0, 48), ("test", 1, 24)):
        for name, example in MultiLabelSquares(data_dir=str(root))._generate_examples(
            split, seed, count
        ):
            classes[name] = example["labels"]
    return root, classes


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, make_workdir):
    return make_workdir(tmp_path_factory.mktemp("runs") / "tiny_A")


def test_each_image_holds_the_classes_the_dataset_lists(squares):
    root, classes = squares
    data = DatasetSplit("multi_label_squares", data_dir=str(root))
    source = data.source()
    sets = data.label_sets(source, "test")
    assert sets == {name: tuple(c) for name, c in classes.items() if name.startswith("test")}
    assert any(len(c) > 1 for c in sets.values())
    assert DatasetSplit("digits").label_sets(DatasetSplit("digits").source(), "test") is None


def test_voc2007_mean_ap_of_one_vs_rest_svms_on_every_class_of_each_image(squares, tiny_run):
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import LinearSVC

    root, classes = squares
    data = DatasetSplit("multi_label_squares", data_dir=str(root))
    descriptor = features.Descriptor(scales=(32, 48))
    scores, train, test = linear_svm.linear_eval(
        tiny_run, data, descriptor, c=10.0, measure="map_voc2007", verbose=0
    )
    # Every class of each image, not only its largest object's.
    for fs in (train, test):
        assert [np.flatnonzero(row).tolist() for row in fs.targets] == [
            classes[name] for name in fs.filenames
        ]
    # By hand: one binary SVM per class on those classes, VOC-2007's 11-point mean AP.
    by_hand = OneVsRestClassifier(LinearSVC(C=10.0, dual=False, random_state=0, max_iter=10_000))
    by_hand.fit(train.features, train.targets)
    decisions = by_hand.decision_function(test.features)
    expected = measures.mean_average_precision(decisions, test.targets, eleven_point=True)
    assert scores["measure"] == "map_voc2007" and scores["c"] == 10.0
    assert scores["score"] == pytest.approx(expected, abs=1e-9)
    assert scores["score"] > 0.5  # the colours are there to be found
    # A model that sees each image's largest object only ranks the images differently.
    single = LinearSVC(C=10.0, dual=False, random_state=0, max_iter=10_000)
    single.fit(train.features, train.labels)
    single_score = measures.mean_average_precision(
        single.decision_function(test.features), test.targets, eleven_point=True
    )
    assert abs(single_score - expected) > 1e-6
