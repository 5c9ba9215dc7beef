"""Localisation nets exported for TensorFlow Serving (Appendix A): image bytes in, boxes out.

The graph decodes, guards, rescales to each Q, runs the nets densely through
:class:`vgg_tf.inference.localiser.Localiser`, merges the boxes of the
classifier's top classes and returns them in pixels. It is written as the
classifier's export is (:mod:`vgg_tf.serving.export`): a version appears only
when complete, on a local disk or any path ``tf.io.gfile`` serves, with
TensorFlow Serving's warm-up requests (:mod:`vgg_tf.serving.warmup`). As the
classifier's, ``serving_default`` answers a bad image in its own row (``ok``,
``error``) and ``serving_strict`` fails the whole call (``INVALID_ARGUMENT``).

Example:
    >>> export_localisation(["workdirs/loc_scr"], "workdirs/digits_A", "/models/loc")  # doctest: +SKIP
    '/models/loc/1'
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import tensorflow as tf

from vgg_tf.data.images import DEFAULT_LIMITS, ImageLimits, decode_rgb, refusals
from vgg_tf.inference.localiser import PAPER_OPTIONS, Localiser, LocaliserOptions, box_head
from vgg_tf.inference.models import load_models
from vgg_tf.inference.untracked import Untracked
from vgg_tf.serving import export as export_lib
from vgg_tf.weights.loading import load_model


class LocalisationServing(tf.Module):
    """The exported localisation graph: image bytes in, merged boxes in pixels out.

    ``serving_default``: ``image_bytes`` (string ``[N]``) -> ``boxes`` ``[N, k, 4]``
    (float32 pixel corners ymin, xmin, ymax, xmax, in the image as sent),
    ``classes`` ``[N, k]`` (int32, best first), ``scores`` ``[N, k]`` (the
    classifier's posteriors), with class names ``labels`` ``[N, k]``, and ``ok``
    ``[N]`` (bool) and ``error`` ``[N]`` (string): an image that is refused or does
    not decode answers its own row as failed (boxes and scores 0, classes -1,
    labels empty) and changes no other row. ``serving_strict``: the same but
    ``ok`` and ``error``; one bad image fails the call.
    """

    #: The signatures that take ``image_bytes``, which the warm-up requests call.
    warmup_signatures = (export_lib.SERVING_SIGNATURE, export_lib.STRICT_SIGNATURE)

    def __init__(self, localiser: Localiser, limits: ImageLimits = DEFAULT_LIMITS):
        super().__init__(name="vgg_localisation_serving")
        self._localiser = Untracked(localiser)
        self.limits = limits
        self._k = localiser.top_k
        names = localiser.class_names
        self._class_names = tuple(names) if names else None

    def _one_image(self, image_bytes: tf.Tensor):
        limits = self.limits
        image = tf.cast(
            decode_rgb(image_bytes, limits.max_pixels, limits.max_aspect_ratio), tf.float32
        )
        found = self._localiser.value.find(image)
        size = tf.cast(tf.shape(image)[:2], tf.float32)
        return found["boxes"] * tf.tile(size, [2]), found["classes"], found["scores"]

    def _each_image(self, image_bytes: tf.Tensor, answered: tf.Tensor | None = None):
        """Boxes, classes and scores, image by image; rows not ``answered`` are zeros (and
        classes -1), never decoded."""
        k = self._k
        failed = (tf.zeros([k, 4]), tf.fill([k], -1), tf.zeros([k]))

        def row(data_and_answered):
            data, answer = data_and_answered
            return tf.cond(answer, lambda: self._one_image(data), lambda: failed)

        if answered is None:
            answered = tf.ones_like(image_bytes, tf.bool)
        boxes, classes, scores = tf.map_fn(
            row,
            (image_bytes, answered),
            parallel_iterations=1,
            fn_output_signature=(
                tf.TensorSpec([k, 4], tf.float32),
                tf.TensorSpec([k], tf.int32),
                tf.TensorSpec([k], tf.float32),
            ),
        )
        outputs = {"boxes": boxes, "classes": classes, "scores": scores}
        if self._class_names is not None:
            names = tf.gather(tf.constant(self._class_names), tf.maximum(classes, 0))
            outputs["labels"] = tf.where(classes >= 0, names, "")
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(self, image_bytes):
        """Merged boxes of the top classes of a batch of encoded images; a bad image fails
        its own row only."""
        error = refusals(image_bytes, self.limits.max_pixels, self.limits.max_aspect_ratio)
        ok = tf.equal(error, "")
        return {**self._each_image(image_bytes, ok), "ok": ok, "error": error}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes_strict(self, image_bytes):
        """Merged boxes of the top classes of a batch of encoded images; a bad image fails
        the call."""
        return self._each_image(image_bytes)

    def signatures(self) -> dict:
        """The serving signatures, tracking the variables they read."""
        return export_lib.track_captured(
            self,
            {
                export_lib.SERVING_SIGNATURE: self.serve_bytes.get_concrete_function(),
                export_lib.STRICT_SIGNATURE: self.serve_bytes_strict.get_concrete_function(),
            },
        )


def export_localisation(
    models: Sequence[str],
    classifier: str,
    export_dir: str | os.PathLike,
    *,
    version: int | None = None,
    scales: Sequence[int] | None = None,
    top_k: int = 5,
    limits: ImageLimits = DEFAULT_LIMITS,
    options: LocaliserOptions = PAPER_OPTIONS,
    warmup: bool = True,
    verbose: int = 1,
) -> str:
    """Exports localisation net(s) and their classifier as ``export_dir/<version>/``.

    The graph decodes, guards, rescales to each Q, runs the nets densely, merges
    the boxes of the classifier's top classes and returns them in pixels
    (:class:`LocalisationServing`); TensorFlow Serving loads it like the
    classifier's export (:func:`vgg_tf.serving.export.export_saved_model`), and a
    version appears only when complete.

    Args:
        models: Localisation workdirs (several are fused).
        classifier: The classifier workdir whose scores rank the boxes.
        export_dir: The model base path TensorFlow Serving polls: a local path or
            one ``tf.io.gfile`` serves (``gs://``, ``s3://``, ``ram://``, ...).
        version: Version number (default: one more than the highest present).
        scales: Test scales Q (default: each localisation net's training S).
        top_k: Classes (each with its box) returned per image.
        limits: Images over them are refused before decoding.
        options: The windows' offsets and cropping, and the merge threshold
            (default: the paper's protocol; :class:`LocaliserOptions`).
        warmup: Write TensorFlow Serving's warm-up requests into the version.
        verbose: Print where the export went.

    Returns:
        The path of the new version directory.

    Example:
        >>> export_localisation(["workdirs/loc_scr"], "workdirs/digits_A", "/models/loc",
        ...                     options=LocaliserOptions(windows="crops"))  # doctest: +SKIP
        '/models/loc/1'
    """
    export_dir = os.fspath(export_dir)
    if version is None:
        version = (export_lib.existing_versions(export_dir) or [0])[-1] + 1
    final = export_lib.check_export_arguments(export_dir, version, top_k, None)
    nets = load_models(models, "localisation net")
    localiser = Localiser(nets, load_model(classifier), scales, top_k, options=options)
    module = LocalisationServing(localiser, limits)
    metadata = dict(
        task="localisation",
        sources=[n.path for n in nets],
        classifier=classifier,
        heads=[box_head(n) for n in nets],
        scales=list(localiser.scales),
        top_k=localiser.top_k,
        merge_threshold=options.merge_threshold,
        offsets=options.offsets,
        windows=options.windows,
        max_pixels=limits.max_pixels,
        max_aspect_ratio=limits.max_aspect_ratio,
        boxes="pixel corners (ymin, xmin, ymax, xmax) of the image as sent",
    )
    tf.io.gfile.makedirs(export_dir)
    export_lib.write_version(module, metadata, export_dir, final, warmup=warmup)
    if verbose:
        print(
            f"Exported localisation by {', '.join(n.name for n in nets)} "
            f"(Q={','.join(map(str, localiser.scales))}) to {final}"
        )
    return final
