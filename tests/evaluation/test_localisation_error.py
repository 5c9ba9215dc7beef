"""vgg_tf.evaluation.localisation: Appendix A's localisation error, and the localisation commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from vgg_tf.data.box_records import MAX_BOXES
from vgg_tf.evaluation import localisation as localisation_eval
from vgg_tf.evaluation.datasets import DatasetSplit
from vgg_tf.inference import localiser as localise
from vgg_tf.serving import export
from vgg_tf.training import network
from vgg_tf.weights.trained import TrainedModel


def _box_net(tiny_run_config, box, head="scr", scale=48):
    config = tiny_run_config(task="localisation", head=head, scale_min=scale, scale_max=scale)
    model = network.build_model(config, 10)
    fc8 = model.get_layer("fc8")
    kernel, bias = fc8.get_weights()
    fc8.set_weights([np.zeros_like(kernel), np.tile(np.float32(box), bias.size // 4)])
    return TrainedModel(model, config, f"/runs/{head}", f"A ({head})")


def _padded(*boxes):
    return np.pad(np.array(boxes, np.float32), [[0, MAX_BOXES - len(boxes)], [0, 0]])


def test_a_net_predicting_its_whole_crop_scores_the_baseline(canvas, tiny_run_config):
    whole = _box_net(tiny_run_config, (0.5, 0.5, 1.0, 1.0), head="pcr")
    error, baseline, counted = localisation_eval.center_crop_errors(
        whole, canvas, "test", max_examples=64
    )
    assert counted == 64 and error == baseline
    # Targets are 20-40 px of a 64 canvas and the crop two thirds of it: some fit.
    assert 0.0 < baseline < 1.0
    tiny = _box_net(tiny_run_config, (0.5, 0.5, 0.05, 0.05))
    assert localisation_eval.center_crop_errors(tiny, canvas, "test", max_examples=64)[0] == 1.0


def _best_iou(box, truth):
    """By hand: the highest IoU of one corner box with the rows of ``truth`` (zero-area rows
    overlap nothing)."""
    height = np.clip(np.minimum(box[2], truth[:, 2]) - np.maximum(box[0], truth[:, 0]), 0, None)
    width = np.clip(np.minimum(box[3], truth[:, 3]) - np.maximum(box[1], truth[:, 1]), 0, None)
    inter = height * width
    areas = (truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1])
    union = (box[2] - box[0]) * (box[3] - box[1]) + areas - inter
    return float(np.max(np.where(union > 0, inter / np.where(union > 0, union, 1), 0)))


def test_center_crop_counts_a_box_as_localised_only_above_iou_half(
    canvas, canvas_dir, tiny_run_config
):
    # A net predicting a centred box 3/4 of its crop. The 64x64 canvas is rescaled to
    # S = 48 and its central 32 crop is [1/6, 5/6] of it on both axes, so the box is the
    # centred square 1/2 of the canvas wide; IoU does not change with the crop's frame.
    net = _box_net(tiny_run_config, (0.5, 0.5, 0.75, 0.75))
    data = DatasetSplit("digits_on_canvas", data_dir=str(canvas_dir), max_examples=64)
    records = list(data.decoded(canvas, "test", with_boxes=True).as_numpy_iterator())
    best = np.array([_best_iou([0.25, 0.25, 0.75, 0.75], boxes) for _, (_, boxes), _ in records])
    assert len(best) == 64 and ((best > 0.4) & (best <= 0.5)).sum() >= 5  # the rule decides
    error, _, counted = localisation_eval.center_crop_errors(net, canvas, "test", max_examples=64)
    assert counted == 64
    assert error == pytest.approx(np.mean(best <= 0.5), abs=1e-9)


def test_center_crop_gives_pixels_to_a_net_that_subtracts_its_own_mean(canvas, tiny_run_config):
    # Every run's net subtracts its mean itself; with the same weights its error is that of
    # the net fed pixels less the mean (subtracted twice, its boxes would move).
    plain = _box_net(tiny_run_config, (0.5, 0.5, 0.75, 0.75))
    fc8 = plain.model.get_layer("fc8")
    kernel = np.random.default_rng(3).normal(0, 0.02, fc8.get_weights()[0].shape)
    fc8.set_weights([kernel.astype(np.float32), fc8.get_weights()[1]])
    raw_model = network.build_model(plain.config, 10, mean_rgb=plain.config["mean_rgb"])
    raw_model.set_weights(plain.model.get_weights())
    raw = TrainedModel(raw_model, plain.config, "/runs/raw", "A (raw)")
    assert raw.includes_preprocessing
    errors = [
        localisation_eval.center_crop_errors(net, canvas, "test", max_examples=64)[0]
        for net in (plain, raw)
    ]
    assert errors[0] == errors[1]


def test_dense_errors_follow_ilsvrc_top5_and_the_true_class(tiny_run_config, tiny_model):
    # Boxes three windows wide merge into the whole image (see test_localise), which is
    # each image's ground truth: dense_gt localises every image; dense only those whose
    # class is in the classifier's top 5.
    classifier = TrainedModel(
        tiny_model(seed=5), tiny_run_config(scale_min=64, scale_max=64), "/runs/c", "c"
    )
    localiser = localise.Localiser(
        [_box_net(tiny_run_config, (0.5, 0.5, 3.0, 3.0), scale=64)], classifier
    )
    image = np.asarray(tf.random.stateless_uniform([64, 64, 3], [5, 6], maxval=255.0))
    ranked = localiser.localise(image)["classes"].numpy()
    outside = next(c for c in range(10) if c not in ranked)
    whole = _padded([0.0, 0.0, 1.0, 1.0])
    examples = [(image, (ranked[0], whole), b"a"), (image, (outside, whole), b"b")]
    errors, counted = localisation_eval.dense_errors(
        localiser, examples, ("dense", "dense_gt"), total=2, verbose=0
    )
    assert counted == 2 and errors == {"dense": 0.5, "dense_gt": 0.0}
    # A ground truth the merged box overlaps by IoU 0.25 only: no image is localised.
    corner = _padded([0.0, 0.0, 0.5, 0.5])
    errors, _ = localisation_eval.dense_errors(
        localiser, [(image, (ranked[0], corner), b"a")], ("dense", "dense_gt"), total=1, verbose=0
    )
    assert errors == {"dense": 1.0, "dense_gt": 1.0}


def test_protocols_nets_and_classifier_are_checked():
    canvas = DatasetSplit("digits_on_canvas")
    with pytest.raises(
        ValueError,
        match=r"Unknown protocol \['multicrop'\]; expected one or more of center_gt, dense_gt, dense",
    ):
        localisation_eval.evaluate_localisation(["/runs/scr"], canvas, ["center_gt", "multicrop"])
    with pytest.raises(ValueError, match="pass --classifier=WORKDIR"):
        localisation_eval.evaluate_localisation([], canvas, ["dense"])
    with pytest.raises(ValueError, match="No localisation net given; expected one or more"):
        localisation_eval.evaluate_localisation([], canvas, ["center_gt"])


@pytest.mark.slow
def test_dense_rows_per_net_then_fused_each_scale_then_all(
    tmp_path, tiny_run_config, tiny_model, make_workdir, canvas_dir
):
    scr = _box_net(tiny_run_config, (0.5, 0.5, 1.0, 1.0), scale=64)
    pcr = _box_net(tiny_run_config, (0.5, 0.5, 1.0, 1.0), head="pcr", scale=64)
    runs = [
        make_workdir(tmp_path / h, model=n.model, config=n.config)
        for h, n in [("scr", scr), ("pcr", pcr)]
    ]
    classifier = make_workdir(tmp_path / "c", model=tiny_model(seed=5))
    data = DatasetSplit("digits_on_canvas", data_dir=str(canvas_dir), max_examples=1)
    options = localise.LocaliserOptions(windows="crops")
    rows = localisation_eval.evaluate_localisation(
        runs,
        data,
        ["dense"],
        classifier=str(classifier),
        scales=[64, 80],
        options=options,
        verbose=0,
    )
    assert [(r["model"], r["scales"]) for r in rows] == [
        (name, scales)
        for name in ("A (scr)", "A (pcr)", "fusion of 2")
        for scales in ([64], [80], [64, 80])
    ]
    assert all(r["counted"] == 1 and r["windows"] == "crops" and r["offsets"] == 1 for r in rows)


@pytest.mark.slow
def test_train_evaluate_export_and_predict_a_localisation_net(
    tmp_path, canvas_dir, make_workdir, run_bin, encode
):
    """The commands of the README's localisation section, at tiny width."""
    classifier = make_workdir(tmp_path / "digits_A")
    loc = tmp_path / "loc_pcr"
    common = [f"--config.data_dir={canvas_dir}", "--config.width_multiplier=0.0625"]
    out = run_bin(
        "train",
        "--task",
        "localisation",
        "--head",
        "pcr",
        f"--init_from={classifier}",
        f"--workdir={loc}",
        "--epochs=1",
        *common,
    ).stdout
    assert "fc8 is initialised afresh for the box (40 outputs" in out
    assert "final validation localisation error" in out.splitlines()[-1]
    config = json.loads((loc / "config.json").read_text())
    assert (config["task"], config["head"], config["dataset"]) == (
        "localisation",
        "pcr",
        "digits_on_canvas",
    )
    assert "val_error" in (loc / "metrics.csv").read_text().splitlines()[0]

    table = tmp_path / "loc.json"
    out = run_bin(
        "evaluate",
        "--task",
        "localisation",
        f"--model={loc}",
        f"--classifier={classifier}",
        "--protocol=center_gt,dense_gt,dense",
        f"--data_dir={canvas_dir}",
        "--max_examples=8",
        f"--output={table}",
        "--windows=crops",
    ).stdout
    rows = json.loads(table.read_text())["rows"]
    assert [r["protocol"] for r in rows] == ["center_gt", "center_gt", "dense_gt", "dense"]
    assert [r.get("windows") for r in rows] == [None, None, "crops", "crops"]
    assert all(r["counted"] == 8 and 0.0 <= r["error"] <= 1.0 for r in rows)
    assert "whole crop (baseline)" in out

    out = run_bin(
        "export",
        "--task",
        "localisation",
        f"--model={loc}",
        f"--classifier={classifier}",
        f"--export_dir={tmp_path / 'served'}",
        "--windows=crops",
    ).stdout
    assert (tmp_path / "served" / "1" / "saved_model.pb").exists(), out
    metadata = json.loads((tmp_path / "served" / "1" / export.METADATA_FILE).read_text())
    assert (metadata["windows"], metadata["offsets"]) == ("crops", 1)

    photo = tmp_path / "canvas.png"
    photo.write_bytes(encode(np.full([64, 80, 3], 30, np.uint8), "PNG"))
    answers = tmp_path / "answers.json"
    run_bin(
        "predict",
        str(photo),
        f"--model={classifier}",
        f"--localiser={loc}",
        f"--boxes={tmp_path / 'boxes'}",
        f"--output={answers}",
        "--top=2",
    )
    image = json.loads(answers.read_text())["images"][0]
    assert image["boxes_image"] == str(tmp_path / "boxes" / "canvas.png")
    drawn = tf.io.decode_png((tmp_path / "boxes" / "canvas.png").read_bytes()).numpy()
    assert drawn.shape == (64, 80, 3) and (drawn != 30).any()
    for entry in image["classes"]:
        ymin, xmin, ymax, xmax = entry["box"]
        assert 0 <= ymin <= ymax <= 64 and 0 <= xmin <= xmax <= 80
