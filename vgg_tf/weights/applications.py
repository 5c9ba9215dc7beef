"""The keras.applications-style builders: a VGG network of Table 1 and the weights to load.

:func:`VGG` and the named builders (:func:`VGG11` ... :func:`VGG19`) take the
arguments of ``keras.applications.VGG16`` (``include_top``, ``weights``,
``input_tensor``, ``input_shape``, ``pooling``, ``classes``,
``classifier_activation``, ``name``), so code written against that API works
unchanged, plus vgg_tf's own (dropout, weight decay, initialisation, batch norm,
crop size, width, data format). The architecture is :func:`vgg_tf.nets.builder.build_vgg`;
this module adds ``weights=``: None, ``"imagenet"`` (the published files,
:mod:`vgg_tf.weights.published`), or a file of vgg_tf's, keras.applications',
torchvision's or timm's (:mod:`vgg_tf.weights.files`).

Example:
    >>> model = VGG16(classes=10, crop_size=32, width_multiplier=1 / 16)
    >>> model.name
    'vgg16'
"""

from __future__ import annotations

import os
from typing import Any

import keras

from vgg_tf.nets import builder
from vgg_tf.nets.specs import SPECS
from vgg_tf.weights import files as weight_files
from vgg_tf.weights import published
from vgg_tf.weights.transfer import include_top_of, load_layer_weights, read_layer_weights

_WEIGHT_FILES = (
    "a .keras or .weights.h5 file, or a keras.applications .h5, torchvision .pth "
    "or timm .safetensors file (vgg_tf.weights)"
)


def check_weights_argument(weights: str | os.PathLike | None) -> None:
    if weights is None:
        return
    path = os.fspath(weights)
    if path == "imagenet":
        return
    if not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise ValueError(
            f"weights={path!r} is neither None, 'imagenet' nor a readable file; expected "
            f"'imagenet', None or the path to {_WEIGHT_FILES}."
        )


def _imagenet_weights_path(
    variant: str,
    include_top: bool,
    classes: int,
    shape: tuple,
    batch_norm: bool,
    width_multiplier: float,
    data_format: str,
) -> str:
    """Checks a weights="imagenet" network against the published files; their local path."""
    published.imagenet_weights_file(variant, include_top, batch_norm)  # published at all?
    first = data_format == "channels_first"
    channels, side = (shape[0], shape[1]) if first else (shape[2], shape[0])
    problem = None
    if width_multiplier != 1.0:
        problem = f"width_multiplier={width_multiplier!r} (the published nets have 1.0)"
    elif channels != 3:
        problem = f"{channels} input channels (the published nets take RGB)"
    elif include_top and classes != 1000:
        problem = (
            f"classes={classes} with include_top=True (the published top has 1000; "
            "use include_top=False, or fine-tune with bin/train --init_from)"
        )
    elif include_top and side != builder.DEFAULT_CROP_SIZE:
        problem = (
            f"a {side}x{side} input with include_top=True (the published fc6 sees a "
            f"{builder.DEFAULT_CROP_SIZE} crop; use include_top=False for other sizes)"
        )
    if problem:
        raise ValueError(f"weights='imagenet' does not fit {problem}.")
    return published.imagenet_weights_path(variant, include_top, batch_norm)


def _default_batch_norm_epsilon(weights: str | None) -> float:
    """torch's 1e-5 for weights from torchvision or timm, else Keras' 1e-3."""
    if weights is None:
        return 1e-3
    return (
        weight_files.TORCH_BN_EPSILON
        if weight_files.file_format(weights) in ("torch", "safetensors")
        else 1e-3
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
    crop_size: int | None = None,
    width_multiplier: float = 1.0,
    data_format: str | None = None,
    batch_norm_epsilon: float | None = None,
) -> keras.Model:
    """Builds VGG network ``variant`` of the paper's Table 1.

    Args:
        variant: One of :data:`VARIANTS`: "A", "A-LRN", "B", "C", "D", "E".
        include_top: Whether to include the three fully-connected layers.
        weights: None (random init); "imagenet" (as keras.applications: the
            published file from Keras' cache, ``~/.keras/models``, downloaded
            when absent; D and E from keras.applications, A, B and the
            batch-norm nets from torchvision, which needs PyTorch); or the path
            to a ``.keras`` or ``.weights.h5`` file of the same network
            (classes, crop, channels; either format), or to a keras.applications
            ``.h5``, torchvision ``.pth`` or timm ``.safetensors`` file (the
            conv layers only when ``include_top=False``; :mod:`vgg_tf.weights`).
            Imported weights take RGB minus their source's mean RGB:
            ``vgg_tf.weights.imagenet_mean_rgb(variant)`` for "imagenet",
            ``vgg_tf.weights.read_weights(path).mean_rgb`` for a file.
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
        batch_norm_epsilon: Epsilon of the BatchNormalization layers. None:
            torch's 1e-5 when ``weights`` is "imagenet" or a torchvision / timm
            file (their statistics assume it), else Keras' 1e-3.

    Returns:
        A ``keras.Model``.

    Example (grayscale 32x32 input: crop_size 32):
        >>> model = VGG("D", classes=10, input_shape=(32, 32, 1), width_multiplier=1 / 16)
        >>> model.output_shape
        (None, 10)
    """
    check_weights_argument(weights)
    weights_path = None if weights is None else os.fspath(weights)
    if weights_path == "imagenet":
        data_format = builder.check_data_format(data_format)
        if input_shape is None and input_tensor is not None:
            input_shape = tuple(input_tensor.shape)[1:]
        shape = builder.check_input_shape(input_shape, include_top, crop_size, data_format)
        weights_path = _imagenet_weights_path(
            variant, include_top, classes, shape, batch_norm, width_multiplier, data_format
        )
    if batch_norm_epsilon is None:
        batch_norm_epsilon = _default_batch_norm_epsilon(weights_path)
    model = builder.build_vgg(
        variant,
        include_top=include_top,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
        dropout=dropout,
        weight_decay=weight_decay,
        kernel_initializer=kernel_initializer,
        batch_norm=batch_norm,
        crop_size=crop_size,
        width_multiplier=width_multiplier,
        data_format=data_format,
        batch_norm_epsilon=batch_norm_epsilon,
    )
    if weights_path is not None:
        _load_weights_file(model, weights_path, classes, variant, batch_norm)
    return model


def _load_weights_file(
    model: keras.Model, path: str, classes: int, variant: str, batch_norm: bool
) -> None:
    if path.endswith(".keras"):
        load_layer_weights(model, read_layer_weights(path))
        return
    kind = weight_files.file_format(path)
    if kind in ("torch", "safetensors") or (kind == "hdf5" and _is_keras2_hdf5(path)):
        # Converted (layout, input channels, mean) and matched by layer name.
        if variant == "A-LRN":
            raise ValueError(
                f"weights={path!r}: the published files hold net A without LRN; "
                "build variant 'A' for them."
            )
        imported = weight_files.read_weights(
            path, variant, include_top=include_top_of(model), batch_norm=batch_norm
        )
        load_layer_weights(model, imported.layers)
        return
    # A .weights.h5 file is matched by structure (Keras 3 stores no layer names).
    try:
        model.load_weights(path)
    except Exception as error:  # Keras raises several types for a mismatch.
        raise ValueError(
            f"Cannot load weights={path!r} into {model.name!r} built with classes={classes} "
            f"and input shape {model.input_shape}: the file must hold the same network with "
            f"the same classes, crop size and input channels ({error})"
        ) from error


def _is_keras2_hdf5(path: str) -> bool:
    """Whether an HDF5 file has Keras 2's ``layer_names`` (keras.applications' files)."""
    import h5py

    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        return "layer_names" in root.attrs


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
            include_top,
            weights,
            input_tensor,
            input_shape,
            pooling,
            classes,
            classifier_activation,
            name or builder_name.lower(),
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
