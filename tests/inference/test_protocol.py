"""The paper's test protocol (vgg_tf.inference.protocol): scales, the crop grid, dense, multi-crop,
combined, fusion, predictions and heatmaps, the command line."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import vgg_tf
from vgg_tf.data import images
from vgg_tf.evaluation import classification
from vgg_tf.evaluation.datasets import DatasetSplit
from vgg_tf.inference import heatmaps
from vgg_tf.inference import protocol as ev
from vgg_tf.weights.trained import TrainedModel

MEAN = (120.0, 110.0, 100.0)
CONFIG = dict(
    variant="A",
    crop_size=32,
    scale_min=32,
    scale_max=48,
    mean_rgb=list(MEAN),
    class_names=[f"c{i}" for i in range(10)],
)


@pytest.fixture
def trained(tiny_model):
    """``trained(seed=0)``: a tiny net A in memory with the training config CONFIG."""

    def make(seed=0):
        return TrainedModel(tiny_model(seed), dict(CONFIG), "mem", f"A (seed{seed})")

    return make


def _image(h, w, seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=(h, w, 3)).astype("uint8")


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --- Scales from the training config ---------------------------------------


def test_evaluator_uses_config_scales_and_overrides(tiny_model):
    model = tiny_model()
    evaluator = ev.ModelEvaluator(TrainedModel(model, dict(CONFIG, scale_max=32), "x", "x"))
    assert evaluator.scales_for("single") == (32,)
    assert evaluator.scales_for("dense") == evaluator.scales_for("multicrop") == (32, 64)
    override = ev.ModelEvaluator(TrainedModel(model, CONFIG, "x", "x"), scales=[48, 64])
    assert override.scales_for("dense") == (48, 64)
    with pytest.raises(ValueError, match="exactly one test scale"):
        override.scales_for("single")
    with pytest.raises(ValueError, match=r"\[16\] are smaller than the training crop 32"):
        ev.ModelEvaluator(TrainedModel(model, CONFIG, "x", "x"), scales=[16, 48])
    with pytest.raises(ValueError, match="config.json.*--scales"):
        ev.ModelEvaluator(TrainedModel(model, {}, "nowhere/model.keras", "x"))


# --- The crop grid -----------------------------------------------------------


def test_crop_grid_count_corners_and_flips():
    h, w, crop = 70, 100, 32
    image = tf.reshape(tf.range(h * w * 3, dtype=tf.float32), (h, w, 3))
    crops = ev.multicrop_crops(image, crop).numpy()
    assert crops.shape == (50, crop, crop, 3)  # 5x5 grid x 2 flips (§3.2)
    image = image.numpy()
    offsets = ev.crop_offsets(h, w, crop).numpy()
    assert sorted(set(offsets[:, 0])) == [0, 10, 19, 28, 38]  # evenly spaced rows...
    assert sorted(set(offsets[:, 1])) == [0, 17, 34, 51, 68]  # ...and columns, border to border
    corners = {0: (0, 0), 4: (0, w - crop), 20: (h - crop, 0), 24: (h - crop, w - crop)}
    for index, (y, x) in corners.items():
        np.testing.assert_array_equal(crops[index], image[y : y + crop, x : x + crop])
    np.testing.assert_array_equal(crops[12], image[19 : 19 + crop, 34 : 34 + crop])  # centre crop
    np.testing.assert_array_equal(crops[25:], crops[:25, :, ::-1])  # the flips, same order
    assert len({c.tobytes() for c in crops}) == 50  # all distinct
    # An image of exactly the crop size gives 25 identical crops.
    same = ev.multicrop_crops(tf.ones((crop, crop, 3)), crop).numpy()
    assert same.shape == (50, crop, crop, 3) and (same == 1).all()


# --- Protocols ---------------------------------------------------------------


def test_dense_at_crop_size_is_the_classifier_with_flip(trained):
    trained = trained()
    evaluator = ev.ModelEvaluator(trained, scales=[32])
    image = _image(32, 32)
    x = image.astype("float32") - np.float32(MEAN)
    logits = keras.Model(trained.model.input, trained.model.get_layer("fc8").output)
    expected = (_softmax(logits(x[None]).numpy()) + _softmax(logits(x[None, :, ::-1]).numpy())) / 2
    np.testing.assert_allclose(evaluator.probabilities("dense", image), expected[0], atol=1e-5)
    # With one location per scale the 25 crops coincide: multi-crop equals dense.
    np.testing.assert_allclose(evaluator.probabilities("multicrop", image), expected[0], atol=1e-5)


def test_a_model_trained_without_flips_is_tested_without_flips(trained):
    trained = trained()
    unflipped = dataclasses.replace(trained, config={**trained.config, "flip": False})
    assert trained.flip and not unflipped.flip
    image = _image(32, 32)
    x = image.astype("float32") - np.float32(MEAN)
    logits = keras.Model(trained.model.input, trained.model.get_layer("fc8").output)
    expected = _softmax(logits(x[None]).numpy())[0]
    evaluator = ev.ModelEvaluator(unflipped, scales=[32])
    np.testing.assert_allclose(evaluator.probabilities("dense", image), expected, atol=1e-5)
    np.testing.assert_allclose(evaluator.probabilities("multicrop", image), expected, atol=1e-5)
    assert ev.multicrop_crops(tf.ones((40, 40, 3)), 32, flip=False).shape == (25, 32, 32, 3)


def test_dense_averages_the_score_map_then_softmax_over_flips_and_scales(trained):
    trained = trained()
    evaluator = ev.ModelEvaluator(trained)  # Q in {32, 40, 48} from the config
    image = _image(50, 75, seed=1)
    fcn = evaluator.fcn
    expected = []
    for q in (32, 40, 48):
        x = images.rescale_shorter_side(image[None].astype("float32"), q).numpy() - np.float32(MEAN)
        assert min(x.shape[1:3]) == q
        # §3.2: the class score map is averaged over its locations, then the softmax
        # posteriors of the image and its flip are averaged.
        scores = [fcn(v).numpy().mean(axis=(1, 2)) for v in (x, x[:, :, ::-1])]
        expected.append(np.mean([_softmax(v)[0] for v in scores], axis=0))
    dense = evaluator.probabilities("dense", image)
    np.testing.assert_allclose(dense, np.mean(expected, axis=0), atol=1e-5)
    assert dense.shape == (10,) and abs(dense.sum() - 1) < 1e-5


def test_a_model_that_subtracts_its_own_mean_gets_pixels_and_the_same_answers(trained):
    """A model built with include_preprocessing (every run's) is fed RGB pixels; with the
    same weights, the answers under every protocol are those of a model without it that is
    fed pixels less the mean: the mean is subtracted once, by one or the other."""
    plain = trained()
    raw_model = vgg_tf.VGG(
        "A",
        classes=10,
        crop_size=32,
        width_multiplier=1 / 16,
        include_preprocessing=True,
        mean_rgb=MEAN,
    )
    raw_model.set_weights(plain.model.get_weights())
    # The mean the model subtracts is the one used, whatever the config records.
    raw = TrainedModel(raw_model, dict(CONFIG, mean_rgb=[0.0, 0.0, 0.0]), "mem", "A (raw)")
    assert raw.includes_preprocessing and raw.mean_to_subtract is None
    assert not plain.includes_preprocessing and plain.mean_to_subtract == MEAN
    image = _image(32, 32, seed=3)
    unflipped = dataclasses.replace(raw, config={**raw.config, "flip": False})
    evaluator = ev.ModelEvaluator(unflipped, scales=[32])  # one location: a single crop
    own = raw_model.predict_on_batch(image[None])[0]  # the saved model on the raw image
    np.testing.assert_allclose(evaluator.probabilities("single", image), own, atol=1e-5)
    big = _image(50, 75, seed=4)
    for protocol in ("dense", "multicrop", "combined"):
        np.testing.assert_allclose(
            ev.ModelEvaluator(raw).probabilities(protocol, big),
            ev.ModelEvaluator(plain).probabilities(protocol, big),
            atol=1e-5,
        )


def test_multicrop_and_combined(trained):
    trained = trained()
    evaluator = ev.ModelEvaluator(trained, scales=[40, 64])
    image = _image(48, 64, seed=2)
    crop_model = trained.model
    expected = []
    for q in (40, 64):
        x = images.rescale_shorter_side(image[None].astype("float32"), q)[0] - np.float32(MEAN)
        crops = ev.multicrop_crops(x, 32).numpy()
        expected.append(crop_model(crops, training=False).numpy().mean(axis=0))
    cache = {}
    multicrop = evaluator.probabilities("multicrop", image, cache)
    np.testing.assert_allclose(multicrop, np.mean(expected, axis=0), atol=1e-5)
    combined = evaluator.probabilities("combined", image, cache)
    np.testing.assert_allclose(combined, (cache["dense"] + multicrop) / 2, atol=1e-7)
    assert not np.allclose(cache["dense"], multicrop, atol=1e-4)  # different windows, padding
    with pytest.raises(
        ValueError, match=r"Unknown protocol \['tencrop'\]; expected .*single, dense"
    ):
        evaluator.probabilities("tencrop", image)


def test_evaluate_images_rows_fusion_predictions_and_heatmaps(tmp_path, trained):
    evaluators = [ev.ModelEvaluator(trained(seed=s)) for s in (0, 1)]
    # Wide enough for a score map of two locations at Q = 40 (the heatmaps' scale).
    images = [_image(40 + 8 * i, 80, seed=i) for i in range(3)]
    dense = [[e.probabilities("dense", im) for im in images] for e in evaluators]
    # Labels chosen so the first model is right on image 0 only at top-1.
    labels = [
        int(np.argmax(dense[0][0])),
        int(np.argsort(dense[0][1])[-3]),
        int(np.argmin(dense[0][2])),
    ]
    rows = classification.evaluate_images(
        evaluators,
        list(zip(images, labels)),
        ["dense", "combined"],
        num_examples=3,
        image_outputs=classification.ImageOutputs(
            predictions=str(tmp_path / "pred.jsonl"),
            heatmap_dir=str(tmp_path / "maps"),
            heatmap_count=2,
        ),
        verbose=0,
    )
    assert [(r["model"].split(" ")[0], r["protocol"]) for r in rows] == [
        ("A", "dense"),
        ("A", "combined"),
        ("A", "dense"),
        ("A", "combined"),
        ("fusion", "dense"),
        ("fusion", "combined"),
    ]
    first = rows[0]
    assert first["scales"] == [32, 40, 48] and first["num_examples"] == 3
    assert first["top1_error"] == pytest.approx(200 / 3)
    assert first["top5_error"] == pytest.approx(100 / 3)
    lines = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert [line["label"] for line in lines] == labels
    np.testing.assert_allclose(lines[1]["probabilities"][1]["dense"], dense[1][1], atol=1e-6)
    fused = [np.mean([dense[0][i], dense[1][i]], axis=0) for i in range(3)]
    fusion_top1 = np.mean([np.argmax(f) != y for f, y in zip(fused, labels)]) * 100
    assert rows[4]["top1_error"] == pytest.approx(fusion_top1)
    assert sorted(os.listdir(tmp_path / "maps")) == [
        "model0_0000.png",
        "model0_0001.png",
        "model1_0000.png",
        "model1_0001.png",
    ]
    # bin/predict's heatmap: the image at its own size, the top class's map overlaid.
    top = int(np.argmax(dense[1][1]))
    for c in (top, (top + 1) % 10):
        heatmaps.write_heatmap(evaluators[1], images[1], c, tmp_path / f"class{c}.png")
    written = (tmp_path / "maps" / "model1_0001.png").read_bytes()
    assert written == (tmp_path / f"class{top}.png").read_bytes()
    assert written != (tmp_path / f"class{(top + 1) % 10}.png").read_bytes()
    table = classification.format_table(rows)
    assert "top-1 err (%)" in table and "32,40,48" in table and "fusion" in table
    assert f"{200 / 3:.2f}" in table
    with pytest.raises(ValueError, match="heatmap_count=-1 is not accepted; expected an integer"):
        classification.ImageOutputs(heatmap_dir="maps", heatmap_count=-1)


def test_protocol_names_are_stripped_kept_once_and_never_split():
    assert ev.check_protocols([" dense", "multicrop ", "dense", ""]) == ("dense", "multicrop")
    assert ev.check_protocols("single") == ("single",)  # one name, as a one-element list
    with pytest.raises(ValueError, match=r"Unknown protocol \['dense,multicrop'\]; expected"):
        ev.check_protocols("dense,multicrop")
    with pytest.raises(ValueError, match=r"Unknown protocol \['tencrop', 'x'\]; expected one"):
        ev.check_protocols(["dense", "tencrop", "x"])
    with pytest.raises(ValueError, match="No protocol given; expected one or more of single"):
        ev.check_protocols([" "])
    accepted = ("center_gt", "dense")
    assert ev.check_protocols(["dense", "center_gt"], accepted) == ("dense", "center_gt")
    with pytest.raises(
        ValueError, match=r"\['multicrop'\]; expected one or more of center_gt, dense\."
    ):
        ev.check_protocols(["multicrop"], accepted)


# --- CLI -----------------------------------------------------------------------


@pytest.mark.slow
def test_cli_rejects_bad_flags(tmp_path, run_bin):
    result = run_bin(
        "evaluate", "--model", tmp_path, "--protocol", "dense,tencrop", check=False, timeout=120
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: Unknown protocol ['tencrop']; expected one or more of single, "
        "dense, multicrop, combined."
    ]


def test_evaluate_defaults_to_the_test_split(tmp_path, tfds_dir, make_workdir):
    make_workdir(tmp_path, config=dict(CONFIG, mean_rgb=[0.0, 0.0, 0.0]))
    rows = classification.evaluate(
        [str(tmp_path)],
        DatasetSplit("digits", data_dir=str(tfds_dir), max_examples=6),
        ["single"],
        output=str(tmp_path / "table.json"),
        verbose=0,
    )
    table = json.loads((tmp_path / "table.json").read_text())
    # The digits have a held-out test split; validation is the last 10% of train.
    assert table["split"] == "test" and rows[0]["num_examples"] == 6
