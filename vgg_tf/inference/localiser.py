"""Localising objects with trained nets: Appendix A's dense protocol, in one graph.

A localisation net (:mod:`vgg_tf.training.tasks`) is applied densely, like the
classifier (§3.2): made fully-convolutional, it gives at each location of its
output map a box relative to the crop window that location sees
(:func:`vgg_tf.data.boxes.window_grid`): one box (SCR) or one per class (PCR).

The classes are ranked as ``bin/evaluate`` and ``bin/predict`` rank them: the
classifier's dense protocol of §3.2 at its own multi-scale set, each image
averaged with its horizontal flip when the classifier was trained with flips
(:func:`vgg_tf.inference.protocol.dense_probabilities`, what
:class:`vgg_tf.inference.protocol.ModelEvaluator`'s ``"dense"`` protocol runs).
For each of the top 5, the boxes of every location, every scale and every
localisation net (their union: several nets fuse this way) are merged greedily
by OverFeat's match score (:func:`vgg_tf.data.boxes.greedy_merge`), each box
weighted by the classifier's posterior of that class at that location (its
score map at the box's scale, resampled to the box map's size); the merged box
with the highest total is the class's box. With ``windows="crops"`` each
window is cut out and run alone instead, zero-padded as in training (§3.2's
multi-crop boundary conditions), which nets with a 32-pixel crop need.

The same :class:`Localiser` serves ``bin/evaluate --task localisation``,
``bin/predict --boxes`` and the exported SavedModel
(:func:`vgg_tf.serving.localisation.export_localisation`), so they give the
same boxes.

Boxes are normalised corners ``(ymin, xmin, ymax, xmax)`` of the image (the
SavedModel multiplies them by the image's size: pixels).

Example:
    >>> localiser = Localiser([load_model("workdirs/loc_scr")], load_model("workdirs/digits_A"),
    ...                       options=LocaliserOptions(windows="crops"))  # doctest: +SKIP
    >>> found = localiser.localise(image)  # {"classes", "scores", "boxes"}  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from vgg_tf.data import boxes as boxes_lib
from vgg_tf.data.images import scaled_size
from vgg_tf.inference.protocol import check_scales, dense_probabilities, preprocess
from vgg_tf.inference.untracked import Untracked
from vgg_tf.nets.fcn import STRIDE, to_fully_convolutional
from vgg_tf.weights.trained import TrainedModel

#: How each window's box is computed: ``"dense"`` runs the net fully-convolutionally
#: over the whole image (Appendix A's protocol: a window's features also see the
#: image around it), ``"crops"`` cuts every window out and runs it alone, its
#: borders zero-padded as in training (the boundary conditions of §3.2's
#: multi-crop evaluation).
WINDOWS = ("dense", "crops")


@dataclasses.dataclass(frozen=True)
class LocaliserOptions:
    """How the localiser lays out its windows, sees them and merges their boxes.

    The defaults are the paper's protocol (Appendix A); ``bin/evaluate``,
    ``bin/export`` and ``bin/predict`` take them from ``--offsets`` and ``--windows``.

    Attributes:
        offsets: Input shifts per axis. 1 (the paper's protocol) applies each net
            once per scale, its windows 32 pixels apart; n > 1 also applies it to
            the rescaled image shifted by 32/n, 2*32/n, ... pixels (where the image
            stays at least a crop), windows 32/n apart: OverFeat's multiple
            pooling offsets, which the paper did not use and notes "can further
            improve the results".
        windows: ``"dense"`` (the paper's) or ``"crops"`` (:data:`WINDOWS`): the
            same windows, each seen alone as in training. A net whose crop is
            one stride (32 pixels: a 1x1 last pooling map) has only the zero
            padding at the crop's borders to tell where in the crop the object
            lies; densely applied, that padding is replaced by the image around
            the window and its boxes drift (BUILD.md, "Localisation").
        merge: How two boxes of a class are matched for merging
            (:data:`vgg_tf.data.boxes.MERGE_CRITERIA`): ``"overfeat"``, OverFeat's
            match score (the paper's "greedy merging procedure of Sermanet et al.";
            :func:`vgg_tf.data.boxes.match_score`), or ``"iou"``.
        merge_threshold: The largest match score that merges (``"overfeat"``) or the
            smallest IoU (``"iou"``); None gives the criterion's default (1 and 0.5,
            :func:`vgg_tf.data.boxes.default_merge_threshold`), which the object then holds.

    Raises:
        ValueError: An offset count outside [1, 32], an unknown ``windows`` or
            ``merge``, or a threshold the criterion does not accept.

    Example:
        >>> LocaliserOptions(windows="crops").offsets
        1
        >>> LocaliserOptions().merge, LocaliserOptions().merge_threshold
        ('overfeat', 1.0)
        >>> LocaliserOptions(offsets=0)
        Traceback (most recent call last):
        ...
        ValueError: offsets=0 is not accepted; expected an integer in [1, 32] (1: the paper's protocol).
    """

    offsets: int = 1
    windows: str = "dense"
    merge: str = "overfeat"
    merge_threshold: float | None = None

    def __post_init__(self):
        offsets = self.offsets
        if not isinstance(offsets, int) or isinstance(offsets, bool) or not 1 <= offsets <= STRIDE:
            raise ValueError(
                f"offsets={offsets!r} is not accepted; expected an integer in "
                f"[1, {STRIDE}] (1: the paper's protocol)."
            )
        if self.windows not in WINDOWS:
            raise ValueError(
                f"windows={self.windows!r} is not accepted; expected one of {WINDOWS}."
            )
        if self.merge not in boxes_lib.MERGE_CRITERIA:
            raise ValueError(
                f"merge={self.merge!r} is not accepted; expected one of {boxes_lib.MERGE_CRITERIA}."
            )
        threshold = self.merge_threshold
        if threshold is None:
            threshold = boxes_lib.default_merge_threshold(self.merge)
        try:
            threshold = boxes_lib.check_merge_threshold(threshold, self.merge)
        except ValueError:
            accepted = "an IoU in [0, 1]" if self.merge == "iou" else "a match score >= 0"
            raise ValueError(
                f"merge_threshold={self.merge_threshold!r} is not accepted with "
                f"merge={self.merge!r}; expected {accepted}."
            ) from None
        object.__setattr__(self, "merge_threshold", threshold)


#: Appendix A's protocol: windows 32 pixels apart, seen densely, merged by OverFeat's match score.
PAPER_OPTIONS = LocaliserOptions()


def box_head(trained: TrainedModel) -> str:
    """``"scr"`` or ``"pcr"`` for a localisation net; ValueError for a classifier."""
    if trained.task != "localisation":
        raise ValueError(
            f"Model {trained.path!r} is not a localisation net (its config has task="
            f"{trained.task!r}); expected a run of bin/train --task localisation."
        )
    return trained.config.get("head") or "scr"


class _Net:
    """A fully-convolutional net and what its input needs (held out of tf.Module tracking)."""

    def __init__(self, trained: TrainedModel, head: str):
        trained.check_rgb()
        self.fcn = to_fully_convolutional(trained.model, head="logits")
        self.mean = trained.mean_to_subtract  # None: the net subtracts its mean itself
        self.crop = trained.crop_size
        self.head = head
        self.path = trained.path

    def __call__(self, image: tf.Tensor, q: int) -> tf.Tensor:
        return self.run(self.scaled(image, q))

    def scaled(self, image: tf.Tensor, q: int) -> tf.Tensor:
        """The net's input: the image rescaled to Q, less the mean it does not subtract
        itself, [1, h, w, 3]."""
        return preprocess(image[None], q, self.mean)

    def run(self, scaled: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.fcn(scaled)[0], tf.float32)


class Localiser(tf.Module):
    """The dense localisation protocol of Appendix A for single images.

    Args:
        box_models: One or more localisation nets (their boxes are pooled).
        classifier: The classifier whose class scores rank and weight the boxes.
        scales: Test scales Q of the localisation nets; defaults to each one's
            training scale.
        top_k: Classes localised per image (5 in ILSVRC).
        options: The windows' offsets and cropping, and the merge criterion
            (default: the paper's protocol).
        class_scales: The scales Q at which the classifier ranks the classes
            (§3.2's dense protocol); default its own multi-scale set, as
            ``bin/evaluate --protocol dense`` and ``bin/predict`` use.
    """

    def __init__(
        self,
        box_models: Sequence[TrainedModel],
        classifier: TrainedModel,
        scales: Sequence[int] | None = None,
        top_k: int = 5,
        options: LocaliserOptions = PAPER_OPTIONS,
        class_scales: Sequence[int] | None = None,
    ):
        super().__init__(name="vgg_localiser")
        if not box_models:
            raise ValueError("No localisation net given; expected one or more workdirs.")
        classifier.check_classifier()
        self.num_classes = classifier.num_classes
        self.class_names = classifier.class_names
        nets = []
        for trained in box_models:
            head = box_head(trained)
            expected = 4 if head == "scr" else 4 * self.num_classes
            if int(trained.model.get_layer("fc8").units) != expected:
                raise ValueError(
                    f"Localisation net {trained.path!r} ({head.upper()}) has "
                    f"{trained.model.get_layer('fc8').units} outputs; with the classifier's "
                    f"{self.num_classes} classes expected {expected}."
                )
            nets.append(_Net(trained, head))
        self._nets = Untracked(nets)
        self._classifier = Untracked(_Net(classifier, "classes"))
        self.class_scales = (
            check_scales(class_scales, classifier.crop_size)
            if class_scales
            else classifier.multi_scales()
        )
        self.class_flip = classifier.flip
        if scales:
            crop = max(net.crop for net in nets)
            self.scales = check_scales(scales, crop)
        else:
            self.scales = tuple(sorted({q for m in box_models for q in m.single_scale()}))
        self.top_k = min(int(top_k), self.num_classes)
        self.options = options
        spec = [tf.TensorSpec([None, None, 3], tf.float32)]
        self.localise = tf.function(self.find, input_signature=spec)
        self.localise_classes = tf.function(
            self._localise_classes, input_signature=spec + [tf.TensorSpec([None], tf.int32)]
        )

    def _class_maps(self, image: tf.Tensor) -> dict[int, tf.Tensor]:
        """The classifier's score maps (logits) at each scale: Q -> [h, w, classes]."""
        return {q: self._classifier.value(image, q) for q in self.scales}

    def find(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """The top classes of one ``(H, W, 3)`` image, their posteriors and merged boxes.

        The classes and posteriors are the classifier's dense protocol (§3.2) at
        :attr:`class_scales`, with the flip when it was trained with flips: those
        ``ModelEvaluator(classifier, class_scales).probabilities("dense", image)`` gives.

        Not traced: for use inside another graph (the localisation SavedModel's);
        :attr:`localise` is the same as a ``tf.function``.
        """
        classifier = self._classifier.value
        probabilities = dense_probabilities(
            classifier.fcn, image[None], self.class_scales, classifier.mean, self.class_flip
        )[0]
        scores, classes = tf.math.top_k(probabilities, k=self.top_k)
        return {
            "classes": classes,
            "scores": scores,
            "boxes": self._boxes_for(image, classes, self._class_maps(image)),
        }

    def _localise_classes(self, image: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
        """The merged box of each of ``classes`` (such as the true class): [K, 4]."""
        return self._boxes_for(image, classes, self._class_maps(image))

    def _shifts(self, q: int, crop: int) -> list[tuple[int, int]]:
        """Input shifts (dy, dx) at scale Q: those that leave at least a crop."""
        offsets = self.options.offsets
        steps = [s for s in range(0, STRIDE, STRIDE // offsets)[:offsets] if q - s >= crop]
        return [(dy, dx) for dy in steps for dx in steps]

    def _boxes_for(self, image, classes, maps) -> tf.Tensor:
        shape = tf.shape(image)
        classifier = self._classifier.value
        candidates, weights = [], []
        for net in self._nets.value:
            for q in self.scales:
                scaled_hw = tf.cast(scaled_size(shape[0], shape[1], q), tf.float32)
                inputs, class_inputs = net.scaled(image, q), classifier.scaled(image, q)
                for dy, dx in self._shifts(q, max(net.crop, classifier.crop)):
                    out = self._window_map(net, inputs, dy, dx)  # [h, w, 4 (* classes)]
                    class_map = (
                        maps[q]
                        if (dy, dx) == (0, 0) and self.options.windows == "dense"
                        else (self._window_map(classifier, class_inputs, dy, dx))
                    )
                    found, weight = self._located(out, class_map, classes, net, scaled_hw, dy, dx)
                    candidates.append(found)
                    weights.append(weight)
        candidates = tf.transpose(tf.concat(candidates, 0), [1, 0, 2])  # [K, N, 4]
        weights = tf.transpose(tf.concat(weights, 0))  # [K, N]

        def best(args):
            merged, _, _ = boxes_lib.greedy_merge(
                *args, self.options.merge_threshold, self.options.merge
            )
            return merged[0]  # the highest total score

        found = tf.map_fn(best, (candidates, weights), fn_output_signature=tf.float32)
        return tf.clip_by_value(tf.reshape(found, [-1, 4]), 0.0, 1.0)

    def _window_map(self, net: _Net, inputs: tf.Tensor, dy: int, dx: int) -> tf.Tensor:
        """The net's outputs at the windows of ``inputs`` shifted by ``(dy, dx)``: [h, w, n]."""
        shifted = inputs[:, dy:, dx:]
        if self.options.windows == "dense":
            return net.run(shifted)
        size = [1, net.crop, net.crop, 1]
        patches = tf.image.extract_patches(
            shifted, sizes=size, strides=[1, STRIDE, STRIDE, 1], rates=[1, 1, 1, 1], padding="VALID"
        )
        crops = tf.reshape(patches, [-1, net.crop, net.crop, 3])  # the same windows, row-major
        out = tf.cast(net.fcn(crops), tf.float32)  # [h * w, 1, 1, n]
        return tf.reshape(out, tf.concat([tf.shape(patches)[1:3], [-1]], 0))

    def _located(self, out, class_map, classes, net: _Net, scaled_hw, dy: int, dx: int):
        """One output map's boxes for ``classes`` ([L, K, 4], normalised) and their weights."""
        map_hw = tf.shape(out)[:2]
        windows = boxes_lib.window_grid(map_hw[0], map_hw[1], net.crop, STRIDE)
        windows = (windows + [dy, dx, dy, dx]) / tf.tile(scaled_hw, [2])  # normalised
        params = tf.reshape(out, [-1, 1 if net.head == "scr" else self.num_classes, 4])
        if net.head == "pcr":
            params = tf.gather(params, classes, axis=1)  # [L, K, 4]
        found = boxes_lib.decode(params, windows[:, None, :])
        found = tf.broadcast_to(found, [tf.shape(windows)[0], tf.size(classes), 4])
        # The classifier's posterior at each window (its map resampled to this one's).
        posterior = tf.image.resize(tf.nn.softmax(class_map), map_hw)
        weight = tf.gather(tf.reshape(posterior, [-1, self.num_classes]), classes, axis=1)
        return found, weight
