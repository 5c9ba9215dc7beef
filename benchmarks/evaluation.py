"""Cost per image of dense vs multi-crop evaluation (§3.2).

For net D with the jittered model's test scales Q in {256, 384, 512} (§4.2), on
one 512 x 512 photograph (scikit-image's astronaut):

* multiply-accumulates per image, counted from the layer shapes: dense
  evaluation (the whole image and its flip through the fully-convolutional net)
  and multi-crop evaluation (5x5 crops x 2 flips = 50 crop-size crops per
  scale). §3.2 gives dense evaluation's efficiency (no re-computation per crop)
  as its reason but no figures;
* wall time per image of both protocols through :class:`vgg_tf.inference.protocol.ModelEvaluator`,
  alternating the two.

Weights are random: cost does not depend on them.
"""

from __future__ import annotations

import io

import keras
from PIL import Image
from skimage import data

from benchmarks import harness
from vgg_tf.data import images as images_lib
from vgg_tf.data.constants import IMAGENET_MEAN_RGB
from vgg_tf.inference import protocol as ev
from vgg_tf.nets.fcn import to_fully_convolutional
from vgg_tf.weights.applications import VGG
from vgg_tf.weights.trained import TrainedModel

CROP = 224


def photo_jpeg(quality: int = 90) -> bytes:
    """A real 512 x 512 photograph as JPEG bytes."""
    out = io.BytesIO()
    Image.fromarray(data.astronaut()).save(out, "JPEG", quality=quality)
    return out.getvalue()


def trained_model(settings: harness.Settings) -> TrainedModel:
    """Net D (at the settings' width) with random weights, as a trained model of S in
    [min Q, max Q]."""
    scales = settings.eval_scales
    model = VGG("D", width_multiplier=settings.eval_width, crop_size=CROP)
    config = dict(
        variant="D",
        crop_size=CROP,
        scale_min=min(scales),
        scale_max=max(scales),
        mean_rgb=list(IMAGENET_MEAN_RGB),
        class_names=None,
    )
    return TrainedModel(model, config, "benchmark", "D (random weights)")


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


def scaled_shape(height: int, width: int, q: int) -> tuple[int, int]:
    """The image's size with its shorter side rescaled to ``q``."""
    return (q, round(width * q / height)) if height <= width else (round(height * q / width), q)


def mac_rows(fcn: keras.Model, height: int, width: int, scales) -> list[dict]:
    """GMACs per image of both protocols at each Q (dense: image + flip; multi-crop: 50 crops)."""
    rows = []
    for q in scales:
        dense = 2 * fcn_macs(fcn, *scaled_shape(height, width, q))
        crops = 2 * ev.GRID**2 * fcn_macs(fcn, CROP, CROP)
        rows.append(
            dict(q=q, dense_gmacs=dense / 1e9, multicrop_gmacs=crops / 1e9, ratio=crops / dense)
        )
    return rows


def run(settings: harness.Settings, trained: TrainedModel, verbose: bool = True) -> dict:
    """GMACs and wall seconds per image of dense and multi-crop evaluation."""
    scales = settings.eval_scales
    evaluator = ev.ModelEvaluator(trained, scales=scales)
    image = images_lib.decode_rgb(photo_jpeg())
    height, width = image.shape[:2]
    fcn = to_fully_convolutional(trained.model, head="logits")
    rows = mac_rows(fcn, height, width, scales)
    progress = harness.Progress(
        f"evaluation cost: dense vs multi-crop, D x{settings.eval_width:g}, Q = "
        f"{', '.join(map(str, scales))}, one {height}x{width} photograph",
        2 * settings.eval_repeats,
        verbose,
    )
    for protocol in ("dense", "multicrop"):  # trace
        evaluator.probabilities(protocol, image)
    times = harness.interleaved(
        {
            protocol: (lambda p=protocol: evaluator.probabilities(p, image))
            for protocol in ("dense", "multicrop")
        },
        settings.eval_repeats,
        progress,
    )
    progress.finish()
    dense_gmacs = sum(r["dense_gmacs"] for r in rows)
    crop_gmacs = sum(r["multicrop_gmacs"] for r in rows)
    dense_s, crop_s = harness.median(times["dense"]), harness.median(times["multicrop"])
    return dict(
        width_multiplier=settings.eval_width,
        image=[int(height), int(width)],
        scales=list(scales),
        repeats=settings.eval_repeats,
        per_scale=rows,
        dense_gmacs=dense_gmacs,
        multicrop_gmacs=crop_gmacs,
        mac_ratio=crop_gmacs / dense_gmacs,
        dense_s=dense_s,
        multicrop_s=crop_s,
        wall_ratio=crop_s / dense_s,
        single_pass_gmacs={str(q): fcn_macs(fcn, q, q) / 1e9 for q in scales},
    )
