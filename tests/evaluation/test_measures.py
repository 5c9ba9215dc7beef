"""Appendix B's measures (vgg_tf.evaluation.measures) against hand computations on a small
made-up multi-label set: VOC's mean average precision (11 points for 2007, all points for
2012) and Caltech's mean class recall."""

import numpy as np
import pytest

from vgg_tf.evaluation import measures

# Six images, four classes; each column a class's one-vs-rest scores.
SCORES = np.array(
    [
        [0.9, 0.1, 0.6, 0.0],
        [0.8, 0.9, 0.2, 0.0],
        [0.7, 0.3, 0.9, 0.0],
        [0.6, 0.8, 0.1, 0.0],
        [0.5, 0.2, 0.5, 0.0],
        [0.4, 0.7, 0.3, 0.0],
    ]
)
TARGETS = np.array(
    [
        [1, 0, 1, 0],
        [0, 1, 1, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 0],
        [0, 1, 0, 0],
        [1, 0, 0, 0],
    ],
    bool,
)
# By hand, each class ranked by its scores (P: precision where a positive is found):
# class 0: positives at ranks 1, 3, 6: P = 1, 2/3, 1/2 at recall 1/3, 2/3, 1.
#   all points: (1 + 2/3 + 1/2) / 3 = 13/18.
#   11 points: recall >= 0, .1, .2, .3 -> 1; .4, .5, .6 -> 2/3; .7 ... 1 -> 1/2:
#   (4 + 3 * 2/3 + 4 / 2) / 11 = 8/11.
# class 1: ranking 1, 3, 5, 2, 4, 0; positives (1, 4) at ranks 1 and 5: P = 1, 2/5.
#   all points: (1 + 2/5) / 2 = 7/10; 11 points: (6 * 1 + 5 * 2/5) / 11 = 8/11.
# class 2: ranking 2, 0, 4, 5, 1, 3; positives (0, 1) at ranks 2 and 5: P = 1/2, 2/5.
#   all points: (1/2 + 2/5) / 2 = 9/20; 11 points: (6 / 2 + 5 * 2/5) / 11 = 5/11.
# class 3: no positive image, left out of the mean.
ALL_POINTS = [13 / 18, 7 / 10, 9 / 20]
ELEVEN_POINTS = [8 / 11, 8 / 11, 5 / 11]


def test_average_precision_of_each_class_by_hand():
    for c in range(3):
        assert measures.average_precision(SCORES[:, c], TARGETS[:, c]) == pytest.approx(
            ALL_POINTS[c]
        )
        assert measures.average_precision(
            SCORES[:, c], TARGETS[:, c], eleven_point=True
        ) == pytest.approx(ELEVEN_POINTS[c])
    assert np.isnan(measures.average_precision(SCORES[:, 3], TARGETS[:, 3]))


def test_mean_average_precision_voc2007_and_voc2012_by_hand():
    assert measures.score("map", SCORES, None, TARGETS) == pytest.approx(np.mean(ALL_POINTS))
    assert measures.score("map_voc2007", SCORES, None, TARGETS) == pytest.approx(
        np.mean(ELEVEN_POINTS)
    )
    assert abs(np.mean(ALL_POINTS) - np.mean(ELEVEN_POINTS)) > 0.01  # the two differ here
    with pytest.raises(ValueError, match="No class has a positive image"):
        measures.mean_average_precision(SCORES, np.zeros_like(TARGETS))


def test_mean_class_recall_by_hand():
    # Seven images of three classes; predicted by the highest score.
    labels = [0, 0, 0, 0, 1, 1, 2]
    predicted = [0, 0, 0, 1, 1, 0, 2]
    decisions = np.eye(3)[predicted]
    # Recall 3/4, 1/2 and 1/1; accuracy 5/7.
    assert measures.score("mean_class_recall", decisions, labels, None) == pytest.approx(
        (3 / 4 + 1 / 2 + 1) / 3
    )
    assert measures.score("accuracy", decisions, labels, None) == pytest.approx(5 / 7)
    with pytest.raises(ValueError, match=r"measure='top5' is not accepted; expected one of"):
        measures.score("top5", decisions, labels, None)
