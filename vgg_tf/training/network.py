"""The net a run trains and where it starts: built from the recipe, initialised from another model.

:func:`build_model` builds the recipe's network for the task's head with the run's mean RGB inside
(``include_preprocessing``); :func:`initialise_from` copies another model's layers into it (the
same network, or net A's seven layers for a deeper net, §3.1; a new ``fc8`` for another class
count); :func:`freeze_layers` chooses what trains.

Example:
    >>> model = build_model(config_lib.paper_recipe(), num_classes=10)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from vgg_tf.nets import builder
from vgg_tf.training import recipe as config_lib
from vgg_tf.training import tasks
from vgg_tf.weights import loading, transfer


def build_model(
    config: Any, num_classes: int, mean_rgb: Sequence[float] | None = None
) -> keras.Model:
    """Builds the network of ``config`` with its top for ``num_classes`` classes.

    The top is the task's (:func:`vgg_tf.training.tasks.task_for`): class scores, or a
    localisation net's box (4 numbers, or 4 per class) with a linear output. A
    run started from another model (``init_from``) initialises the layers that
    model does not provide with ``new_layer_initializer`` when set.

    With ``mean_rgb`` (the run's mean RGB, as every run passes it) the net
    subtracts it in its first layer and takes RGB pixels in [0, 255], so the
    saved ``model.keras`` stands alone; without, it takes mean-subtracted images.
    """
    initializer = config["kernel_initializer"]
    if config.get("init_from") and config.get("new_layer_initializer"):
        initializer = config["new_layer_initializer"]
    task = tasks.task_for(config, num_classes)
    recorded_epsilon = start_config(config).get("batch_norm_epsilon")
    epsilon = {"batch_norm_epsilon": float(recorded_epsilon)} if recorded_epsilon else {}
    return builder.build_vgg(
        config["variant"],
        classes=task.outputs,
        classifier_activation=task.activation,
        crop_size=int(config["crop_size"]),
        dropout=float(config["dropout"]),
        weight_decay=float(config["weight_decay"]),
        kernel_initializer=initializer,
        batch_norm=bool(config["batch_norm"]),
        width_multiplier=float(config["width_multiplier"]),
        # The input pipeline gives (batch, height, width, RGB), whatever Keras' global format.
        data_format="channels_last",
        # The paper's mean subtraction (§2.1), inside the net before the first convolution:
        # the same numbers reach it (its zero padding still pads the mean pixel).
        include_preprocessing=mean_rgb is not None,
        mean_rgb=mean_rgb,
        # Statistics imported from torch (bin/import_weights) were computed with its epsilon.
        **epsilon,
    )


def start_config(config: Any) -> dict:
    """The recorded config of the model a run starts from (``init_from``), or {}."""
    return loading.recorded_config(config["init_from"]) if config.get("init_from") else {}


def initialise_from(
    model: keras.Model, source: str, fresh_head: bool = False
) -> tuple[list[str], str]:
    """Starts ``model`` from a trained model: a workdir, a .keras file or ``imagenet-D``.

    ``source`` is read by :func:`vgg_tf.weights.loading.load_model`, so the
    published ImageNet weights (``imagenet-D``, ...) are a source too. The same
    network (e.g. the S=256 model for the S=384 recipe, or an
    imported ImageNet model) gives all its layers; net A given to a deeper
    net gives the paper's seven (§3.1). A source with another class count, or
    ``fresh_head`` (a localisation net started from a classifier: "all layers
    but the last", Appendix A), gives everything but ``fc8``, which keeps its
    fresh initialisation.

    Returns:
        The names of the layers copied, and a note on fc8 when it was not
        (empty otherwise).
    """
    start = loading.load_model(source).model
    weights = transfer.read_layer_weights(start)
    own = [layer.name for layer in model.layers if layer.weights]
    fc8 = model.get_layer("fc8")
    source_classes = weights["fc8"][0].shape[-1] if "fc8" in weights else None
    new_head = source_classes is not None and (fresh_head or source_classes != fc8.units)
    exclude = ("fc8",) if new_head else ()
    note = ""
    if new_head:
        note = (
            f"fc8 is initialised afresh for the box ({fc8.units} outputs; the source "
            f"classifies {source_classes} classes)"
            if fresh_head
            else f"fc8 is initialised afresh for {fc8.units} classes (the source has "
            f"{source_classes})"
        )
    if all(name in weights for name in own):
        names = [name for name in own if name not in exclude]
        return transfer.load_layer_weights(model, weights, names), note
    return transfer.init_from_net_a(model, start, exclude=exclude), note


def freeze_layers(model: keras.Model, freeze: str) -> list[str]:
    """Stops training the layers ``freeze`` names: "none", "convs" or "all_but_head".

    "convs" trains only the fully-connected layers (as the authors did for one
    of their ILSVRC submissions); "all_but_head" trains fc8 alone. Frozen
    batch-norm layers run in inference mode (their moving statistics stay).

    Returns:
        The names of the frozen layers that hold weights.

    Example:
        >>> m = builder.build_vgg("A", classes=3, crop_size=32, width_multiplier=1 / 16)
        >>> freeze_layers(m, "all_but_head")[-2:]
        ['fc6', 'fc7']
    """
    if freeze not in config_lib.FREEZE:
        raise ValueError(
            f"Unknown freeze {freeze!r}; expected one of {', '.join(config_lib.FREEZE)}."
        )
    frozen = []
    for layer in model.layers:
        is_trunk = not layer.name.startswith("fc") and layer.name != "predictions"
        if (freeze == "convs" and is_trunk) or (freeze == "all_but_head" and layer.name != "fc8"):
            layer.trainable = False
            if layer.weights:
                frozen.append(layer.name)
    return frozen
