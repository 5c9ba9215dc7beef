"""Pretrained weights from the files users already have: keras.applications, torchvision, timm.

Three published layouts hold VGG weights trained on ImageNet; each is read
offline, checked, and converted to vgg_tf's layers and input convention (RGB
from which a mean RGB has been subtracted, the paper's §2.1):

* **keras.applications** ``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` and
  ``vgg19_...`` (and the ``_notop`` files): Keras 2's HDF5 layout (the file's
  ``layer_names`` attribute, a group per layer whose ``weight_names`` attribute
  lists kernel and bias in order). They are the authors' Caffe weights, taking
  BGR minus [103.939, 116.779, 123.68]: reversing the input-channel axis of
  ``block1_conv1``'s kernel makes them take RGB minus :data:`vgg_tf.data.constants.IMAGENET_MEAN_RGB`,
  exactly. ``fc1``/``fc2``/``predictions`` are ``fc6``/``fc7``/``fc8``.
* **torchvision** state dicts (``vgg11-8a719046.pth`` ... ``vgg19_bn-c79401a0.pth``):
  ``features.N.weight`` ``(out, in, kh, kw)`` becomes Keras' ``(kh, kw, in,
  out)``; batch norm ``features.N.{weight, bias, running_mean, running_var}``
  becomes gamma, beta, moving mean and variance (torch's epsilon 1e-5, set on
  the Keras layers); ``classifier.0/3/6`` (Linear, ``(out, in)``) are fc6, fc7,
  fc8, and classifier.0's input is torch's ``(c, h, w)`` flatten of the 7x7
  map, reordered to Keras' ``(h, w, c)``. Reading a ``.pth`` needs PyTorch; the
  same weights come as timm's safetensors files, which need only numpy.
* **timm** ``model.safetensors`` of ``vgg11.tv_in1k`` ... ``vgg19_bn.tv_in1k``
  (torchvision's weights): ``features.*`` as torchvision; fc6 is
  ``pre_logits.fc1`` stored as a ``(4096, 512, 7, 7)`` conv, fc7
  ``pre_logits.fc2`` a ``(4096, 4096, 1, 1)`` conv, fc8 ``head.fc``.

Each source's input convention (channel order, pixel range, mean, std, crop,
classes) is recorded with it (:mod:`vgg_tf.weights.conventions`) and folded into
``block1_conv1``: torchvision feeds ``(x / 255 - mean) / std`` per RGB channel;
vgg_tf feeds ``x - 255 * mean``, which is the same tensor times ``255 * std``.
So dividing ``block1_conv1``'s kernel by ``255 * std`` per input channel gives
exactly the same network with mean RGB ``255 * mean`` (zero padding still pads
the mean pixel, as in torch).

The variant (A, B, D, E; C too for a file of vgg_tf's names), batch norm, the
presence of the top, the class count and the width (vgg_tf's
``width_multiplier``; 1 for the published files) are read from the file; a
``variant=`` argument checks them. Anything else gets an error naming the file
and what was expected.

:func:`import_weights` (as keras.applications' builders) gives a model that
takes RGB minus the mean of its source: read it from
:func:`vgg_tf.weights.files.read_weights` (``.mean_rgb``),
:func:`vgg_tf.weights.published.imagenet_mean_rgb`, or pass
``include_preprocessing=True`` and the model subtracts it itself. The models
saved for users, :func:`import_to_workdir`'s ``model.keras`` and
:func:`imagenet_trained_model`'s, subtract it themselves: they take RGB pixels
in [0, 255], so ``keras.models.load_model`` alone gives a script the right answers.

Example:
    >>> model = import_weights("vgg16_weights_tf_dim_ordering_tf_kernels.h5")  # doctest: +SKIP
    >>> imported_config(read_weights("vgg16_weights_tf_dim_ordering_tf_kernels.h5"))["mean_rgb"]  # doctest: +SKIP
    [123.68, 116.779, 103.939]
"""

from __future__ import annotations

import os
from typing import Any

import keras
import tensorflow as tf

from vgg_tf import workdir as workdir_lib
from vgg_tf.nets import builder
from vgg_tf.weights.conventions import InputConvention
from vgg_tf.weights.files import TORCH_BN_EPSILON, ImportedWeights, parse_variant, read_weights
from vgg_tf.weights.published import imagenet_weights_file, imagenet_weights_path
from vgg_tf.weights.trained import TrainedModel
from vgg_tf.weights.transfer import load_layer_weights


def build_imported(
    imported: ImportedWeights, include_top: bool | None = None, **options: Any
) -> keras.Model:
    """A VGG model holding ``imported``'s weights (``options`` go to :func:`vgg_tf.nets.builder.build_vgg`).

    With ``include_preprocessing=True`` among the options the model takes RGB in
    [0, 255] and subtracts the weights' mean RGB itself.

    Example:
        >>> model = build_imported(read_weights("model.safetensors"))  # doctest: +SKIP
    """
    top = imported.include_top if include_top is None else include_top
    if top and not imported.include_top:
        raise ValueError(
            f"{imported.source!r} has no fully-connected layers (fc6, fc7, fc8); "
            "build with include_top=False."
        )
    options.setdefault("name", imported.builder_name)
    if options.get("include_preprocessing"):
        options.setdefault("mean_rgb", imported.mean_rgb)
    if imported.batch_norm:
        options["batch_norm_epsilon"] = imported.batch_norm_epsilon
    model = builder.build_vgg(
        imported.variant,
        include_top=top,
        classes=imported.classes or 1000,
        batch_norm=imported.batch_norm,
        width_multiplier=imported.width_multiplier,
        **options,
    )
    load_layer_weights(model, imported.layers)
    return model


def import_weights(
    source: str | os.PathLike,
    variant: str | None = None,
    *,
    include_top: bool | None = None,
    **options: Any,
) -> keras.Model:
    """A VGG model with the weights of a keras.applications, torchvision or timm file.

    The model takes RGB minus the file's mean RGB (vgg_tf's convention):
    :data:`vgg_tf.data.constants.IMAGENET_MEAN_RGB` for keras.applications' files,
    255 x torchvision's mean for torchvision's and timm's (``read_weights(
    source).mean_rgb`` says which), or RGB in [0, 255] with
    ``include_preprocessing=True``. See :func:`read_weights` for the arguments;
    ``options`` go to :func:`vgg_tf.nets.builder.build_vgg` (``input_shape``, ``pooling``,
    ``classifier_activation``, ``data_format``, ``name``, ``include_preprocessing``).

    Example:
        >>> model = import_weights("model.safetensors")  # timm's vgg16.tv_in1k  # doctest: +SKIP
        >>> model.name  # doctest: +SKIP
        'vgg16'
    """
    return build_imported(read_weights(source, variant, include_top=include_top), **options)


def imported_config(imported: ImportedWeights, weights_url: str | None = None) -> dict:
    """The ``config.json`` of an imported model: its network, input convention and test scales.

    The network (variant, batch norm, width), the source convention's crop
    (224) and resize side as ``scale_min = scale_max`` (256, so the test scales
    are 256 and {224, 256, 288}, the paper's for an S = 256 model), flips, the
    source's mean RGB, its classes (ImageNet's names for 1,000), where the
    weights came from (``weights_source``,
    ``weights_format``, ``weights_url``), and for batch norm the epsilon its
    statistics assume (``batch_norm_epsilon``, torch's 1e-5: a net built to
    fine-tune from it uses the same).

    Example:
        >>> config = imported_config(read_weights("model.safetensors"))  # doctest: +SKIP
        >>> config["mean_rgb"], config["scale_min"]  # doctest: +SKIP
        ([123.675, 116.28, 103.53], 256)
    """
    return _convention_config(
        imported.convention,
        variant=imported.variant,
        batch_norm=imported.batch_norm,
        width_multiplier=imported.width_multiplier,
        classes=imported.classes,
        weights_source=imported.source,
        weights_url=weights_url,
    )


def published_config(variant: str, *, batch_norm: bool | None = None) -> dict:
    """The :func:`imported_config` of the published ImageNet weights of ``variant``, unread.

    What ``imagenet-<variant>`` records, from the published file's convention
    alone: the file is neither read nor fetched (``weights_source`` is where
    Keras' cache keeps it). ``variant`` is "D", "VGG16", "vgg16" or "vgg16_bn".

    Example:
        >>> config = published_config("vgg16_bn")
        >>> config["mean_rgb"], config["batch_norm_epsilon"], config["weights_format"]
        ([123.675, 116.28, 103.53], 1e-05, 'timm')
    """
    name, parsed_bn = parse_variant(variant)
    bn = bool(parsed_bn if batch_norm is None else batch_norm)
    file = imagenet_weights_file(name, True, bn)
    return _convention_config(
        file.convention,
        variant=name,
        batch_norm=bn,
        width_multiplier=1.0,
        classes=file.convention.num_classes,
        weights_source=file.cache_path,
        weights_url=file.url,
    )


def _convention_config(
    convention: InputConvention,
    *,
    variant: str,
    batch_norm: bool,
    width_multiplier: float,
    classes: int | None,
    weights_source: str,
    weights_url: str | None,
) -> dict:
    names = convention.class_names if classes == convention.num_classes else None
    return dict(
        recipe=f"imported from {convention.name}",
        task="classification",
        dataset=convention.dataset,
        variant=variant,
        batch_norm=batch_norm,
        width_multiplier=width_multiplier,
        crop_size=convention.crop_size,
        scale_min=convention.resize_side,
        scale_max=convention.resize_side,
        flip=True,
        mean_rgb=list(convention.mean_rgb),
        num_classes=classes,
        class_names=list(names) if names else None,
        weights_source=os.path.abspath(weights_source),
        weights_format=convention.name,
        weights_url=weights_url,
        batch_norm_epsilon=TORCH_BN_EPSILON if batch_norm else None,
    )


def import_to_workdir(
    source: str | os.PathLike,
    workdir: str | os.PathLike,
    variant: str | None = None,
    *,
    overwrite: bool = False,
):
    """Writes a workdir (``model.keras``, ``config.json``) from a weight file, like a trained run.

    The ``model.keras`` takes RGB pixels in [0, 255] and subtracts the source's
    mean RGB itself (``include_preprocessing=True``), as a trained run's does.
    ``bin/evaluate``, ``bin/export``, ``bin/predict`` and ``--init_from`` take the
    result as they take a training run. ``source`` is a file as for
    :func:`read_weights`, or ``"imagenet"`` (with ``variant``; "vgg16_bn" for
    batch norm) for the file ``weights="imagenet"`` uses.

    Raises:
        ValueError: The file is not importable or has no classifier (a notop
            file), or ``workdir`` holds a run and ``overwrite`` is False.

    Returns:
        The :class:`vgg_tf.weights.trained.TrainedModel` written.
    """
    workdir = os.fspath(workdir)
    url = None
    if os.fspath(source) == "imagenet":
        if variant is None:
            raise ValueError("Importing 'imagenet' needs a variant (D, vgg16, vgg16_bn, ...).")
        name, batch_norm = parse_variant(variant)
        file = imagenet_weights_file(name, True, bool(batch_norm))
        source, url = imagenet_weights_path(name, True, bool(batch_norm)), file.url
    imported = read_weights(source, variant)
    if not imported.include_top:
        raise ValueError(
            f"{imported.source!r} has no fully-connected layers (a 'notop' file): "
            "a workdir holds a classifier; import the file with the top."
        )
    recorded = workdir_lib.read_config(workdir)
    if recorded is not None or tf.io.gfile.exists(os.path.join(workdir, workdir_lib.MODEL_FILE)):
        if not overwrite:
            raise ValueError(
                f"{workdir!r} already holds a run; pass --overwrite to replace it, "
                "or choose another directory."
            )
        workdir_lib.clear_run(workdir)
    model = build_imported(imported, data_format="channels_last", include_preprocessing=True)
    config = imported_config(imported, url)
    workdir_lib.save_model(model, os.path.join(workdir, workdir_lib.MODEL_FILE))
    workdir_lib.write_config(workdir, config)
    directory = os.path.basename(os.path.abspath(workdir))
    return TrainedModel(
        model,
        config,
        os.path.join(workdir, workdir_lib.MODEL_FILE),
        f"{imported.variant} ({directory})",
    )


def imagenet_trained_model(variant: str, *, batch_norm: bool | None = None):
    """The ImageNet classifier of ``variant`` as a :class:`vgg_tf.weights.trained.TrainedModel`.

    ``weights="imagenet"`` (Keras' cache, or a download) with the config of an
    imported workdir (:func:`imported_config`): mean RGB, crop 224, test scales
    256 / {224, 256, 288}, the 1,000 class names. The model takes RGB pixels in
    [0, 255] and subtracts the weights' mean RGB itself. ``variant`` is "D",
    "VGG16", "vgg16" or "vgg16_bn".

    Example:
        >>> trained = imagenet_trained_model("D")  # doctest: +SKIP
        >>> trained.mean_rgb, trained.multi_scales()  # doctest: +SKIP
        ((123.68, 116.779, 103.939), (224, 256, 288))
    """
    name, parsed_bn = parse_variant(variant)
    bn = bool(parsed_bn if batch_norm is None else batch_norm)
    file = imagenet_weights_file(name, True, bn)
    path = imagenet_weights_path(name, True, bn)
    imported = read_weights(path, name, include_top=True, batch_norm=bn)
    model = build_imported(imported, data_format="channels_last", include_preprocessing=True)
    return TrainedModel(model, imported_config(imported, file.url), path, f"{name} (imagenet)")
