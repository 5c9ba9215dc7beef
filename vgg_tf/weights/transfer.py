"""Weights by layer name: reading them, copying them, and starting a deeper net from net A.

Layer names are stable (:mod:`vgg_tf.nets.builder`), so weights move between
networks, formats and files by name, never by position.

Example:
    >>> weights = read_layer_weights("workdirs/digits_A")  # doctest: +SKIP
    >>> sorted(weights)[:2]  # doctest: +SKIP
    ['block1_conv1', 'block1_conv1_bn']
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import keras
import numpy as np
import tensorflow as tf

from vgg_tf.nets.specs import NET_A_TRANSFER_LAYERS


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
    if tf.io.gfile.isdir(path):
        path = os.path.join(path, "model.keras")
    if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
        raise ValueError(
            f"Cannot read weights from {os.fspath(source)!r}: expected a Keras model, a .keras "
            "file or a directory holding model.keras."
        )
    if path.endswith(".keras"):
        return read_layer_weights(keras.models.load_model(path, compile=False))
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
            hint = {"fc8": " (classes differ?)", "block1_conv1": " (input channels differ?)"}
            raise ValueError(
                f"Shape mismatch at layer {name!r}{hint.get(name, '')}: the model has {target_shapes}, the "
                f"source has {source_shapes}."
            )
        layer.set_weights(weights[name])
        copied.append(name)
    return copied


def init_from_net_a(
    model: keras.Model, net_a: keras.Model | str | os.PathLike, exclude: Iterable[str] = ()
) -> list[str]:
    """Initialises a deeper net from a trained net A (paper §3.1).

    Copies the first four conv layers and the three FC layers of A
    (:data:`NET_A_TRANSFER_LAYERS`, plus their batch-norm layers when both
    nets have them) into ``model``; every other layer keeps its random init.

    Args:
        model: The network to initialise (B, C, D or E; A works too).
        net_a: A trained net A: a model, a ``.keras`` file, or a training
            workdir holding ``model.keras``.
        exclude: Layers not to copy (``("fc8",)`` for another class count).

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
    return load_layer_weights(model, source, [n for n in names if n not in set(exclude)])


def include_top_of(model: keras.Model) -> bool:
    """Whether ``model`` has the FC head (a layer named fc8)."""
    return any(layer.name == "fc8" for layer in model.layers)
