"""The paper's Appendix B descriptor (vgg_tf.evaluation.features, bin/features): the fc7 head, flip and
scale averaging, L2 normalisation, a dataset's descriptors on disk, and the linear SVM."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage import data

from vgg_tf.data import images, sources
from vgg_tf.evaluation import features, linear_svm
from vgg_tf.evaluation.datasets import DatasetSplit
from vgg_tf.nets.fcn import to_fully_convolutional
from vgg_tf.weights import loading
from vgg_tf.weights.trained import TrainedModel

MEAN = (120.0, 110.0, 100.0)


def _at(scales, **changes):
    """The default descriptor at explicit scales."""
    return features.Descriptor(scales=tuple(scales), **changes)


@pytest.fixture(scope="module")
def trained(tiny_model):
    config = dict(
        variant="A", crop_size=32, scale_min=32, scale_max=48, mean_rgb=list(MEAN), flip=False
    )
    return TrainedModel(tiny_model(seed=3), config, "mem", "A (tiny)")


@pytest.fixture(scope="module")
def photo():
    """A real photograph, 300 x 451 (not square, odd width)."""
    return data.chelsea()


def test_default_scales_are_the_papers_ratios_of_the_crop(trained):
    assert features.default_scales(224) == (256, 384, 512)
    assert features.default_scales(32) == (37, 55, 73)
    assert features.FeatureExtractor(trained).scales == (37, 55, 73)
    assert features.FeatureExtractor(trained, _at([32, 48, 64])).scales == (32, 48, 64)
    with pytest.raises(ValueError, match="smaller than the training crop 32"):
        features.FeatureExtractor(trained, _at([24, 48]))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_fc7_head_is_the_classifiers_fc7_after_relu(tiny_model, batch_norm):
    model = tiny_model(seed=1, batch_norm=batch_norm)
    fc7_net = to_fully_convolutional(model, head="fc7")
    assert fc7_net.layers[-1].name == "fc7" and fc7_net.output_shape[-1] == 256  # 4096 / 16
    x = np.random.RandomState(0).uniform(-100, 100, (3, 32, 32, 3)).astype("float32")
    expected = keras.Model(model.input, model.get_layer("fc7").output)(x).numpy()
    np.testing.assert_allclose(fc7_net(x).numpy()[:, 0, 0], expected, atol=1e-5)
    assert (expected >= 0).all() and (expected > 0).any()  # after the ReLU
    assert fc7_net(np.zeros((1, 96, 64, 3), "float32")).shape == (1, 3, 2, 256)


def test_descriptor_is_unit_length_and_the_same_for_the_mirror_image(trained, photo):
    extractor = features.FeatureExtractor(trained)
    assert extractor.dim == 256
    descriptor = extractor(photo)
    assert descriptor.shape == (256,) and descriptor.dtype == np.float32
    assert np.linalg.norm(descriptor) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(extractor(photo[:, ::-1]), descriptor, atol=1e-5, rtol=0)
    # Without the flip averaging the mirror image is described differently.
    one_view = features.FeatureExtractor(trained, features.Descriptor(flip=False))
    assert np.abs(one_view(photo[:, ::-1]) - one_view(photo)).max() > 1e-3


def _fc7_mean(fc7_net, image, q):
    """By hand: rescale the shorter side to q (bilinear), subtract the mean, fc7 map, mean
    over the locations."""
    size = images.scaled_size(image.shape[0], image.shape[1], q).numpy()
    rescaled = tf.image.resize(image.astype("float32"), size, method="bilinear").numpy()
    fc7_map = fc7_net((rescaled - np.array(MEAN, "float32"))[None]).numpy()[0]
    assert fc7_map.shape[:2] == ((size[0] - 32) // 32 + 1, (size[1] - 32) // 32 + 1)
    return fc7_map.astype(np.float64).mean(axis=(0, 1))


def test_descriptor_equals_the_hand_computation_from_the_fc7_map(trained, photo):
    fc7_net = to_fully_convolutional(trained.model, head="fc7")
    per_scale = {
        q: (_fc7_mean(fc7_net, photo, q) + _fc7_mean(fc7_net, photo[:, ::-1], q)) / 2
        for q in (48, 96)
    }
    for scales in ([48], [48, 96]):
        by_hand = np.mean([per_scale[q] for q in scales], axis=0)
        by_hand /= np.linalg.norm(by_hand)
        np.testing.assert_allclose(
            features.FeatureExtractor(trained, _at(scales))(photo), by_hand, atol=1e-5, rtol=0
        )


def test_a_net_that_subtracts_its_own_mean_is_given_pixels(trained, photo):
    # Every run's net subtracts its mean itself; with the same weights it describes an
    # image as the net fed pixels less the mean does.
    import vgg_tf

    raw_model = vgg_tf.VGG(
        "A",
        classes=10,
        crop_size=32,
        width_multiplier=1 / 16,
        include_preprocessing=True,
        mean_rgb=MEAN,
    )
    raw_model.set_weights(trained.model.get_weights())
    raw = TrainedModel(raw_model, trained.config, "mem", "A (raw)")
    assert raw.includes_preprocessing
    np.testing.assert_allclose(
        features.FeatureExtractor(raw, _at([48]))(photo),
        features.FeatureExtractor(trained, _at([48]))(photo),
        atol=1e-5,
    )


def test_stacked_scales_are_each_normalised_then_stacked(trained, photo):
    # Caltech's descriptor (Appendix B): each scale's descriptor L2-normalised, the two
    # stacked end to end, the whole L2-normalised: twice fc7's width.
    fc7_net = to_fully_convolutional(trained.model, head="fc7")
    parts = []
    for q in (48, 96):
        part = (_fc7_mean(fc7_net, photo, q) + _fc7_mean(fc7_net, photo[:, ::-1], q)) / 2
        parts.append(part / np.linalg.norm(part))
    by_hand = np.concatenate(parts) / np.sqrt(2)
    extractor = features.FeatureExtractor(trained, _at([48, 96], across_scales="stack"))
    assert extractor.dim == 512
    np.testing.assert_allclose(extractor(photo), by_hand, atol=1e-5, rtol=0)


def test_nets_are_combined_by_stacking_their_descriptors(trained, tiny_model, photo):
    # Appendix B's D and E: each net's descriptor (unit length) stacked, the whole
    # L2-normalised; here two tiny nets A of different weights.
    other = TrainedModel(tiny_model(seed=9), trained.config, "mem2", "A (other)")
    one, two = (features.FeatureExtractor(m, _at([48])) for m in (trained, other))
    fused = features.StackedNets([one, two])
    assert fused.dim == 512 and fused.name == "A (tiny) + A (other)"
    by_hand = np.concatenate([one(photo), two(photo)]) / np.sqrt(2)
    np.testing.assert_allclose(fused(photo), by_hand, atol=1e-6, rtol=0)
    assert np.abs(one(photo) - two(photo)).max() > 1e-3  # the two nets describe differently
    assert isinstance(features.extractor_for([trained, other], _at([48])), features.StackedNets)
    assert isinstance(features.extractor_for([trained], _at([48])), features.FeatureExtractor)


def test_presets_are_the_papers_choices_per_dataset():
    voc, voc12, caltech = (features.preset(n) for n in ("voc2007", "voc2012", "caltech"))
    assert voc.descriptor.scales_for(224) == (256, 384, 512, 640, 768)
    assert voc.descriptor.across_scales == "average" and voc.measure == "map_voc2007"
    assert voc12.descriptor == voc.descriptor and voc12.measure == "map"
    assert caltech.descriptor.scales_for(224) == (256, 384, 512)
    assert caltech.descriptor.across_scales == "stack"
    assert caltech.measure == "mean_class_recall"
    assert voc.descriptor.scales_for(32) == (37, 55, 73, 91, 110)
    with pytest.raises(ValueError, match=r"preset='imagenet' is not accepted; expected one of"):
        features.preset("imagenet")


def test_a_batch_gives_each_images_own_descriptor(trained):
    extractor = features.FeatureExtractor(trained, _at([32, 40]))
    batch = np.random.RandomState(0).randint(0, 256, (3, 40, 50, 3)).astype("uint8")
    np.testing.assert_allclose(
        extractor.batch(batch), [extractor(image) for image in batch], atol=1e-6
    )
    assert extractor.batch_size(40, 50) == features.MAX_BATCH
    assert 1 <= features.FeatureExtractor(trained, _at([512])).batch_size(3000, 4000) <= 4


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, make_workdir):
    return make_workdir(tmp_path_factory.mktemp("runs") / "tiny_A", mean_rgb=list(MEAN))


def test_a_splits_descriptors_in_order_and_on_disk(tiny_run, digits, tfds_dir, tmp_path):
    data = DatasetSplit("digits", data_dir=str(tfds_dir), max_examples=40)
    fs = features.extract_features(tiny_run, data, _at([32, 48]), verbose=0)
    assert fs.features.shape == (40, 256) and fs.features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fs.features, axis=1), 1.0, atol=1e-5)
    records = list(sources.decoded_images(digits, "test", max_examples=40).as_numpy_iterator())
    assert fs.labels.tolist() == [int(label) for _, label, _ in records]
    assert list(fs.filenames) == [name.decode() for _, _, name in records]
    assert (fs.split, fs.scales, fs.class_names[:2]) == ("test", (32, 48), ("0", "1"))
    extractor = features.FeatureExtractor(loading.load_model(tiny_run), _at([32, 48]))
    np.testing.assert_allclose(fs.features[7], extractor(records[7][0]), atol=1e-6)
    for name in ("feats.npz", "feats.npy"):
        written = features.save_features(fs, tmp_path / name)
        back = features.load_features(tmp_path / name)
        np.testing.assert_array_equal(back.features, fs.features)
        np.testing.assert_array_equal(back.labels, fs.labels)
        assert back == dataclasses_replace(fs, back)
    assert written == [str(tmp_path / "feats.npy"), str(tmp_path / "feats.json")]
    sidecar = json.loads((tmp_path / "feats.json").read_text())
    assert sidecar["filenames"] == list(fs.filenames) and sidecar["scales"] == [32, 48]
    with pytest.raises(ValueError, match=".npz or .npy"):
        features.save_features(fs, tmp_path / "feats.csv")


def dataclasses_replace(fs, back):
    """``fs`` with ``back``'s arrays (the dataclass compares arrays by identity)."""
    import dataclasses

    return dataclasses.replace(fs, features=back.features, labels=back.labels)


def test_linear_svm_on_the_descriptors_scores_a_held_out_split(tiny_run, tfds_dir):
    data = DatasetSplit("digits", data_dir=str(tfds_dir), max_examples=300)
    scores, train, test = linear_svm.linear_eval(tiny_run, data, _at([32, 48]), verbose=0)
    assert (train.split, test.split) == ("train[:90%]", "test")
    assert scores["train_examples"] == 300 and scores["test_examples"] == 300
    assert scores["c"] in linear_svm.C_GRID
    # Even an untrained net's descriptors separate the digits well above chance (10%).
    assert 0.3 < scores["accuracy"] <= 1
    fixed = linear_svm.fit_linear_svm(train, test, c=1.0)
    assert fixed["c"] == 1.0 and 0 <= fixed["accuracy"] <= 1
    with pytest.raises(ValueError, match="c=0"):
        linear_svm.fit_linear_svm(train, test, c=0)


# --- The command line -----------------------------------------------------------------


@pytest.mark.slow
def test_bin_features_linear_eval_on_a_digits_model_prints_an_accuracy(
    run_bin, trained_digits_run, tfds_dir, tmp_path
):
    result = run_bin(
        "features",
        f"--model={trained_digits_run}",
        f"--data_dir={tfds_dir}",
        "--linear_eval",
        f"--output={tmp_path / 'test.npz'}",
    )
    match = re.search(
        r"^test accuracy on digits \[test\] \(360 images\): ([\d.]+)%$", result.stdout, re.MULTILINE
    )
    assert match, result.stdout
    assert float(match.group(1)) > 50, result.stdout  # chance: 10%
    assert (
        "fitted on 1293 descriptors of 256 numbers (digits [train[:90%]], Q = 37,55,73)"
        in result.stdout
    )
    with np.load(tmp_path / "test.npz") as saved:
        assert saved["features"].shape == (360, 256) and saved["labels"].shape == (360,)
        assert json.loads(str(saved["metadata"]))["scales"] == [37, 55, 73]


@pytest.mark.slow
def test_bin_features_caltech_preset_stacks_scales_and_nets_and_reports_mean_class_recall(
    run_bin, tiny_run, tfds_dir, tmp_path, make_workdir, tiny_model
):
    other = make_workdir(tmp_path / "other_A", model=tiny_model(seed=5), mean_rgb=list(MEAN))
    result = run_bin(
        "features",
        f"--model={tiny_run},{other}",
        f"--data_dir={tfds_dir}",
        "--preset=caltech",
        "--max_examples=60",
        "--linear_eval",
        "--svm_c=10",
    )
    # Two nets x three scales x fc7's 256: stacked, not averaged.
    assert (
        "fitted on 60 descriptors of 1536 numbers (digits [train[:90%]], Q = 37,55,73, stacked)"
        in result.stdout
    ), result.stdout
    assert re.search(
        r"^test mean class recall on digits \[test\] \(60 images\): [\d.]+%$",
        result.stdout,
        re.MULTILINE,
    ), result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "flag, message",
    [
        ("--max_examples=0", "error: max_examples=0 is not accepted; expected a positive integer"),
        ("--scales=abc", "error: --scales=abc is not accepted; expected integers."),
        ("--max_pixels=-5", "error: max_pixels=-5 is not accepted; expected > 0 or None."),
    ],
)
def test_bin_features_refuses_bad_flags_in_one_line(run_bin, tmp_path, flag, message):
    result = run_bin(
        "features", f"--model={tmp_path}", f"--output={tmp_path / 'f.npz'}", flag, check=False
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
