"""Cost per image of dense vs multi-crop evaluation (§3.2), and served latency.

Side by side in one run, for net D with the jittered model's test scales
Q in {256, 384, 512} (§4.2):

* multiply-accumulates per image (counted from the layer shapes): dense
  evaluation (the whole image and its flip through the fully-convolutional
  net) and multi-crop evaluation (5x5 crops x 2 flips = 50 crop-size crops per
  scale). §3.2 gives dense evaluation's efficiency (no re-computation per crop)
  as its reason but no figures; counted here, the ratio is ~7x;
* wall time per image of both protocols through ``vgg_tf.evaluate``;
* the exported ``serving_default`` signature's latency for one JPEG (a real
  512x512 photograph from scikit-image): median and p99 over repeated calls.

Weights are random: cost does not depend on them.

Usage:
    python benchmarks/eval_cost.py [--variant D] [--width_multiplier 1.0] [--calls 20]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from PIL import Image
from skimage import data

from vgg_tf import evaluate as ev
from vgg_tf.export import export_saved_model
from vgg_tf.fcn import to_fully_convolutional
from vgg_tf.models import VGG


def fcn_macs(fcn: keras.Model, height: int, width: int) -> int:
    """MACs of one pass of a fully-convolutional VGG on a ``height x width`` image."""
    total = 0
    for layer in fcn.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            if layer.padding == "valid":
                height, width = height - kh + 1, width - kw + 1
            total += height * width * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.MaxPooling2D):
            height, width = height // 2, width // 2
    return total


def _timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="D")
    parser.add_argument("--width_multiplier", type=float, default=1.0)
    parser.add_argument("--scales", default="256,384,512", help="test scales Q")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per protocol")
    parser.add_argument("--calls", type=int, default=20, help="timed serving calls")
    args = parser.parse_args()
    scales = tuple(int(q) for q in args.scales.split(","))
    crop = 224

    model = VGG(args.variant, width_multiplier=args.width_multiplier)
    config = dict(variant=args.variant, crop_size=crop, scale_min=min(scales),
                  scale_max=max(scales), mean_rgb=[123.68, 116.78, 103.94], class_names=None)
    trained = ev.TrainedModel(model, config, "benchmark", f"{args.variant} (random weights)")
    evaluator = ev.ModelEvaluator(trained, scales=scales)
    fcn = to_fully_convolutional(model, head="logits")

    photo = data.astronaut()  # 512x512 RGB photograph
    jpeg = io.BytesIO()
    Image.fromarray(photo).save(jpeg, "JPEG", quality=90)
    jpeg = jpeg.getvalue()
    image = ev.decode_image(jpeg)
    h, w = image.shape[:2]

    # -- MACs per image, counted from the layer shapes -----------------------
    rows = []
    for q in scales:
        hq, wq = (q, round(w * q / h)) if h <= w else (round(h * q / w), q)
        dense = 2 * fcn_macs(fcn, hq, wq)  # image + flip
        crops = 50 * fcn_macs(fcn, crop, crop)
        rows.append((q, dense, crops))
    print(f"\nVGG-{args.variant} (width x{args.width_multiplier}), {h}x{w} image, crop {crop}")
    print(f"{'Q':>5}  {'dense GMACs (x2 flips)':>23}  {'multi-crop GMACs (50 crops)':>28}  ratio")
    for q, dense, crops in rows:
        print(f"{q:>5}  {dense / 1e9:>23.1f}  {crops / 1e9:>28.1f}  {crops / dense:5.1f}x")
    total_dense, total_crops = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'all':>5}  {total_dense / 1e9:>23.1f}  {total_crops / 1e9:>28.1f}  "
          f"{total_crops / total_dense:5.1f}x")
    single = {q: fcn_macs(fcn, q, q) / 1e9 for q in (256, 384, 512)}
    print("one pass on a square Q x Q image (counted here for D: 20.5 / 49.6 / 92.5 GMACs; "
          "the paper gives no MAC counts): "
          + " / ".join(f"Q={q}: {v:.1f}" for q, v in single.items()))

    # -- Wall time per image through vgg_tf.evaluate --------------------------
    for protocol in ("dense", "multicrop"):
        evaluator.probabilities(protocol, image)  # trace
    dense_t = _timed(lambda: evaluator.probabilities("dense", image), args.repeats)
    crop_t = _timed(lambda: evaluator.probabilities("multicrop", image), args.repeats)
    print(f"\nwall time per image, {len(scales)} scales: dense {np.median(dense_t):.2f} s, "
          f"multi-crop {np.median(crop_t):.2f} s ({np.median(crop_t) / np.median(dense_t):.1f}x)")

    # -- Served latency for one JPEG -------------------------------------------
    with tempfile.TemporaryDirectory() as base:
        start = time.perf_counter()
        path = export_saved_model(trained, base, scales=scales, verbose=0)
        export_s = time.perf_counter() - start
        size_mb = sum(os.path.getsize(os.path.join(d, f))
                      for d, _, files in os.walk(path) for f in files) / 2**20
        served = tf.saved_model.load(path).signatures["serving_default"]
        request = tf.constant([jpeg])
        served(image_bytes=request)  # warm-up
        latency = np.array(_timed(lambda: served(image_bytes=request), args.calls))
    print(f"\nexport: {export_s:.1f} s, {size_mb:.0f} MiB; serving_default on one "
          f"{len(jpeg) // 1024} KiB JPEG (dense, Q={','.join(map(str, scales))}, flips), "
          f"{args.calls} calls: median {np.median(latency) * 1e3:.0f} ms, "
          f"p99 {np.percentile(latency, 99) * 1e3:.0f} ms")
    print(json.dumps(dict(
        variant=args.variant, width_multiplier=args.width_multiplier, scales=scales,
        dense_gmacs=total_dense / 1e9, multicrop_gmacs=total_crops / 1e9,
        mac_ratio=total_crops / total_dense, dense_s=float(np.median(dense_t)),
        multicrop_s=float(np.median(crop_t)), serve_median_ms=float(np.median(latency) * 1e3),
        serve_p99_ms=float(np.percentile(latency, 99) * 1e3))))


if __name__ == "__main__":
    main()
