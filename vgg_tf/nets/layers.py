"""Layers Keras does not ship: local response normalisation, and fc6 as a patch matmul."""

from __future__ import annotations

import keras
import numpy as np
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


@keras.saving.register_keras_serializable(package="vgg_tf")
class PatchMatmulConv2D(keras.layers.Conv2D):
    """A stride-1 ``valid`` Conv2D computed as a matrix product over image patches.

    The dense-evaluation net (§3.2) turns fc6 into a 7x7x512x4096 convolution.
    On CPU, oneDNN runs that shape at about 20 GMAC/s, against 80-150 GMAC/s
    for the same arithmetic as ``extract_patches`` then one matmul with the
    reshaped kernel (the fc6 Dense kernel itself). Same weights and outputs as
    ``keras.layers.Conv2D``; it is one.

    Example:
        >>> layer = PatchMatmulConv2D(8, 2)
        >>> layer(tf.ones((1, 3, 4, 5))).shape
        TensorShape([1, 2, 3, 8])
    """

    def __init__(self, filters: int, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        got = dict(
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            groups=self.groups,
            data_format=self.data_format,
        )
        accepted = dict(
            strides=(1, 1),
            padding="valid",
            dilation_rate=(1, 1),
            groups=1,
            data_format="channels_last",
        )
        bad = {k: v for k, v in got.items() if tuple(np.ravel(v)) != tuple(np.ravel(accepted[k]))}
        if bad:
            raise ValueError(
                f"PatchMatmulConv2D got {bad}; expected "
                f"{ {k: accepted[k] for k in bad} } (stride 1, valid, channels last)."
            )

    def convolution_op(self, inputs, kernel):
        kh, kw, channels, filters = kernel.shape
        patches = tf.image.extract_patches(
            inputs, [1, kh, kw, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID"
        )  # (batch, h, w, kh * kw * channels) in the kernel's (kh, kw, channels) order
        return tf.linalg.matmul(patches, tf.reshape(kernel, [kh * kw * channels, filters]))
