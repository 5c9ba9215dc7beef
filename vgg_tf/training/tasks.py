"""What a run learns: classification (§3) or localisation (Appendix A).

One training loop serves both (:mod:`vgg_tf.training.steps`, :mod:`vgg_tf.training.loop`); a
task gives the head's width, the per-example loss, the counts summed over an
epoch (its ``Totals``, named), and the rates reported from them.

- Classification: softmax cross-entropy; top-1 and top-5 error.
- Localisation: the last fully-connected layer predicts a box, ``(cx, cy, w,
  h)`` relative to the crop (:mod:`vgg_tf.data.boxes`); one box for all classes
  (SCR, single-class regression) or one per class (PCR, per-class regression),
  of which the loss reads only the ground-truth class's. The loss is Euclidean,
  as Caffe's ``EuclideanLoss``: half the squared distance. The target is the
  ground-truth box with the largest part inside the crop; the error counts a
  crop whose box (for the true class) overlaps no ground-truth box by IoU > 0.5.

Example:
    >>> task = Localisation("pcr", num_classes=3)
    >>> task.outputs
    12
    >>> labels = tf.constant([1])
    >>> frame_boxes = tf.constant([[[0.0, 0.0, 1.0, 1.0]]])
    >>> outputs = tf.constant([[9.0] * 4 + [0.5, 0.5, 1.0, 1.0] + [9.0] * 4])
    >>> float(task.loss((labels, frame_boxes), outputs)[0])
    0.0
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf

from vgg_tf.data import boxes as boxes_lib
from vgg_tf.training import metrics
from vgg_tf.training.recipe import HEADS, TASKS

_UNIT = (0.0, 0.0, 1.0, 1.0)  # the crop's own frame (a tuple: no tensor at import time)


class ClassificationTotals(NamedTuple):
    """A classification epoch's sums: what its rates are computed from."""

    loss: float  # the per-example losses summed
    top1_hits: float
    top5_hits: float
    examples: float


class LocalisationTotals(NamedTuple):
    """A localisation epoch's sums: what its rates are computed from."""

    loss: float  # the per-example losses summed
    localised: float  # crops whose box overlaps a ground-truth box by IoU > 0.5
    overlap: float  # the crops' best IoU summed
    examples: float


class Classification:
    """Softmax cross-entropy over the classes; top-1 and top-5 error (§3.1, §4).

    Top-5 error is reported only for more than 5 classes: with 5 or fewer every
    label is among the top 5, and the rate is 0 whatever the net learned.

    Example:
        >>> list(Classification(3).metrics), list(Classification(10).metrics)
        (['top1_error'], ['top1_error', 'top5_error'])
    """

    name = "classification"
    uses_boxes = False
    #: The sums of an epoch, in the order of :meth:`counts`.
    Totals = ClassificationTotals

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.outputs = num_classes
        self.activation = "softmax"
        #: Rates reported beside the loss, and their short names in the progress bar.
        self.metrics = {"top1_error": "top1_err"}
        if metrics.has_top5_error(num_classes):
            self.metrics["top5_error"] = "top5_err"

    def loss(self, targets: tf.Tensor, outputs: tf.Tensor) -> tf.Tensor:
        """Per-example cross-entropy of the logits ``outputs``."""
        return keras.losses.sparse_categorical_crossentropy(
            tf.cast(targets, tf.int32), outputs, from_logits=True
        )

    def counts(self, targets: tf.Tensor, outputs: tf.Tensor, per_example: tf.Tensor) -> tf.Tensor:
        """A batch's :class:`ClassificationTotals` as float32 [4], summed over replicas and steps."""
        top1, top5 = tf.unstack(metrics.top_k_hits(tf.cast(targets, tf.int32), outputs, ks=(1, 5)))
        return tf.stack(
            ClassificationTotals(
                loss=tf.reduce_sum(per_example),
                top1_hits=top1,
                top5_hits=top5,
                examples=tf.cast(tf.shape(per_example)[0], tf.float32),
            )
        )

    @staticmethod
    def rates(totals: ClassificationTotals) -> dict:
        """Mean loss, top-1 and top-5 error of an epoch."""
        count = max(totals.examples, 1.0)
        return dict(
            loss=totals.loss / count,
            top1_error=1 - totals.top1_hits / count,
            top5_error=1 - totals.top5_hits / count,
        )

    @staticmethod
    def accuracy(rates: dict) -> float:
        """What the plateau schedule watches."""
        return 1.0 - rates["top1_error"]

    def describe(self, rates: dict) -> str:
        """The reported error rates in words."""
        top5 = f", top-5 error {rates['top5_error']:.2%}" if "top5_error" in self.metrics else ""
        return f"top-1 error {rates['top1_error']:.2%}{top5}"


class Localisation:
    """Box regression with a Euclidean loss (Appendix A), SCR or PCR.

    Targets are ``(labels int [B], boxes [B, G, 4])``: the ground-truth boxes of
    each crop in its frame (corners at 0 and 1), zero-area rows as padding.
    """

    name = "localisation"
    uses_boxes = True
    metrics = {"error": "loc_err", "mean_iou": "iou"}
    Totals = LocalisationTotals

    def __init__(self, head: str, num_classes: int):
        if head not in HEADS:
            raise ValueError(f"Unknown head {head!r}; expected one of {', '.join(HEADS)}.")
        self.head = head
        self.num_classes = num_classes
        self.outputs = 4 if head == "scr" else 4 * num_classes
        self.activation = None  # linear: box coordinates

    def class_boxes(self, outputs: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """The predicted ``(cx, cy, w, h)`` for ``labels``: [B, 4] (PCR reads that class's)."""
        if self.head == "scr":
            return outputs
        per_class = tf.reshape(outputs, [-1, self.num_classes, 4])
        return tf.gather(per_class, tf.cast(labels, tf.int32), batch_dims=1)

    @staticmethod
    def target_boxes(frame_boxes: tf.Tensor) -> tf.Tensor:
        """Per crop, the ground-truth box with the largest part inside the crop: [B, 4]."""
        inside = tf.clip_by_value(frame_boxes, 0.0, 1.0)
        area = (inside[..., 2] - inside[..., 0]) * (inside[..., 3] - inside[..., 1])
        return tf.gather(frame_boxes, tf.argmax(area, axis=1, output_type=tf.int32), batch_dims=1)

    def loss(self, targets, outputs: tf.Tensor) -> tf.Tensor:
        """Per-example Euclidean loss, ``0.5 * ||predicted - target||²`` in (cx, cy, w, h)."""
        labels, frame_boxes = targets
        target = boxes_lib.encode(self.target_boxes(frame_boxes), _UNIT)
        return 0.5 * tf.reduce_sum(tf.square(self.class_boxes(outputs, labels) - target), axis=-1)

    def best_overlaps(self, targets, outputs: tf.Tensor) -> tf.Tensor:
        """Per crop, the predicted box's highest IoU with a ground-truth box: [B]."""
        labels, frame_boxes = targets
        predicted = boxes_lib.decode(self.class_boxes(outputs, labels), _UNIT)
        overlaps = tf.map_fn(
            lambda pair: tf.reduce_max(boxes_lib.iou(pair[0][None], pair[1])[0]),
            (predicted, tf.cast(frame_boxes, tf.float32)),
            fn_output_signature=tf.float32,
        )
        return overlaps

    def counts(self, targets, outputs: tf.Tensor, per_example: tf.Tensor) -> tf.Tensor:
        """A batch's :class:`LocalisationTotals` as float32 [4], summed over replicas and steps."""
        overlaps = self.best_overlaps(targets, outputs)
        return tf.stack(
            LocalisationTotals(
                loss=tf.reduce_sum(per_example),
                localised=tf.reduce_sum(tf.cast(overlaps > 0.5, tf.float32)),
                overlap=tf.reduce_sum(overlaps),
                examples=tf.cast(tf.shape(per_example)[0], tf.float32),
            )
        )

    @staticmethod
    def rates(totals: LocalisationTotals) -> dict:
        """Mean loss, localisation error and mean IoU of an epoch."""
        count = max(totals.examples, 1.0)
        return dict(
            loss=totals.loss / count,
            error=1 - totals.localised / count,
            mean_iou=totals.overlap / count,
        )

    @staticmethod
    def accuracy(rates: dict) -> float:
        return 1.0 - rates["error"]

    @staticmethod
    def describe(rates: dict) -> str:
        return (
            f"localisation error {rates['error']:.2%} (true class, IoU > 0.5), "
            f"mean IoU {rates['mean_iou']:.3f}"
        )


def task_for(config, num_classes: int) -> Classification | Localisation:
    """The task of a recipe (``config.task``, ``config.head``).

    Example:
        >>> task_for({"task": "localisation", "head": "scr"}, 10).outputs
        4
    """
    name = config.get("task") or "classification"
    if name == "classification":
        return Classification(num_classes)
    if name == "localisation":
        return Localisation(config.get("head") or "scr", num_classes)
    raise ValueError(f"Unknown task {name!r}; expected one of {', '.join(TASKS)}.")
