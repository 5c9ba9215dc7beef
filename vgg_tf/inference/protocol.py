"""The paper's test protocol (§3.2, §4): dense, multi-crop, multi-scale, fusion.

Protocols (the ``--protocol`` names of ``bin/evaluate``):

* ``single``    dense evaluation at one test scale Q (the paper's Table 3).
* ``dense``     dense evaluation at three scales (Table 4).
* ``multicrop`` a 5x5 grid of crop-size crops x 2 flips per scale (Table 5).
* ``combined``  the average of the dense and multi-crop softmax (Table 5).

Several models give an extra ``fusion`` row per protocol: the average softmax
of the models (Table 6), each model at its own scales.

Dense evaluation, as §3.2 words it: the image is rescaled so that its shorter
side is Q, the training-set mean RGB is subtracted (here, or by the net's own
first layer when it was built with ``include_preprocessing=True``, as every
run's is: :attr:`vgg_tf.weights.trained.TrainedModel.mean_to_subtract` says
which), the fully-convolutional net
(:func:`vgg_tf.nets.fcn.to_fully_convolutional`) runs on the whole image, and its
class score map (logits) is spatially averaged to "a fixed-size vector of class
scores for the image". The soft-max posteriors of the image and of its
horizontal flip are averaged, then those of the scales. A score map of one
location gives exactly the classifier's output. Multi-crop evaluation averages
the posteriors of its crops.

The in-graph functions here (:func:`dense_score_map`, :func:`dense_probabilities`)
and the image decoding of :mod:`vgg_tf.data.images` are also what the exported
SavedModel runs (:mod:`vgg_tf.serving.export`), so the served probabilities equal
``bin/evaluate``'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from vgg_tf.data import images as images_lib
from vgg_tf.nets.fcn import to_fully_convolutional
from vgg_tf.weights.trained import TrainedModel

PROTOCOLS = ("single", "dense", "multicrop", "combined")
GRID = 5  # §3.2: a 5x5 regular grid of crops per scale


def check_scales(scales: Sequence[int], crop_size: int) -> tuple[int, ...]:
    """Validates explicit test scales (each Q >= the training crop)."""
    scales = tuple(int(q) for q in scales)
    if not scales:
        raise ValueError("No test scales given; expected at least one Q.")
    small = [q for q in scales if q < crop_size]
    if small:
        raise ValueError(
            f"Test scale(s) {small} are smaller than the training crop {crop_size}; "
            f"expected Q >= {crop_size}."
        )
    return scales


# --- In-graph evaluation (shared with the exported SavedModel) ------------


def preprocess(batch: tf.Tensor, q: int, mean_rgb: Sequence[float] | None) -> tf.Tensor:
    """Rescales images to shorter side Q and subtracts the mean: the test-time input (§3.2).

    The training pipeline's rescaling (bilinear), so test images look like training ones.
    ``mean_rgb`` None subtracts nothing: for a net that subtracts its mean itself
    (:attr:`vgg_tf.weights.trained.TrainedModel.mean_to_subtract`).

    Example:
        >>> preprocess(tf.zeros([1, 40, 60, 3]), 32, (1.0, 2.0, 3.0)).shape
        TensorShape([1, 32, 48, 3])
    """
    rescaled = images_lib.rescale_shorter_side(tf.cast(batch, tf.float32), q)
    return rescaled if mean_rgb is None else rescaled - tf.constant(mean_rgb, tf.float32)


def dense_score_map(
    fcn: keras.Model, images: tf.Tensor, q: int, mean_rgb: Sequence[float] | None
) -> tf.Tensor:
    """Per-location class posteriors ``(N, h, w, classes)`` of images rescaled to Q.

    Args:
        fcn: A fully-convolutional net returning logits (``head="logits"``).
        images: ``(N, H, W, 3)`` RGB in [0, 255] (not mean-subtracted).
        q: Test scale, the shorter side after rescaling.
        mean_rgb: The training-set mean RGB to subtract; None when ``fcn`` subtracts it.
    """
    return tf.nn.softmax(tf.cast(fcn(preprocess(images, q, mean_rgb)), tf.float32), axis=-1)


def dense_probabilities(
    fcn: keras.Model,
    images: tf.Tensor,
    scales: Sequence[int],
    mean_rgb: Sequence[float] | None,
    flip: bool = True,
) -> tf.Tensor:
    """Dense evaluation (§3.2) of a batch of same-size images: ``(N, classes)``.

    For each Q: rescale, subtract the mean (``mean_rgb``; None when the FCN
    subtracts it itself), run the FCN on the image and its
    horizontal flip, average each class score map (logits) over its locations,
    take the softmax, average the two flips' posteriors; then average over the
    scales. ``flip=False`` (for a model trained without flips, such as the
    digits recipe) skips the flipped copy.

    Example:
        >>> fcn = to_fully_convolutional(model, head="logits")  # doctest: +SKIP
        >>> dense_probabilities(fcn, images, (224, 256, 288), (123.68, 116.78, 103.94))  # doctest: +SKIP
    """
    n = tf.shape(images)[0]
    views = tf.concat([images, tf.reverse(images, axis=[2])], axis=0) if flip else images
    per_scale = []
    for q in scales:
        logits = tf.cast(fcn(preprocess(views, q, mean_rgb)), tf.float32)
        probs = tf.nn.softmax(tf.reduce_mean(logits, axis=[1, 2]), axis=-1)
        per_scale.append((probs[:n] + probs[n:]) / 2.0 if flip else probs)
    return tf.add_n(per_scale) / float(len(per_scale))


def crop_offsets(
    height: tf.Tensor, width: tf.Tensor, crop_size: int, grid: int = GRID
) -> tf.Tensor:
    """Top-left corners ``(grid*grid, 2)`` of a regular grid of crops, row-major.

    The first and last rows/columns touch the image borders, so the four
    corner crops are included; the others are evenly spaced in between.

    Example:
        >>> crop_offsets(64, 96, 32, grid=3).numpy().tolist()
        [[0, 0], [0, 32], [0, 64], [16, 0], [16, 32], [16, 64], [32, 0], [32, 32], [32, 64]]
    """
    ys = tf.cast(
        tf.round(tf.linspace(0.0, tf.cast(height - crop_size, tf.float32), grid)), tf.int32
    )
    xs = tf.cast(tf.round(tf.linspace(0.0, tf.cast(width - crop_size, tf.float32), grid)), tf.int32)
    yy, xx = tf.meshgrid(ys, xs, indexing="ij")
    return tf.reshape(tf.stack([yy, xx], axis=-1), [grid * grid, 2])


def multicrop_crops(
    image: tf.Tensor, crop_size: int, grid: int = GRID, flip: bool = True
) -> tf.Tensor:
    """The ``2 * grid**2`` crops of multi-crop evaluation of one ``(H, W, 3)`` image.

    Returns ``(2 * grid**2, crop, crop, 3)``: the grid crops in row-major order,
    then their horizontal flips in the same order (§3.2: 5x5 x 2 = 50 per scale);
    ``grid**2`` crops without the flips when ``flip`` is False.
    """
    shape = tf.shape(image)
    offsets = crop_offsets(shape[0], shape[1], crop_size, grid)
    crops = tf.stack(
        [
            tf.slice(image, tf.stack([offsets[i, 0], offsets[i, 1], 0]), [crop_size, crop_size, 3])
            for i in range(grid * grid)
        ]
    )
    return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0) if flip else crops


def multicrop_probabilities(
    fcn: keras.Model,
    image: tf.Tensor,
    scales: Sequence[int],
    mean_rgb: Sequence[float] | None,
    crop_size: int,
    grid: int = GRID,
    flip: bool = True,
) -> tf.Tensor:
    """Multi-crop evaluation (§3.2) of one ``(H, W, 3)`` RGB image: ``(classes,)``.

    At each Q, the softmax of the ``2 * grid**2`` crops (each seen with the
    classifier's zero padding, unlike dense evaluation) is averaged; then the
    scales are averaged. ``mean_rgb`` as :func:`dense_probabilities`'.
    """
    per_scale = []
    for q in scales:
        crops = multicrop_crops(preprocess(image[None], q, mean_rgb)[0], crop_size, grid, flip)
        logits = tf.cast(fcn(crops), tf.float32)[:, 0, 0]
        per_scale.append(tf.reduce_mean(tf.nn.softmax(logits, axis=-1), axis=0))
    return tf.add_n(per_scale) / float(len(per_scale))


# --- Evaluating models on a dataset -----------------------------------------


class ModelEvaluator:
    """Runs the protocols of one trained model on single images.

    Args:
        trained: The model and its training config.
        scales: Test scales overriding the config's (all protocols use them;
            ``single`` then needs exactly one).

    Example:
        >>> ev = ModelEvaluator(load_model("workdirs/digits_a"))  # doctest: +SKIP
        >>> ev.probabilities("dense", image).shape  # doctest: +SKIP
        (10,)
    """

    def __init__(self, trained: TrainedModel, scales: Sequence[int] | None = None):
        trained.check_rgb()
        trained.check_classifier()
        self.trained = trained
        self.fcn = to_fully_convolutional(trained.model, head="logits")
        crop = trained.crop_size
        if scales:
            self.multi = check_scales(scales, crop)
            self.single = self.multi
        else:
            self.multi = trained.multi_scales()
            self.single = trained.single_scale()
        mean, flip = trained.mean_to_subtract, trained.flip
        spec = [tf.TensorSpec([None, None, 3], tf.float32)]
        fcn = self.fcn
        self._dense = {
            qs: tf.function(
                lambda img, qs=qs: dense_probabilities(fcn, img[None], qs, mean, flip)[0],
                input_signature=spec,
            )
            for qs in {self.single, self.multi}
        }
        self._multicrop = tf.function(
            lambda img: multicrop_probabilities(fcn, img, self.multi, mean, crop, flip=flip),
            input_signature=spec,
        )
        self._score_map = tf.function(
            lambda img: dense_score_map(fcn, img[None], self.single[0], mean)[0],
            input_signature=spec,
        )

    def scales_for(self, protocol: str) -> tuple[int, ...]:
        """The test scales a protocol uses."""
        if protocol == "single":
            if len(self.single) != 1:
                raise ValueError(
                    f"Protocol 'single' needs exactly one test scale; got {list(self.single)}."
                )
            return self.single
        return self.multi

    def probabilities(
        self, protocol: str, image: tf.Tensor, cache: dict | None = None
    ) -> np.ndarray:
        """Class posteriors of one decoded RGB image under ``protocol``.

        Args:
            protocol: One of :data:`PROTOCOLS`.
            image: ``(H, W, 3)`` RGB, any numeric dtype, values in [0, 255].
            cache: Optional dict reused across protocols of the same image
                (``combined`` reuses ``dense`` and ``multicrop``).
        """
        cache = {} if cache is None else cache
        if protocol in cache:
            return cache[protocol]
        (protocol,) = check_protocols([protocol])
        image = tf.cast(image, tf.float32)
        if protocol in ("single", "dense"):
            result = self._dense[self.scales_for(protocol)](image).numpy()
        elif protocol == "multicrop":
            result = self._multicrop(image).numpy()
        else:  # combined
            result = (
                self.probabilities("dense", image, cache)
                + self.probabilities("multicrop", image, cache)
            ) / 2.0
        cache[protocol] = result
        return result

    def score_map(self, image: tf.Tensor) -> np.ndarray:
        """Per-location posteriors ``(h, w, classes)`` at the first single scale."""
        return self._score_map(tf.cast(image, tf.float32)).numpy()


def check_protocols(
    protocols: Sequence[str], accepted: Sequence[str] = PROTOCOLS
) -> tuple[str, ...]:
    """The protocol names in the order given, each stripped and once; one line naming any other.

    A string is one name: the command line splits ``--protocol`` at its commas,
    this does not (``"dense,multicrop"`` is refused as an unknown name).

    Args:
        protocols: Names such as ``["dense", "multicrop"]``; empty names are left out.
        accepted: The names the caller accepts: :data:`PROTOCOLS` (classification),
            or another set such as the localisation error's.

    Returns:
        The names, without repeats.

    Raises:
        ValueError: An unknown name (all of them are named) or no name at all.

    Example:
        >>> check_protocols([" dense", "multicrop", "dense"])
        ('dense', 'multicrop')
        >>> check_protocols("dense,multicrop")
        Traceback (most recent call last):
        ...
        ValueError: Unknown protocol ['dense,multicrop']; expected one or more of single, dense, multicrop, combined.
    """
    names = [protocols] if isinstance(protocols, str) else list(protocols)
    names = [name for name in (str(p).strip() for p in names) if name]
    unknown = [name for name in names if name not in accepted]
    if unknown:
        raise ValueError(
            f"Unknown protocol {unknown}; expected one or more of {', '.join(accepted)}."
        )
    if not names:
        raise ValueError(f"No protocol given; expected one or more of {', '.join(accepted)}.")
    return tuple(dict.fromkeys(names))
