"""The measures Appendix B reports its transfer results in, from scores and labels.

* VOC-2007 and VOC-2012: mean average precision over the classes, each class
  ranked by its one-vs-rest classifier's scores; VOC-2007's average precision
  is interpolated at 11 recall points (0, 0.1, ..., 1), VOC-2012's at every
  point of the precision-recall curve (the two devkits' ``VOCap``).
* Caltech-101 and Caltech-256: mean class recall, the share of each class's
  test images classified as that class, averaged over the classes.
* ``accuracy``: the share of test images classified correctly (the default of
  ``bin/features --linear_eval`` for other datasets).

VOC's "difficult" objects are not told apart here: an image is positive for
every class it holds.

Example:
    >>> round(average_precision([0.9, 0.8, 0.7], [True, False, True]), 4)  # (1 + 2/3) / 2
    0.8333
    >>> round(average_precision([0.9, 0.8, 0.7], [True, False, True], eleven_point=True), 4)
    0.8485
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: What ``bin/features --linear_eval`` can report: Appendix B's measures and accuracy.
MEASURES = ("accuracy", "mean_class_recall", "map", "map_voc2007")

#: Each measure as a table names it.
MEASURE_NAMES = {
    "accuracy": "accuracy",
    "mean_class_recall": "mean class recall",
    "map": "mean average precision (all points, VOC-2012)",
    "map_voc2007": "mean average precision (11 points, VOC-2007)",
}


def check_measure(measure: str) -> str:
    """``measure`` if it is one of :data:`MEASURES`; one line naming it otherwise.

    Example:
        >>> check_measure("top5")
        Traceback (most recent call last):
        ...
        ValueError: measure='top5' is not accepted; expected one of accuracy, mean_class_recall, map, map_voc2007.
    """
    if measure not in MEASURES:
        raise ValueError(
            f"measure={measure!r} is not accepted; expected one of {', '.join(MEASURES)}."
        )
    return measure


def average_precision(scores: Sequence[float], positives: Sequence[bool], *, eleven_point=False):
    """One class's average precision: its images ranked by ``scores``, highest first.

    Precision at each rank is interpolated as the highest precision at that recall
    or beyond. All points (VOC-2012): the area under that curve. 11 points
    (VOC-2007): its mean at recall 0, 0.1, ..., 1.

    Args:
        scores: ``[N]`` the classifier's scores for the class.
        positives: ``[N]`` whether each image holds the class.
        eleven_point: VOC-2007's 11-point interpolation.

    Returns:
        The average precision in [0, 1]; NaN for a class without a positive image.
    """
    scores, positives = np.asarray(scores, np.float64), np.asarray(positives, bool)
    if not positives.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = positives[order]
    true_positives = np.cumsum(hits)
    recall = true_positives / hits.sum()
    precision = true_positives / np.arange(1, len(hits) + 1)
    if eleven_point:
        return float(
            np.mean(
                [
                    precision[recall >= t].max() if (recall >= t).any() else 0.0
                    for t in np.linspace(0.0, 1.0, 11)
                ]
            )
        )
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # best precision from here on
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def mean_average_precision(scores, targets, *, eleven_point: bool = False) -> float:
    """The mean of the classes' :func:`average_precision` (those with a positive image).

    Args:
        scores: ``[N, classes]`` one-vs-rest scores.
        targets: ``[N, classes]`` whether each image holds each class.
        eleven_point: VOC-2007's 11-point interpolation.

    Example:
        >>> mean_average_precision([[0.9, 0.1], [0.2, 0.8]], [[1, 0], [0, 1]])
        1.0
    """
    scores, targets = np.asarray(scores), np.asarray(targets, bool)
    per_class = [
        average_precision(scores[:, c], targets[:, c], eleven_point=eleven_point)
        for c in range(targets.shape[1])
        if targets[:, c].any()
    ]
    if not per_class:
        raise ValueError("No class has a positive image; mean average precision is undefined.")
    return float(np.mean(per_class))


def mean_class_recall(predicted, labels) -> float:
    """The share of each class's images predicted as that class, averaged over the classes
    present in ``labels`` (Caltech-101/256's measure).

    Example:
        >>> mean_class_recall([0, 0, 0, 1], [0, 0, 1, 1])  # accuracy 0.75
        0.75
        >>> mean_class_recall([0, 0, 0, 0], [0, 0, 0, 1])  # accuracy 0.75
        0.5
    """
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    return float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)]))


def score(measure: str, decisions, labels, targets) -> float:
    """``measure`` of a classifier's ``decisions`` ``[N, classes]`` (one-vs-rest scores).

    Args:
        measure: One of :data:`MEASURES`.
        decisions: ``[N, classes]`` scores; the highest is the predicted class.
        labels: ``[N]`` each image's class (accuracy, mean class recall).
        targets: ``[N, classes]`` the classes each image holds (mean AP).
    """
    check_measure(measure)
    decisions = np.asarray(decisions)
    if measure.startswith("map"):
        return mean_average_precision(decisions, targets, eleven_point=measure == "map_voc2007")
    predicted = decisions.argmax(axis=1)
    if measure == "mean_class_recall":
        return mean_class_recall(predicted, labels)
    return float(np.mean(predicted == np.asarray(labels)))
