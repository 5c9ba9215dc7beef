"""The 1,000 ILSVRC-2012 classes, and naming a model's predictions.

The classes ship with the package (``vgg_tf/weights/imagenet2012_classes.tsv``):
in label order (the sorted WordNet ids, the order of TFDS' ``imagenet2012``
and of the published VGG weights), each with its WordNet id and its synset's
lemmas; the first lemma is the class's short name.

Example:
    >>> imagenet_class_names()[:2]
    ('tench', 'goldfish')
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Sequence

import numpy as np

NUM_IMAGENET_CLASSES = 1000


@functools.cache
def _imagenet_rows() -> tuple[tuple[str, str], ...]:
    text = (
        importlib.resources.files("vgg_tf.weights").joinpath("imagenet2012_classes.tsv").read_text()
    )
    rows = tuple(
        tuple(line.split("\t", 1)) for line in text.splitlines() if line and line[0] != "#"
    )
    assert len(rows) == NUM_IMAGENET_CLASSES, len(rows)
    return rows


def imagenet_class_ids() -> tuple[str, ...]:
    """WordNet ids of the 1,000 classes, in label order.

    Example:
        >>> imagenet_class_ids()[0]
        'n01440764'
    """
    return tuple(wnid for wnid, _ in _imagenet_rows())


def imagenet_class_names() -> tuple[str, ...]:
    """Short names (the first WordNet lemma) of the 1,000 classes, in label order.

    Example:
        >>> imagenet_class_names()[281]
        'tabby'
    """
    return tuple(lemmas.split(",")[0].strip() for _, lemmas in _imagenet_rows())


def decode_predictions(
    probabilities,
    top: int = 5,
    class_names: Sequence[str] | None = None,
    class_ids: Sequence[str] | None = None,
) -> list[list[tuple[str, str, float]]]:
    """The ``top`` classes of each row of ``probabilities``, best first, as keras.applications.

    Args:
        probabilities: ``(batch, classes)`` scores.
        top: How many classes per row.
        class_names: Names of the classes; ImageNet's when there are 1,000 and
            none are given, else the class indices as text.
        class_ids: Ids of the classes (WordNet ids for ImageNet); the names by default.

    Returns:
        Per row, a list of ``(class_id, class_name, score)``.

    Raises:
        ValueError: ``probabilities`` is not 2-D, ``top`` is not positive, or the
            names do not match the number of classes.

    Example:
        >>> probs = np.zeros((1, 1000)); probs[0, 281] = 0.9; probs[0, 285] = 0.1
        >>> decode_predictions(probs, top=2)[0]
        [('n02123045', 'tabby', 0.9), ('n02124075', 'Egyptian cat', 0.1)]
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2:
        raise ValueError(
            f"probabilities of shape {probabilities.shape} are not accepted; expected "
            "(batch, classes)."
        )
    if not isinstance(top, int) or top < 1:
        raise ValueError(f"top={top!r} is not accepted; expected a positive integer.")
    num_classes = probabilities.shape[1]
    if class_names is None:
        if num_classes == NUM_IMAGENET_CLASSES:
            class_names, class_ids = imagenet_class_names(), class_ids or imagenet_class_ids()
        else:
            class_names = tuple(str(i) for i in range(num_classes))
    class_ids = class_ids or class_names
    if len(class_names) != num_classes or len(class_ids) != num_classes:
        raise ValueError(
            f"{len(class_names)} class names for {num_classes} classes; expected one per class."
        )
    results = []
    for row in probabilities:
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(class_ids[i], class_names[i], float(row[i])) for i in best])
    return results
