"""TensorFlow Serving's warm-up requests (vgg_tf.serving.warmup), written into every export and
replayed here as the server replays them: parsed with TensorFlow Serving's own protos, run by
the TF1 loader."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from vgg_tf.data import images
from vgg_tf.serving import export as ex
from vgg_tf.serving import localisation as serving_localisation
from vgg_tf.serving import warmup
from vgg_tf.training import network


def test_records_are_the_bytes_tensorflow_servings_protos_give():
    data = [b"\xff\xd8\xff one image", b"another"]
    expected = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(
            request=predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name="vgg", signature_name="serving_strict"),
                inputs={"image_bytes": tf.make_tensor_proto(data)},
            )
        )
    )
    record = warmup.prediction_log("serving_strict", {"image_bytes": data}, model_name="vgg")
    assert record == expected.SerializeToString()
    parsed = prediction_log_pb2.PredictionLog.FromString(record)
    assert parsed.WhichOneof("log_type") == "predict_log"
    assert tf.make_ndarray(parsed.predict_log.request.inputs["image_bytes"]).tolist() == data


@pytest.mark.parametrize(
    "limits",
    [images.DEFAULT_LIMITS, images.ImageLimits(100, 1.0), images.ImageLimits(2000, None)],
    ids=["default", "100 pixels, square", "2000 pixels"],
)
def test_the_images_are_a_jpeg_and_a_png_the_limits_accept(limits):
    jpeg, png = warmup.warmup_images(limits)
    assert [int(images.image_format(blob)) for blob in (jpeg, png)] == [images.JPEG, images.PNG]
    reasons = images.refusals([jpeg, png], limits.max_pixels, limits.max_aspect_ratio)
    assert reasons.numpy().tolist() == [b"", b""]
    if limits == images.DEFAULT_LIMITS:
        assert [images.decode_rgb(blob).shape[:2] for blob in (jpeg, png)] == [(48, 64), (64, 48)]


_WITHOUT_TENSORFLOW_SERVING = r"""
import importlib.abc, sys

class NoTensorflowServing(importlib.abc.MetaPathFinder):  # users do not have it installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow_serving":
            raise ImportError("tensorflow_serving must not be needed")

sys.meta_path.insert(0, NoTensorflowServing())
from vgg_tf.serving import warmup
warmup.write_warmup_requests(sys.argv[1], ["serving_default"])
print("modules:", sorted(m for m in sys.modules if m.startswith("tensorflow_serving")))
"""


def test_writing_them_needs_no_tensorflow_serving(tmp_path, subprocess_env):
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TENSORFLOW_SERVING, str(tmp_path)],
        capture_output=True,
        text=True,
        env=subprocess_env(TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "modules: []" in proc.stdout
    requests = _requests(tmp_path)
    assert [signature for signature, _ in requests] == ["serving_default"] * 2


def _requests(version_dir) -> list[tuple[str, dict]]:
    """(signature, inputs) of each warm-up record, read with TensorFlow Serving's protos."""
    requests = []
    path = os.path.join(str(version_dir), warmup.WARMUP_FILE)
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        inputs = {name: tf.make_ndarray(tensor) for name, tensor in request.inputs.items()}
        requests.append((request.model_spec.signature_name, inputs))
    return requests


def _replay(version_dir) -> list[tuple[str, list[bytes], dict]]:
    """Each warm-up request run as TensorFlow Serving runs it at load time: the TF1 loader,
    the request's inputs fed to the tensors its signature names."""
    replayed, requests = [], _requests(version_dir)
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version_dir))
        for signature_name, inputs in requests:
            signature = meta.signature_def[signature_name]
            assert set(inputs) == set(signature.inputs) == {"image_bytes"}
            feed = {signature.inputs[name].name: value for name, value in inputs.items()}
            fetch = {name: tensor.name for name, tensor in signature.outputs.items()}
            replayed.append((signature_name, list(inputs["image_bytes"]), session.run(fetch, feed)))
    return replayed


def test_a_classifier_export_replays_its_warmup_through_the_tf1_loader(
    tmp_path, make_workdir, tiny_model
):
    workdir = make_workdir(tmp_path / "run", tiny_model())
    limits = images.ImageLimits(2000, 16)  # the images shrink to fit
    version = ex.export_saved_model(
        workdir, tmp_path / "models", scales=[40], limits=limits, verbose=0
    )
    replayed = _replay(version)
    jpeg, png = warmup.warmup_images(limits)
    assert [(signature, data) for signature, data, _ in replayed] == [
        ("serving_default", [jpeg]),
        ("serving_default", [png, jpeg]),
        ("serving_strict", [jpeg]),
        ("serving_strict", [png, jpeg]),
    ]
    served = tf.saved_model.load(version)
    for signature, data, answers in replayed:
        np.testing.assert_allclose(answers["probabilities"].sum(axis=1), 1.0, atol=1e-5)
        if signature == "serving_default":
            assert answers["ok"].all() and (answers["error"] == b"").all()
        expected = served.signatures[signature](image_bytes=tf.constant(data))
        for key, value in expected.items():
            if value.dtype.is_floating:
                np.testing.assert_allclose(answers[key], value.numpy(), atol=1e-6)
            else:
                np.testing.assert_array_equal(answers[key], value.numpy())
    cold = ex.export_saved_model(workdir, tmp_path / "models", scales=[40], warmup=False, verbose=0)
    assert not os.path.exists(os.path.join(cold, warmup.WARMUP_FILE))
    assert os.path.exists(os.path.join(cold, ex.METADATA_FILE))


def test_a_localisation_export_on_an_object_store_replays_its_warmup(
    tmp_path, make_workdir, tiny_model, tiny_run_config
):
    classifier = make_workdir(tmp_path / "classifier", tiny_model(seed=7))
    config = tiny_run_config(task="localisation", head="scr", scale_min=64, scale_max=64)
    boxes = make_workdir(tmp_path / "boxes", network.build_model(config, 10), config)
    base = f"ram://{tmp_path.name}/boxes"  # TensorFlow's in-memory filesystem
    version = serving_localisation.export_localisation(
        [str(boxes)], str(classifier), base, top_k=2, verbose=0
    )
    assert tf.io.gfile.listdir(base) == ["1"] and version == f"{base}/1"
    replayed = _replay(version)
    jpeg, png = warmup.warmup_images()
    assert [(signature, data) for signature, data, _ in replayed] == [
        ("serving_default", [jpeg]),
        ("serving_default", [png, jpeg]),
        ("serving_strict", [jpeg]),
        ("serving_strict", [png, jpeg]),
    ]
    served = tf.saved_model.load(version).signatures["serving_default"]
    for _, data, answers in replayed:
        assert answers["boxes"].shape == (len(data), 2, 4)
        expected = served(image_bytes=tf.constant(data))
        np.testing.assert_allclose(answers["boxes"], expected["boxes"].numpy(), atol=1e-4)
        np.testing.assert_array_equal(answers["classes"], expected["classes"].numpy())
