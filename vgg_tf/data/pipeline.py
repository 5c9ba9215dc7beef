"""The training and evaluation streams of the paper (§3.1, §3.2).

Training preprocessing follows §3.1 of Simonyan & Zisserman (arXiv 1409.1556):
isotropic rescale so the shorter side is S (fixed, or drawn per image from
[Smin, Smax]), one random ``crop_size`` crop, random horizontal flip, Krizhevsky's
PCA colour shift, and subtraction of the training-set mean RGB. The mean is
subtracted here only for a net that does not subtract it itself: a stream with
``mean_rgb=None`` gives pixel values (colour-shifted, so not clipped to [0, 255])
to a net built with ``include_preprocessing=True``, as the trainer builds every
new run's (:func:`vgg_tf.nets.builder.build_vgg`). All randomness is
stateless and keyed by (seed, pipeline, position in the stream), so a stream is
reproducible, unaffected by parallelism, and resumable with ``skip_examples``.

Images are read through :mod:`vgg_tf.data.images` (for JPEGs the training crop is
decoded alone) and records come from a :class:`vgg_tf.data.sources.Source`; a bad
record is skipped, counted and named (:func:`vgg_tf.data.sources.decode_skipping_bad`).

What a stream draws is a small frozen dataclass, :class:`TrainStream` or
:class:`EvalStream`, made from the recipe (``from_recipe``) or field by field.

Example:
    >>> from vgg_tf.data import pixel_statistics, sources
    >>> source = sources.get_source("digits")  # doctest: +SKIP
    >>> stream = TrainStream(batch_size=32, crop_size=32, scale_min=32, scale_max=48,
    ...                      mean_rgb=pixel_statistics.compute_mean_rgb(source),
    ...                      seed=0)  # doctest: +SKIP
    >>> images, labels = next(iter(train_dataset(source, stream)))  # doctest: +SKIP
    >>> images.shape, labels.shape  # doctest: +SKIP
    (TensorShape([32, 32, 32, 3]), TensorShape([32]))
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from vgg_tf.data import images as image_ops
from vgg_tf.data.constants import IMAGENET_MEAN_RGB, IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC
from vgg_tf.data.sources import DECODE_GROUP, Source, decode_skipping_bad

_MAX_SHUFFLE_BUFFER = 8192
_AUTOTUNE = tf.data.AUTOTUNE


def pca_lighting(
    image: tf.Tensor,
    alpha: tf.Tensor,
    eigval: Sequence[float] = IMAGENET_PCA_EIGVAL,
    eigvec: Sequence[Sequence[float]] = IMAGENET_PCA_EIGVEC,
) -> tf.Tensor:
    """Krizhevsky et al. (2012) colour shift: adds ``eigvec @ (alpha * eigval)`` to RGB.

    Args:
        image: float [..., 3] in the pixel scale of ``eigval`` (0..255 by default).
        alpha: float [3], drawn from N(0, std) once per image (std 0.1 in the paper).
        eigval: Eigenvalues of the RGB pixel covariance.
        eigvec: 3x3 matrix whose columns are the matching eigenvectors.

    Returns:
        The shifted image (not clipped).

    Example:
        >>> pca_lighting(tf.zeros([2, 2, 3]), tf.constant([0.1, 0.0, 0.0])).shape
        TensorShape([2, 2, 3])
    """
    return image + _pca_shift(alpha, eigval, eigvec)


def _pca_shift(alpha, eigval, eigvec) -> tf.Tensor:
    """The RGB shift ``eigvec @ (alpha * eigval)``, float32 [3]."""
    weights = tf.cast(alpha, tf.float32) * tf.constant(eigval, tf.float32)
    return tf.linalg.matvec(tf.constant(eigvec, tf.float32), weights)


def add_rgb(image: tf.Tensor, rgb: tf.Tensor) -> tf.Tensor:
    """``image + rgb`` for an ``(H, W, 3)`` image and an RGB triple, computed as rows.

    The image is viewed as ``(H, W * 3)`` and the triple tiled along a row: TensorFlow's
    CPU kernels broadcast a row that way several times faster than over a last axis
    of 3 (0.03 against 0.23 ms for a 224 x 224 crop on the development machine, a
    sixth of the training pipeline's cost per image). The same sum.

    Example:
        >>> add_rgb(tf.zeros([2, 2, 3]), tf.constant([1.0, 2.0, 3.0]))[1, 1].numpy().tolist()
        [1.0, 2.0, 3.0]
    """
    shape = tf.shape(image)
    rows = tf.reshape(image, [shape[0], -1]) + tf.tile(tf.cast(rgb, image.dtype), [shape[1]])
    out = tf.reshape(rows, shape)
    out.set_shape(image.shape)
    return out


def _validate(crop_size: int, scales: dict[str, int]) -> None:
    if not isinstance(crop_size, (int, np.integer)) or crop_size <= 0:
        raise ValueError(f"crop_size={crop_size!r} is invalid; expected a positive integer.")
    for name, value in scales.items():
        if value < crop_size:
            raise ValueError(
                f"{name}={value} is smaller than crop_size={crop_size}; expected >= {crop_size}."
            )


def _validate_batch_size(batch_size: int) -> None:
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size!r} is invalid; expected a positive integer.")


def _mean_or_none(mean_rgb: Sequence[float] | None) -> tuple[float, ...] | None:
    return None if mean_rgb is None else tuple(float(v) for v in mean_rgb)


def _recipe_limits(recipe: Any) -> dict:
    """A recipe's image limits as the streams' fields (its 0 is no limit)."""
    limits = image_ops.ImageLimits.from_settings(recipe["max_pixels"], recipe["max_aspect_ratio"])
    return dataclasses.asdict(limits)


@dataclasses.dataclass(frozen=True)
class TrainStream:
    """What the training stream of §3.1 draws: scales, crops, flips, colour, mean, batches.

    Attributes:
        batch_size: The global batch. Under a strategy each input pipeline gives its
            replicas' share (``input_context.get_per_replica_batch_size``).
        crop_size: Side of the square training crop (224 in the paper).
        scale_min: Smin; each image's shorter side S is drawn uniformly (integers)
            from [scale_min, scale_max] (equal values: fixed S).
        scale_max: Smax.
        mean_rgb: Training-set mean RGB to subtract
            (see :func:`vgg_tf.data.pixel_statistics.compute_mean_rgb`), or None to
            subtract nothing: for a net that subtracts its mean itself.
        color_shift_std: Std of the PCA colour-shift coefficients (0 disables).
        pca_eigval: RGB covariance eigenvalues (0..255 pixels); ImageNet's by default,
            or from :func:`vgg_tf.data.pixel_statistics.compute_pca_lighting`.
        pca_eigvec: Matching eigenvectors, as columns of a 3x3 matrix.
        flip: Random horizontal flips.
        seed: Seed of the shuffle and of all augmentation; drawn (and logged) if None.
        deterministic: Keep element order fixed. Also implied by an explicit ``seed``:
            the same seed gives the same stream.
        cache: Cache the encoded records in memory (small datasets).
        fused_decode: Decode (JPEG) and resample only the crop window.
        shuffle_buffer: Example shuffle buffer; default min(split size, 8192).
        max_pixels: Records whose header declares more pixels are skipped (None: no limit).
        max_aspect_ratio: Records whose longer side is more than this times the
            shorter are skipped (None: no limit).
        with_boxes: Localisation (Appendix A): the labels become ``(labels, boxes)``,
            the ground-truth boxes of each record in its crop's frame (corners at 0
            and 1, mirrored with the crop; :func:`boxes_in_window`), zero-area rows
            padding them to ``MAX_BOXES``.

    Raises:
        ValueError: On invalid sizes or limits, naming the value.

    Example:
        >>> TrainStream(batch_size=8, crop_size=32, scale_min=32, scale_max=64).flip
        True
        >>> TrainStream(batch_size=8, crop_size=32, scale_min=64, scale_max=48)
        Traceback (most recent call last):
        ...
        ValueError: scale_min=64 > scale_max=48; expected scale_min <= scale_max.
    """

    batch_size: int
    crop_size: int = 224
    scale_min: int = 256
    scale_max: int = 256
    mean_rgb: Sequence[float] | None = IMAGENET_MEAN_RGB
    color_shift_std: float = 0.1
    pca_eigval: Sequence[float] = IMAGENET_PCA_EIGVAL
    pca_eigvec: Sequence[Sequence[float]] = IMAGENET_PCA_EIGVEC
    flip: bool = True
    seed: int | None = None
    deterministic: bool = False
    cache: bool = False
    fused_decode: bool = True
    shuffle_buffer: int | None = None
    max_pixels: int | None = image_ops.DEFAULT_MAX_PIXELS
    max_aspect_ratio: float | None = image_ops.DEFAULT_MAX_ASPECT_RATIO
    with_boxes: bool = False

    def __post_init__(self):
        _validate(self.crop_size, {"scale_min": self.scale_min, "scale_max": self.scale_max})
        if self.scale_min > self.scale_max:
            raise ValueError(
                f"scale_min={self.scale_min} > scale_max={self.scale_max}; expected "
                "scale_min <= scale_max."
            )
        _validate_batch_size(self.batch_size)
        image_ops.check_image_limits(self.max_pixels, self.max_aspect_ratio)

    @classmethod
    def from_recipe(cls, recipe: Any, mean_rgb: Sequence[float] | None) -> TrainStream:
        """The stream a training recipe (:func:`vgg_tf.training.recipe.paper_recipe`) draws.

        Reads the recipe's fields by name, so a ``ConfigDict`` does, and so does a
        run's recorded ``config.json``. An image limit of 0 is no limit; a
        localisation recipe's stream gives boxes.

        Args:
            recipe: The recipe.
            mean_rgb: The mean RGB the stream subtracts: the run's own, which the
                recipe may leave to be computed (``mean_rgb`` None); None when the
                net subtracts it itself.

        Example:
            >>> recipe = dict(batch_size=32, crop_size=32, scale_min=32, scale_max=48,
            ...               color_shift_std=0.1, flip=True, seed=0, deterministic=False,
            ...               cache=False, max_pixels=0, max_aspect_ratio=16.0)
            >>> stream = TrainStream.from_recipe(recipe, mean_rgb=(120.0, 115.0, 100.0))
            >>> stream.scale_max, stream.max_pixels, stream.with_boxes
            (48, None, False)
        """
        return cls(
            batch_size=int(recipe["batch_size"]),
            crop_size=int(recipe["crop_size"]),
            scale_min=int(recipe["scale_min"]),
            scale_max=int(recipe["scale_max"]),
            mean_rgb=_mean_or_none(mean_rgb),
            color_shift_std=float(recipe["color_shift_std"]),
            flip=bool(recipe["flip"]),
            seed=recipe["seed"],
            deterministic=bool(recipe["deterministic"]),
            cache=bool(recipe["cache"]),
            **_recipe_limits(recipe),
            with_boxes=recipe.get("task") == "localisation",
        )


@dataclasses.dataclass(frozen=True)
class EvalStream:
    """What an evaluation pass reads: each image rescaled to shorter side Q (§3.2).

    Attributes:
        batch_size: Examples per batch (the last batch may be smaller); under a
            strategy the global batch, each input pipeline giving its replicas' share.
        image_size: Q, the shorter side after rescaling.
        crop_size: Side of the centre crop (mode "center").
        mode: "center" (one centre crop) or "full" (the whole rescaled image; batch
            size must be 1 unless all images share a shape).
        mean_rgb: Training-set mean RGB to subtract, or None to subtract nothing (the
            images stay RGB in [0, 255]): for a net that subtracts its mean itself.
        max_pixels: Records whose header declares more pixels are skipped (None: no limit).
        max_aspect_ratio: Records whose longer side is more than this times the
            shorter are skipped (None: no limit).
        with_boxes: Localisation: labels ``(labels, boxes)``, the ground-truth boxes
            in the centre crop's frame (mode "center") or normalised to the image
            (mode "full"), as :func:`train_dataset` gives them.

    Raises:
        ValueError: On an unknown mode or invalid sizes or limits, naming the value.

    Example:
        >>> EvalStream(batch_size=64, image_size=40, crop_size=32).mode
        'center'
        >>> EvalStream(batch_size=1, image_size=256, mode="tiles")
        Traceback (most recent call last):
        ...
        ValueError: mode='tiles' is invalid; expected 'center' or 'full'.
    """

    batch_size: int
    image_size: int
    crop_size: int = 224
    mode: str = "center"
    mean_rgb: Sequence[float] | None = IMAGENET_MEAN_RGB
    max_pixels: int | None = image_ops.DEFAULT_MAX_PIXELS
    max_aspect_ratio: float | None = image_ops.DEFAULT_MAX_ASPECT_RATIO
    with_boxes: bool = False

    def __post_init__(self):
        if self.mode not in ("center", "full"):
            raise ValueError(f"mode={self.mode!r} is invalid; expected 'center' or 'full'.")
        _validate(self.crop_size, {"image_size": self.image_size} if self.mode == "center" else {})
        image_ops.check_image_limits(self.max_pixels, self.max_aspect_ratio)
        _validate_batch_size(self.batch_size)

    @classmethod
    def from_recipe(
        cls, recipe: Any, image_size: int, mean_rgb: Sequence[float] | None
    ) -> EvalStream:
        """The centre crops at Q = ``image_size`` that a training recipe is validated on.

        Reads the recipe's fields by name, as :meth:`TrainStream.from_recipe` does.

        Example:
            >>> recipe = dict(batch_size=32, crop_size=32, max_pixels=0, max_aspect_ratio=0,
            ...               task="localisation")
            >>> stream = EvalStream.from_recipe(recipe, 40, mean_rgb=(120.0, 115.0, 100.0))
            >>> stream.image_size, stream.crop_size, stream.with_boxes
            (40, 32, True)
        """
        return cls(
            batch_size=int(recipe["batch_size"]),
            image_size=int(image_size),
            crop_size=int(recipe["crop_size"]),
            mean_rgb=_mean_or_none(mean_rgb),
            **_recipe_limits(recipe),
            with_boxes=recipe.get("task") == "localisation",
        )


def _pipeline_batch_size(batch_size: int, input_context) -> int:
    """This input pipeline's batch: the replicas' share of the global batch under a strategy."""
    return input_context.get_per_replica_batch_size(batch_size) if input_context else batch_size


def crop_window(image_bytes: tf.Tensor, scale, crop_size: int, offset) -> tf.Tensor:
    """The crop of :func:`vgg_tf.data.images.scaled_crop` as normalised corners of the image.

    Read from the header's size, so the boxes of a record follow its crop without
    a second decode.

    Example:
        >>> png = tf.io.encode_png(tf.zeros([100, 200, 3], tf.uint8))
        >>> crop_window(png, 50, 50, (0.0, 1.0)).numpy().tolist()
        [0.0, 0.5, 1.0, 1.0]
    """
    scaled = image_ops.scaled_size(*tf.unstack(image_ops.declared_size(image_bytes)), scale)
    corner = tf.cast(
        image_ops.crop_corner(scaled, crop_size, tf.convert_to_tensor(offset)), tf.float32
    )
    scaled = tf.cast(scaled, tf.float32)
    return tf.concat([corner / scaled, (corner + crop_size) / scaled], 0)


def boxes_in_window(
    boxes: tf.Tensor, window: tf.Tensor, flip: bool | tf.Tensor = False
) -> tf.Tensor:
    """Corner boxes re-expressed in the frame of ``window`` (its corners at 0 and 1).

    With ``flip`` the frame is mirrored as the crop is. IoU is unchanged by the
    change of frame (both axes scale uniformly), so overlaps measured in the
    crop's frame are the image's.

    Example:
        >>> boxes_in_window(tf.constant([[0.5, 0.5, 1.0, 1.0]]), tf.constant([0.0, 0.5, 1.0, 1.0]),
        ...                 flip=True).numpy().tolist()
        [[0.5, 0.0, 1.0, 1.0]]
    """
    origin = tf.tile(window[:2], [2])
    size = tf.tile(window[2:] - window[:2], [2])
    framed = (boxes - origin) / size
    mirrored = tf.stack([framed[:, 0], 1.0 - framed[:, 3], framed[:, 2], 1.0 - framed[:, 1]], 1)
    return tf.where(tf.cast(flip, tf.bool), mirrored, framed)


def _positions(
    records: tf.data.Dataset, skip_examples: int, input_context: tf.distribute.InputContext | None
) -> tf.data.Dataset:
    """The shuffled records repeated, numbered by stream position, resumed and sharded."""
    records = records.repeat().enumerate().skip(skip_examples)
    if input_context and input_context.num_input_pipelines > 1:
        # Every pipeline reads the same shuffled stream and decodes every n-th
        # record: the replicas' batches together are exactly the global batch one
        # process would train on (§3.3), keyed by the same stream positions.
        records = records.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return records


def _finish(ds: tf.data.Dataset, ordered: bool) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = ordered
    # The nested datasets that skip bad records are stateless in effect; without
    # this, checkpointing an iterator refuses their ops.
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    return ds.prefetch(_AUTOTUNE).with_options(options)


def _augmenter(stream: TrainStream, seed: int):
    """The per-record augmentation of ``stream`` (§3.1): ``(index, image_bytes[, boxes])`` ->
    the jittered, cropped, flipped, colour-shifted crop (and its boxes)."""
    crop_size, scale_min, scale_max = stream.crop_size, stream.scale_min, stream.scale_max
    key = tf.constant([seed, 0], tf.int64)
    eigval = tuple(stream.pca_eigval)
    eigvec = tuple(map(tuple, stream.pca_eigvec))
    mean = None if stream.mean_rgb is None else tf.constant(stream.mean_rgb, tf.float32)

    def augment(index, image_bytes, *boxes):
        # Per-element randomness from (seed, pipeline, position): reproducible, and
        # independent of parallel map order and of where the stream was resumed.
        uniform_key, normal_key = tf.unstack(
            tf.random.experimental.stateless_split(
                tf.random.experimental.stateless_fold_in(key, index), 2
            )
        )
        u = tf.random.stateless_uniform([4], uniform_key)  # S, crop y, crop x, flip
        scale = scale_min + tf.cast(tf.floor(u[0] * (scale_max - scale_min + 1)), tf.int32)
        mirror = u[3] < 0.5 if stream.flip else False
        image = image_ops.scaled_crop(
            image_bytes,
            scale,
            crop_size,
            u[1:3],
            flip=mirror,
            fused=stream.fused_decode,
            max_pixels=stream.max_pixels,
            max_aspect_ratio=stream.max_aspect_ratio,
        )
        offset = None if mean is None else -mean
        if stream.color_shift_std:
            # On pixel values, before any mean: the shift of Krizhevsky et al. (2012).
            alpha = tf.random.stateless_normal([3], normal_key, stddev=stream.color_shift_std)
            shift = _pca_shift(alpha, eigval, eigvec)
            offset = shift if offset is None else offset + shift
        if offset is not None:
            image = add_rgb(image, offset)  # colour shift and mean subtraction in one pass
        if not boxes:
            return image
        window = crop_window(image_bytes, scale, crop_size, u[1:3])
        return image, boxes_in_window(boxes[0], window, mirror)

    return augment


def train_dataset(
    source: Source,
    stream: TrainStream,
    *,
    skip_examples: int = 0,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """The infinite training stream of §3.1: jittered rescale, crop, flip, colour, mean.

    Args:
        source: From :func:`get_source`; reads ``source.train_split``.
        stream: What to draw (:class:`TrainStream`, e.g. :meth:`TrainStream.from_recipe`).
        skip_examples: Start the stream this many raw records in (resuming a run);
            skipped before decoding. Counted in the unsharded stream (all pipelines
            together). Undecodable records count as records.
        input_context: Shards the stream per input pipeline (multi-worker
            training): pipeline i decodes records i, i + n, i + 2n, ... of the
            shared shuffled stream, in batches of its replicas' share of
            ``stream.batch_size``.

    Returns:
        Batches of (float32 [batch, crop_size, crop_size, 3], int32 [batch]),
        repeating forever, remainders dropped.

    Raises:
        ValueError: A negative ``skip_examples``, or a split without records.

    Example:
        >>> stream = TrainStream(batch_size=8, crop_size=32, scale_min=32, scale_max=64, seed=1)
        >>> ds = train_dataset(get_source("digits"), stream)  # doctest: +SKIP
    """
    if skip_examples < 0:
        raise ValueError(f"skip_examples={skip_examples} is invalid; expected >= 0.")
    batch_size = _pipeline_batch_size(stream.batch_size, input_context)
    crop_size, scale_min, scale_max = stream.crop_size, stream.scale_min, stream.scale_max
    split = source.train_split
    num_records = source.num_examples(split)
    if num_records == 0:
        raise ValueError(f"Source '{source.name}' split '{split}' has no records.")
    ordered = stream.deterministic or stream.seed is not None
    seed = stream.seed
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
        logging.info("train_dataset: drew seed %d", seed)
    logging.info(
        "train_dataset '%s' [%s]: S in [%d, %d], crop %d, mean RGB %s, colour std %g",
        source.name,
        split,
        scale_min,
        scale_max,
        crop_size,
        "in the net" if stream.mean_rgb is None else tuple(stream.mean_rgb),
        stream.color_shift_std,
    )
    augment = _augmenter(stream, seed)

    records = source.raw_records(
        split, shuffle_files=True, seed=seed, deterministic=ordered, with_boxes=stream.with_boxes
    )
    if stream.cache:
        records = records.cache()
    buffer = stream.shuffle_buffer or min(num_records, _MAX_SHUFFLE_BUFFER)
    records = _positions(
        records.shuffle(buffer, seed=seed, reshuffle_each_iteration=True),
        skip_examples,
        input_context,
    )
    # 2 x split size consecutive bad records contain a whole epoch: nothing is valid.
    groups = decode_skipping_bad(
        records,
        augment,
        (crop_size, crop_size, 3),
        source_name=source.name,
        split=split,
        limit=2 * num_records + 1,
        deterministic=ordered,
        boxes_in_pixels=source.boxes_in_pixels,
    )
    return _finish(groups.rebatch(batch_size, drop_remainder=True), ordered)


def eval_dataset(
    source: Source,
    stream: EvalStream,
    *,
    split: str | None = None,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """One pass over a split, rescaled to shorter side Q = ``stream.image_size`` (§3.2).

    Args:
        source: From :func:`get_source`.
        stream: What to read (:class:`EvalStream`, e.g. :meth:`EvalStream.from_recipe`).
        split: Split spec; ``source.eval_split`` by default.
        input_context: Shards the split per input pipeline, in batches of its
            replicas' share of ``stream.batch_size``.

    Returns:
        Finite dataset of (float32 images, int32 labels), in a fixed order;
        bad records are skipped, counted and named.

    Raises:
        ValueError: A split without records.

    Example:
        >>> stream = EvalStream(batch_size=64, image_size=32, crop_size=32)
        >>> ds = eval_dataset(get_source("digits"), stream)  # doctest: +SKIP
    """
    batch_size = _pipeline_batch_size(stream.batch_size, input_context)
    mode, image_size, crop_size = stream.mode, stream.image_size, stream.crop_size
    limits = dict(max_pixels=stream.max_pixels, max_aspect_ratio=stream.max_aspect_ratio)
    split = split or source.eval_split
    num_records = source.num_examples(split)
    if num_records == 0:
        raise ValueError(f"Source '{source.name}' split '{split}' has no records.")
    mean = None if stream.mean_rgb is None else tf.constant(stream.mean_rgb, tf.float32)

    def transform(index, image_bytes, *boxes):
        if mode == "center":
            image = image_ops.scaled_crop(image_bytes, image_size, crop_size, **limits)
        else:
            image = image_ops.rescale_shorter_side(
                image_ops.decode_rgb(image_bytes, **limits), image_size
            )
        if mean is not None:
            image = add_rgb(image, -mean)
        if not boxes:
            return image
        if mode == "full":
            return image, boxes[0]
        window = crop_window(image_bytes, image_size, crop_size, (0.5, 0.5))
        return image, boxes_in_window(boxes[0], window)

    records = source.raw_records(split, input_context=input_context, with_boxes=stream.with_boxes)
    records = records.enumerate()
    groups = decode_skipping_bad(
        records,
        transform,
        (crop_size, crop_size, 3) if mode == "center" else (None, None, 3),
        source_name=source.name,
        split=split,
        limit=num_records,
        # Whole images differ in shape: one per nested dataset.
        group_size=DECODE_GROUP if mode == "center" else 1,
        boxes_in_pixels=source.boxes_in_pixels,
    )
    return _finish(groups.rebatch(batch_size), ordered=True)
