"""Heatmaps: where a net looks, drawn over the image at the image's own size.

A heatmap is the dense score map of one class (the per-location softmax of the
fully-convolutional net at the single test scale Q,
:meth:`vgg_tf.inference.protocol.ModelEvaluator.score_map`) interpolated to the
image's pixels with each location placed at the centre of its receptive window
(location ``i`` of the map covers pixels ``[32 i, 32 i + crop)`` of the image
rescaled to Q), coloured from 0 (blue) to the map's peak (red) and
alpha-blended onto the image. Scaling each map by its own peak shows where the
net looks even when the class's probability is small everywhere (1,000
ImageNet classes share it); the peak is returned so it can be reported beside
the heatmap.

``bin/predict --heatmap`` and ``bin/evaluate --heatmap_dir`` both draw them
with :func:`write_heatmap`.

Example:
    >>> peak = write_heatmap(evaluator, image, class_index=3, path="maps/cat.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from vgg_tf.data import images as images_lib
from vgg_tf.inference.protocol import ModelEvaluator
from vgg_tf.nets.fcn import STRIDE
from vgg_tf.workdir import atomic_path

#: The matplotlib colormap of the score map, and its weight over the image.
COLORMAP = "jet"
ALPHA = 0.45


def _axis_weights(n_out: int, n_scaled: int, n_map: int, crop_size: int):
    """Per output pixel: the two score-map rows (or columns) around it, and the second's weight."""
    # Pixel centres in the image rescaled to Q (TensorFlow's half-pixel convention) ...
    centres = (np.arange(n_out) + 0.5) * (n_scaled / n_out) - 0.5
    # ... in map units: location i is centred on rescaled pixel STRIDE * i + (crop - 1) / 2.
    pos = np.clip((centres - (crop_size - 1) / 2.0) / STRIDE, 0.0, n_map - 1)
    low = np.floor(pos).astype(int)
    high = np.minimum(low + 1, n_map - 1)
    return low, high, (pos - low)


def upsample_score_map(
    score_map: np.ndarray, height: int, width: int, q: int, crop_size: int
) -> np.ndarray:
    """A ``(h, w)`` score map at scale Q interpolated (bilinear) to ``(height, width)`` pixels.

    Each location sits at the centre of its receptive window (``crop_size``
    wide, :data:`~vgg_tf.nets.fcn.STRIDE` apart, in the image rescaled to Q);
    beyond the outermost centres the map is held constant.

    Example:
        >>> m = np.array([[0.0, 0.5, 1.0]])  # a 2 x 6 image at Q = 32: 32 x 96, 3 windows of 32
        >>> upsample_score_map(m, 2, 6, q=32, crop_size=32)[0].round(3).tolist()
        [0.0, 0.125, 0.375, 0.625, 0.875, 1.0]
    """
    score_map = np.asarray(score_map, np.float64)
    scaled_h, scaled_w = images_lib.scaled_size(height, width, q).numpy().tolist()
    y0, y1, fy = _axis_weights(height, scaled_h, score_map.shape[0], crop_size)
    x0, x1, fx = _axis_weights(width, scaled_w, score_map.shape[1], crop_size)
    rows = score_map[y0] * (1 - fy)[:, None] + score_map[y1] * fy[:, None]
    return rows[:, x0] * (1 - fx)[None, :] + rows[:, x1] * fx[None, :]


def heatmap_image(image: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The image with a ``(H, W)`` map of values in [0, 1] coloured and alpha-blended: uint8.

    Example:
        >>> heatmap_image(np.zeros([1, 2, 3], np.uint8), np.array([[0.0, 1.0]])).tolist()
        [[[0, 0, 57], [57, 0, 0]]]
    """
    import matplotlib  # the colormap only; no figure is drawn

    colours = matplotlib.colormaps[COLORMAP](np.clip(values, 0.0, 1.0))[..., :3]
    blended = (1 - ALPHA) * np.asarray(image, np.float64) + ALPHA * 255.0 * colours
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def write_png(pixels: np.ndarray, path: str | os.PathLike) -> None:
    """Writes uint8 ``(H, W, 3)`` pixels as a PNG file, whole or not at all."""
    with atomic_path(path) as tmp, tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(tf.io.encode_png(pixels).numpy())


def write_heatmap(
    evaluator: ModelEvaluator, image: np.ndarray, class_index: int, path: str | os.PathLike
) -> float:
    """Writes ``path`` (PNG, the image's own size): the image with ``class_index``'s
    dense score map at the evaluator's single test scale overlaid, scaled by its peak.

    Args:
        evaluator: The model, its test scales and crop.
        image: ``(H, W, 3)`` RGB in [0, 255].
        class_index: The class whose map is drawn (such as the top class).
        path: The PNG file to write (its folder is made).

    Returns:
        The peak: the map's largest probability.
    """
    image = np.asarray(image)
    score_map = evaluator.score_map(image)[..., class_index]
    peak = float(score_map.max())
    height, width = image.shape[:2]
    upsampled = upsample_score_map(
        score_map, height, width, evaluator.single[0], evaluator.trained.crop_size
    )
    write_png(heatmap_image(image, upsampled / max(peak, 1e-12)), path)
    return peak
