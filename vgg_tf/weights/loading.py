"""Loading a model to run: a training workdir, a ``.keras`` file, or published ImageNet weights.

Every command that takes a model (``--model``, ``--classifier``, ``--init_from``)
reads it through :func:`load_model`, which returns a :class:`TrainedModel`: the
Keras classifier with what evaluation, export and fine-tuning need from its
training (crop size, mean RGB, test scales, class names), read from the
workdir's ``config.json`` or from the weight set's own convention.

Example:
    >>> trained = load_model("imagenet-D")  # doctest: +SKIP
    >>> trained.mean_rgb, trained.multi_scales()  # doctest: +SKIP
    ((123.68, 116.779, 103.939), (224, 256, 288))
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from vgg_tf import workdir as workdir_lib
from vgg_tf.nets import layers  # noqa: F401  (registers the LRN layer for load_model)
from vgg_tf.weights import importing
from vgg_tf.weights.trained import TrainedModel

#: ``--model imagenet-<variant>``: the published ImageNet weights of that variant.
IMAGENET_PREFIX = "imagenet-"


def load_model(model: str | os.PathLike | TrainedModel) -> TrainedModel:
    """A :class:`TrainedModel` from a workdir, a ``.keras`` file or ``"imagenet-<variant>"``.

    ``"imagenet-D"`` (or ``-E``, ``-vgg16_bn``, ...) takes the published ImageNet
    weights of that variant (Keras' cache, or a download); a file or folder of
    that name is read as a path instead. A workdir or file may be on any
    filesystem TensorFlow reads (``gs://``, ``s3://``, ``ram://``).

    Raises:
        ValueError: Nothing loadable at ``model``.
    """
    if isinstance(model, TrainedModel):
        return model
    model = os.fspath(model)
    if is_published_name(model):
        return importing.imagenet_trained_model(model[len(IMAGENET_PREFIX) :])
    return load_trained_model(model)


def is_published_name(model: str | os.PathLike) -> bool:
    """Whether ``model`` names published weights (``imagenet-D``) rather than a path.

    Example:
        >>> is_published_name("imagenet-D"), is_published_name("workdirs/digits_A")
        (True, False)
    """
    text = os.fspath(model)
    return text.startswith(IMAGENET_PREFIX) and not os.path.exists(text)


def recorded_config(model: str | os.PathLike) -> dict:
    """What a model records of its training, read without loading it; {} when nothing is.

    A workdir's ``config.json`` (a ``.keras`` file's: the one beside it), or
    for ``imagenet-<variant>`` the published weights' convention
    (:func:`vgg_tf.weights.importing.published_config`; the file is not read).

    Example:
        >>> recorded_config("imagenet-E")["mean_rgb"]
        [123.68, 116.779, 103.939]
    """
    if is_published_name(model):
        return importing.published_config(os.fspath(model)[len(IMAGENET_PREFIX) :])
    path = os.fspath(model)
    folder = path if tf.io.gfile.isdir(path) else os.path.dirname(path) or "."
    return workdir_lib.read_config(folder) or {}


#: What :func:`origin_of` copies from a model's recorded config.
_ORIGIN_FIELDS = (
    "recipe",
    "dataset",
    "variant",
    "batch_norm",
    "width_multiplier",
    "mean_rgb",
    "weights_format",
    "weights_source",
    "weights_url",
)


def origin_of(model: str | os.PathLike) -> dict:
    """What a run records of the model it starts from (``init_from``), read without loading it.

    The name as given; the file the weights come from (a workdir's
    ``model.keras``, or the published file in Keras' cache with its URL); and
    from its recorded config, the recipe, dataset, network and mean RGB it was
    trained with.

    Example:
        >>> origin = origin_of("imagenet-D")
        >>> origin["model"], origin["weights_format"], origin["path"].endswith(".h5")
        ('imagenet-D', 'keras_applications', True)
    """
    config = recorded_config(model)
    path = os.fspath(model)
    if is_published_name(model):
        path = config["weights_source"]
    elif tf.io.gfile.isdir(path):
        path = os.path.join(path, workdir_lib.MODEL_FILE)
    recorded = {field: config[field] for field in _ORIGIN_FIELDS if field in config}
    return {"model": os.fspath(model), "path": _absolute(path), **recorded}


def _absolute(path: str) -> str:
    """``path`` made absolute, unless it names a remote filesystem (``gs://...``)."""
    return path if workdir_lib.is_remote(path) else os.path.abspath(path)


def load_trained_model(path: str | os.PathLike) -> TrainedModel:
    """Loads ``WORKDIR/model.keras`` (or a ``.keras`` file) and its ``config.json``.

    Args:
        path: A training workdir, or a ``.keras`` file (its ``config.json`` is
            looked for in the same directory and may be absent); local, or on a
            filesystem TensorFlow reads (``gs://``, ``s3://``, ``ram://``).

    Example:
        >>> trained = load_trained_model("workdirs/digits_A")  # doctest: +SKIP
        >>> trained.crop_size, trained.multi_scales()  # doctest: +SKIP
        (32, (32, 40, 48))
    """
    path = os.fspath(path)
    model_path = path
    if tf.io.gfile.isdir(path):
        model_path = os.path.join(path, workdir_lib.MODEL_FILE)
    is_file = tf.io.gfile.exists(model_path) and not tf.io.gfile.isdir(model_path)
    if not (model_path.endswith(".keras") and is_file):
        raise ValueError(
            f"Cannot load a model from {path!r}: expected a training workdir holding "
            f"{workdir_lib.MODEL_FILE}, or a .keras file."
        )
    model = keras.models.load_model(model_path, compile=False)
    config = workdir_lib.read_config(os.path.dirname(model_path) or ".") or {}
    directory = os.path.basename(os.path.dirname(_absolute(model_path)))
    variant = config.get("variant") or model.name
    return TrainedModel(model, config, model_path, f"{variant} ({directory})")
