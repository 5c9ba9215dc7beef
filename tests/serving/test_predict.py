"""Predicting image files (vgg_tf.serving.predict, bin/predict): the dense multi-scale answer with the
run's class names, heatmaps at the photo's size, bad files named and the others answered."""

import json
import os
import re

import numpy as np
import pytest
from PIL import Image
from skimage import data

from vgg_tf.data import images
from vgg_tf.inference import heatmaps
from vgg_tf.inference.protocol import ModelEvaluator
from vgg_tf.serving import predict as predict_lib
from vgg_tf.weights import labels, loading
from vgg_tf.weights.trained import TrainedModel

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, make_workdir):
    """A tiny net A run directory whose classes have names."""
    return make_workdir(tmp_path_factory.mktemp("run") / "digits_A", class_names=NAMES)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, encode):
    """Real photographs (scikit-image): a 512 x 512 JPEG and a 600 x 400 PNG."""
    root = tmp_path_factory.mktemp("photos")
    (root / "astronaut.jpg").write_bytes(encode(data.astronaut(), "JPEG", quality=90))
    (root / "coffee.png").write_bytes(encode(data.coffee(), "PNG"))
    return root


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, encode, zero_png):
    """File name -> words its reason must hold."""
    root = tmp_path_factory.mktemp("bad")
    photo = encode(data.chelsea(), "JPEG")
    (root / "truncated.jpg").write_bytes(photo[: len(photo) // 2])
    (root / "notes.txt").write_text("not an image")
    (root / "bomb.png").write_bytes(zero_png(10_000, 10_000))
    (root / "strip.png").write_bytes(zero_png(100_000, 10))
    return root, {
        "truncated.jpg": "cannot decode",
        "notes.txt": "Unsupported image format",
        "bomb.png": "more than 40000000 pixels",
        "strip.png": "16 times",
        "missing.jpg": "No such file",
        "cat.jpg": "a URL: image files are read from disk, URLs are not fetched",
    }


def _decoded(path):
    """The image as vgg_tf reads it (TensorFlow's JPEG decoder, not Pillow's)."""
    return images.decode_rgb(path.read_bytes()).numpy()


def test_top5_from_the_dense_protocol_with_the_runs_class_names(run_dir, photos):
    paths = [photos / "astronaut.jpg", photos / "coffee.png"]
    result = predict_lib.predict(paths, run_dir, verbose=0)
    evaluator = ModelEvaluator(loading.load_model(run_dir))
    assert result.scales == evaluator.multi == (32, 40, 48) and result.heatmap_scale == 40
    assert [p.file for p in result.images] == [str(p) for p in paths]
    for path, answer in zip(paths, result.images):
        assert answer.ok and answer.heatmap is None
        expected = evaluator.probabilities("dense", _decoded(path))
        assert answer.size == _decoded(path).shape[:2]
        assert len(answer.classes) == 5
        assert [c.index for c in answer.classes] == list(np.argsort(-expected)[:5])
        for c in answer.classes:
            assert c.name == c.id == NAMES[c.index]
            assert c.probability == pytest.approx(expected[c.index], abs=1e-6)
    text = predict_lib.format_predictions(result)
    assert "dense evaluation at Q = 32, 40, 48" in text
    assert "astronaut.jpg (512x512)" in text and "coffee.png (600x400)" in text
    assert sum(line.split()[-1] in NAMES for line in text.splitlines()) == 10


def test_heatmap_is_the_photo_with_the_top_class_score_map_at_its_own_size(
    run_dir, photos, tmp_path
):
    result = predict_lib.predict(
        [photos / "coffee.png", photos / "astronaut.jpg"],
        run_dir,
        heatmap_dir=tmp_path / "maps",
        top=3,
        verbose=0,
    )
    evaluator = ModelEvaluator(loading.load_model(run_dir))
    for answer, name in zip(result.images, ["coffee.png", "astronaut.jpg"]):
        assert len(answer.classes) == 3
        photo = _decoded(photos / name)
        heatmap = Image.open(answer.heatmap)
        assert answer.heatmap == str(tmp_path / "maps" / (os.path.splitext(name)[0] + ".png"))
        assert heatmap.format == "PNG" and heatmap.size == (photo.shape[1], photo.shape[0])
        score_map = evaluator.score_map(photo)[..., answer.classes[0].index]  # at Q = 40
        assert answer.heatmap_peak == pytest.approx(score_map.max())
        upsampled = heatmaps.upsample_score_map(score_map, *photo.shape[:2], 40, 32)
        expected = heatmaps.heatmap_image(photo, upsampled / score_map.max())
        np.testing.assert_array_equal(np.asarray(heatmap.convert("RGB")), expected)
        assert np.abs(expected.astype(int) - photo).mean() > 10  # the map is visible


def test_the_exported_saved_model_serves_what_predict_answers(run_dir, photos, tmp_path):
    import tensorflow as tf

    from vgg_tf.serving import export

    paths = [photos / "astronaut.jpg", photos / "coffee.png"]
    result = predict_lib.predict(paths, run_dir, top=10, verbose=0)
    version = export.export_saved_model(run_dir, tmp_path / "serving", verbose=0)
    serve = tf.saved_model.load(version).signatures["serving_default"]
    served = serve(image_bytes=tf.constant([p.read_bytes() for p in paths]))
    for answer, probabilities, labels_ in zip(
        result.images, served["probabilities"].numpy(), served["labels"].numpy()
    ):
        assert labels_[0].decode() == answer.classes[0].name  # the same top-1
        np.testing.assert_allclose(
            [probabilities[c.index] for c in answer.classes],
            [c.probability for c in answer.classes],
            atol=1e-5,
        )


def test_bad_files_get_one_line_each_and_the_others_are_answered(run_dir, photos, bad_files):
    root, reasons = bad_files
    paths = [
        root / "truncated.jpg",
        photos / "astronaut.jpg",
        root / "notes.txt",
        root / "bomb.png",
        root / "missing.jpg",
        root / "strip.png",
        "https://example.com/cat.jpg",  # issue 20: was "No such file"
        photos / "coffee.png",
    ]
    result = predict_lib.predict(paths, run_dir, verbose=0)
    assert [p.file for p in result.images] == [str(p) for p in paths]  # order kept
    assert [os.path.basename(p.file) for p in result.answered] == ["astronaut.jpg", "coffee.png"]
    lines = predict_lib.error_lines(result)
    assert len(lines) == len(reasons) == len(result.failed)
    for line, failed in zip(lines, result.failed):
        name = os.path.basename(failed.file)
        assert "\n" not in line and line.startswith(f"vgg_tf: skipped {failed.file}: ")
        assert reasons[name] in line, line
        assert failed.classes == () and failed.heatmap is None


def test_json_output_and_a_progress_bar_on_stderr_for_many_files(
    run_dir, photos, bad_files, tmp_path, capsys
):
    root, _ = bad_files
    paths = [photos / "astronaut.jpg", root / "notes.txt"] + [photos / "coffee.png"] * 4
    result = predict_lib.predict(paths, run_dir, top=2, heatmap_dir=tmp_path / "maps")
    out, err = capsys.readouterr()
    assert out == "" and "6/6" in err  # the answers are the caller's to print
    # Two files with one stem get two heatmaps.
    heatmaps = [p.heatmap for p in result.answered]
    assert len(set(heatmaps)) == 5 and heatmaps[2].endswith("coffee_2.png")
    predict_lib.write_predictions(result, tmp_path / "out" / "results.json")
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["protocol"] == "dense" and written["scales"] == [32, 40, 48]
    assert written["errors"] == [{"file": str(root / "notes.txt"), "error": result.failed[0].error}]
    first = written["images"][0]
    assert first["file"] == str(photos / "astronaut.jpg") and first["size"] == [512, 512]
    assert [c["rank"] for c in first["classes"]] == [1, 2]
    assert set(first["classes"][0]) == {"rank", "index", "id", "name", "probability"}
    assert 0 < first["heatmap_peak"] <= 1


def test_no_progress_bar_for_a_few_files(run_dir, photos, capsys):
    predict_lib.predict([photos / "coffee.png"] * predict_lib.PROGRESS_MIN_IMAGES, run_dir)
    assert capsys.readouterr() == ("", "")


def test_imagenet_models_come_from_the_weight_importers(monkeypatch, tiny_model, photos):
    from vgg_tf.weights import importing as weights

    config = dict(
        variant="D",
        crop_size=32,
        scale_min=32,
        scale_max=32,
        class_names=list(labels.imagenet_class_names()),
    )
    asked = []

    def imagenet_trained_model(variant):
        asked.append(variant)
        return TrainedModel(tiny_model(classes=1000), config, "cache/vgg16.h5", "D (imagenet)")

    monkeypatch.setattr(weights, "imagenet_trained_model", imagenet_trained_model)
    result = predict_lib.predict([photos / "coffee.png"], "imagenet-D", verbose=0)
    assert asked == ["D"] and result.model == "D (imagenet)"
    for c in result.images[0].classes:  # ImageNet's names and WordNet ids
        assert (c.id, c.name) == (
            labels.imagenet_class_ids()[c.index],
            labels.imagenet_class_names()[c.index],
        )


def test_bad_arguments_are_refused(run_dir, photos, tmp_path):
    with pytest.raises(ValueError, match="top=0"):
        predict_lib.predict([photos / "coffee.png"], run_dir, top=0)
    with pytest.raises(ValueError, match="smaller than the training crop"):
        predict_lib.predict([photos / "coffee.png"], run_dir, scales=[16])
    with pytest.raises(ValueError, match="Cannot load a model"):
        predict_lib.predict([photos / "coffee.png"], tmp_path)


# --- The command line -----------------------------------------------------------------


@pytest.mark.slow
def test_bin_predict_prints_five_named_classes_per_photo_and_names_the_bad_file(
    run_bin, run_dir, photos, bad_files, tmp_path
):
    root, _ = bad_files
    result = run_bin(
        "predict",
        photos / "astronaut.jpg",
        root / "truncated.jpg",
        photos / "coffee.png",
        f"--model={run_dir}",
        f"--heatmap={tmp_path / 'maps'}",
        f"--output={tmp_path / 'results.json'}",
        check=False,
    )
    # Issue 20: the exit status was 0 although an input failed.
    assert result.returncode == 1, result.stderr[-3000:]
    ranked = [line.split() for line in result.stdout.splitlines() if re.match(r" +\d+\. ", line)]
    assert len(ranked) == 10 and all(words[-1] in NAMES for words in ranked), result.stdout
    assert [words[0] for words in ranked] == ["1.", "2.", "3.", "4.", "5."] * 2
    # One line on stderr naming the bad file and why, and the count; nothing else there.
    expected = (
        f"vgg_tf: skipped {root / 'truncated.jpg'}: cannot decode the image "
        "(jpeg::Uncompress failed. Invalid JPEG data or crop window)"
    )
    assert result.stderr.strip().splitlines() == [
        expected,
        "error: 1 of the 3 image(s) could not be answered (named above; the others are answered).",
    ]
    assert Image.open(tmp_path / "maps" / "coffee.png").size == (600, 400)
    assert len(json.loads((tmp_path / "results.json").read_text())["images"]) == 2


@pytest.mark.slow
def test_bin_predict_fails_when_no_image_is_answered(run_bin, run_dir, bad_files):
    root, _ = bad_files
    result = run_bin(
        "predict", root / "notes.txt", root / "missing.jpg", f"--model={run_dir}", check=False
    )
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and "notes.txt" in lines[0] and "missing.jpg" in lines[1]
    assert lines[2] == "error: none of the 2 image(s) could be answered."


def _tiny_torchvision_vgg11(path, seed=0):
    """A torchvision-layout state dict of net A at 1/16 width (random weights) as a
    safetensors file, as timm publishes vgg11.tv_in1k."""
    from safetensors.numpy import save_file

    rng = np.random.RandomState(seed)
    state, channels = {}, 3
    for index, filters in zip((0, 3, 6, 8, 11, 13, 16, 18), (4, 8, 16, 16, 32, 32, 32, 32)):
        state[f"features.{index}.weight"] = rng.normal(
            0, (2 / (9 * channels)) ** 0.5, (filters, channels, 3, 3)
        ).astype("float32")
        state[f"features.{index}.bias"] = np.zeros(filters, "float32")
        channels = filters
    for index, (units, inputs) in zip((0, 3, 6), ((256, 32 * 49), (256, 256), (1000, 256))):
        state[f"classifier.{index}.weight"] = rng.normal(
            0, (2 / inputs) ** 0.5, (units, inputs)
        ).astype("float32")
        state[f"classifier.{index}.bias"] = np.zeros(units, "float32")
    save_file(state, str(path))
    return path


@pytest.mark.slow
def test_imported_weights_then_bin_predict_names_imagenet_classes_and_draws_the_heatmap(
    run_bin, photos, tmp_path
):
    """The issue's acceptance: import published weights, then bin/predict --heatmap."""
    from vgg_tf.weights import importing as weights

    source = _tiny_torchvision_vgg11(tmp_path / "model.safetensors")
    weights.import_to_workdir(source, tmp_path / "imported")
    result = run_bin(
        "predict",
        photos / "coffee.png",
        f"--model={tmp_path / 'imported'}",
        f"--heatmap={tmp_path / 'out'}",
    )
    ranked = [line for line in result.stdout.splitlines() if re.match(r" +\d+\. ", line)]
    names, ids = labels.imagenet_class_names(), labels.imagenet_class_ids()
    assert len(ranked) == 5, result.stdout
    for line in ranked:  # "   1.   0.12%  tabby (n02123045)"
        name, wnid = re.match(r" +\d\. +[\d.]+%  (.+) \((n\d{8})\)$", line).groups()
        assert names[ids.index(wnid)] == name
    assert "Q = 224, 256, 288, each with its flip" in result.stdout
    assert Image.open(tmp_path / "out" / "coffee.png").size == (600, 400)

    # bin/export of the imported workdir serves the same top-1 through TensorFlow
    # Serving's (TF1) loader.
    import tensorflow as tf

    run_bin("export", f"--model={tmp_path / 'imported'}", f"--export_dir={tmp_path / 'serving'}")
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        meta = tf.compat.v1.saved_model.loader.load(
            sess, ["serve"], str(tmp_path / "serving" / "1")
        )
        signature = meta.signature_def["serving_default"]
        served = sess.run(
            {k: v.name for k, v in signature.outputs.items()},
            {signature.inputs["image_bytes"].name: [(photos / "coffee.png").read_bytes()]},
        )
    top_wnid = re.match(r" +1\. +[\d.]+%  .+ \((n\d{8})\)$", ranked[0]).group(1)
    assert int(served["classes"][0][0]) == ids.index(top_wnid)
