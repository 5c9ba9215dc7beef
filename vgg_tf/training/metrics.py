"""Top-k accuracy with one rule for training and evaluation.

An example counts as a top-k hit when fewer than k other classes score at
least as high as its true class. A tie is therefore a miss: a uniform output
(all classes equal) never scores, and an output with a NaN anywhere counts as
wrong. ``tf.math.in_top_k`` counts ties as hits; this rule does not.

Example:
    >>> top_k_hits([0, 1], [[0.5, 0.5], [0.2, 0.8]], ks=(1,)).numpy().tolist()
    [1.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def top_k_hits(labels, scores, ks: Sequence[int] = (1, 5)) -> tf.Tensor:
    """Number of top-k hits in a batch, one count per k: float32 ``[len(ks)]``.

    Args:
        labels: int ``[batch]`` true classes.
        scores: float ``[batch, classes]`` logits or probabilities (any monotone score).
        ks: The k of each count.

    Example:
        >>> top_k_hits([2], [[0.1, 0.3, 0.2]], ks=(1, 2)).numpy().tolist()
        [0.0, 1.0]
    """
    scores = tf.convert_to_tensor(scores)
    labels = tf.cast(labels, tf.int32)
    true_scores = tf.gather(scores, labels, axis=1, batch_dims=1)
    # Classes scoring at least as high as the true one, the true one excluded.
    rank = tf.reduce_sum(tf.cast(scores >= true_scores[:, None], tf.int32), axis=1) - 1
    finite = tf.reduce_all(tf.math.is_finite(scores), axis=1)
    return tf.stack(
        [tf.reduce_sum(tf.cast(tf.logical_and(finite, rank < k), tf.float32)) for k in ks]
    )


def has_top5_error(num_classes: int) -> bool:
    """Whether a top-5 error means anything: more than 5 classes. With 5 or fewer every
    label is among the top 5, and the rate is 0 whatever the net learned.

    Example:
        >>> has_top5_error(5), has_top5_error(10)
        (False, True)
    """
    return int(num_classes) > 5
