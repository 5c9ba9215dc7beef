"""The six ConvNet configurations of the VGG paper, built from one table.

Table 1 of the paper lists networks A, A-LRN, B, C, D and E. Here each is a
row of :data:`SPECS` (per block: the kernel size and filter count of every
convolution), and :func:`VGG` is the one Keras functional builder that turns a
row into a model. The named builders (:func:`VGG11` ... :func:`VGG19`) mirror
``keras.applications.VGG16`` so that code written against that API works
unchanged.

Layer names (stable; other modules and saved weights rely on them):

* ``block{i}_conv{j}`` -- 3x3 (or C's 1x1) convolutions, stride 1, "same"
  padding, ReLU. With ``batch_norm=True`` the ReLU moves to
  ``block{i}_conv{j}_relu`` after ``block{i}_conv{j}_bn``.
* ``lrn`` -- local response normalisation after ``block1_conv1`` (A-LRN).
* ``block{i}_pool`` -- 2x2 max-pooling, stride 2.
* ``flatten``, ``fc6`` / ``fc6_dropout``, ``fc7`` / ``fc7_dropout``, ``fc8``
  (class logits), ``predictions`` (the classifier activation, float32).

The model takes RGB images from which the training-set mean RGB has already
been subtracted (the paper's only preprocessing, §2.1); the input pipeline and
the exported serving graph do that subtraction.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any

import keras
import numpy as np

from vgg_tf.layers import LocalResponseNormalization


@dataclasses.dataclass(frozen=True)
class VariantSpec:
    """One column of the paper's Table 1.

    Attributes:
        blocks: Per block, a tuple of ``(kernel_size, filters)`` per convolution.
        lrn: Whether a local response normalisation follows the first conv.
        builder_name: Name of the named builder (``VGG16`` ...), for messages.
    """

    blocks: tuple[tuple[tuple[int, int], ...], ...]
    lrn: bool = False
    builder_name: str = ""

    @property
    def num_weight_layers(self) -> int:
        """Conv layers plus the three fully-connected layers."""
        return sum(len(block) for block in self.blocks) + 3


def _block(*filters: int, kernel: int = 3) -> tuple[tuple[int, int], ...]:
    return tuple((kernel, f) for f in filters)


_B_BLOCKS = (_block(64, 64), _block(128, 128))

SPECS: Mapping[str, VariantSpec] = {
    "A": VariantSpec(
        (_block(64), _block(128), _block(256, 256), _block(512, 512), _block(512, 512)),
        builder_name="VGG11",
    ),
    "A-LRN": VariantSpec(
        (_block(64), _block(128), _block(256, 256), _block(512, 512), _block(512, 512)),
        lrn=True,
        builder_name="VGG11_LRN",
    ),
    "B": VariantSpec(
        _B_BLOCKS + (_block(256, 256), _block(512, 512), _block(512, 512)),
        builder_name="VGG13",
    ),
    # C is B with a 1x1 convolution added at the end of blocks 3, 4 and 5.
    "C": VariantSpec(
        _B_BLOCKS
        + tuple(_block(f, f) + _block(f, kernel=1) for f in (256, 512, 512)),
        builder_name="VGG16_C",
    ),
    "D": VariantSpec(
        _B_BLOCKS + (_block(256, 256, 256), _block(512, 512, 512), _block(512, 512, 512)),
        builder_name="VGG16",
    ),
    "E": VariantSpec(
        _B_BLOCKS
        + (_block(256, 256, 256, 256), _block(512, 512, 512, 512), _block(512, 512, 512, 512)),
        builder_name="VGG19",
    ),
}

VARIANTS: tuple[str, ...] = tuple(SPECS)

#: Layers a deeper net takes from a trained net A (paper §3.1: "the first four
#: convolutional layers and the last three fully-connected layers"). These
#: names have the same shapes in every configuration.
NET_A_TRANSFER_LAYERS: tuple[str, ...] = (
    "block1_conv1",
    "block2_conv1",
    "block3_conv1",
    "block3_conv2",
    "fc6",
    "fc7",
    "fc8",
)

FC_UNITS = 4096
MIN_INPUT_SIZE = 32  # five 2x2 poolings need at least 32 pixels
KERNEL_INITIALIZERS = ("paper", "glorot", "he")
POOLINGS = (None, "avg", "max")


def get_spec(variant: str) -> VariantSpec:
    """Returns the spec of ``variant`` or raises a ValueError listing the valid names."""
    try:
        return SPECS[variant]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown VGG variant {variant!r}; expected one of {', '.join(VARIANTS)}."
        ) from None


def _initializers(kind: str) -> tuple[Any, Any]:
    if kind == "paper":
        # §3.1: weights from N(0, 0.01^2), biases zero.
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


def _check_input_shape(
    input_shape: tuple | None, include_top: bool, crop_size: int
) -> tuple[int | None, int | None, int]:
    if include_top:
        if crop_size <= 0 or crop_size % 32:
            raise ValueError(
                f"crop_size={crop_size!r} is not accepted with include_top=True: the FC head needs "
                "a positive multiple of 32 (224 for ImageNet, 32 for small images)."
            )
        expected = (crop_size, crop_size, 3)
        if input_shape is not None and tuple(input_shape) != expected:
            raise ValueError(
                f"input_shape={tuple(input_shape)!r} does not fit include_top=True with "
                f"crop_size={crop_size}: expected {expected} (or pass include_top=False for "
                "other sizes, or a different crop_size)."
            )
        return expected
    if input_shape is None:
        return (None, None, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            f"input_shape={input_shape!r} is not accepted: expected (height, width, 3) "
            "with channels last."
        )
    for side in input_shape[:2]:
        if side is not None and side < MIN_INPUT_SIZE:
            raise ValueError(
                f"input_shape={input_shape!r} is too small: height and width must be at least "
                f"{MIN_INPUT_SIZE} (or None)."
            )
    return input_shape


def _check_weights_argument(weights: str | os.PathLike | None) -> None:
    if weights is None:
        return
    path = os.fspath(weights)
    if path == "imagenet":
        raise ValueError(
            "weights='imagenet' is not available in vgg_tf (it needs a download); expected None "
            "or the path to a readable .keras or .weights.h5 file."
        )
    if not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise ValueError(
            f"weights={path!r} is neither None nor a readable file; expected None or the path "
            "to a .keras or .weights.h5 file."
        )


def VGG(
    variant: str,
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: tuple | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
    *,
    dropout: float = 0.5,
    weight_decay: float = 0.0,
    kernel_initializer: str = "paper",
    batch_norm: bool = False,
    crop_size: int = 224,
    width_multiplier: float = 1.0,
) -> keras.Model:
    """Builds VGG network ``variant`` of the paper's Table 1.

    Args:
        variant: One of :data:`VARIANTS`: "A", "A-LRN", "B", "C", "D", "E".
        include_top: Whether to include the three fully-connected layers.
        weights: None (random initialisation) or the path to a ``.keras`` or
            ``.weights.h5`` file of the same network.
        input_tensor: Optional Keras tensor to use as the model's input.
        input_shape: ``(crop_size, crop_size, 3)`` with the top; otherwise any
            ``(h, w, 3)`` with h, w >= 32 or None. Defaults accordingly.
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
        kernel_initializer: "paper" (N(0, 0.01), zero biases; §3.1), "glorot"
            (the paper's alternative to pre-training) or "he" (He et al. 2015,
            an extension).
        batch_norm: Insert BatchNormalization after every conv (an extension
            the paper does not have, like torchvision's ``vgg*_bn``).
        crop_size: Training crop size the FC head is built for (fc6 sees a
            ``crop_size/32`` square map). 224 in the paper; 32 for small images.
        width_multiplier: Scales every conv and FC width (1.0 is the paper's);
            small values give cheap models for tests.

    Returns:
        A ``keras.Model``.

    Example:
        >>> model = VGG("D", classes=10, crop_size=32, width_multiplier=1 / 16)
        >>> model.output_shape
        (None, 10)
    """
    spec = get_spec(variant)
    if pooling not in POOLINGS:
        raise ValueError(f"Unknown pooling {pooling!r}; expected one of None, 'avg', 'max'.")
    if not isinstance(classes, int) or classes < 1:
        raise ValueError(f"classes={classes!r} is not accepted; expected a positive integer.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout={dropout!r} is not accepted; expected a rate in [0, 1).")
    if weight_decay < 0:
        raise ValueError(f"weight_decay={weight_decay!r} is not accepted; expected >= 0.")
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier={width_multiplier!r} is not accepted; expected > 0.")
    _check_weights_argument(weights)
    kernel_init, bias_init = _initializers(kernel_initializer)
    shape = _check_input_shape(input_shape, include_top, crop_size)

    def width(units: int) -> int:
        return max(1, round(units * width_multiplier))

    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    weight_args = dict(
        kernel_initializer=kernel_init,
        bias_initializer=bias_init,
        kernel_regularizer=regularizer,
    )

    if input_tensor is None:
        inputs = keras.Input(shape=shape, name="image")
    elif keras.backend.is_keras_tensor(input_tensor):
        inputs = input_tensor
    else:
        inputs = keras.Input(tensor=input_tensor, shape=shape, name="image")

    x = inputs
    for b, block in enumerate(spec.blocks, start=1):
        for c, (kernel, filters) in enumerate(block, start=1):
            conv_name = f"block{b}_conv{c}"
            x = keras.layers.Conv2D(
                width(filters),
                kernel,
                padding="same",
                activation=None if batch_norm else "relu",
                name=conv_name,
                **weight_args,
            )(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(name=f"{conv_name}_bn")(x)
                x = keras.layers.ReLU(name=f"{conv_name}_relu")(x)
            if spec.lrn and b == 1 and c == 1:
                x = LocalResponseNormalization(name="lrn")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{b}_pool")(x)

    if include_top:
        x = keras.layers.Flatten(name="flatten")(x)
        for fc in ("fc6", "fc7"):
            x = keras.layers.Dense(width(FC_UNITS), activation="relu", name=fc, **weight_args)(x)
            if dropout:
                x = keras.layers.Dropout(dropout, name=f"{fc}_dropout")(x)
        # The logits and the softmax stay float32 under a mixed-precision policy.
        x = keras.layers.Dense(classes, name="fc8", dtype="float32", **weight_args)(x)
        if classifier_activation is not None:
            x = keras.layers.Activation(
                classifier_activation, name="predictions", dtype="float32"
            )(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)

    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    model = keras.Model(inputs, x, name=name or f"vgg_{variant.lower().replace('-', '_')}")
    if weights is not None:
        _load_weights_file(model, os.fspath(weights), classes)
    return model


def _load_weights_file(model: keras.Model, path: str, classes: int) -> None:
    if path.endswith(".keras"):
        load_layer_weights(model, read_layer_weights(path))
        return
    # A .weights.h5 file is matched by structure (Keras 3 stores no layer names).
    try:
        model.load_weights(path)
    except Exception as error:  # Keras raises several types for a mismatch.
        raise ValueError(
            f"Cannot load weights={path!r} into {model.name!r} built with classes={classes}: "
            f"the file must hold the same network with the same classes and crop size ({error})"
        ) from error


def _named_builder(variant: str):
    builder_name = SPECS[variant].builder_name

    def build(
        include_top: bool = True,
        weights: str | os.PathLike | None = None,
        input_tensor: Any = None,
        input_shape: tuple | None = None,
        pooling: str | None = None,
        classes: int = 1000,
        classifier_activation: str | None = "softmax",
        name: str | None = None,
        **options: Any,
    ) -> keras.Model:
        return VGG(
            variant,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name or builder_name.lower(),
            **options,
        )

    spec = SPECS[variant]
    build.__name__ = build.__qualname__ = builder_name
    build.__doc__ = (
        f"Builds configuration {variant} of the VGG paper ({spec.num_weight_layers} weight "
        f"layers).\n\n    Same arguments as :func:`VGG` without ``variant``.\n\n"
        f"    Example:\n        >>> model = {builder_name}(classes=10, crop_size=32)\n"
    )
    return build


VGG11 = _named_builder("A")
VGG11_LRN = _named_builder("A-LRN")
VGG13 = _named_builder("B")
VGG16_C = _named_builder("C")
VGG16 = _named_builder("D")
VGG19 = _named_builder("E")


# --- Weights by layer name -------------------------------------------------


def read_layer_weights(source: keras.Model | str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """Reads the weights of every layer of a model, keyed by layer name.

    Args:
        source: A Keras model, a ``.keras`` file, or a directory holding
            ``model.keras`` (a training workdir).

    Returns:
        ``{layer_name: [array, ...]}`` in the layer's own variable order.

    Example:
        >>> weights = read_layer_weights("workdir/model.keras")  # doctest: +SKIP
        >>> weights["fc8"][0].shape  # doctest: +SKIP
        (4096, 10)
    """
    if isinstance(source, keras.Model):
        return {layer.name: layer.get_weights() for layer in source.layers if layer.weights}
    path = os.fspath(source)
    if os.path.isdir(path):
        path = os.path.join(path, "model.keras")
    if not os.path.isfile(path):
        raise ValueError(
            f"Cannot read weights from {os.fspath(source)!r}: expected a Keras model, a .keras "
            "file or a directory holding model.keras."
        )
    if path.endswith(".keras"):
        model = keras.models.load_model(path, compile=False)
        return read_layer_weights(model)
    raise ValueError(
        f"Cannot read weights by layer name from {path!r}: expected a .keras file "
        "(a .weights.h5 file has no layer names; pass it as VGG(weights=...))."
    )


def load_layer_weights(
    model: keras.Model,
    weights: Mapping[str, list[np.ndarray]],
    layer_names: Iterable[str] | None = None,
) -> list[str]:
    """Copies weights into ``model`` layer by layer, matching by name.

    Args:
        model: Model to update in place.
        weights: ``{layer_name: [arrays]}`` as from :func:`read_layer_weights`.
        layer_names: Layers to copy (all must exist on both sides). Defaults to
            every layer of ``model`` that has weights, all of which must be
            present in ``weights``.

    Returns:
        The names of the layers copied.

    Raises:
        ValueError: A layer is missing or a shape differs; the message names the
            layer and both shapes (a different ``classes`` shows up at fc8).
    """
    if layer_names is None:
        layer_names = [layer.name for layer in model.layers if layer.weights]
    copied = []
    for name in layer_names:
        try:
            layer = model.get_layer(name)
        except ValueError:
            raise ValueError(f"Layer {name!r} is not in model {model.name!r}.") from None
        if name not in weights:
            raise ValueError(
                f"Layer {name!r} of model {model.name!r} has no weights in the source "
                f"(source layers: {', '.join(sorted(weights))})."
            )
        target_shapes = [tuple(v.shape) for v in layer.weights]
        source_shapes = [tuple(np.shape(w)) for w in weights[name]]
        if target_shapes != source_shapes:
            hint = " (classes differ?)" if name == "fc8" else ""
            raise ValueError(
                f"Shape mismatch at layer {name!r}{hint}: the model has {target_shapes}, the "
                f"source has {source_shapes}."
            )
        layer.set_weights(weights[name])
        copied.append(name)
    return copied


def init_from_net_a(
    model: keras.Model, net_a: keras.Model | str | os.PathLike
) -> list[str]:
    """Initialises a deeper net from a trained net A (paper §3.1).

    Copies the first four conv layers and the three FC layers of A
    (:data:`NET_A_TRANSFER_LAYERS`, plus their batch-norm layers when both
    nets have them) into ``model``; every other layer keeps its random init.

    Args:
        model: The network to initialise (B, C, D or E; A works too).
        net_a: A trained net A: a model, a ``.keras`` file, or a training
            workdir holding ``model.keras``.

    Returns:
        The names of the layers copied.

    Raises:
        ValueError: A shape differs (for example another ``classes`` or
            ``crop_size``); the message names the layer and both shapes.

    Example:
        >>> e = VGG("E", classes=10, crop_size=32)  # doctest: +SKIP
        >>> init_from_net_a(e, "workdirs/digits_a")  # doctest: +SKIP
        ['block1_conv1', 'block2_conv1', 'block3_conv1', 'block3_conv2', 'fc6', 'fc7', 'fc8']
    """
    source = read_layer_weights(net_a)
    names = list(NET_A_TRANSFER_LAYERS)
    model_layers = {layer.name for layer in model.layers}
    for conv in NET_A_TRANSFER_LAYERS[:4]:
        if f"{conv}_bn" in model_layers and f"{conv}_bn" in source:
            names.append(f"{conv}_bn")
    if not include_top_of(model):
        names = [n for n in names if not n.startswith("fc")]
    return load_layer_weights(model, source, names)


def include_top_of(model: keras.Model) -> bool:
    """Whether ``model`` has the FC head (a layer named fc8)."""
    return any(layer.name == "fc8" for layer in model.layers)


# --- Cost ------------------------------------------------------------------


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass through the weight layers.

    Counts Conv2D (``h_out * w_out * kh * kw * c_in * c_out``) and Dense
    (``positions * in * out``) layers; pooling, activations and LRN are not
    counted, as in the paper's cost figures. Needs static spatial sizes.

    Example:
        >>> round(count_macs(VGG("D")) / 1e9, 2)  # doctest: +SKIP
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
    return sum(isinstance(l, (keras.layers.Conv2D, keras.layers.Dense)) for l in model.layers)
