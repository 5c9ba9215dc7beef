"""Tests of the paper's test protocol (vgg_tf.evaluate)."""

import dataclasses
import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from vgg_tf import images, workdir
from vgg_tf import evaluate as ev
from vgg_tf.models import VGG

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN = (120.0, 110.0, 100.0)
CONFIG = dict(variant="A", crop_size=32, scale_min=32, scale_max=48, mean_rgb=list(MEAN),
              class_names=[f"c{i}" for i in range(10)])


def _model(seed=0, classes=10):
    keras.utils.set_random_seed(seed)
    return VGG("A", classes=classes, crop_size=32, width_multiplier=1 / 16,
               kernel_initializer="glorot")


def _trained(config=CONFIG, seed=0):
    return workdir.TrainedModel(_model(seed), dict(config), "mem", f"A (seed{seed})")


def _image(h, w, seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=(h, w, 3)).astype("uint8")


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _encode(image, fmt, mode=None):
    buf = io.BytesIO()
    pil = Image.fromarray(image)
    (pil.convert(mode) if mode else pil).save(buf, fmt)
    return buf.getvalue()


# --- Scales from the training config ---------------------------------------


@pytest.mark.parametrize(
    "config, single, multi",
    [
        (dict(crop_size=224, scale_min=256, scale_max=256), (256,), (224, 256, 288)),
        (dict(crop_size=224, scale_min=384, scale_max=384), (384,), (352, 384, 416)),
        (dict(crop_size=224, scale_min=256, scale_max=512), (384,), (256, 384, 512)),
        (dict(crop_size=32, scale_min=32, scale_max=48), (40,), (32, 40, 48)),
        (dict(crop_size=32, scale_min=32, scale_max=32), (32,), (32, 64)),  # 0 -> 32, deduplicated
    ],
)
def test_scales_read_from_training_config(config, single, multi):
    trained = workdir.TrainedModel(None, config, "x", "x")
    assert trained.single_scale() == single
    assert trained.multi_scales() == multi


def test_evaluator_uses_config_scales_and_overrides():
    model = _model()
    evaluator = ev.ModelEvaluator(workdir.TrainedModel(model, dict(CONFIG, scale_max=32), "x", "x"))
    assert evaluator.scales_for("single") == (32,)
    assert evaluator.scales_for("dense") == evaluator.scales_for("multicrop") == (32, 64)
    override = ev.ModelEvaluator(workdir.TrainedModel(model, CONFIG, "x", "x"), scales=[48, 64])
    assert override.scales_for("dense") == (48, 64)
    with pytest.raises(ValueError, match="exactly one test scale"):
        override.scales_for("single")
    with pytest.raises(ValueError, match=r"\[16\] are smaller than the training crop 32"):
        ev.ModelEvaluator(workdir.TrainedModel(model, CONFIG, "x", "x"), scales=[16, 48])
    with pytest.raises(ValueError, match="config.json.*--scales"):
        ev.ModelEvaluator(workdir.TrainedModel(model, {}, "nowhere/model.keras", "x"))


def test_load_trained_model(tmp_path):
    model = _model()
    model.save(tmp_path / "model.keras")
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    for path in (tmp_path, tmp_path / "model.keras"):
        trained = workdir.load_trained_model(path)
        assert trained.config == CONFIG and trained.crop_size == 32
        assert trained.mean_rgb == MEAN and trained.class_names[3] == "c3"
        assert trained.name == f"A ({tmp_path.name})"
    with pytest.raises(ValueError, match="expected a training workdir holding model.keras"):
        workdir.load_trained_model(tmp_path / "missing")


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
        np.testing.assert_array_equal(crops[index], image[y:y + crop, x:x + crop])
    np.testing.assert_array_equal(crops[12], image[19:19 + crop, 34:34 + crop])  # centre crop
    np.testing.assert_array_equal(crops[25:], crops[:25, :, ::-1])  # the flips, same order
    assert len({c.tobytes() for c in crops}) == 50  # all distinct
    # An image of exactly the crop size gives 25 identical crops.
    same = ev.multicrop_crops(tf.ones((crop, crop, 3)), crop).numpy()
    assert same.shape == (50, crop, crop, 3) and (same == 1).all()


# --- Protocols ---------------------------------------------------------------


def test_dense_at_crop_size_is_the_classifier_with_flip():
    trained = _trained()
    evaluator = ev.ModelEvaluator(trained, scales=[32])
    image = _image(32, 32)
    x = image.astype("float32") - np.float32(MEAN)
    logits = keras.Model(trained.model.input, trained.model.get_layer("fc8").output)
    expected = (_softmax(logits(x[None]).numpy()) + _softmax(logits(x[None, :, ::-1]).numpy())) / 2
    np.testing.assert_allclose(evaluator.probabilities("dense", image), expected[0], atol=1e-5)
    # With one location per scale the 25 crops coincide: multi-crop equals dense.
    np.testing.assert_allclose(evaluator.probabilities("multicrop", image), expected[0], atol=1e-5)


def test_a_model_trained_without_flips_is_tested_without_flips():
    trained = _trained()
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


def test_dense_averages_the_score_map_then_softmax_over_flips_and_scales():
    trained = _trained()
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


def test_multicrop_and_combined():
    trained = _trained()
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
    with pytest.raises(ValueError, match="Unknown protocol 'tencrop'.*single, dense"):
        evaluator.probabilities("tencrop", image)


def test_evaluate_images_rows_fusion_predictions_and_heatmaps(tmp_path):
    evaluators = [ev.ModelEvaluator(_trained(seed=s)) for s in (0, 1)]
    images = [_image(40 + 8 * i, 48, seed=i) for i in range(3)]
    dense = [[e.probabilities("dense", im) for im in images] for e in evaluators]
    # Labels chosen so the first model is right on image 0 only at top-1.
    labels = [int(np.argmax(dense[0][0])), int(np.argsort(dense[0][1])[-3]),
              int(np.argmin(dense[0][2]))]
    rows = ev.evaluate_images(
        evaluators, list(zip(images, labels)), "dense,combined", num_examples=3,
        heatmap_dir=str(tmp_path / "maps"), heatmap_count=2,
        predictions_output=str(tmp_path / "pred.jsonl"), verbose=0,
    )
    assert [(r["model"].split(" ")[0], r["protocol"]) for r in rows] == [
        ("A", "dense"), ("A", "combined"), ("A", "dense"), ("A", "combined"),
        ("fusion", "dense"), ("fusion", "combined")]
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
        "model0_0000.png", "model0_0001.png", "model1_0000.png", "model1_0001.png"]
    table = ev.format_table(rows)
    assert "top-1 err (%)" in table and "32,40,48" in table and "fusion" in table
    assert f"{200 / 3:.2f}" in table


# --- Decoding ----------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, mode",
    [(f, m) for f in ("JPEG", "PNG", "GIF", "BMP") for m in ("RGB", "L", "RGBA") if (f, m) != ("JPEG", "RGBA")]
    + [("JPEG", "CMYK"), ("WEBP", "RGB"), ("WEBP-lossless", "RGB"), ("WEBP", "RGBA")],
)
def test_decode_formats_and_modes(fmt, mode):
    yy, xx = np.mgrid[0:30, 0:41]
    image = np.stack([yy * 8, xx * 6, 255 - xx * 5], axis=-1).astype("uint8")  # smooth colours
    if fmt.startswith("WEBP"):  # lossy (VP8), lossless (VP8L), with alpha (VP8X)
        buf = io.BytesIO()
        pil = Image.fromarray(image).convert(mode)
        if mode == "RGBA":
            pil.putalpha(Image.linear_gradient("L").resize(pil.size))  # not all opaque
        pil.save(buf, "WEBP", lossless=fmt.endswith("lossless"))
        data = buf.getvalue()
        chunk = b"VP8L" if fmt == "WEBP-lossless" else {"RGB": b"VP8 ", "RGBA": b"VP8X"}[mode]
        assert data[12:16] == chunk  # each of the three headers is read
    else:
        data = _encode(image, fmt, mode)
    assert int(images.declared_pixels(data)) == 30 * 41
    assert images.declared_size(data).numpy().tolist() == [30, 41]  # (height, width)
    decoded = images.decode_rgb(data).numpy()
    reference = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert decoded.shape == (30, 41, 3) and decoded.dtype == np.uint8
    # Decoder rounding (JPEG, lossy WebP), the palette (GIF).
    tolerance = {"JPEG": 6, "WEBP": 6, "GIF": 64}.get(fmt, 0)
    assert np.abs(decoded.astype(int) - reference).max() <= tolerance


def test_decode_rejects_before_decoding():
    with pytest.raises(tf.errors.InvalidArgumentError, match="declares more than 1000 pixels"):
        images.decode_rgb(_encode(_image(40, 30), "PNG"), max_pixels=1000)
    for data in (b"", b"not an image", b"RIFF\0\0\0\0WAVEfmt ", b"RIFF\0\0\0\0WEBPVP9 "):
        with pytest.raises(tf.errors.InvalidArgumentError, match="Unsupported image format"):
            images.decode_rgb(data)
    with pytest.raises(tf.errors.InvalidArgumentError):
        images.decode_rgb(b"\xff\xd8\xff\xe0 truncated jpeg")
    # A thin strip: rescaled so its shorter side is Q it would be enormous.
    for fmt in ("PNG", "JPEG", "GIF", "BMP"):
        assert images.decode_rgb(_encode(_image(5, 80), fmt)).shape == (5, 80, 3)  # 16:1
        for strip in (_image(4, 80), _image(80, 4)):  # 20:1 either way round
            with pytest.raises(tf.errors.InvalidArgumentError, match="more than 16 times"):
                images.decode_rgb(_encode(strip, fmt))
    assert images.decode_rgb(_encode(_image(4, 80), "PNG"), max_aspect_ratio=None).shape[1] == 80
    for limits, match in (((0, None), "max_pixels=0"), ((None, 0.5), "max_aspect_ratio=0.5")):
        with pytest.raises(ValueError, match=match):
            images.decode_rgb(_encode(_image(5, 5), "PNG"), *limits)


# --- CLI -----------------------------------------------------------------------


def test_cli_rejects_bad_flags(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bin", "evaluate"), "--model", str(tmp_path),
         "--protocol", "dense,tencrop"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: Unknown protocol ['tencrop']; expected one or more of single, "
                      "dense, multicrop, combined."]


def test_evaluate_defaults_to_the_test_split(tmp_path):
    _model().save(tmp_path / "model.keras")
    (tmp_path / "config.json").write_text(json.dumps(dict(CONFIG, mean_rgb=[0.0, 0.0, 0.0])))
    rows = ev.evaluate(str(tmp_path), "digits", "single", data_dir=str(tmp_path / "tfds"),
                       max_examples=6, output=str(tmp_path / "table.json"), verbose=0)
    table = json.loads((tmp_path / "table.json").read_text())
    # The digits have a held-out test split; validation is the last 10% of train.
    assert table["split"] == "test" and rows[0]["num_examples"] == 6


def test_ties_and_nan_count_as_errors():
    tally = ev._Tally()
    tally.add(np.full(10, 0.1), 3)  # uniform: no class is ranked first
    tally.add(np.full(10, np.nan), 3)  # a diverged model
    tally.add(np.array([0.05] * 6 + [0.1, 0.2, 0.3, 0.1]), 6)  # tied with class 9, behind two
    assert tally.errors() == (100.0, pytest.approx(200 / 3))  # only the last in the top 5
    right = ev._Tally()
    right.add(np.array([0.1, 0.7, 0.2]), 1)
    assert right.errors() == (0.0, 0.0)


def test_an_animated_gif_is_cut_to_its_first_frame_before_decoding():
    frames = [Image.fromarray(np.full((60, 80, 3), c, np.uint8))
              for c in ((250, 0, 0), (0, 250, 0), (0, 0, 250))] * 10
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], loop=0, duration=50,
                   comment=b"an extension to skip")
    animated = buf.getvalue()
    assert tf.io.decode_gif(animated).shape[0] == 30
    cut = images._gif_first_frame(tf.constant(animated)).numpy()
    assert tf.io.decode_gif(cut).shape == (1, 60, 80, 3)  # one frame decoded, not 30
    decoded = images.decode_rgb(animated).numpy()
    assert decoded.shape == (60, 80, 3) and decoded[0, 0].tolist() == [250, 0, 0]
    still = _encode(_image(30, 41), "GIF")  # a one-frame GIF decodes exactly as before
    np.testing.assert_array_equal(
        images.decode_rgb(still), tf.io.decode_image(still, channels=3, expand_animations=False))
    assert images._gif_first_frame(tf.constant(still[:40])).numpy() == still[:40]  # cannot walk it
