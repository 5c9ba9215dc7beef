"""TFDS dataset builders that ship inside vgg_tf (no download needed)."""

from vgg_tf.data.builtin.digits import Digits
from vgg_tf.data.builtin.digits_on_canvas import DigitsOnCanvas

__all__ = ["Digits", "DigitsOnCanvas"]
