"""TFDS dataset builders that ship inside vgg_tf (no download needed)."""

from vgg_tf.datasets.digits import Digits

__all__ = ["Digits"]
