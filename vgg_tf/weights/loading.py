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
    that name is read as a path instead.

    Raises:
        ValueError: Nothing loadable at ``model``.
    """
    if isinstance(model, TrainedModel):
        return model
    model = os.fspath(model)
    if model.startswith(IMAGENET_PREFIX) and not os.path.exists(model):
        return importing.imagenet_trained_model(model[len(IMAGENET_PREFIX) :])
    return load_trained_model(model)


def load_trained_model(path: str | os.PathLike) -> TrainedModel:
    """Loads ``WORKDIR/model.keras`` (or a ``.keras`` file) and its ``config.json``.

    Args:
        path: A training workdir, or a ``.keras`` file (its ``config.json`` is
            looked for in the same directory and may be absent).

    Example:
        >>> trained = load_trained_model("workdirs/digits_A")  # doctest: +SKIP
        >>> trained.crop_size, trained.multi_scales()  # doctest: +SKIP
        (32, (32, 40, 48))
    """
    path = os.fspath(path)
    model_path = os.path.join(path, workdir_lib.MODEL_FILE) if os.path.isdir(path) else path
    if not (model_path.endswith(".keras") and os.path.isfile(model_path)):
        raise ValueError(
            f"Cannot load a model from {path!r}: expected a training workdir holding "
            f"{workdir_lib.MODEL_FILE}, or a .keras file."
        )
    model = keras.models.load_model(model_path, compile=False)
    config = workdir_lib.read_config(os.path.dirname(model_path) or ".") or {}
    directory = os.path.basename(os.path.dirname(os.path.abspath(model_path)))
    variant = config.get("variant") or model.name
    return TrainedModel(model, config, model_path, f"{variant} ({directory})")
