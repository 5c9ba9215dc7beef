"""Pretrained weights from the files users already have: keras.applications, torchvision, timm.

Three published layouts hold VGG weights trained on ImageNet; each is read
offline, checked, and converted to vgg_tf's layers and input convention (RGB
from which a mean RGB has been subtracted, the paper's §2.1):

* **keras.applications** ``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` and
  ``vgg19_...`` (and the ``_notop`` files): Keras 2's HDF5 layout (the file's
  ``layer_names`` attribute, a group per layer whose ``weight_names`` attribute
  lists kernel and bias in order). They are the authors' Caffe weights, taking
  BGR minus [103.939, 116.779, 123.68]: reversing the input-channel axis of
  ``block1_conv1``'s kernel makes them take RGB minus :data:`CAFFE_MEAN_RGB`,
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

torchvision feeds ``(x / 255 - mean) / std`` per RGB channel; vgg_tf feeds
``x - 255 * mean``, which is the same tensor times ``255 * std``. So dividing
``block1_conv1``'s kernel by ``255 * std`` per input channel gives exactly the
same network with mean RGB :data:`TORCHVISION_MEAN_RGB` (zero padding still
pads the mean pixel, as in torch).

The variant (A, B, D, E; C too for a file of vgg_tf's names), batch norm, the
presence of the top, the class count and the width (vgg_tf's
``width_multiplier``; 1 for the published files) are read from the file; a
``variant=`` argument checks them. Anything else gets an error naming the file
and what was expected.

The imported model takes RGB minus the mean of its source: read it from
:func:`read_weights` (``.mean_rgb``), :func:`imagenet_mean_rgb`, or the
``config.json`` that :func:`import_to_workdir` writes.

Example:
    >>> model = import_weights("vgg16_weights_tf_dim_ordering_tf_kernels.h5")  # doctest: +SKIP
    >>> imagenet_mean_rgb("D"), imagenet_mean_rgb("A")
    ((123.68, 116.779, 103.939), (123.675, 116.28, 103.53))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

import keras

from vgg_tf import models
from vgg_tf.weight_files import (  # noqa: F401  (re-exported: the readers' public names)
    CAFFE_MEAN_RGB,
    FC6_SIDE,
    FORMATS,
    MEAN_RGB,
    TORCH_BN_EPSILON,
    TORCHVISION_MEAN,
    TORCHVISION_MEAN_RGB,
    TORCHVISION_STD,
    ImportedWeights,
    MissingDependencyError,
    _torch_available,
    _torch_missing,
    file_format,
    parse_variant,
    read_weights,
)

_KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_TORCHVISION = "https://download.pytorch.org/models/"


# --- The published ImageNet files ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """A published weight file: its cache name, URL and checksum.

    Attributes:
        fname: File name in Keras' cache (``~/.keras/models/<fname>``).
        url: Where it is published.
        file_hash: md5 that ``keras.utils.get_file`` verifies (keras.applications'),
            or None.
        sha256_prefix: The first hex digits of the sha256 (torchvision's file
            names end with them), or None.
        source_format: One of :data:`FORMATS`.
    """

    fname: str
    url: str
    file_hash: str | None
    sha256_prefix: str | None
    source_format: str


def _keras_file(name: str, md5: str) -> WeightsFile:
    folder = name.split("_")[0]
    return WeightsFile(name, f"{_KERAS_APPLICATIONS}{folder}/{name}", md5, None,
                       "keras_applications")


def _torchvision_file(name: str) -> WeightsFile:
    return WeightsFile(name, _TORCHVISION + name, None, name.rsplit("-", 1)[1][:-4], "torchvision")


#: ``(variant, batch_norm, include_top)`` -> the file ``weights="imagenet"`` reads.
#: D and E come from keras.applications (md5s from keras' own vgg16.py / vgg19.py),
#: A, B and every batch-norm net from torchvision (one file, with and without the top).
IMAGENET_FILES: dict[tuple[str, bool, bool], WeightsFile] = {
    ("D", False, True): _keras_file("vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                                    "64373286793e3c8b2b4e3219cbf3544b"),
    ("D", False, False): _keras_file("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                     "6d6bbae143d832006294945121d1f1fc"),
    ("E", False, True): _keras_file("vgg19_weights_tf_dim_ordering_tf_kernels.h5",
                                    "cbe5617147190e668d6c5d5026f83318"),
    ("E", False, False): _keras_file("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                     "253f8cb515780f3b799900260a226db6"),
}
for _variant, _bn, _name in (
    ("A", False, "vgg11-8a719046.pth"), ("B", False, "vgg13-19584684.pth"),
    ("A", True, "vgg11_bn-6002323d.pth"), ("B", True, "vgg13_bn-abd245e5.pth"),
    ("D", True, "vgg16_bn-6c64b313.pth"), ("E", True, "vgg19_bn-c79401a0.pth"),
):
    for _top in (True, False):
        IMAGENET_FILES[(_variant, _bn, _top)] = _torchvision_file(_name)


def imagenet_weights_file(variant: str, include_top: bool = True,
                          batch_norm: bool = False) -> WeightsFile:
    """The published file ``weights="imagenet"`` reads for this network.

    Raises:
        ValueError: No ImageNet weights are published for the network (A-LRN, C).
    """
    models.get_spec(variant)  # an unknown name gets the list of valid ones
    try:
        return IMAGENET_FILES[(variant, bool(batch_norm), bool(include_top))]
    except KeyError:
        available = sorted({f"{v}{' (batch_norm)' if bn else ''}" for v, bn, _ in IMAGENET_FILES})
        raise ValueError(
            f"No ImageNet weights are published for net {variant}"
            f"{' with batch norm' if batch_norm else ''}; weights='imagenet' is available for "
            f"{', '.join(available)}."
        ) from None


def imagenet_mean_rgb(variant: str, batch_norm: bool = False) -> tuple[float, float, float]:
    """The mean RGB a ``weights="imagenet"`` model takes: subtract it from RGB in [0, 255].

    D and E (keras.applications' Caffe weights): :data:`CAFFE_MEAN_RGB`; A, B and
    the batch-norm nets (torchvision's): :data:`TORCHVISION_MEAN_RGB`.

    Example:
        >>> imagenet_mean_rgb("E"), imagenet_mean_rgb("E", batch_norm=True)
        ((123.68, 116.779, 103.939), (123.675, 116.28, 103.53))
    """
    return MEAN_RGB[imagenet_weights_file(variant, True, batch_norm).source_format]


def _keras_cache_dir() -> str:
    # As keras.config at import, but read now: KERAS_HOME set later counts too.
    if os.environ.get("KERAS_HOME"):
        return os.environ["KERAS_HOME"]
    home = os.path.expanduser("~")
    return os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")


def imagenet_weights_path(variant: str, include_top: bool = True,
                          batch_norm: bool = False) -> str:
    """The local path of the ImageNet file of a network, downloaded into Keras' cache if absent.

    As keras.applications: ``keras.utils.get_file`` with the published URL and
    checksum, into ``$KERAS_HOME/models`` (default ``~/.keras/models``), so a file
    already there is used offline.

    Raises:
        ValueError: No weights are published for the network, or the file is
            neither cached nor downloadable (the message names the file, the URL
            and where to put it).
        MissingDependencyError: The file is torchvision's and PyTorch is not
            installed (checked before any download).
    """
    file = imagenet_weights_file(variant, include_top, batch_norm)
    cache_dir = _keras_cache_dir()
    target = os.path.join(os.path.expanduser(cache_dir), "models", file.fname)
    if file.source_format == "torchvision" and not _torch_available():
        net = (f"{models.SPECS[variant].builder_name}{' with batch norm' if batch_norm else ''} "
               f"(net {variant})")
        raise _torch_missing(file.fname, net, file.url)
    try:
        path = keras.utils.get_file(file.fname, file.url, cache_subdir="models",
                                    file_hash=file.file_hash, cache_dir=cache_dir)
    except Exception as error:  # get_file raises a bare Exception for a failed fetch.
        raise ValueError(
            f"weights='imagenet' for {models.SPECS[variant].builder_name} (net {variant}) needs "
            f"{file.fname}, which is not in Keras' cache and could not be downloaded from "
            f"{file.url} ({error}). Download it where there is network and put it at {target} "
            "(Keras' cache: $KERAS_HOME/models, default ~/.keras/models), or pass the file's "
            "path to vgg_tf.import_weights or bin/import_weights."
        ) from error
    if file.sha256_prefix and not _sha256(path).startswith(file.sha256_prefix):
        raise ValueError(f"{path!r} is not the published {file.fname} (its sha256 does not "
                         f"start with {file.sha256_prefix}): delete it and download {file.url} "
                         "again.")
    return path


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_weights(
    source: str | os.PathLike, variant: str | None = None, *, include_top: bool | None = None,
    **options: Any,
) -> keras.Model:
    """A VGG model with the weights of a keras.applications, torchvision or timm file.

    The model takes RGB minus the file's mean RGB (vgg_tf's convention):
    :data:`CAFFE_MEAN_RGB` for keras.applications' files,
    :data:`TORCHVISION_MEAN_RGB` for torchvision's and timm's (``read_weights(
    source).mean_rgb`` says which). See :func:`read_weights` for the arguments;
    ``options`` go to :func:`vgg_tf.models.VGG` (``input_shape``, ``pooling``,
    ``classifier_activation``, ``data_format``, ``name``).

    Example:
        >>> model = import_weights("model.safetensors")  # timm's vgg16.tv_in1k  # doctest: +SKIP
        >>> model.name  # doctest: +SKIP
        'vgg16'
    """
    return read_weights(source, variant, include_top=include_top).build_model(**options)


def imported_config(imported: ImportedWeights, weights_url: str | None = None) -> dict:
    """The ``config.json`` of an imported model: the paper's recipe for it at S = 256.

    A full recipe (:func:`vgg_tf.config.paper_recipe`) with the network, crop
    224, ``scale_min = scale_max = 256`` (so the test scales are 256 and
    {224, 256, 288}), flips, the source's mean RGB, the classes (ImageNet's names
    for 1,000), where the weights came from (``weights_source``,
    ``weights_format``, ``weights_url``), and for batch norm the epsilon its
    statistics assume (``batch_norm_epsilon``, torch's 1e-5: a net built to
    fine-tune from it should use the same).
    """
    from vgg_tf import config as config_lib
    from vgg_tf import labels

    config = config_lib.paper_recipe()
    config.recipe = f"imported from {imported.source_format}"
    config.variant = imported.variant
    config.batch_norm = imported.batch_norm
    config.width_multiplier = imported.width_multiplier
    config.crop_size = 32 * FC6_SIDE
    config.scale_min = config.scale_max = 256
    config.flip = True
    config.mean_rgb = tuple(imported.mean_rgb)
    result = json.loads(config.to_json())
    classes = imported.classes
    result.update(
        num_classes=classes,
        class_names=list(labels.imagenet_class_names())
        if classes == labels.NUM_IMAGENET_CLASSES else None,
        weights_source=os.path.abspath(imported.source),
        weights_format=imported.source_format,
        weights_url=weights_url,
        batch_norm_epsilon=imported.batch_norm_epsilon if imported.batch_norm else None,
    )
    return result


def import_to_workdir(
    source: str | os.PathLike, workdir: str | os.PathLike, variant: str | None = None, *,
    overwrite: bool = False,
):
    """Writes a workdir (``model.keras``, ``config.json``) from a weight file, like a trained run.

    ``bin/evaluate``, ``bin/export``, ``bin/predict`` and ``--init_from`` take the
    result as they take a training run. ``source`` is a file as for
    :func:`read_weights`, or ``"imagenet"`` (with ``variant``; "vgg16_bn" for
    batch norm) for the file ``weights="imagenet"`` uses.

    Raises:
        ValueError: The file is not importable or has no classifier (a notop
            file), or ``workdir`` holds a run and ``overwrite`` is False.

    Returns:
        The :class:`vgg_tf.workdir.TrainedModel` written.
    """
    from vgg_tf import workdir as workdir_lib

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
        raise ValueError(f"{imported.source!r} has no fully-connected layers (a 'notop' file): "
                         "a workdir holds a classifier; import the file with the top.")
    recorded = workdir_lib.read_config(workdir)
    if recorded is not None or os.path.exists(os.path.join(workdir, workdir_lib.MODEL_FILE)):
        if not overwrite:
            raise ValueError(f"{workdir!r} already holds a run; pass --overwrite to replace it, "
                             "or choose another directory.")
        workdir_lib.clear_run(workdir)
    os.makedirs(workdir, exist_ok=True)
    model = imported.build_model(data_format="channels_last")
    config = imported_config(imported, url)
    workdir_lib.save_model(model, os.path.join(workdir, workdir_lib.MODEL_FILE))
    workdir_lib.write_config(workdir, config)
    directory = os.path.basename(os.path.abspath(workdir))
    return workdir_lib.TrainedModel(model, config, os.path.join(workdir, workdir_lib.MODEL_FILE),
                                    f"{imported.variant} ({directory})")


def imagenet_trained_model(variant: str, *, batch_norm: bool | None = None):
    """The ImageNet classifier of ``variant`` as a :class:`vgg_tf.workdir.TrainedModel`.

    ``weights="imagenet"`` (Keras' cache, or a download) with the config of an
    imported workdir (:func:`imported_config`): mean RGB, crop 224, test scales
    256 / {224, 256, 288}, the 1,000 class names. ``variant`` is "D", "VGG16",
    "vgg16" or "vgg16_bn".

    Example:
        >>> trained = imagenet_trained_model("D")  # doctest: +SKIP
        >>> trained.mean_rgb, trained.multi_scales()  # doctest: +SKIP
        ((123.68, 116.779, 103.939), (224, 256, 288))
    """
    from vgg_tf import workdir as workdir_lib

    name, parsed_bn = parse_variant(variant)
    bn = bool(parsed_bn if batch_norm is None else batch_norm)
    file = imagenet_weights_file(name, True, bn)
    path = imagenet_weights_path(name, True, bn)
    imported = read_weights(path, name, include_top=True, batch_norm=bn)
    model = imported.build_model(data_format="channels_last")
    return workdir_lib.TrainedModel(model, imported_config(imported, file.url), path,
                                    f"{name} (imagenet)")
