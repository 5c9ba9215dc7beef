"""Served latency: the exported ``serving_default`` on one JPEG vs the bare forward pass.

The SavedModel (:func:`vgg_tf.serving.export.export_saved_model`) takes encoded image
bytes and runs the dense protocol inside: header checks, decoding, rescaling to
each Q, mean subtraction, the fully-convolutional net on the image and its
flip, spatial averaging, softmax, top-k. The bare forward pass is only the
fully-convolutional net on the already rescaled, mean-subtracted image and
its flip at the same scales: what any server must pay. Their ratio is the
cost of everything the served graph adds. Calls alternate between the two;
median, p99 and max of each (with fewer than 100 calls the p99 is interpolated
between the two slowest calls: about the max, a tail of this run, not an SLO).
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from benchmarks import evaluation, harness
from vgg_tf.data import images as images_lib
from vgg_tf.inference import protocol as ev
from vgg_tf.nets.fcn import to_fully_convolutional
from vgg_tf.serving.export import export_saved_model
from vgg_tf.weights.trained import TrainedModel


def _latency(times: list[float]) -> dict:
    ms = np.asarray(times) * 1e3
    return dict(
        median_ms=float(np.median(ms)),
        p99_ms=float(np.percentile(ms, 99)),
        max_ms=float(ms.max()),
        calls=len(times),
    )


def bare_forward(trained: TrainedModel, image: tf.Tensor, scales):
    """A function running the FCN on ``image`` and its flip, rescaled to each Q beforehand."""
    fcn = to_fully_convolutional(trained.model, head="logits")
    views = tf.cast(tf.stack([image, tf.reverse(image, axis=[1])]), tf.float32)
    inputs = [ev.preprocess(views, q, trained.mean_rgb) for q in scales]
    forward = tf.function(lambda: tf.add_n([tf.reduce_mean(fcn(x)) for x in inputs]))
    return lambda: forward().numpy()


def run(settings: harness.Settings, trained: TrainedModel, verbose: bool = True) -> dict:
    """Export time and size; serving_default and bare forward latency (median, p99) and ratio."""
    scales = settings.eval_scales
    jpeg = evaluation.photo_jpeg()
    image = images_lib.decode_rgb(jpeg)
    calls = settings.serving_calls
    progress = harness.Progress(
        f"serving: serving_default on one {len(jpeg) // 1024} KiB JPEG vs the bare forward "
        f"pass, Q = {', '.join(map(str, scales))}, image + flip, {calls} calls each",
        2 * calls,
        verbose,
    )
    with tempfile.TemporaryDirectory() as base:
        start = time.perf_counter()
        path = export_saved_model(trained, base, scales=scales, verbose=0)
        export_s = time.perf_counter() - start
        size_mib = (
            sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
            / 2**20
        )
        served = tf.saved_model.load(path).signatures["serving_default"]
        request = tf.constant([jpeg])

        def serve():
            return served(image_bytes=request)["probabilities"].numpy()

        bare = bare_forward(trained, image, scales)
        serve(), bare()  # warm up
        times = harness.interleaved({"serving": serve, "bare": bare}, calls, progress)
    progress.finish()
    serving, forward = _latency(times["serving"]), _latency(times["bare"])
    return dict(
        width_multiplier=settings.eval_width,
        scales=list(scales),
        jpeg_bytes=len(jpeg),
        export_s=export_s,
        export_mib=size_mib,
        serving=serving,
        bare_forward=forward,
        ratio=serving["median_ms"] / forward["median_ms"],
    )
