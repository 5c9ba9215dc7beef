"""Box geometry for object localisation (the paper's Appendix A), in TensorFlow.

Conventions:

* A box is its corners ``(ymin, xmin, ymax, xmax)``, as TFDS ``BBoxFeature`` and
  ``tf.image`` store them, float32, in any consistent unit (normalised to the
  image or in pixels); boxes live in the last axis, size 4.
* The localisation net regresses "a 4-D vector storing its centre coordinates,
  width, and height" (Appendix A), relative to the crop window the net saw:
  ``(cx, cy, w, h)`` with ``cx = (box centre x - window xmin) / window width``,
  ``cy = (box centre y - window ymin) / window height``, ``w = box width /
  window width``, ``h = box height / window height``. They are not clipped: a
  box reaching past the window has values outside [0, 1]. Windows must have
  positive sides.

Every function runs eagerly and inside ``tf.function`` (the serving graph uses
them), with shapes that may be unknown until run time.

Example:
    >>> window = [0.0, 0.0, 100.0, 200.0]
    >>> params = encode([[0.0, 50.0, 50.0, 150.0]], window)
    >>> params.numpy().tolist()
    [[0.5, 0.25, 0.5, 0.5]]
    >>> decode(params, window).numpy().tolist()
    [[0.0, 50.0, 50.0, 150.0]]
"""

from __future__ import annotations

import numbers

import tensorflow as tf

__all__ = [
    "MERGE_CRITERIA",
    "check_merge_threshold",
    "decode",
    "default_merge_threshold",
    "encode",
    "greedy_merge",
    "iou",
    "localisation_hits",
    "match_score",
    "window_grid",
]

#: How :func:`greedy_merge` matches two boxes: OverFeat's match score (the default,
#: :func:`match_score`) or their IoU (:func:`iou`).
MERGE_CRITERIA = ("overfeat", "iou")


def _as_boxes(values, name: str, rank: int | None = None) -> tf.Tensor:
    """``values`` as float32 whose last axis (of static size 4) holds boxes."""
    tensor = tf.cast(values, tf.float32)
    shape = tensor.shape
    if shape.rank is not None:
        if shape.rank == 0 or (shape[-1] is not None and shape[-1] != 4):
            raise ValueError(
                f"{name} must have a last axis of size 4 (ymin, xmin, ymax, "
                f"xmax or cx, cy, w, h); got shape {shape}."
            )
        if rank is not None and shape.rank != rank:
            raise ValueError(f"{name} must have rank {rank} ([count, 4]); got shape {shape}.")
    return tensor


def _check_threshold(threshold, name: str) -> float:
    if (
        not isinstance(threshold, numbers.Real)
        or isinstance(threshold, bool)
        or not 0.0 <= threshold <= 1.0
    ):
        raise ValueError(f"{name} must be a number in [0, 1]; got {threshold!r}.")
    return float(threshold)


def encode(boxes, windows) -> tf.Tensor:
    """Corner boxes -> ``(cx, cy, w, h)`` relative to their crop windows.

    Args:
        boxes: ``[..., 4]`` corners ``(ymin, xmin, ymax, xmax)``.
        windows: ``[..., 4]`` corners of the crop windows, broadcastable against
            ``boxes``, in the same unit.

    Returns:
        ``[..., 4]`` float32 ``(cx, cy, w, h)``, the regression target of Appendix A.

    Example:
        >>> encode([[0.0, 0.0, 32.0, 32.0]], [[0.0, 0.0, 64.0, 64.0]]).numpy().tolist()
        [[0.25, 0.25, 0.5, 0.5]]
    """
    ymin, xmin, ymax, xmax = tf.unstack(_as_boxes(boxes, "boxes"), axis=-1)
    wymin, wxmin, wymax, wxmax = tf.unstack(_as_boxes(windows, "windows"), axis=-1)
    width, height = wxmax - wxmin, wymax - wymin
    return tf.stack(
        [
            ((xmin + xmax) / 2 - wxmin) / width,
            ((ymin + ymax) / 2 - wymin) / height,
            (xmax - xmin) / width,
            (ymax - ymin) / height,
        ],
        axis=-1,
    )


def decode(params, windows) -> tf.Tensor:
    """``(cx, cy, w, h)`` relative to crop windows -> corner boxes (inverse of :func:`encode`).

    Args:
        params: ``[..., 4]`` ``(cx, cy, w, h)`` as :func:`encode` returns them.
        windows: ``[..., 4]`` corners of the crop windows, broadcastable against ``params``.

    Returns:
        ``[..., 4]`` float32 corners ``(ymin, xmin, ymax, xmax)`` in the windows' unit.

    Example:
        >>> decode([[0.5, 0.5, 1.0, 1.0]], [[10.0, 20.0, 74.0, 84.0]]).numpy().tolist()
        [[10.0, 20.0, 74.0, 84.0]]
    """
    cx, cy, w, h = tf.unstack(_as_boxes(params, "params"), axis=-1)
    wymin, wxmin, wymax, wxmax = tf.unstack(_as_boxes(windows, "windows"), axis=-1)
    width, height = wxmax - wxmin, wymax - wymin
    centre_x, centre_y = wxmin + cx * width, wymin + cy * height
    half_w, half_h = w * width / 2, h * height / 2
    return tf.stack(
        [centre_y - half_h, centre_x - half_w, centre_y + half_h, centre_x + half_w], axis=-1
    )


def iou(a, b) -> tf.Tensor:
    """Pairwise intersection over union of two sets of corner boxes.

    Args:
        a: ``[N, 4]`` corner boxes.
        b: ``[M, 4]`` corner boxes in the same unit.

    Returns:
        ``[N, M]`` float32; a pair whose union has no area (zero-area boxes) gives 0.

    Example:
        >>> iou([[0.0, 0.0, 2.0, 2.0]], [[0.0, 1.0, 2.0, 3.0], [5.0, 5.0, 6.0, 6.0]]).numpy()
        array([[0.33333334, 0.        ]], dtype=float32)
    """
    a, b = _as_boxes(a, "a", rank=2), _as_boxes(b, "b", rank=2)
    aymin, axmin, aymax, axmax = tf.unstack(a[:, None, :], axis=-1)  # [N, 1] each
    bymin, bxmin, bymax, bxmax = tf.unstack(b[None, :, :], axis=-1)  # [1, M] each
    inter_h = tf.maximum(tf.minimum(aymax, bymax) - tf.maximum(aymin, bymin), 0.0)
    inter_w = tf.maximum(tf.minimum(axmax, bxmax) - tf.maximum(axmin, bxmin), 0.0)
    intersection = inter_h * inter_w
    area_a = tf.maximum(aymax - aymin, 0.0) * tf.maximum(axmax - axmin, 0.0)
    area_b = tf.maximum(bymax - bymin, 0.0) * tf.maximum(bxmax - bxmin, 0.0)
    return tf.math.divide_no_nan(intersection, area_a + area_b - intersection)


def match_score(a, b) -> tf.Tensor:
    """OverFeat's match score of every pair of two sets of corner boxes: small is close.

    OverFeat (Sermanet et al., 2014, §4.3) merges the pair of boxes of smallest
    ``match_score``, computed "using the sum of the distance between centers of
    the two bounding boxes and the intersection area of the boxes", and stops when
    it exceeds a threshold t; it gives neither units nor t. Read literally, adding
    the intersection area would make a larger overlap a worse match, so here both
    terms are made unit-free and grow as the boxes part:

    ``distance between the centres / the mean of the two diagonals
    + (1 - intersection area / the smaller box's area)``

    0 for two identical boxes (and for a box inside another, centred on it); at
    least 1 for boxes that do not overlap, so the default threshold 1 never merges
    them. Two boxes of one size shifted sideways by a fraction f of their side
    score 1.71 f (0.57 at f = 1/3, where their IoU is 0.5); diagonally, 3 f - f^2.

    Args:
        a: ``[N, 4]`` corner boxes.
        b: ``[M, 4]`` corner boxes in the same unit.

    Returns:
        ``[N, M]`` float32 scores, >= 0; +inf between two boxes without area whose
        centres differ.

    Example:
        >>> match_score([[0.0, 0.0, 2.0, 2.0]], [[0.0, 0.0, 2.0, 2.0], [0.0, 1.0, 2.0, 3.0]]).numpy()
        array([[0.       , 0.8535534]], dtype=float32)
    """
    a, b = _as_boxes(a, "a", rank=2), _as_boxes(b, "b", rank=2)
    aymin, axmin, aymax, axmax = tf.unstack(a[:, None, :], axis=-1)  # [N, 1] each
    bymin, bxmin, bymax, bxmax = tf.unstack(b[None, :, :], axis=-1)  # [1, M] each
    distance = tf.sqrt(
        ((aymin + aymax - bymin - bymax) / 2) ** 2 + ((axmin + axmax - bxmin - bxmax) / 2) ** 2
    )
    a_h, a_w = tf.maximum(aymax - aymin, 0.0), tf.maximum(axmax - axmin, 0.0)
    b_h, b_w = tf.maximum(bymax - bymin, 0.0), tf.maximum(bxmax - bxmin, 0.0)
    mean_diagonal = (tf.sqrt(a_h**2 + a_w**2) + tf.sqrt(b_h**2 + b_w**2)) / 2
    inter_h = tf.maximum(tf.minimum(aymax, bymax) - tf.maximum(aymin, bymin), 0.0)
    inter_w = tf.maximum(tf.minimum(axmax, bxmax) - tf.maximum(axmin, bxmin), 0.0)
    shared = tf.math.divide_no_nan(inter_h * inter_w, tf.minimum(a_h * a_w, b_h * b_w))
    apart = tf.where(
        mean_diagonal > 0,
        tf.math.divide_no_nan(distance, mean_diagonal),
        tf.where(distance > 0, float("inf"), 0.0),
    )
    return apart + (1.0 - shared)


def default_merge_threshold(criterion: str) -> float:
    """The threshold :func:`greedy_merge` uses with ``criterion`` when given none.

    OverFeat's match score: 1 (boxes that do not overlap never merge; overlapping
    ones merge while their centres are closer, in mean diagonals, than the share
    of the smaller box they have in common). IoU: 0.5.

    Example:
        >>> default_merge_threshold("overfeat"), default_merge_threshold("iou")
        (1.0, 0.5)
    """
    _check_criterion(criterion)
    return 1.0 if criterion == "overfeat" else 0.5


def _check_criterion(criterion) -> str:
    if criterion not in MERGE_CRITERIA:
        raise ValueError(
            f"criterion={criterion!r} is not accepted; expected one of {MERGE_CRITERIA}."
        )
    return criterion


def check_merge_threshold(threshold, criterion: str) -> float:
    """``threshold`` as a float if ``criterion`` accepts it: a match score >= 0 (OverFeat's)
    or an IoU in [0, 1]; one line naming it otherwise.

    Example:
        >>> check_merge_threshold(2, "overfeat")
        2.0
    """
    _check_criterion(criterion)
    if criterion == "iou":
        return _check_threshold(threshold, "threshold")
    if (
        not isinstance(threshold, numbers.Real)
        or isinstance(threshold, bool)
        or not 0.0 <= threshold < float("inf")
    ):
        raise ValueError(
            f"threshold must be a match score >= 0 (OverFeat's criterion); got {threshold!r}."
        )
    return float(threshold)


def greedy_merge(boxes, scores, threshold: float | None = None, criterion: str = "overfeat"):
    """Greedily merges one class's boxes, as OverFeat (Sermanet et al., 2014, §4.3) does.

    Repeatedly takes the two current boxes that match best: by default the pair
    of smallest OverFeat match score (:func:`match_score`), merged while that score
    is at most ``threshold``; with ``criterion="iou"`` the pair of highest IoU,
    merged while it is at least ``threshold``. Merging stops at the first pair that
    does not qualify; at most ``N - 1`` merges. A merged box is the mean of all the
    original boxes merged into it (OverFeat averages the two boxes it merges, which
    would weigh the last box merged as much as all the others together), scored
    with the sum of their scores (OverFeat's cumulated class outputs).

    Args:
        boxes: ``[N, 4]`` corner boxes of one class (``N`` may be unknown until run time).
        scores: ``[N]`` their confidences.
        threshold: The largest match score that merges (``"overfeat"``, default 1) or
            the smallest IoU that merges (``"iou"``, in [0, 1], default 0.5).
        criterion: ``"overfeat"`` or ``"iou"`` (:data:`MERGE_CRITERIA`).

    Returns:
        ``(merged_boxes [N, 4], merged_scores [N], count)``: the ``count`` (int32)
        surviving boxes sorted by score, highest first, then zeros, so that the
        shapes do not depend on the values (as the serving graph needs).

    Example:
        >>> boxes = [[0.0, 0.0, 10.0, 10.0], [0.0, 1.0, 10.0, 11.0], [50.0, 50.0, 60.0, 60.0]]
        >>> merged, merged_scores, count = greedy_merge(boxes, [0.5, 0.25, 0.5])
        >>> int(count), merged_scores.numpy().tolist()
        (2, [0.75, 0.5, 0.0])
        >>> merged.numpy().tolist()[0]
        [0.0, 0.5, 10.0, 10.5]
    """
    criterion = _check_criterion(criterion)
    if threshold is None:
        threshold = default_merge_threshold(criterion)
    threshold = check_merge_threshold(threshold, criterion)
    boxes = _as_boxes(boxes, "boxes", rank=2)
    scores = tf.cast(scores, tf.float32)
    if scores.shape.rank is not None and scores.shape.rank != 1:
        raise ValueError(f"scores must have rank 1 ([N]); got shape {scores.shape}.")
    n = tf.shape(boxes)[0]
    tf.debugging.assert_equal(
        tf.shape(scores)[0], n, message="greedy_merge: boxes and scores differ in length"
    )
    # Both criteria as a cost, lowest first: a pair merges while its cost <= limit.
    if criterion == "overfeat":
        cost_of, limit = match_score, threshold
    else:
        cost_of, limit = (lambda a, b: -iou(a, b)), -threshold

    # Each current box is kept as the running sum of its members' coordinates and
    # their count, so that a merged box is the plain mean of the original boxes.
    def body(step, _, sums, counts, score_sums, alive):
        means = sums / counts[:, None]
        pair_alive = alive[:, None] & alive[None, :] & ~tf.eye(n, dtype=tf.bool)
        costs = tf.reshape(tf.where(pair_alive, cost_of(means, means), float("inf")), [-1])
        best = tf.argmin(costs, output_type=tf.int32)
        i, j = best // n, best % n  # i < j: the first minimum of a symmetric matrix
        merge = costs[best] <= limit
        into_i = tf.one_hot(i, n) * tf.cast(merge, tf.float32)
        sums += into_i[:, None] * sums[j][None, :]
        counts += into_i * counts[j]
        score_sums += into_i * score_sums[j]
        alive &= ~(tf.one_hot(j, n, on_value=True, off_value=False) & merge)
        return step + 1, ~merge, sums, counts, score_sums, alive

    def cond(step, done, *_):
        return ~done & (step < n - 1)

    _, _, sums, counts, score_sums, alive = tf.while_loop(
        cond,
        body,
        (tf.constant(0), tf.constant(False), boxes, tf.ones([n]), scores, tf.ones([n], tf.bool)),
    )

    order = tf.argsort(
        tf.where(alive, score_sums, -float("inf")), direction="DESCENDING", stable=True
    )
    count = tf.reduce_sum(tf.cast(alive, tf.int32))
    kept = tf.range(n) < count
    merged_boxes = tf.where(kept[:, None], tf.gather(sums / counts[:, None], order), 0.0)
    merged_scores = tf.where(kept, tf.gather(score_sums, order), 0.0)
    return merged_boxes, merged_scores, count


def window_grid(map_height, map_width, crop_size, stride=32) -> tf.Tensor:
    """The crop windows the locations of a fully-convolutional output map see.

    Location ``(i, j)`` of the map sees the ``crop_size`` square window at
    ``(i * stride, j * stride)`` of the (scaled) input image; ``stride`` is 32 for
    VGG's five 2x2 poolings.

    Args:
        map_height: Rows of the output map (an int or a scalar int tensor).
        map_width: Columns of the output map.
        crop_size: The side of the training crop, in pixels.
        stride: The map's stride in input pixels.

    Returns:
        ``[map_height * map_width, 4]`` float32 pixel corners in row-major order,
        matching ``tf.reshape(score_map, [-1, channels])``.

    Example:
        >>> window_grid(1, 2, crop_size=224).numpy().tolist()
        [[0.0, 0.0, 224.0, 224.0], [0.0, 32.0, 224.0, 256.0]]
    """
    for name, value, least in (
        ("map_height", map_height, 1),
        ("map_width", map_width, 1),
        ("crop_size", crop_size, 1),
        ("stride", stride, 1),
    ):
        if isinstance(value, bool) or (
            isinstance(value, numbers.Number)
            and (not isinstance(value, numbers.Integral) or value < least)
        ):
            raise ValueError(f"{name} must be an integer >= {least}; got {value!r}.")
    stride_f, crop_f = tf.cast(stride, tf.float32), tf.cast(crop_size, tf.float32)
    rows = tf.cast(tf.range(map_height), tf.float32) * stride_f
    cols = tf.cast(tf.range(map_width), tf.float32) * stride_f
    ymin, xmin = tf.meshgrid(rows, cols, indexing="ij")
    ymin, xmin = tf.reshape(ymin, [-1]), tf.reshape(xmin, [-1])
    return tf.stack([ymin, xmin, ymin + crop_f, xmin + crop_f], axis=-1)


def localisation_hits(
    pred_classes, pred_boxes, true_class, true_boxes, iou_threshold: float = 0.5
) -> tf.Tensor:
    """ILSVRC's localisation criterion for one image.

    The image counts as localised when one of the predicted (class, box) pairs
    (the top 5 in ILSVRC) has the true class and an IoU strictly above
    ``iou_threshold`` with at least one ground-truth box.

    Args:
        pred_classes: ``[K]`` predicted class ids.
        pred_boxes: ``[K, 4]`` their corner boxes.
        true_class: The ground-truth class id (scalar).
        true_boxes: ``[G, 4]`` the ground-truth boxes, same unit; none gives False.
        iou_threshold: The IoU, in [0, 1], a box must exceed.

    Returns:
        A scalar bool tensor.

    Example:
        >>> bool(localisation_hits([3, 7], [[0.0, 0.0, 1.0, 1.0]] * 2, 7, [[0.0, 0.0, 1.0, 1.0]]))
        True
    """
    iou_threshold = _check_threshold(iou_threshold, "iou_threshold")
    pred_classes = tf.cast(pred_classes, tf.int64)
    if pred_classes.shape.rank is not None and pred_classes.shape.rank != 1:
        raise ValueError(f"pred_classes must have rank 1 ([K]); got shape {pred_classes.shape}.")
    good_box = tf.reduce_any(iou(pred_boxes, true_boxes) > iou_threshold, axis=1)
    right_class = tf.equal(pred_classes, tf.cast(true_class, tf.int64))
    return tf.reduce_any(right_class & good_box)
