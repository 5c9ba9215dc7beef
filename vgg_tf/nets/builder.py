"""The six ConvNet configurations of the VGG paper, built from one table.

Table 1 of the paper lists networks A, A-LRN, B, C, D and E. Here each is a
row of :data:`vgg_tf.nets.specs.SPECS` (per block: the kernel size and filter
count of every convolution), and :func:`build_vgg` is the one Keras functional
builder that turns a row into a model. The keras.applications-style builders
with ``weights=`` (:func:`vgg_tf.VGG`, :func:`vgg_tf.VGG16`, ...) live with the
weights (:mod:`vgg_tf.weights.applications`) and call this one.

Layer names (stable; other modules and saved weights rely on them):

* ``block{i}_conv{j}`` -- 3x3 (or C's 1x1) convolutions, stride 1, "same"
  padding, ReLU. With ``batch_norm=True`` the ReLU moves to
  ``block{i}_conv{j}_relu`` after ``block{i}_conv{j}_bn``.
* ``lrn`` -- local response normalisation after ``block1_conv1`` (A-LRN).
* ``block{i}_pool`` -- 2x2 max-pooling, stride 2.
* ``flatten``, ``fc6`` / ``fc6_dropout``, ``fc7`` / ``fc7_dropout``, ``fc8``
  (class logits), ``predictions`` (the classifier activation, float32).
* ``to_channels_last`` / ``to_channels_first`` -- only in channels-first
  models: the transposes at the input and (feature-map output) at the end.
* ``subtract_mean_rgb`` -- only with ``include_preprocessing=True``: the
  first layer after the input (and the transpose), subtracting the mean RGB.

Input: the paper's only preprocessing is subtracting the training set's mean
RGB (§2.1). By default the model does no preprocessing of its own (as
keras.applications' VGG16 and VGG19): it takes images from which the mean has
already been subtracted (the input pipeline and the exported serving graph do
it, or :func:`vgg_tf.preprocess_input`). With
``include_preprocessing=True`` (keras.applications' name for the same option
in its newer nets) the model takes RGB pixels in [0, 255], uint8 or float, and
subtracts ``mean_rgb`` itself in its first layer, so the mean travels with the
weights and a script feeding raw pixels gets the right answer. Without a
weights file any channel count is accepted (grayscale, multispectral; one mean
per channel).

Data formats: ``data_format="channels_first"`` (or Keras' global
``image_data_format()``, followed as by keras.applications) gives a model
taking ``(batch, channels, H, W)`` (and returning a channels-first map with
``include_top=False, pooling=None``) that transposes at its input and output
and runs every layer channels-last inside. Why: TensorFlow's CPU Conv2D kernel
refuses NCHW; Keras 3 runs NCHW on CPU only through oneDNN (it fails with
``TF_ENABLE_ONEDNN_OPTS=0`` or a build without oneDNN) and transposes around
every NCHW pooling anyway. One transpose each way runs on every device, and
the weights are the same arrays in both formats (conv kernels are ``(kh, kw,
in, out)`` in Keras either way; fc6 keeps the (h, w, c) flatten order), so
they load across formats. On GPU, Grappler's layout optimiser still converts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from vgg_tf.nets.layers import LocalResponseNormalization
from vgg_tf.nets.specs import FC_UNITS, KERNEL_INITIALIZERS, VariantSpec, get_spec

MIN_INPUT_SIZE = 32  # five 2x2 poolings need at least 32 pixels
POOLINGS = (None, "avg", "max")
DATA_FORMATS = ("channels_last", "channels_first")
DEFAULT_CROP_SIZE = 224
#: Names of the transposes of a channels-first model (input, output).
FORMAT_LAYERS = ("to_channels_last", "to_channels_first")
#: Name of the layer that subtracts the mean RGB (``include_preprocessing=True``).
MEAN_LAYER = "subtract_mean_rgb"


def _initializers(kind: str) -> tuple[Any, Any]:
    if kind == "paper":
        # §3.1: "normal distribution with the zero mean and 10^-2 variance",
        # biases zero. Std 0.01 is a reading, the common one: the authors'
        # released Caffe prototxt uses gaussian std 0.01 (variance 1e-4).
        return keras.initializers.RandomNormal(mean=0.0, stddev=0.01), "zeros"
    if kind == "glorot":
        # §3.1: "it is possible to initialise the weights without pre-training
        # by using the random initialisation procedure of Glorot & Bengio".
        return keras.initializers.GlorotUniform(), "zeros"
    if kind == "he":
        # Not in the paper: He et al. (2015) keep the activation scale through
        # ReLU layers, which lets the deep nets train from a few random layers.
        return keras.initializers.HeNormal(), "zeros"
    raise ValueError(
        f"Unknown kernel_initializer {kind!r}; expected one of {', '.join(KERNEL_INITIALIZERS)}."
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_crop_size(crop_size: Any) -> int:
    if not _is_int(crop_size) or crop_size <= 0 or crop_size % 32:
        raise ValueError(
            f"crop_size={crop_size!r} is not accepted with include_top=True: the FC "
            "head needs a positive multiple of 32 (224 for ImageNet, 32 for small)."
        )
    return crop_size


def check_input_shape(
    input_shape: tuple | None, include_top: bool, crop_size: int | None, data_format: str
) -> tuple[int | None, ...]:
    """The model's input shape (in ``data_format`` order) after the checks.

    Example:
        >>> check_input_shape(None, True, 32, "channels_last")
        (32, 32, 3)
    """
    first = data_format == "channels_first"
    if input_shape is None:
        crop = DEFAULT_CROP_SIZE if crop_size is None else crop_size
        side = _check_crop_size(crop) if include_top else None
        return (3, side, side) if first else (side, side, 3)
    shape = tuple(input_shape)
    layout = "(channels, height, width)" if first else "(height, width, channels)"
    accepted = f"expected {layout} for data_format={data_format!r}"
    if len(shape) != 3:
        raise ValueError(f"input_shape={shape!r} is not accepted: {accepted}.")
    channels, height, width = shape if first else (shape[2], shape[0], shape[1])
    if not _is_int(channels) or channels < 1:
        raise ValueError(f"input_shape={shape!r} has channels={channels!r}: {accepted}, >= 1.")
    for side in (height, width):
        if side is not None and side < MIN_INPUT_SIZE:
            raise ValueError(
                f"input_shape={shape!r} is too small: height and width must be at "
                f"least {MIN_INPUT_SIZE} (or None); {accepted}."
            )
    if include_top:
        if height is None or height != width or height % 32:
            example = (3, 224, 224) if first else (224, 224, 3)
            raise ValueError(
                f"input_shape={shape!r} is not accepted with include_top=True: the "
                "FC head needs a square input of static side, a multiple of 32 (the "
                f"crop size), e.g. {example}; pass include_top=False for other sizes."
            )
        if crop_size is not None and crop_size != height:
            raise ValueError(
                f"input_shape={shape!r} conflicts with crop_size={crop_size!r}: with "
                "include_top=True the input side is the crop size; pass "
                f"crop_size={height} or leave it out."
            )
    return shape


def check_data_format(data_format: str | None) -> str:
    """``data_format``, or Keras' global one for None, after checking it is known.

    Example:
        >>> check_data_format("channels_first")
        'channels_first'
    """
    data_format = data_format or keras.config.image_data_format()
    if data_format not in DATA_FORMATS:
        raise ValueError(
            f"data_format={data_format!r} is not accepted; expected None (Keras' "
            f"image_data_format) or one of {', '.join(DATA_FORMATS)}."
        )
    return data_format


def check_mean_rgb(
    include_preprocessing: bool, mean_rgb: Sequence[float] | None, channels: int
) -> tuple[float, ...] | None:
    """The mean the model subtracts itself (None: it takes mean-subtracted input), checked.

    Example:
        >>> check_mean_rgb(True, [123.68, 116.779, 103.939], 3)
        (123.68, 116.779, 103.939)
    """
    if not isinstance(include_preprocessing, (bool, np.bool_)):
        raise ValueError(
            f"include_preprocessing={include_preprocessing!r} is not accepted; expected True "
            "(the model takes RGB in [0, 255] and subtracts mean_rgb) or False."
        )
    if not include_preprocessing:
        if mean_rgb is not None:
            raise ValueError(
                f"mean_rgb={mean_rgb!r} is given with include_preprocessing=False; the mean is "
                "subtracted by the model only with include_preprocessing=True (else the caller "
                "subtracts it: vgg_tf.preprocess_input)."
            )
        return None
    if mean_rgb is None:
        raise ValueError(
            "include_preprocessing=True needs mean_rgb: the mean of the training set, one "
            "value per input channel, on pixels in [0, 255]."
        )
    try:
        values = tuple(float(m) for m in mean_rgb)
    except (TypeError, ValueError):
        values = None
    if values is None or len(values) != channels or not np.all(np.isfinite(values)):
        raise ValueError(
            f"mean_rgb={mean_rgb!r} is not accepted; expected {channels} finite numbers, one "
            "per input channel, on pixels in [0, 255]."
        )
    return values


def build_vgg(
    variant: str,
    *,
    include_top: bool = True,
    input_tensor: Any = None,
    input_shape: tuple | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
    dropout: float = 0.5,
    weight_decay: float = 0.0,
    kernel_initializer: str = "paper",
    batch_norm: bool = False,
    crop_size: int | None = None,
    width_multiplier: float = 1.0,
    data_format: str | None = None,
    batch_norm_epsilon: float = 1e-3,
    include_preprocessing: bool = False,
    mean_rgb: Sequence[float] | None = None,
) -> keras.Model:
    """Builds VGG network ``variant`` of the paper's Table 1, randomly initialised.

    The architecture only: :func:`vgg_tf.VGG` (``vgg_tf.weights.applications``)
    takes the same arguments and a ``weights=`` to load.

    Args:
        variant: One of :data:`vgg_tf.nets.specs.VARIANTS`: "A", "A-LRN", "B",
            "C", "D", "E".
        include_top: Whether to include the three fully-connected layers.
        input_tensor: Optional Keras tensor to use as the model's input (its
            shape stands for a None ``input_shape``).
        input_shape: ``(h, w, channels)`` (``(channels, h, w)`` channels first),
            any channel count. With the top, h = w = the crop size (a multiple
            of 32; keras.applications too builds fc6 for the given size);
            without it h, w >= 32 or None. Default: 3 channels, 224 or None.
        pooling: With ``include_top=False``: None (block5 feature map),
            "avg" or "max" (global pooling to ``(batch, 512)``).
        classes: Number of classes of the top layer.
        classifier_activation: Activation of the top layer; None gives logits.
        name: Model name; defaults to ``vgg_<variant>``.
        dropout: Dropout rate after fc6 and fc7 (paper: 0.5).
        weight_decay: Caffe-style weight decay on conv and FC kernels: the
            gradient gains ``weight_decay * w`` (paper: 5e-4). Implemented as
            ``keras.regularizers.L2(weight_decay / 2)`` because Keras' L2 adds
            ``l * sum(w**2)`` to the loss. Biases are not decayed.
        kernel_initializer: "paper" (N(0, 0.01^2) as the paper is usually
            read, zero biases; §3.1), "glorot" (the paper's alternative to
            pre-training) or "he" (He et al. 2015, an extension).
        batch_norm: Insert BatchNormalization after every conv (an extension
            the paper does not have, like torchvision's ``vgg*_bn``).
        crop_size: With the top, the training crop the FC head is built for
            (fc6 sees a ``crop_size/32`` square map). None: ``input_shape``'s
            side, else 224 (the paper's). 32 for small images.
        width_multiplier: Scales every conv and FC width (1.0 is the paper's);
            small values give cheap models for tests.
        data_format: "channels_last", "channels_first", or None for
            ``keras.config.image_data_format()``. Channels-first transposes at
            the input and output (module docstring: why); same weights.
        batch_norm_epsilon: Epsilon of the BatchNormalization layers (Keras'
            1e-3; torch's statistics assume 1e-5).
        include_preprocessing: False (as keras.applications' VGG16): the model
            takes images with the mean already subtracted. True: it takes
            pixels in [0, 255] (uint8 or float) and its first layer,
            ``subtract_mean_rgb``, subtracts ``mean_rgb``.
        mean_rgb: With ``include_preprocessing=True``, the mean to subtract,
            one value per input channel (RGB for 3 channels).

    Returns:
        A ``keras.Model``.

    Example (grayscale 32x32 input: crop_size 32):
        >>> model = build_vgg("D", classes=10, input_shape=(32, 32, 1), width_multiplier=1 / 16)
        >>> model.output_shape
        (None, 10)
    """
    spec = get_spec(variant)
    if pooling not in POOLINGS:
        raise ValueError(f"Unknown pooling {pooling!r}; expected one of None, 'avg', 'max'.")
    if not _is_int(classes) or classes < 1:
        raise ValueError(f"classes={classes!r} is not accepted; expected a positive integer.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout={dropout!r} is not accepted; expected a rate in [0, 1).")
    if weight_decay < 0:
        raise ValueError(f"weight_decay={weight_decay!r} is not accepted; expected >= 0.")
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier={width_multiplier!r} is not accepted; expected > 0.")
    data_format = check_data_format(data_format)
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape)[1:]
    shape = check_input_shape(input_shape, include_top, crop_size, data_format)
    channels = shape[0] if data_format == "channels_first" else shape[2]
    subtracted_mean = check_mean_rgb(include_preprocessing, mean_rgb, channels)
    kernel_init, bias_init = _initializers(kernel_initializer)
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    layer_args = dict(
        width=lambda units: max(1, round(units * width_multiplier)),
        weights=dict(
            kernel_initializer=kernel_init,
            bias_initializer=bias_init,
            kernel_regularizer=regularizer,
        ),
    )

    if input_tensor is not None and keras.backend.is_keras_tensor(input_tensor):
        inputs = input_tensor
    else:
        inputs = keras.Input(tensor=input_tensor, shape=shape, name="image")
    x = inputs
    if data_format == "channels_first":
        x = keras.layers.Permute((2, 3, 1), name=FORMAT_LAYERS[0])(x)
    if subtracted_mean is not None:
        x = _subtract_mean(x, subtracted_mean)
    x = _conv_trunk(x, spec, batch_norm, batch_norm_epsilon, **layer_args)
    if include_top:
        x = _fc_head(x, classes, classifier_activation, dropout, **layer_args)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(data_format="channels_last", name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(data_format="channels_last", name="max_pool")(x)
    elif data_format == "channels_first":
        x = keras.layers.Permute((3, 1, 2), name=FORMAT_LAYERS[1])(x)

    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    return keras.Model(inputs, x, name=name or f"vgg_{variant.lower().replace('-', '_')}")


def _subtract_mean(x: Any, mean: tuple[float, ...]) -> Any:
    # Subtracting the mean inside the net, before the first convolution, is the
    # same arithmetic as subtracting it in the input pipeline (§2.1): the conv
    # sees the same numbers, and its "same" zero padding still pads the mean
    # pixel, so training is unchanged. Normalization with variance 1 computes
    # exactly x - mean (its division is by sqrt(1)); float32 even under a
    # mixed-precision policy (123.68 has no exact bfloat16), from uint8 or float
    # input; a stock Keras layer, so plain keras.models.load_model reads it.
    return keras.layers.Normalization(
        axis=-1,
        mean=list(mean),
        variance=[1.0] * len(mean),
        dtype="float32",
        name=MEAN_LAYER,
    )(x)


def included_mean_rgb(model: keras.Model) -> tuple[float, ...] | None:
    """The mean a model subtracts itself (built with ``include_preprocessing=True``), else None.

    A model that subtracts it takes pixels in [0, 255]; one that does not takes
    images from which the caller has subtracted its mean.

    Example:
        >>> m = build_vgg("A", include_top=False, include_preprocessing=True, mean_rgb=(1, 2, 3))
        >>> included_mean_rgb(m), included_mean_rgb(build_vgg("A", include_top=False))
        ((1.0, 2.0, 3.0), None)
    """
    for layer in model.layers:
        if layer.name == MEAN_LAYER:
            return tuple(float(m) for m in np.ravel(layer.get_config()["mean"]))
    return None


# Every layer gets data_format="channels_last": left None, Keras would take a
# global channels-first setting and read the (transposed) trunk the wrong way.
def _conv_trunk(
    x: Any, spec: VariantSpec, batch_norm: bool, epsilon: float, *, width: Any, weights: dict
) -> Any:
    for b, block in enumerate(spec.blocks, start=1):
        for c, (kernel, filters) in enumerate(block, start=1):
            conv_name = f"block{b}_conv{c}"
            x = keras.layers.Conv2D(
                width(filters),
                kernel,
                padding="same",
                activation=None if batch_norm else "relu",
                data_format="channels_last",
                name=conv_name,
                **weights,
            )(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(
                    axis=-1, epsilon=epsilon, name=f"{conv_name}_bn"
                )(x)
                x = keras.layers.ReLU(name=f"{conv_name}_relu")(x)
            if spec.lrn and b == 1 and c == 1:
                x = LocalResponseNormalization(name="lrn")(x)
        x = keras.layers.MaxPooling2D(
            2, strides=2, data_format="channels_last", name=f"block{b}_pool"
        )(x)
    return x


def _fc_head(
    x: Any, classes: int, activation: str | None, dropout: float, *, width: Any, weights: dict
) -> Any:
    # (h, w, c) flatten order: fc6's kernel reshapes to (h, w, c, units) (fcn.py).
    x = keras.layers.Flatten(data_format="channels_last", name="flatten")(x)
    for fc in ("fc6", "fc7"):
        x = keras.layers.Dense(width(FC_UNITS), activation="relu", name=fc, **weights)(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{fc}_dropout")(x)
    # The logits and the softmax stay float32 under a mixed-precision policy.
    x = keras.layers.Dense(classes, name="fc8", dtype="float32", **weights)(x)
    if activation is not None:
        x = keras.layers.Activation(activation, name="predictions", dtype="float32")(x)
    return x


def data_format_of(model: keras.Model) -> str:
    """ "channels_first" or "channels_last": a VGG model's ``to_channels_last``
    transpose, else the format of the first conv or pooling layer, says which.

    Example:
        >>> data_format_of(build_vgg("A", include_top=False, data_format="channels_first"))
        'channels_first'
    """
    if any(layer.name == FORMAT_LAYERS[0] for layer in model.layers):
        return "channels_first"
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D)):
            return layer.data_format
    return "channels_last"


def crop_size_of(model: keras.Model) -> int:
    """The training crop size a VGG classifier was built for (its input side, either format).

    Example:
        >>> crop_size_of(build_vgg("A", input_shape=(3, 64, 64), data_format="channels_first"))
        64
    """
    shape = model.input_shape
    side = shape[2:4] if data_format_of(model) == "channels_first" else shape[1:3]
    if side[0] is None or side[0] != side[1]:
        raise ValueError(f"Model {model.name!r} has input shape {shape}; expected a square crop.")
    return int(side[0])


# --- Cost ------------------------------------------------------------------


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass through the weight layers.

    Counts Conv2D (``h_out * w_out * kh * kw * c_in * c_out``) and Dense
    (``positions * in * out``) layers; pooling, activations and LRN are not
    counted, as in the paper's cost figures. Needs static spatial sizes.

    Example:
        >>> round(count_macs(build_vgg("D")) / 1e9, 2)  # doctest: +SKIP
        15.47
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            out_shape = layer.output.shape
            positions = int(np.prod(out_shape[1:-1])) if len(out_shape) > 2 else 1
            if any(d is None for d in out_shape[1:]):
                raise ValueError(
                    f"count_macs needs static shapes; layer {layer.name!r} outputs {out_shape}."
                )
            kernel = layer.kernel.shape
            total += positions * int(np.prod(kernel))
    return total


def count_weight_layers(model: keras.Model) -> int:
    """Number of conv and fully-connected layers (the paper's "weight layers")."""
    return sum(
        isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) for layer in model.layers
    )
