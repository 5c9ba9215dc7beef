"""The models a command runs: one or a list, each through the one model loader.

``bin/evaluate`` (several models are fused), the localisation commands (several
localisation nets are pooled) and ``bin/predict --localiser`` take a list of
models; the command line splits its comma-separated flags into that list.
A single path given alone is one model: a path is never split at its commas.

Example:
    >>> nets = load_models(["workdirs/loc_scr", "workdirs/loc_pcr"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from vgg_tf.weights.loading import load_model
from vgg_tf.weights.trained import TrainedModel

Model = str | os.PathLike | TrainedModel


def load_models(models: Model | Sequence[Model], what: str = "model") -> list[TrainedModel]:
    """Each of ``models`` through :func:`vgg_tf.weights.loading.load_model`, in order.

    Args:
        models: Workdirs, ``.keras`` files, published names such as ``imagenet-D``
            or :class:`TrainedModel` objects; a single one alone is a list of one.
        what: What the models are, for the error message ("localisation net").

    Raises:
        ValueError: No model, or one that cannot be loaded (named).

    Example:
        >>> load_models([])
        Traceback (most recent call last):
        ...
        ValueError: No model given; expected one or more workdirs or .keras files.
    """
    if isinstance(models, (str, os.PathLike, TrainedModel)):
        models = [models]
    models = list(models)
    if not models:
        raise ValueError(f"No {what} given; expected one or more workdirs or .keras files.")
    return [load_model(model) for model in models]
