"""The keras.applications-style builders: a VGG network of Table 1, its weights and its input.

:func:`VGG` and the named builders (:func:`VGG11` ... :func:`VGG19`) take the
arguments of ``keras.applications.VGG16`` (``include_top``, ``weights``,
``input_tensor``, ``input_shape``, ``pooling``, ``classes``,
``classifier_activation``, ``name``), so code written against that API works
unchanged, plus vgg_tf's own (dropout, weight decay, initialisation, batch norm,
crop size, width, data format, ``include_preprocessing``). The architecture is
:func:`vgg_tf.nets.builder.build_vgg`; this module adds ``weights=``: None,
``"imagenet"`` or ``"tv_in1k"`` (the published files,
:mod:`vgg_tf.weights.published`), or a file of vgg_tf's, keras.applications',
torchvision's or timm's (:mod:`vgg_tf.weights.files`); and the input:

* ``include_preprocessing=True``: the model takes RGB pixels in [0, 255]
  (uint8 or float) and subtracts the weights' mean RGB in its first layer.
* ``include_preprocessing=False`` (the default, as keras.applications' VGG16):
  the model takes RGB minus the mean RGB, which :func:`preprocess_input`
  computes. The channel order is RGB for every vgg_tf model, keras.applications'
  weights included (their BGR first kernel is reversed on import), so
  ``keras.applications.vgg16.preprocess_input``, which reverses the channels to
  BGR, would swap red and blue without any error.

Example:
    >>> model = VGG16(classes=10, crop_size=32, width_multiplier=1 / 16)
    >>> model.name
    'vgg16'
    >>> raw = VGG16(include_top=False, include_preprocessing=True, width_multiplier=1 / 16)
    >>> raw.get_layer("subtract_mean_rgb").get_config()["mean"]
    [123.68, 116.779, 103.939]
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from vgg_tf.data.constants import IMAGENET_MEAN_RGB
from vgg_tf.nets import builder
from vgg_tf.nets.specs import SPECS
from vgg_tf.weights import files as weight_files
from vgg_tf.weights import published
from vgg_tf.weights.transfer import load_layer_weights, read_layer_weights

_WEIGHT_FILES = (
    "a .keras or .weights.h5 file, or a keras.applications .h5, torchvision .pth "
    "or timm .safetensors file (vgg_tf.weights)"
)


def check_weights_argument(weights: str | os.PathLike | None) -> None:
    """Refuses a ``weights=`` that is neither None, a published weight set nor a readable file."""
    if weights is None:
        return
    path = os.fspath(weights)
    if path in published.WEIGHT_SETS:
        return
    if not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise ValueError(
            f"weights={path!r} is neither None, 'imagenet', 'tv_in1k' nor a readable file; "
            f"expected one of them or the path to {_WEIGHT_FILES}."
        )


def _published_weights_path(
    weight_set: str,
    variant: str,
    include_top: bool,
    shape: tuple,
    batch_norm: bool,
    width_multiplier: float,
    data_format: str,
) -> str:
    """Checks a network against the published files of ``weight_set``; their local path."""
    published.imagenet_weights_file(variant, include_top, batch_norm, weight_set)  # published?
    first = data_format == "channels_first"
    channels, side = (shape[0], shape[1]) if first else (shape[2], shape[0])
    problem = None
    if width_multiplier != 1.0:
        problem = f"width_multiplier={width_multiplier!r} (the published nets have 1.0)"
    elif channels != 3:
        problem = f"{channels} input channels (the published nets take RGB)"
    elif include_top and side != builder.DEFAULT_CROP_SIZE:
        problem = (
            f"a {side}x{side} input with include_top=True (the published fc6 sees a "
            f"{builder.DEFAULT_CROP_SIZE} crop; use include_top=False for other sizes)"
        )
    if problem:
        raise ValueError(f"weights={weight_set!r} does not fit {problem}.")
    return published.imagenet_weights_path(variant, include_top, batch_norm, weight_set)


@dataclasses.dataclass(frozen=True)
class WeightSource:
    """What ``weights=`` gives a model, read before the model is built.

    Attributes:
        path: The file.
        layers: ``{layer_name: [arrays]}``, or None for a ``.weights.h5`` file
            (matched by structure).
        mean_rgb: The mean RGB the weights take subtracted (their convention, or
            the one a ``.keras`` model subtracts itself); None when not known.
        batch_norm_epsilon: The epsilon the weights' statistics assume, or None.
        new_head: Whether a top for another class count takes every layer but fc8
            (published and imported files; a vgg_tf file must hold the same network).
    """

    path: str
    layers: dict[str, list[np.ndarray]] | None
    mean_rgb: tuple[float, ...] | None = None
    batch_norm_epsilon: float | None = None
    new_head: bool = False


def read_weight_source(
    path: str, variant: str, include_top: bool, batch_norm: bool
) -> WeightSource:
    """Reads a ``weights=`` file for network ``variant`` (the conv layers only without the top).

    Example:
        >>> source = read_weight_source("model.safetensors", "A", True, False)  # doctest: +SKIP
        >>> source.mean_rgb  # doctest: +SKIP
        (123.675, 116.28, 103.53)
    """
    if path.endswith(".keras"):
        model = keras.models.load_model(path, compile=False)
        return WeightSource(path, read_layer_weights(model), builder.included_mean_rgb(model))
    kind = weight_files.file_format(path)
    if kind in ("torch", "safetensors") or (kind == "hdf5" and _is_keras2_hdf5(path)):
        # Converted (layout, input convention) and matched by layer name.
        if variant == "A-LRN":
            raise ValueError(
                f"weights={path!r}: the published files hold net A without LRN; "
                "build variant 'A' for them."
            )
        imported = weight_files.read_weights(
            path, variant, include_top=include_top, batch_norm=batch_norm
        )
        epsilon = weight_files.TORCH_BN_EPSILON if kind != "hdf5" else None
        return WeightSource(path, imported.layers, imported.mean_rgb, epsilon, new_head=True)
    return WeightSource(path, None)


def _preprocessing_mean(
    include_preprocessing: bool,
    mean_rgb: Sequence[float] | None,
    source: WeightSource | None,
    channels: int,
) -> Sequence[float] | None:
    """The mean a model built with ``include_preprocessing`` subtracts: the weights' own."""
    if not include_preprocessing:
        return mean_rgb  # build_vgg refuses a mean here
    known = source.mean_rgb if source is not None else None
    if mean_rgb is None:
        if known is not None:
            return known
        return IMAGENET_MEAN_RGB if channels == 3 else None
    same_shape = np.shape(mean_rgb) == np.shape(known)
    if known is not None and not (same_shape and np.allclose(mean_rgb, known, rtol=0, atol=1e-6)):
        raise ValueError(
            f"mean_rgb={mean_rgb!r} conflicts with weights={source.path!r}, which "
            f"take RGB minus {tuple(known)!r}; leave mean_rgb out to subtract the weights' own."
        )
    return mean_rgb


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
    include_preprocessing: bool = False,
    mean_rgb: Sequence[float] | None = None,
) -> keras.Model:
    """Builds VGG network ``variant`` of the paper's Table 1.

    Args:
        variant: One of :data:`VARIANTS`: "A", "A-LRN", "B", "C", "D", "E".
        include_top: Whether to include the three fully-connected layers.
        weights: None (random init); "imagenet" (as keras.applications: the
            published file from Keras' cache, ``~/.keras/models``, downloaded
            when absent; D and E from keras.applications, A, B and the
            batch-norm nets from timm's safetensors copies of torchvision's);
            "tv_in1k" (timm's copies of torchvision's weights for A, B, D, E,
            with or without batch norm); or the path to a ``.keras`` or
            ``.weights.h5`` file of the same network (classes, crop, channels;
            either format), or to a keras.applications ``.h5``, torchvision
            ``.pth`` or timm ``.safetensors`` file (the conv layers only when
            ``include_top=False``; :mod:`vgg_tf.weights`). With published or
            imported weights and another ``classes``, every layer but fc8 is
            loaded and fc8 starts afresh (``kernel_initializer``), for fine-tuning.
            Imported weights take RGB minus their source's mean RGB
            (``vgg_tf.weights.published.imagenet_mean_rgb(variant)`` for "imagenet",
            ``vgg_tf.read_weights(path).mean_rgb`` for a file), which
            ``include_preprocessing=True`` puts inside the model.
        input_tensor, input_shape, pooling, classes, classifier_activation, name,
            dropout, weight_decay, kernel_initializer, batch_norm, crop_size,
            width_multiplier, data_format: the network, as
            :func:`vgg_tf.nets.builder.build_vgg` takes them (keras.applications'
            arguments first: ``classes`` is the top layer's class count,
            ``weight_decay`` Caffe's, ``kernel_initializer`` "paper", "glorot" or
            "he").
        batch_norm_epsilon: Epsilon of the BatchNormalization layers. None:
            torch's 1e-5 when ``weights`` is a published set or a torchvision /
            timm file (their statistics assume it), else Keras' 1e-3.
        include_preprocessing: False (keras.applications' VGG16 / VGG19 and
            their tests): the model takes RGB minus the mean RGB
            (:func:`preprocess_input`). True: it takes RGB pixels in [0, 255],
            uint8 or float, and subtracts the mean in its first layer.
        mean_rgb: The mean an ``include_preprocessing`` model subtracts. None:
            the weights' own (their source's convention, or the one a ``.keras``
            file's model subtracts), else ImageNet's
            (:data:`vgg_tf.data.constants.IMAGENET_MEAN_RGB`). A mean other than
            the weights' own is refused.

    Returns:
        A ``keras.Model``.

    Example (grayscale 32x32 input: crop_size 32):
        >>> model = VGG("D", classes=10, input_shape=(32, 32, 1), width_multiplier=1 / 16)
        >>> model.output_shape
        (None, 10)
    """
    check_weights_argument(weights)
    data_format = builder.check_data_format(data_format)
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape)[1:]
    shape = builder.check_input_shape(input_shape, include_top, crop_size, data_format)
    channels = shape[0] if data_format == "channels_first" else shape[2]
    path = None if weights is None else os.fspath(weights)
    if path in published.WEIGHT_SETS:
        path = _published_weights_path(
            path, variant, include_top, shape, batch_norm, width_multiplier, data_format
        )
    source = None if path is None else read_weight_source(path, variant, include_top, batch_norm)
    if batch_norm_epsilon is None:
        recorded = source.batch_norm_epsilon if source is not None else None
        batch_norm_epsilon = recorded or 1e-3
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
        include_preprocessing=include_preprocessing,
        mean_rgb=_preprocessing_mean(include_preprocessing, mean_rgb, source, channels),
    )
    if source is not None:
        _load_weights(model, source, classes)
    return model


def _load_weights(model: keras.Model, source: WeightSource, classes: int) -> list[str]:
    """Loads ``source`` into ``model``; a top for other classes gets all but fc8 (kept fresh)."""
    if source.layers is None:
        # A .weights.h5 file is matched by structure (Keras 3 stores no layer names).
        try:
            model.load_weights(source.path)
        except Exception as error:  # Keras raises several types for a mismatch.
            raise ValueError(
                f"Cannot load weights={source.path!r} into {model.name!r} built with "
                f"classes={classes} and input shape {model.input_shape}: the file must hold the "
                "same network with the same classes, crop size and input channels "
                f"({error})"
            ) from error
        return [layer.name for layer in model.layers if layer.weights]
    names = [layer.name for layer in model.layers if layer.weights]
    source_classes = source.layers["fc8"][0].shape[-1] if "fc8" in source.layers else None
    if source.new_head and "fc8" in names and source_classes not in (None, classes):
        names.remove("fc8")  # a new head, for fine-tuning: fc8 keeps its fresh initialisation
    return load_layer_weights(model, source.layers, names)


def preprocess_input(
    images: Any, mean_rgb: Sequence[float] = IMAGENET_MEAN_RGB, data_format: str | None = None
) -> Any:
    """RGB pixels in [0, 255] -> the input of a model built without ``include_preprocessing``.

    Subtracts ``mean_rgb`` per channel and returns float32; the channels stay
    in RGB order. This is not ``keras.applications.vgg16.preprocess_input``,
    which also reverses the channels to BGR for the Caffe weights: vgg_tf's
    models take RGB, keras.applications' weights included.

    Args:
        images: RGB images, uint8 or float in [0, 255]: a numpy array (or
            nested lists) or a tensor, ``(..., H, W, 3)`` or ``(..., 3, H, W)``.
        mean_rgb: The weights' mean RGB. The default is ImageNet's, as the
            authors' Caffe weights take it (``weights="imagenet"`` for D and E);
            ``vgg_tf.weights.published.imagenet_mean_rgb(variant, batch_norm)`` gives any
            published net's, ``vgg_tf.read_weights(path).mean_rgb`` a
            file's, and a workdir's ``config.json`` records its run's.
        data_format: Where the channels are: "channels_last", "channels_first",
            or None for Keras' ``image_data_format()``.

    Returns:
        A float32 numpy array for numpy input, else a float32 tensor.

    Raises:
        ValueError: The channel axis does not hold one value per mean.

    Example:
        >>> x = preprocess_input(np.full((1, 2, 2, 3), 255, np.uint8))
        >>> x.dtype, [round(float(v), 3) for v in x[0, 0, 0]]
        (dtype('float32'), [131.32, 138.221, 151.061])
    """
    data_format = builder.check_data_format(data_format)
    mean = np.asarray(mean_rgb, np.float32)
    if mean.ndim != 1 or not np.all(np.isfinite(mean)):
        raise ValueError(
            f"mean_rgb={mean_rgb!r} is not accepted; expected one finite number per channel."
        )
    as_numpy = isinstance(images, (np.ndarray, list, tuple))
    if as_numpy:
        images = np.asarray(images)
    axis = -3 if data_format == "channels_first" else -1
    shape = tuple(images.shape)
    if len(shape) < 3 or shape[axis] != mean.size:
        raise ValueError(
            f"Images of shape {shape} are not accepted with data_format={data_format!r}: "
            f"expected {mean.size} channels on axis {axis} (one per value of mean_rgb), "
            "(..., H, W, channels) or (..., channels, H, W)."
        )
    mean = mean.reshape((mean.size, 1, 1) if axis == -3 else (mean.size,))
    if as_numpy:
        return images.astype(np.float32) - mean
    return keras.ops.subtract(keras.ops.cast(images, "float32"), mean)


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
