"""vgg_tf: the VGG paper (Simonyan & Zisserman, arXiv 1409.1556) in TensorFlow / Keras 3.

Example:
    >>> import vgg_tf
    >>> model = vgg_tf.VGG16(classes=10, crop_size=32)
"""

from vgg_tf.fcn import to_fully_convolutional
from vgg_tf.layers import LocalResponseNormalization, PatchMatmulConv2D
from vgg_tf.models import (
    NET_A_TRANSFER_LAYERS,
    SPECS,
    VARIANTS,
    VGG,
    VGG11,
    VGG11_LRN,
    VGG13,
    VGG16,
    VGG16_C,
    VGG19,
    count_macs,
    init_from_net_a,
)

__version__ = "0.1.0"

__all__ = [
    "LocalResponseNormalization",
    "NET_A_TRANSFER_LAYERS",
    "PatchMatmulConv2D",
    "SPECS",
    "VARIANTS",
    "VGG",
    "VGG11",
    "VGG11_LRN",
    "VGG13",
    "VGG16",
    "VGG16_C",
    "VGG19",
    "count_macs",
    "init_from_net_a",
    "to_fully_convolutional",
]
