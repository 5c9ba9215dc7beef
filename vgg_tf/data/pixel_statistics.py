"""Pixel statistics of a dataset split: the mean RGB (§2.1) and the PCA lighting constants.

Both read every decodable image of the split once, through the sources' bad-record
policy (:func:`vgg_tf.data.sources.decoded_images`): a bad or oversized image is
skipped, counted and named, and does not weigh in.

Example:
    >>> source = sources.get_source("digits")  # doctest: +SKIP
    >>> compute_mean_rgb(source)  # doctest: +SKIP
    (47.6, 47.6, 47.6)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vgg_tf.data import sources


def _pixel_moments(
    source: sources.Source, split: str | None, max_examples: int | None, limits: dict
):
    """Pixel count, RGB sum and RGB outer-product sum (float64) over a split."""
    split = split or source.train_split
    ds = sources.decoded_images(source, split, max_examples=max_examples, **limits)

    def moments(image, label, filename):
        pixels = tf.reshape(tf.cast(image, tf.float64), [-1, 3])
        return (
            tf.cast(tf.shape(pixels)[0], tf.float64),
            tf.reduce_sum(pixels, 0),
            tf.matmul(pixels, pixels, transpose_a=True),
        )

    zero = (tf.constant(0.0, tf.float64), tf.zeros([3], tf.float64), tf.zeros([3, 3], tf.float64))
    n, total, outer = ds.map(moments, num_parallel_calls=tf.data.AUTOTUNE).reduce(
        zero, lambda s, m: tuple(a + b for a, b in zip(s, m))
    )
    if n.numpy() == 0:
        raise ValueError(f"Source '{source.name}' split '{split}' has no decodable image.")
    return n.numpy(), total.numpy(), outer.numpy()


def compute_mean_rgb(
    source: sources.Source, split: str | None = None, max_examples: int | None = None, **limits
) -> tuple[float, float, float]:
    """Mean RGB (0..255) over all pixels of a split (the train split by default).

    ``limits`` (``max_pixels``, ``max_aspect_ratio``) are those of
    :func:`vgg_tf.data.sources.decoded_images`.

    Example:
        >>> compute_mean_rgb(sources.get_source("digits"))  # doctest: +SKIP
        (47.6, 47.6, 47.6)
    """
    n, total, _ = _pixel_moments(source, split, max_examples, limits)
    return tuple(float(v) for v in total / n)


def compute_pca_lighting(
    source: sources.Source, split: str | None = None, max_examples: int | None = None, **limits
) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """PCA lighting constants of a split, in the convention of the ImageNet ones.

    Returns the eigenvalues of the RGB covariance of pixels scaled to [0, 1],
    multiplied by 255 (as :data:`vgg_tf.data.constants.IMAGENET_PCA_EIGVAL`), and the eigenvectors as
    columns; they feed ``TrainStream(pca_eigval=..., pca_eigvec=...)``.

    Example:
        >>> digits = sources.get_source("digits")  # doctest: +SKIP
        >>> eigval, eigvec = compute_pca_lighting(digits, max_examples=100)  # doctest: +SKIP
    """
    n, total, outer = _pixel_moments(source, split, max_examples, limits)
    mean = total / n
    covariance = (outer / n - np.outer(mean, mean)) / 255.0**2
    eigval, eigvec = np.linalg.eigh(covariance)
    order = np.argsort(eigval)[::-1]
    eigval = np.maximum(eigval[order], 0.0) * 255.0
    return tuple(map(float, eigval)), tuple(map(tuple, eigvec[:, order].tolist()))
