"""Layers the paper uses that Keras does not ship: local response normalisation."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="vgg_tf")
class LocalResponseNormalization(keras.layers.Layer):
    """Cross-channel local response normalisation (Krizhevsky et al., 2012).

    Network A-LRN of the VGG paper (Table 1) puts this layer after the first
    convolution, with Krizhevsky's parameters n=5, k=2, alpha=1e-4, beta=0.75:

        b[c] = a[c] / (k + alpha * sum_{c' in window(c, n)} a[c']**2) ** beta

    Alpha convention: as in Krizhevsky's paper and
    `tf.nn.local_response_normalization`, ``alpha`` multiplies the plain sum
    of squares over the window. Caffe's LRN layer divides alpha by ``size``
    first; to reproduce a Caffe model exactly pass ``alpha = caffe_alpha / size``.

    Args:
        size: Number of channels in the window (odd), Krizhevsky's n.
        bias: Krizhevsky's k.
        alpha: Scale of the sum of squares (not divided by ``size``).
        beta: Exponent.

    Example:
        >>> layer = LocalResponseNormalization()
        >>> layer(tf.ones((1, 4, 4, 8))).shape
        TensorShape([1, 4, 4, 8])
    """

    def __init__(
        self,
        size: int = 5,
        bias: float = 2.0,
        alpha: float = 1e-4,
        beta: float = 0.75,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LRN size must be a positive odd integer, got size={size!r}.")
        self.size = int(size)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, inputs):
        return tf.nn.local_response_normalization(
            inputs,
            depth_radius=self.size // 2,
            bias=self.bias,
            alpha=self.alpha,
            beta=self.beta,
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "bias": self.bias,
            "alpha": self.alpha,
            "beta": self.beta,
        }
