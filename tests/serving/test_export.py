"""Tests of the SavedModel export for TensorFlow Serving (vgg_tf.serving.export)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import vgg_tf
from vgg_tf import workdir as workdir_lib
from vgg_tf.data import images
from vgg_tf.inference import protocol as ev
from vgg_tf.serving import export as ex
from vgg_tf.weights import loading

DIGIT_SIDE = 40  # digits upsampled 5x: the recipe jitters S in [32, 48] around it


# The tests below share a model trained for about ten seconds (the fixture `workdir`): they
# are marked slow. The quick loop has its own check on an untrained model (at the end).


@pytest.fixture(scope="module")
def workdir(trained_digits_run, tmp_path_factory):
    """A small net A trained on the first 1500 digits (those above are held out), served
    with flips, saved as a run saves its model: subtracting its mean RGB itself."""
    trained = loading.load_model(trained_digits_run)
    model = vgg_tf.VGG(
        "A",
        classes=10,
        crop_size=32,
        width_multiplier=1 / 16,
        include_preprocessing=True,
        mean_rgb=trained.mean_rgb,
    )
    model.set_weights(trained.model.get_weights())
    run = tmp_path_factory.mktemp("digits_A_run")
    workdir_lib.save_model(model, run / workdir_lib.MODEL_FILE)
    workdir_lib.write_config(run, trained.config)
    assert loading.load_model(run).includes_preprocessing
    return run


@pytest.fixture(scope="module")
def exported(workdir, tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "vgg"
    version_dir = ex.export_saved_model(
        workdir, base, keras_output=str(base.parent / "fcn.keras"), verbose=0
    )
    return base, version_dir


@pytest.fixture(scope="module")
def served(exported):
    return tf.saved_model.load(exported[1])


def _test_images(encode, digit_images):
    """Three held-out digits at shapes of their own, as real PNG and JPEG bytes."""
    images, labels = digit_images
    picks = [1600, 1700, 1790]
    raw = [
        images[picks[0]],
        images[picks[1]][:, 4:],
        np.pad(images[picks[2]], ((8, 0), (0, 0), (0, 0))),
    ]
    return [encode(raw[0], "PNG"), encode(raw[1], "JPEG"), encode(raw[2], "PNG")], labels[picks]


# --- The acceptance check: a separate process that imports only tensorflow ----

_LOADER_SCRIPT = r"""
import importlib.abc, importlib.util, json, sys

class NoVggTf(importlib.abc.MetaPathFinder):  # vgg_tf may be installed: make it unreachable
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "vgg_tf":
            raise ImportError("vgg_tf must not be needed to serve")

sys.meta_path.insert(0, NoVggTf())
import tensorflow as tf
path, files = sys.argv[1], sys.argv[2:]
data = [open(f, "rb").read() for f in files]
def plain(outputs):
    return {k: (v.astype(str) if v.dtype == object else v).tolist() for k, v in outputs.items()}
result = {}
loaded = tf.saved_model.load(path)
result["tf2"] = plain({k: v.numpy() for k, v in
                       loaded.signatures["serving_default"](image_bytes=tf.constant(data)).items()})
with tf.compat.v1.Session(graph=tf.Graph()) as sess:
    meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
    sig = meta.signature_def["serving_default"]
    feed = sig.inputs["image_bytes"].name
    fetch = {k: v.name for k, v in sig.outputs.items()}
    result["v1"] = plain(sess.run(fetch, {feed: data}))
    result["v1_bad_row"] = plain(sess.run(fetch, {feed: [b"these bytes are no image"] + data}))
    strict = meta.signature_def["serving_strict"]
    try:
        sess.run({k: v.name for k, v in strict.outputs.items()},
                 {strict.inputs["image_bytes"].name: [b"these bytes are no image"]})
        result["v1_bad"] = "no error"
    except tf.errors.InvalidArgumentError:
        result["v1_bad"] = "InvalidArgument"
    result["v1_empty"] = {k: list(v.shape) for k, v in sess.run(fetch, {feed: []}).items()}
    result["v1_after_bad"] = plain(sess.run(fetch, {feed: data[:1]}))
result["signatures"] = sorted(meta.signature_def)
result["modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "vgg_tf")
result["keras_modules"] = sorted(m for m in sys.modules
                                 if m.split(".")[0] in ("keras", "tf_keras"))
result["keras_installed"] = importlib.util.find_spec("keras") is not None
print("RESULT" + json.dumps(result))
"""


def _site_packages_without(root, excluded=("keras", "tf_keras", "vgg_tf")):
    """A directory of links to everything installed beside TensorFlow except ``excluded``:
    on its own (``python -S`` with it as PYTHONPATH) an environment where Keras and vgg_tf
    were never installed. (TensorFlow imports Keras whenever Keras is installed.)"""
    root.mkdir()
    for entry in sys.path:
        folder = Path(entry)
        if folder.name not in ("site-packages", "dist-packages") or not folder.is_dir():
            continue
        for item in folder.iterdir():
            top = item.name.split("-")[0].split(".")[0]
            if top in excluded or item.suffix == ".pth" or top.startswith("__editable__"):
                continue
            if not (root / item.name).exists():
                (root / item.name).symlink_to(item)
    assert (root / "tensorflow").exists()
    return root


@pytest.mark.slow
def test_served_by_both_loaders_in_a_tensorflow_only_process(
    exported, workdir, tmp_path, encode, subprocess_env, digit_images
):
    base, version_dir = exported
    assert os.listdir(base) == ["1"] and version_dir == str(base / "1")
    data, _ = _test_images(encode, digit_images)
    files = []
    for i, blob in enumerate(data):
        files.append(tmp_path / f"image{i}")
        files[-1].write_bytes(blob)
    script = tmp_path / "load.py"
    script.write_text(_LOADER_SCRIPT)
    # A serving client's environment: TensorFlow without Keras or vgg_tf (BUILD.md: the
    # client "needs no vgg_tf, Keras or preprocessing code").
    env = subprocess_env(
        TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=_site_packages_without(tmp_path / "site")
    )
    proc = subprocess.run(
        [sys.executable, "-S", str(script), version_dir, *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert {"predict_images", "serving_default", "serving_strict"} <= set(result["signatures"])
    assert result["modules"] == []  # no vgg_tf code was needed (nor reachable)
    assert result["keras_installed"] is False and result["keras_modules"] == []  # nor Keras

    # bin/evaluate's dense protocol on the same images (the library path it calls).
    evaluator = ev.ModelEvaluator(loading.load_model(workdir))
    expected = np.stack([evaluator.probabilities("dense", images.decode_rgb(b)) for b in data])
    for loader in ("tf2", "v1"):
        out = result[loader]
        np.testing.assert_allclose(out["probabilities"], expected, atol=1e-4)
        np.testing.assert_array_equal(np.array(out["classes"])[:, 0], expected.argmax(axis=1))
        np.testing.assert_allclose(np.array(out["scores"])[:, 0], expected.max(axis=1), atol=1e-4)
        assert np.array(out["classes"]).shape == (3, 5)
        assert [row[0] for row in out["labels"]] == [str(c) for c in expected.argmax(axis=1)]
    assert result["v1_bad"] == "InvalidArgument"  # serving_strict fails the call
    bad_row = result["v1_bad_row"]  # serving_default answers the others
    assert bad_row["ok"] == [False, True, True, True]
    assert (
        bad_row["error"][0].startswith("Unsupported image format")
        and bad_row["error"][1:] == [""] * 3
    )
    np.testing.assert_array_equal(bad_row["probabilities"][1:], result["v1"]["probabilities"])
    assert result["v1_empty"] == {
        "probabilities": [0, 10],
        "classes": [0, 5],
        "scores": [0, 5],
        "labels": [0, 5],
        "ok": [0],
        "error": [0],
    }
    np.testing.assert_allclose(result["v1_after_bad"]["probabilities"], expected[:1], atol=1e-4)


@pytest.mark.slow
def test_saved_model_cli_lists_signatures(exported, subprocess_env):
    proc = subprocess.run(
        ["saved_model_cli", "show", "--dir", exported[1], "--all"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for text in (
        "signature_def['serving_default']",
        "signature_def['serving_strict']",
        "signature_def['predict_images']",
        "inputs['image_bytes']",
        "dtype: DT_STRING",
        "inputs['images']",
        "outputs['probabilities']",
        "outputs['classes']",
        "outputs['scores']",
        "outputs['labels']",
        "outputs['ok']",
        "outputs['error']",
    ):
        assert text in proc.stdout


# --- Served-graph behaviour ------------------------------------------------------


def _serve(served, blobs, signature="serving_default"):
    out = served.signatures[signature](image_bytes=tf.constant(blobs, tf.string))
    return {k: v.numpy() for k, v in out.items()}


def _strict(served, blobs):
    return _serve(served, blobs, "serving_strict")


@pytest.mark.slow
def test_modes_sizes_and_the_float_signature(served, workdir, encode, digit_images):
    images, _ = digit_images
    colour = images[5].copy()
    colour[..., 1] //= 2
    blobs = [
        encode(colour, "PNG", "L"),
        encode(colour, "PNG", "RGBA"),
        encode(colour, "JPEG", "CMYK"),
        encode(colour, "GIF"),
        encode(colour, "BMP"),
        encode(np.kron(colour, np.ones((3, 2, 1), "uint8")), "PNG"),
    ]  # 120x80
    out = _serve(served, blobs)
    assert out["probabilities"].shape == (6, 10)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, atol=1e-5)
    # The float signature, on the same pixels, gives the same answer as the bytes one.
    floats = served.signatures["predict_images"](images=tf.constant(colour[None].astype("float32")))
    png = _serve(served, [encode(colour, "PNG")])
    np.testing.assert_allclose(floats["probabilities"].numpy(), png["probabilities"], atol=1e-5)
    batch = served.signatures["predict_images"](
        images=tf.constant(np.stack([colour] * 2), tf.float32)
    )
    np.testing.assert_allclose(
        batch["probabilities"].numpy(), np.repeat(png["probabilities"], 2, 0), atol=1e-5
    )
    empty = served.signatures["predict_images"](images=tf.zeros([0, 7, 9, 3]))
    assert empty["probabilities"].shape == (0, 10) and empty["labels"].shape == (0, 5)


@pytest.mark.slow
def test_bad_input_fails_its_row_or_the_strict_call_and_bombs_rejected(
    served, encode, zero_png, png_header, header_bombs, digit_images
):
    good = encode(digit_images[0][0], "PNG")
    real_bomb = zero_png(7000, 6000)  # 42 MP of zeros: a few KB of PNG
    assert len(real_bomb) < 100_000
    # A real PNG bomb, and headers of every format (WebP's VP8, VP8L and VP8X among them)
    # declaring more than 40 MP on a few hundred bytes.
    bombs = {"real png": real_bomb, **{name: blob for name, (blob, _) in header_bombs.items()}}
    assert {"webp-vp8", "webp-vp8l", "webp-vp8x"} < set(bombs)
    # 1 MP, but rescaled to Q = 48 a 10 x 100000 strip would be 48 x 480000 pixels.
    strip = png_header(100_000, 10)
    junk = [b"", b"junk", b"\xff\xd8\xff\xe0 broken", b"RIFF\0\0\0\0WEBPVP8 "]
    rows = _serve(served, [good, *bombs.values(), strip, *junk])
    alone = _serve(served, [good])
    np.testing.assert_array_equal(rows["probabilities"][0], alone["probabilities"][0])
    assert rows["ok"].tolist() == [True] + [False] * (len(bombs) + 1 + len(junk))
    errors = [e.decode() for e in rows["error"]]
    assert all("declares more than 40000000" in e for e in errors[1 : len(bombs) + 1])
    assert "more than 16 times the other" in errors[len(bombs) + 1]
    assert all(e.startswith(("Unsupported", "Undecodable")) for e in errors[-len(junk) :])
    for blob in bombs.values():
        with pytest.raises(tf.errors.InvalidArgumentError, match="declares more than 40000000"):
            _strict(served, [good, blob])
    for blob in junk:
        with pytest.raises(tf.errors.InvalidArgumentError):
            _strict(served, [blob])
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 16 times the other"):
        _strict(served, [good, strip])
    # The server lives on: the next call answers, as serving_default does.
    np.testing.assert_array_equal(_strict(served, [good])["probabilities"], alone["probabilities"])
    for empty in (_serve(served, []), _strict(served, [])):
        assert {k: v.shape for k, v in empty.items() if k not in ("ok", "error")} == {
            "probabilities": (0, 10),
            "classes": (0, 5),
            "scores": (0, 5),
            "labels": (0, 5),
        }


@pytest.mark.slow
def test_max_pixels_and_scales_are_export_options(workdir, tmp_path, encode, digit_images):
    version_dir = ex.export_saved_model(
        workdir, tmp_path, scales=[48], limits=images.ImageLimits(40 * 40), top_k=3, verbose=0
    )
    served = tf.saved_model.load(version_dir)
    ok = encode(digit_images[0][0], "PNG")  # 40x40 = the limit
    too_big = encode(np.zeros((40, 41, 3), "uint8"), "PNG")
    out = _serve(served, [ok])
    assert out["classes"].shape == (1, 3)
    evaluator = ev.ModelEvaluator(loading.load_model(workdir), scales=[48])
    np.testing.assert_allclose(
        out["probabilities"][0], evaluator.probabilities("dense", images.decode_rgb(ok)), atol=1e-5
    )
    assert _serve(served, [too_big])["error"][0].decode().endswith("more than 1600 pixels")
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 1600 pixels"):
        _strict(served, [too_big])
    metadata = json.loads(Path(version_dir, ex.METADATA_FILE).read_text())
    assert metadata["scales"] == [48] and metadata["max_pixels"] == 1600


# --- Versions and files -------------------------------------------------------------


@pytest.mark.slow
def test_versions_are_new_and_written_atomically(workdir, tmp_path, monkeypatch):
    base = tmp_path / "vgg"
    assert ex.export_saved_model(workdir, base, scales=[32], verbose=0) == str(base / "1")
    assert ex.export_saved_model(workdir, base, scales=[32], version=7, verbose=0) == str(
        base / "7"
    )
    assert ex.export_saved_model(workdir, base, scales=[32], verbose=0) == str(base / "8")
    with pytest.raises(ValueError, match=r"Version 7 already exists.*\[1, 7, 8\]"):
        ex.export_saved_model(workdir, base, scales=[32], version=7, verbose=0)
    before = (base / "7" / "saved_model.pb").read_bytes()

    def fail_midway(module, path, signatures=None):
        (tmp_path / "vgg" / os.path.basename(path)).joinpath("saved_model.pb").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(ex.tf.saved_model, "save", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        ex.export_saved_model(workdir, base, scales=[32], verbose=0)
    assert sorted(os.listdir(base)) == ["1", "7", "8"]  # nothing half-written left behind
    assert (base / "7" / "saved_model.pb").read_bytes() == before


@pytest.mark.slow
def test_keras_output_and_errors(exported, workdir, tmp_path):
    fcn = keras.models.load_model(exported[0].parent / "fcn.keras")
    model = keras.models.load_model(workdir / "model.keras")
    x = np.random.RandomState(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")  # pixels
    np.testing.assert_allclose(fcn(x).numpy()[:, 0, 0], model(x, training=False), atol=1e-5)
    assert fcn(np.zeros((1, 64, 96, 3), "float32")).shape == (1, 2, 3, 10)

    bare = tmp_path / "bare"
    bare.mkdir()
    model.save(bare / "model.keras")  # no config.json beside it
    with pytest.raises(ValueError, match="config.json.*--scales"):
        ex.export_saved_model(bare / "model.keras", tmp_path / "out", verbose=0)
    with pytest.raises(ValueError, match=r"\[16\] are smaller than the training crop 32"):
        ex.export_saved_model(workdir, tmp_path / "out", scales=[16], verbose=0)
    with pytest.raises(ValueError, match="must end with '.keras'"):
        ex.export_saved_model(workdir, tmp_path / "out", keras_output="x.h5", verbose=0)
    with pytest.raises(ValueError, match="already exists"):
        ex.export_saved_model(
            workdir, tmp_path / "out", verbose=0, keras_output=str(exported[0].parent / "fcn.keras")
        )
    with pytest.raises(ValueError, match="top_k=0"):
        ex.export_saved_model(workdir, tmp_path / "out", verbose=0, top_k=0)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli(workdir, tmp_path, run_bin):
    def run(*flags):
        return run_bin(
            "export", "--model", workdir, "--export_dir", tmp_path, *flags, check=False, timeout=300
        )

    first = run("--version", "3", "--scales", "40", "--nowarmup")
    assert first.returncode == 0, first.stderr[-2000:]
    assert f"to {tmp_path / '3'}" in first.stdout
    assert sorted(os.listdir(tmp_path / "3" / "assets.extra")) == ["vgg_tf_export.json"]
    again = run("--version", "3")
    assert again.returncode != 0
    assert [line for line in again.stderr.splitlines() if line.startswith("error:")] == [
        f"error: Version 3 already exists at '{tmp_path / '3'}'; expected a new version "
        "(present: [3]; omit --version to take the next one)."
    ]


@pytest.mark.slow
def test_served_probabilities_match_bin_evaluate_dense(
    exported, workdir, served, tmp_path, encode, run_bin, digit_images
):
    """Acceptance: bin/evaluate's dense protocol and the served graph agree per image."""
    images, labels = digit_images
    root = tmp_path / "digits_folder"
    for index in range(1700, 1797, 10):  # held-out digits, one per class or so
        folder = root / str(labels[index])
        folder.mkdir(parents=True, exist_ok=True)
        image = images[index][:, 2:] if index % 20 else images[index]  # some non-square
        (folder / f"{index}.png").write_bytes(encode(image, "PNG"))
    for digit in range(10):  # every class present
        (root / str(digit)).mkdir(exist_ok=True)
        if not any((root / str(digit)).iterdir()):
            (root / str(digit) / "x.png").write_bytes(
                encode(images[list(labels).index(digit)], "PNG")
            )
    proc = run_bin(
        "evaluate",
        "--model",
        workdir,
        "--dataset",
        root,
        "--split",
        "train",
        "--protocol",
        "dense,single",
        "--output",
        tmp_path / "table.json",
        "--predictions_output",
        tmp_path / "pred.jsonl",
        timeout=300,
    )
    assert "top-1 err (%)" in proc.stdout and "32,40,48" in proc.stdout
    table = json.loads((tmp_path / "table.json").read_text())
    assert [r["protocol"] for r in table["rows"]] == ["dense", "single"]
    assert table["rows"][1]["scales"] == [40]
    lines = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert len(lines) == table["rows"][0]["num_examples"] >= 10
    blobs = [Path(line["filename"]).read_bytes() for line in lines]
    served_probs = _serve(served, blobs)["probabilities"]
    evaluated = np.array([line["probabilities"][0]["dense"] for line in lines])
    np.testing.assert_allclose(served_probs, evaluated, atol=1e-4)
    errors = 100 * np.mean(evaluated.argmax(axis=1) != [line["label"] for line in lines])
    assert table["rows"][0]["top1_error"] == pytest.approx(errors)


# --- The quick loop's check ------------------------------------------------------------


@pytest.mark.parametrize("mean_in_model", [True, False], ids=["new_run", "old_workdir"])
def test_an_untrained_model_is_served_as_evaluated_and_bombs_are_refused(
    tmp_path, make_workdir, tiny_model, encode, zero_png, header_bombs, digit_images, mean_in_model
):
    # Every run's model subtracts its mean itself; older workdirs' take the mean subtracted.
    mean = [47.6, 47.6, 47.6]
    options = dict(include_preprocessing=True, mean_rgb=mean) if mean_in_model else {}
    workdir = make_workdir(tmp_path / "run", tiny_model(**options))
    version_dir = ex.export_saved_model(workdir, tmp_path / "models", scales=[40], verbose=0)
    metadata = json.loads((Path(version_dir) / ex.METADATA_FILE).read_text())
    assert metadata["mean_in_model"] is mean_in_model and metadata["mean_rgb"] == mean
    # At Q = the crop, a crop-size image is one location: the saved model.keras's own
    # answer on the image (less the mean, for an old workdir's model). The mean is
    # subtracted once, whichever does it.
    crop = digit_images[0][11][4:36, 4:36]
    at_crop = ex.export_saved_model(workdir, tmp_path / "models", scales=[32], verbose=0)
    saved = keras.models.load_model(workdir / "model.keras")
    fed = crop[None] if mean_in_model else crop[None] - np.float32(mean)
    np.testing.assert_allclose(
        _serve(tf.saved_model.load(at_crop), [encode(crop, "PNG")])["probabilities"],
        saved.predict_on_batch(fed),
        atol=1e-5,
    )
    assert version_dir == str(tmp_path / "models" / "1")
    served = tf.saved_model.load(version_dir)
    digits, _ = digit_images
    blobs = [encode(digits[5], "PNG"), encode(np.kron(digits[7], np.ones((2, 3, 1), "uint8")))]
    out = _serve(served, blobs)
    evaluator = ev.ModelEvaluator(loading.load_model(workdir), scales=[40])
    expected = np.stack([evaluator.probabilities("dense", images.decode_rgb(b)) for b in blobs])
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-4)
    assert not np.allclose(expected[0], expected[1], atol=1e-4)  # the images are told apart
    np.testing.assert_array_equal(out["classes"][:, 0], expected.argmax(axis=1))
    assert [label.decode() for label in out["labels"][:, 0]] == [
        str(c) for c in expected.argmax(axis=1)
    ]
    # Every format's bomb is refused by the served graph (WebP: VP8, VP8L and VP8X headers):
    # in its own row, or failing the strict call.
    bombs = [zero_png(7000, 6000)] + [blob for blob, _ in header_bombs.values()]
    assert len(bombs) == 8
    rows = _serve(served, [blobs[0], *bombs])
    assert rows["ok"].tolist() == [True] + [False] * 8
    assert all(b"declares more than 40000000" in error for error in rows["error"][1:])
    for bomb in bombs:
        with pytest.raises(tf.errors.InvalidArgumentError, match="declares more than 40000000"):
            _strict(served, [blobs[0], bomb])
    assert _serve(served, [])["probabilities"].shape == (0, 10)


# --- Batch-safe answers and object-store paths (the quick loop: an untrained net) -----------


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory, make_workdir, tiny_model):
    """An untrained 1/16-width net A exported at Q = 40: (workdir, version directory)."""
    root = tmp_path_factory.mktemp("tiny_export")
    model = tiny_model(include_preprocessing=True, mean_rgb=[47.6] * 3)
    workdir = make_workdir(root / "run", model)
    return workdir, ex.export_saved_model(workdir, root / "models", scales=[40], verbose=0)


def _tf1_answers(version_dir, batches, signature="serving_default") -> list[dict]:
    """The answers of TensorFlow Serving's (TF1) loader to each batch of encoded images."""
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version_dir))
        sig = meta.signature_def[signature]
        fetch = {k: v.name for k, v in sig.outputs.items()}
        return [session.run(fetch, {sig.inputs["image_bytes"].name: batch}) for batch in batches]


def test_a_bad_image_fails_its_own_row_only_through_the_tf1_loader(
    tiny_export, encode, header_bombs, digit_images
):
    digits, _ = digit_images
    jpeg = encode(digits[5], "JPEG")
    png = encode(np.kron(digits[7], np.ones((2, 3, 1), "uint8")), "PNG")  # 80 x 120
    bomb = header_bombs["png"][0]  # a header declaring 100000 x 100000
    truncated = jpeg[: len(jpeg) // 2]  # its header reads, its body does not decode
    mixed = [jpeg, b"these bytes are no image", bomb, png, truncated]
    rows, jpeg_alone, png_alone, reversed_rows = _tf1_answers(
        tiny_export[1], [mixed, [jpeg], [png], mixed[::-1]]
    )
    # The good rows: exactly their answers alone, wherever the bad rows are.
    assert set(rows) == {"probabilities", "classes", "scores", "labels", "ok", "error"}
    for key in rows:
        np.testing.assert_array_equal(rows[key][0], jpeg_alone[key][0])
        np.testing.assert_array_equal(rows[key][3], png_alone[key][0])
        np.testing.assert_array_equal(reversed_rows[key][::-1], rows[key])
    assert not np.allclose(jpeg_alone["probabilities"], png_alone["probabilities"], atol=1e-4)
    # The bad rows: failed, with the reason.
    assert rows["ok"].tolist() == [True, False, False, True, False]
    assert [error.decode() for error in rows["error"]] == [
        "",
        "Unsupported image format: expected JPEG, PNG, GIF, BMP or WebP bytes",
        "Image rejected: its header declares more than 40000000 pixels",
        "",
        "Undecodable image: its header or data is corrupt or truncated",
    ]
    bad = [1, 2, 4]
    assert (rows["probabilities"][bad] == 0).all() and (rows["scores"][bad] == 0).all()
    assert (rows["classes"][bad] == -1).all() and (rows["labels"][bad] == b"").all()
    # serving_strict: the same answers to good images; one bad image fails the call.
    (strict,) = _tf1_answers(tiny_export[1], [[jpeg, png]], "serving_strict")
    assert set(strict) == {"probabilities", "classes", "scores", "labels"}
    np.testing.assert_array_equal(strict["probabilities"], rows["probabilities"][[0, 3]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="declares more than 40000000"):
        _tf1_answers(tiny_export[1], [[jpeg, bomb]], "serving_strict")


def test_an_export_to_an_object_store_path_is_published_file_by_file(
    tiny_export, tmp_path, encode, digit_images, monkeypatch
):
    workdir, local = tiny_export
    root = f"ram://{tmp_path.name}"  # TensorFlow's in-memory filesystem, as gs:// would be
    base, keras_path = f"{root}/models", f"{root}/fcn.keras"
    renamed = []
    rename = tf.io.gfile.rename

    def fail_at_the_saved_model(source, target, overwrite=False):
        renamed.append(target)
        if target.endswith("saved_model.pb"):
            raise tf.errors.UnavailableError(None, None, "connection reset")
        rename(source, target, overwrite)

    monkeypatch.setattr(tf.io.gfile, "rename", fail_at_the_saved_model)
    with pytest.raises(tf.errors.UnavailableError):
        ex.export_saved_model(workdir, base, scales=[40], verbose=0)
    # Every other file was moved before the SavedModel, and all of them were removed again.
    assert renamed[-1] == f"{base}/1/saved_model.pb" and len(renamed) >= 5
    assert f"{base}/1/{ex.METADATA_FILE}" in renamed and ex.existing_versions(base) == []
    assert tf.io.gfile.listdir(base) == []
    monkeypatch.setattr(tf.io.gfile, "rename", rename)

    version = ex.export_saved_model(workdir, base, scales=[40], keras_output=keras_path, verbose=0)
    assert version == f"{base}/1" and ex.existing_versions(base) == [1]
    assert tf.io.gfile.listdir(base) == ["1"]  # no temporary left
    assert sorted(tf.io.gfile.listdir(root)) == ["fcn.keras", "models"]
    assert sorted(tf.io.gfile.listdir(version)) == sorted(os.listdir(local))
    for name in (ex.METADATA_FILE, os.path.join("assets.extra", "tf_serving_warmup_requests")):
        with tf.io.gfile.GFile(f"{version}/{name}", "rb") as f:
            assert f.read() == Path(local, name).read_bytes()
    # Loaded from there, by both loaders: the local export's answers.
    digits, _ = digit_images
    blobs = [encode(digits[5], "PNG"), encode(digits[9][3:], "JPEG")]
    expected = _serve(tf.saved_model.load(local), blobs)
    remote = _serve(tf.saved_model.load(version), blobs)
    (remote_tf1,) = _tf1_answers(version, [blobs])
    for key in expected:
        np.testing.assert_array_equal(remote[key], expected[key])
        np.testing.assert_array_equal(remote_tf1[key], expected[key])
    fcn = keras.models.load_model(keras_path)
    assert fcn(np.zeros((1, 64, 96, 3), "float32")).shape == (1, 2, 3, 10)
    # An existing version or keras_output is refused there as on a local disk.
    with pytest.raises(ValueError, match=r"Version 1 already exists.*\[1\]"):
        ex.export_saved_model(workdir, base, version=1, verbose=0)
    with pytest.raises(ValueError, match="fcn.keras' already exists"):
        ex.export_saved_model(workdir, base, keras_output=keras_path, verbose=0)
