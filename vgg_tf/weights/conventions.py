"""Each published weight set's input convention, and turning it into vgg_tf's.

A weight file's first convolution was trained on pixels prepared one way: a
channel order, a pixel range, a mean and a standard deviation, a crop size and
a list of classes (timm keeps the same facts in each weight set's
``pretrained_cfg``). Fed another way, the same weights give wrong answers
without any error, so every weight set here names its :class:`InputConvention`
and the readers (:mod:`vgg_tf.weights.files`) apply it: :meth:`InputConvention.
fold_into_first_conv` rewrites ``block1_conv1``'s kernel so that the imported
network takes vgg_tf's one input, RGB in [0, 255] minus
:attr:`InputConvention.mean_rgb` (the paper's only preprocessing, §2.1), which
a model built with ``include_preprocessing=True`` subtracts itself.

Example:
    >>> KERAS_APPLICATIONS.channel_order, KERAS_APPLICATIONS.mean_rgb
    ('BGR', (123.68, 116.779, 103.939))
    >>> TORCHVISION.mean_rgb
    (123.675, 116.28, 103.53)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from vgg_tf.data.constants import IMAGENET_MEAN_RGB
from vgg_tf.weights import labels

CHANNEL_ORDERS = ("RGB", "BGR")
#: torchvision's normalisation of RGB in [0, 1] (timm's IMAGENET_DEFAULT_MEAN / _STD).
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class InputConvention:
    """How a weight set's first convolution wants its pixels, as its source framework feeds them.

    The source computes ``(pixels - mean) / std`` on images in ``channel_order``
    with values in ``[0, pixel_max]``, centrally cropped to ``crop_size`` from
    an image whose shorter side is ``resize_side``.

    Attributes:
        name: The source, one of :data:`CONVENTIONS`' keys.
        channel_order: "RGB" or "BGR": the order of the kernel's input channels.
        pixel_max: 255.0 for pixels in [0, 255], 1.0 for [0, 1].
        mean: Subtracted per channel, in ``channel_order`` and on ``pixel_max``'s scale.
        std: Divided per channel after the mean, in ``channel_order``.
        crop_size: The side of the square crop the fully-connected layers were trained on.
        resize_side: The shorter image side the crop is taken from at test time.
        dataset: What the classes are (the TFDS name, "imagenet2012").
        num_classes: The classifier's outputs.
    """

    name: str
    channel_order: str
    pixel_max: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    crop_size: int = 224
    resize_side: int = 256
    dataset: str = "imagenet2012"
    num_classes: int = 1000

    def __post_init__(self):
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(
                f"channel_order={self.channel_order!r} is not accepted; expected one of "
                f"{', '.join(CHANNEL_ORDERS)}."
            )

    def _to_rgb(self, values) -> np.ndarray:
        values = np.asarray(values, np.float64)
        return values[::-1] if self.channel_order == "BGR" else values

    @property
    def mean_rgb(self) -> tuple[float, float, float]:
        """The mean to subtract from RGB in [0, 255]: vgg_tf's input for these weights.

        Example:
            >>> TIMM.mean_rgb
            (123.675, 116.28, 103.53)
        """
        return tuple(float(m) for m in self._to_rgb(self.mean) * (255.0 / self.pixel_max))

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The classes' names, in label order (ImageNet's), or None when not known."""
        if self.dataset == "imagenet2012" and self.num_classes == labels.NUM_IMAGENET_CLASSES:
            return labels.imagenet_class_names()
        return None

    def fold_into_first_conv(self, kernel: np.ndarray) -> np.ndarray:
        """The first conv's ``(kh, kw, in, out)`` kernel for RGB in [0, 255] minus :attr:`mean_rgb`.

        The source feeds ``(p - mean) / std`` with ``p = x * pixel_max / 255`` in
        its channel order; that is ``(x - mean_rgb) * pixel_max / (255 * std)``
        in RGB. So the kernel's input channels are put in RGB order and divided
        by ``255 * std / pixel_max``: the same network, exactly, on vgg_tf's
        input, and the zero padding still pads the mean pixel, as in the source.

        Example:
            >>> kernel = np.ones((3, 3, 3, 8), np.float32)
            >>> TORCHVISION.fold_into_first_conv(kernel)[0, 0, :, 0].round(5)
            array([0.01712, 0.01751, 0.01743], dtype=float32)
        """
        kernel = np.asarray(kernel)
        if kernel.ndim != 4 or kernel.shape[2] != 3:
            raise ValueError(
                f"A first-conv kernel of shape {kernel.shape} is not accepted; expected "
                "(kh, kw, 3, filters): the published weights take 3 colour channels."
            )
        if self.channel_order == "BGR":
            kernel = kernel[:, :, ::-1, :]
        divisor = 255.0 * self._to_rgb(self.std).astype(np.float32) / np.float32(self.pixel_max)
        return np.ascontiguousarray(kernel / divisor[:, None], dtype=kernel.dtype)


#: keras.applications' VGG16 / VGG19 files: the authors' Caffe weights, which take BGR
#: in [0, 255] minus the ImageNet mean (keras.applications.vgg16.preprocess_input).
KERAS_APPLICATIONS = InputConvention(
    "keras_applications", channel_order="BGR", pixel_max=255.0, mean=IMAGENET_MEAN_RGB[::-1]
)
#: torchvision's ``vgg*`` state dicts: RGB in [0, 1], normalised by ImageNet's mean and std.
TORCHVISION = InputConvention(
    "torchvision",
    channel_order="RGB",
    pixel_max=1.0,
    mean=TORCHVISION_MEAN,
    std=TORCHVISION_STD,
)
#: timm's ``vgg*.tv_in1k``: torchvision's weights, and its convention (timm's ``_cfg``:
#: crop 224 at crop_pct 0.875, so from a 256 side).
TIMM = dataclasses.replace(TORCHVISION, name="timm")

#: Source format -> its convention.
CONVENTIONS: Mapping[str, InputConvention] = {
    c.name: c for c in (KERAS_APPLICATIONS, TORCHVISION, TIMM)
}


def convention_for(source_format: str) -> InputConvention:
    """The :class:`InputConvention` of a source format ("keras_applications", "torchvision", "timm").

    Example:
        >>> convention_for("timm").std
        (0.229, 0.224, 0.225)
    """
    try:
        return CONVENTIONS[source_format]
    except KeyError:
        raise ValueError(
            f"Unknown weights format {source_format!r}; expected one of {', '.join(CONVENTIONS)}."
        ) from None
