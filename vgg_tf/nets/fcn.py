"""Turns a VGG classifier into a fully-convolutional network (paper §3.2).

At test time the paper converts the fully-connected layers into convolutions:
fc6 becomes a 7x7 convolution (the side of the block5 map at the 224 training
crop), fc7 and fc8 become 1x1 convolutions. The resulting net runs on a whole
image of any size at least the training crop and yields a class score map whose
spatial resolution depends on the input size.

Keras flattens channels-last maps in (h, w, c) order, so fc6's ``(h*w*c, units)``
kernel reshapes to the Conv2D kernel ``(h, w, c, units)`` directly.

Data formats: a :func:`vgg_tf.VGG` model runs channels-last inside in both
formats (a channels-first one only transposes at its input), so its weights are
the same arrays either way and the conversion reads either. The format of the
fully-convolutional net is chosen by ``data_format=``, channels-last by
default whatever the source model's: the evaluator and the serving graph feed
``(batch, H, W, 3)`` images. Models whose layers themselves run channels-first
(not built by :func:`vgg_tf.VGG`) are refused.
"""

from __future__ import annotations

import keras
import numpy as np

from vgg_tf.nets.builder import DATA_FORMATS, FORMAT_LAYERS, crop_size_of, data_format_of
from vgg_tf.nets.layers import PatchMatmulConv2D

__all__ = ["HEADS", "STRIDE", "crop_size_of", "score_map_shape", "to_fully_convolutional"]

#: Heads :func:`to_fully_convolutional` can end with.
#: ("fc7": the penultimate layer after its ReLU, the paper's Appendix B descriptor map.)
HEADS = ("predictions", "logits", "fc7")


def _clone(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A new layer with the same config (the weights are copied once built)."""
    return layer.__class__.from_config(layer.get_config())


def to_fully_convolutional(
    model: keras.Model, *, head: str = "predictions", data_format: str = "channels_last"
) -> keras.Model:
    """Converts a VGG model with its FC head into a fully-convolutional model.

    The conv trunk is cloned with its weights; ``fc6`` becomes a Conv2D with a
    ``crop_size/32`` square kernel and valid padding (a :class:`PatchMatmulConv2D`,
    which computes it as one matrix product over patches), ``fc7`` and ``fc8`` become
    1x1 Conv2Ds (same names, kernels reshaped from the Dense kernels); the
    dropout layers disappear (they are the identity at test time).

    Args:
        model: A model built by :func:`vgg_tf.VGG` with ``include_top=True``
            (freshly built or loaded from ``.keras``).
        head: "predictions" keeps the model's own ``predictions`` activation
            (softmax per location) when it has one; "logits" stops at ``fc8``;
            "fc7" stops at ``fc7`` after its ReLU (the map of the paper's
            Appendix B image descriptor, :mod:`vgg_tf.evaluation.features`).
        data_format: Layout of the returned net's input and score map,
            "channels_last" (the default, what the evaluator and the serving
            graph feed, whatever ``model``'s own format) or "channels_first".

    Returns:
        A ``keras.Model`` taking what ``model`` takes, ``(batch, H, W, C)``
        images (C: ``model``'s input channels): mean-subtracted, or pixels in
        [0, 255] when ``model`` was built with ``include_preprocessing=True``
        (its ``subtract_mean_rgb`` layer is kept), with H, W >= the training crop and
        returning the class score map ``(batch, (H - crop)//32 + 1,
        (W - crop)//32 + 1, classes)`` (for sides that are multiples of 32;
        fc7's width instead of ``classes`` for ``head="fc7"``), or both
        channels-first. At the crop size the 1x1 map equals
        ``model``'s output.

    Raises:
        ValueError: ``model`` has no FC head, has layers that run
            channels-first, or ``head`` / ``data_format`` is unknown.

    Example:
        >>> m = vgg_tf.VGG("A", classes=10, crop_size=32, width_multiplier=1 / 16)
        >>> to_fully_convolutional(m)(np.zeros((1, 64, 64, 3))).shape
        TensorShape([1, 2, 2, 10])
    """
    if head not in HEADS:
        raise ValueError(f"Unknown head {head!r}; expected one of {', '.join(HEADS)}.")
    if data_format not in DATA_FORMATS:
        formats = ", ".join(DATA_FORMATS)
        raise ValueError(f"data_format={data_format!r} is not accepted; expected one of {formats}.")
    names = [layer.name for layer in model.layers]
    if "fc6" not in names or "flatten" not in names:
        raise ValueError(
            f"Model {model.name!r} has no fully-connected head (layers 'flatten' and 'fc6'); "
            "expected a VGG model built with include_top=True."
        )

    _check_layers_run_channels_last(model)
    shape = model.input_shape
    channels = shape[1] if data_format_of(model) == "channels_first" else shape[-1]
    first = data_format == "channels_first"
    inputs = keras.Input(
        shape=(channels, None, None) if first else (None, None, channels), name="image"
    )
    x = keras.layers.Permute((2, 3, 1), name=FORMAT_LAYERS[0])(inputs) if first else inputs
    fc_kernel_side = None
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or layer.name in FORMAT_LAYERS:
            continue  # the FCN gets its own input (and transposes)
        if isinstance(layer, keras.layers.Dropout):
            continue  # identity at test time
        if isinstance(layer, keras.layers.Flatten):
            _, h, w, _ = layer.input.shape
            if h != w or h is None:
                raise ValueError(
                    f"fc6 of model {model.name!r} sees a {h}x{w} map; expected a square map "
                    "of static size (crop_size/32)."
                )
            fc_kernel_side = h
            continue
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            side = fc_kernel_side if layer.name == "fc6" else 1
            cfg = layer.get_config()
            # fc6's large kernel runs faster as a patch matmul (PatchMatmulConv2D).
            conv_class = PatchMatmulConv2D if layer.name == "fc6" else keras.layers.Conv2D
            conv = conv_class(
                cfg["units"],
                side,
                padding="valid",
                data_format="channels_last",
                activation=cfg["activation"],
                name=layer.name,
                dtype=cfg.get("dtype"),
            )
            x = conv(x)
            conv.set_weights([kernel.reshape(side, side, -1, cfg["units"]), bias])
            if (layer.name, head) in (("fc8", "logits"), ("fc7", "fc7")):
                break
            continue
        new = _clone(layer)
        x = new(x)
        if layer.weights:
            new.set_weights(layer.get_weights())
    if first:
        x = keras.layers.Permute((3, 1, 2), name=FORMAT_LAYERS[1])(x)
    return keras.Model(inputs, x, name=f"{model.name}_fcn")


def _check_layers_run_channels_last(model: keras.Model) -> None:
    for layer in model.layers:
        if getattr(layer, "data_format", "channels_last") == "channels_first":
            raise ValueError(
                f"Layer {layer.name!r} of model {model.name!r} runs with "
                "data_format='channels_first'; to_fully_convolutional converts models whose "
                "layers run channels_last, as vgg_tf.VGG builds them in both data formats "
                "(rebuild with vgg_tf.VGG(..., data_format='channels_first') and these weights)."
            )


#: Input pixels between neighbouring locations of a score map (five 2x2 poolings).
STRIDE = 32


def score_map_shape(image_side: int, crop_size: int) -> int:
    """Side of the class score map for a square input side (multiples of 32).

    Five 2x2 poolings divide by 32, then fc6's ``crop/32`` kernel (valid).

    Example:
        >>> score_map_shape(256, 224)
        2
    """
    return int(np.floor(image_side / STRIDE)) - crop_size // STRIDE + 1
