"""SavedModel export for TensorFlow Serving (and ``.keras`` for Keras scripts).

``export_saved_model`` writes ``BASE/<version>/``, TensorFlow Serving's model
base-path layout: the server polls BASE and serves the highest numeric
version. The version is written into a hidden temporary directory inside BASE
and published only when complete, so a polling server never loads a
half-written version; an existing version is never overwritten. BASE may be
any path ``tf.io.gfile`` serves (``gs://``, ``s3://``, ``hdfs://``, ``ram://``):
there, with no atomic rename of a directory, the files are moved one by one,
``saved_model.pb`` last (:func:`write_version`).

Each version holds TensorFlow Serving's warm-up requests
(``assets.extra/tf_serving_warmup_requests``, :mod:`vgg_tf.serving.warmup`): the
server runs them at load time, before the version takes traffic.

The graph holds the whole test-time pipeline -- decoding, RGB conversion, the
decompression-bomb guard, rescaling to each Q, mean subtraction (by the net's
own first layer when it has one, as every run's model has), the
fully-convolutional net, score-map and flip averaging (paper §3.2) -- built
from the same functions as ``bin/evaluate``'s dense protocol
(:mod:`vgg_tf.inference.protocol`), so both give the same probabilities.

Signatures:

* ``serving_default``: ``image_bytes`` (string ``[N]``: JPEG/PNG/GIF/BMP/WebP) ->
  ``probabilities`` ``[N, classes]``, ``classes`` ``[N, k]`` (int32, best
  first), ``scores`` ``[N, k]``, when the training data had class names
  ``labels`` ``[N, k]`` (string), and ``ok`` ``[N]`` (bool) and ``error``
  ``[N]`` (string). Batch-safe: an image that is refused or does not decode
  answers its own row as failed (``ok`` False, ``error`` the reason,
  probabilities and scores 0, classes -1, labels empty) and changes no other
  row; the others are answered exactly as they would be alone.
* ``serving_strict``: the same input -> the same outputs but ``ok`` and ``error``;
  one bad image fails the whole call with ``INVALID_ARGUMENT``.
* ``predict_images``: ``images`` (float32 RGB in [0, 255], ``[N, H, W, 3]``,
  any size) -> the outputs of ``serving_strict``.

Loading needs only TensorFlow: ``tf.saved_model.load(path)`` or
``tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Sequence

import keras
import tensorflow as tf

from vgg_tf.data.images import DEFAULT_LIMITS, ImageLimits, decode_rgb, refusals
from vgg_tf.inference.protocol import check_scales, dense_probabilities
from vgg_tf.inference.untracked import Untracked
from vgg_tf.nets.fcn import to_fully_convolutional
from vgg_tf.serving.warmup import write_warmup_requests
from vgg_tf.weights.loading import load_model
from vgg_tf.weights.trained import TrainedModel
from vgg_tf.workdir import atomic_path, is_remote, remove_dead_temporaries, temporary_tag

SERVING_SIGNATURE = "serving_default"
STRICT_SIGNATURE = "serving_strict"
IMAGES_SIGNATURE = "predict_images"
METADATA_FILE = os.path.join("assets.extra", "vgg_tf_export.json")
#: The file a server loads a version by: published last where files move one by one.
SAVED_MODEL_FILE = "saved_model.pb"


class ServingModule(tf.Module):
    """The exported graph: the dense protocol behind three serving signatures.

    Args:
        fcn: Fully-convolutional net returning logits (``head="logits"``).
        scales: Test scales Q averaged by the graph.
        mean_rgb: Training-set mean RGB subtracted after rescaling; None when ``fcn``
            subtracts it itself (:attr:`TrainedModel.mean_to_subtract`).
        class_names: Optional names; adds the ``labels`` output.
        top_k: How many classes ``classes``/``scores`` list (capped at the
            number of classes).
        limits: Images over them are refused before decoding.
        flip: Also average the horizontally flipped image (as trained).

    Call :meth:`signatures` to get the concrete functions to save: it also
    tracks the variables they capture. :attr:`warmup_signatures` and
    :attr:`limits` say what the warm-up requests may call.
    """

    #: The signatures that take ``image_bytes``, which the warm-up requests call.
    warmup_signatures = (SERVING_SIGNATURE, STRICT_SIGNATURE)

    def __init__(
        self,
        fcn: keras.Model,
        scales: Sequence[int],
        mean_rgb: Sequence[float] | None,
        class_names: Sequence[str] | None = None,
        top_k: int = 5,
        limits: ImageLimits = DEFAULT_LIMITS,
        flip: bool = True,
    ):
        super().__init__(name="vgg_serving")
        # The Keras model itself is not tracked: its Keras variable wrappers would be
        # saved as handles of their own, and TF Serving's (TF1) loader would restore
        # those and leave the ones the graph reads uninitialised. The module tracks
        # the tf.Variables the signatures capture instead (see `signatures`).
        self._fcn = Untracked(fcn)
        self._scales = tuple(int(q) for q in scales)
        self._mean = None if mean_rgb is None else tuple(float(m) for m in mean_rgb)
        self._num_classes = int(fcn.output_shape[-1])
        self.top_k = min(int(top_k), self._num_classes)
        self._class_names = tuple(class_names) if class_names else None
        self.limits = limits
        self._flip = bool(flip)

    def _outputs(self, probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
        scores, classes = tf.math.top_k(probabilities, k=self.top_k)
        outputs = {"probabilities": probabilities, "classes": classes, "scores": scores}
        if self._class_names is not None:
            outputs["labels"] = tf.gather(tf.constant(self._class_names), classes)
        return outputs

    def _guard_empty(self, n: tf.Tensor, compute) -> dict[str, tf.Tensor]:
        # An empty batch through Conv2D fails on CPU builds: answer it without the net.
        empty = lambda: tf.zeros([0, self._num_classes], tf.float32)  # noqa: E731
        return self._outputs(tf.cond(n > 0, compute, empty))

    def _one_image(self, image_bytes: tf.Tensor) -> tf.Tensor:
        image = decode_rgb(image_bytes, self.limits.max_pixels, self.limits.max_aspect_ratio)
        image = tf.cast(image, tf.float32)
        return dense_probabilities(
            self._fcn.value, image[None], self._scales, self._mean, self._flip
        )[0]

    def _each_image(self, image_bytes: tf.Tensor, answered: tf.Tensor | None = None):
        """Probabilities ``[N, classes]``, image by image (each rescales to its own shape;
        one at a time bounds memory); rows not ``answered`` are zeros, never decoded."""
        zeros = tf.zeros([self._num_classes], tf.float32)

        def row(data_and_answered):
            data, answer = data_and_answered
            return tf.cond(answer, lambda: self._one_image(data), lambda: zeros)

        if answered is None:
            answered = tf.ones_like(image_bytes, tf.bool)
        return tf.map_fn(
            row,
            (image_bytes, answered),
            fn_output_signature=tf.TensorSpec([self._num_classes], tf.float32),
            parallel_iterations=1,
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(self, image_bytes):
        """Class posteriors of a batch of encoded images; a bad image fails its row only."""
        limits = self.limits
        error = refusals(image_bytes, limits.max_pixels, limits.max_aspect_ratio)
        ok = tf.equal(error, "")
        outputs = self._guard_empty(tf.size(image_bytes), lambda: self._each_image(image_bytes, ok))
        # A failed row lists no class: -1, a score of 0 and no label.
        outputs["classes"] = tf.where(ok[:, None], outputs["classes"], -1)
        outputs["scores"] = tf.where(ok[:, None], outputs["scores"], 0.0)
        if "labels" in outputs:
            outputs["labels"] = tf.where(ok[:, None], outputs["labels"], "")
        return {**outputs, "ok": ok, "error": error}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes_strict(self, image_bytes):
        """Class posteriors of a batch of encoded images; a bad image fails the call."""
        return self._guard_empty(tf.size(image_bytes), lambda: self._each_image(image_bytes))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def serve_images(self, images):
        """Class posteriors of a batch of same-size float RGB images in [0, 255]."""
        return self._guard_empty(
            tf.shape(images)[0],
            lambda: dense_probabilities(
                self._fcn.value, images, self._scales, self._mean, self._flip
            ),
        )

    def signatures(self) -> dict:
        """The serving signatures, tracking the variables they read."""
        return track_captured(
            self,
            {
                SERVING_SIGNATURE: self.serve_bytes.get_concrete_function(),
                STRICT_SIGNATURE: self.serve_bytes_strict.get_concrete_function(),
                IMAGES_SIGNATURE: self.serve_images.get_concrete_function(),
            },
        )


def track_captured(module: tf.Module, functions: dict) -> dict:
    """Makes ``module`` track the variables its concrete ``functions`` read; returns them.

    Keras models are held untracked (see :class:`ServingModule`): the SavedModel
    then holds exactly the tf.Variables the graph reads, which TF1 loaders restore.
    """
    captured = {}
    for function in functions.values():
        for variable in function.variables:
            captured[id(variable)] = variable
    module.captured_variables = list(captured.values())
    return functions


def existing_versions(export_dir: str) -> list[int]:
    """The numeric versions under a model base path, in order (none for a missing one).

    Any path ``tf.io.gfile`` serves (local, ``gs://``, ``ram://``, ...).

    Example:
        >>> existing_versions("/no/such/base")
        []
    """
    if not tf.io.gfile.isdir(export_dir):
        return []
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(export_dir))
    return sorted(
        int(name)
        for name in names
        if name.isdigit() and tf.io.gfile.isdir(os.path.join(export_dir, name))
    )


def _sync_tree(root: str, files: bool = True) -> None:
    """fsyncs the files (unless ``files`` is False) and directories under local ``root``."""
    for directory, _, names in os.walk(root):
        for name in names if files else ():
            with open(os.path.join(directory, name), "rb") as f:
                os.fsync(f.fileno())
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if not files:
            break


def export_saved_model(
    model: str | os.PathLike | TrainedModel,
    export_dir: str | os.PathLike,
    *,
    version: int | None = None,
    scales: Sequence[int] | None = None,
    top_k: int = 5,
    limits: ImageLimits = DEFAULT_LIMITS,
    keras_output: str | os.PathLike | None = None,
    warmup: bool = True,
    verbose: int = 1,
) -> str:
    """Exports a trained model as ``export_dir/<version>/`` for TensorFlow Serving.

    Args:
        model: A training workdir, a ``.keras`` file (with ``config.json``
            beside it unless ``scales`` is given), or a :class:`TrainedModel`.
        export_dir: The model base path TensorFlow Serving polls: a local path or
            one ``tf.io.gfile`` serves (``gs://``, ``s3://``, ``ram://``, ...).
        version: Version number; defaults to one more than the highest present
            (1 for a new base path). An existing version is an error.
        scales: The test scales Q the graph averages; defaults to the model's
            multi-scale set (§4.2) read from its training config.
        top_k: How many classes the ``classes``/``scores`` outputs list.
        limits: What an image header may declare (default: 40 megapixels, a
            longer side at most 16 times the shorter; rescaled to Q a thin strip
            would be huge); images over them are refused before decoding.
        keras_output: Also save the fully-convolutional Keras model (softmax
            score map) to this ``.keras`` path. It takes what ``model`` takes: RGB
            in [0, 255] when the model subtracts its mean itself (every run's
            does), else mean-subtracted images.
        warmup: Write TensorFlow Serving's warm-up requests into the version
            (``assets.extra/tf_serving_warmup_requests``, :mod:`vgg_tf.serving.warmup`).
        verbose: Print where the export went.

    Returns:
        The path of the new version directory.

    Example:
        >>> export_saved_model("workdirs/digits_a", "/models/vgg")  # doctest: +SKIP
        '/models/vgg/1'
    """
    trained = model if isinstance(model, TrainedModel) else load_model(model)
    trained.check_rgb()
    trained.check_classifier()
    export_dir = os.fspath(export_dir)
    scales = check_scales(scales, trained.crop_size) if scales else trained.multi_scales()
    if version is None:
        version = (existing_versions(export_dir) or [0])[-1] + 1
    final = check_export_arguments(export_dir, version, top_k, keras_output)
    module = ServingModule(
        to_fully_convolutional(trained.model, head="logits"),
        scales,
        trained.mean_to_subtract,
        trained.class_names,
        top_k,
        limits,
        flip=trained.flip,
    )
    metadata = dict(
        source=trained.path,
        variant=trained.config.get("variant"),
        scales=list(scales),
        mean_rgb=list(trained.mean_rgb),
        # Whether the net's first layer subtracts mean_rgb (else the graph does, before it).
        mean_in_model=trained.includes_preprocessing,
        crop_size=trained.crop_size,
        num_classes=trained.num_classes,
        class_names=list(trained.class_names) if trained.class_names else None,
        top_k=module.top_k,
        max_pixels=limits.max_pixels,
        max_aspect_ratio=limits.max_aspect_ratio,
        flip=trained.flip,
        softmax="of the spatially averaged score map, then averaged (vgg_tf.inference.protocol)",
    )
    tf.io.gfile.makedirs(export_dir)
    with contextlib.ExitStack() as stack:
        # Written before the version is published, renamed into place after it.
        if keras_output is not None:  # atomic_path makes its folder (any tf.io.gfile path)
            keras_tmp = stack.enter_context(atomic_path(keras_output))
            to_fully_convolutional(trained.model).save(keras_tmp)
        write_version(module, metadata, export_dir, final, warmup=warmup)
    if verbose:
        print(f"Exported {trained.name} (Q={','.join(map(str, scales))}) to {final}")
    return final


def check_export_arguments(export_dir: str, version, top_k, keras_output) -> str:
    """Refuses a bad version, top_k or keras_output; returns the new version's path."""
    if not isinstance(version, int) or version < 0:
        raise ValueError(f"version={version!r} is not accepted; expected an integer >= 0.")
    final = os.path.join(export_dir, str(version))
    if tf.io.gfile.exists(final):
        raise ValueError(
            f"Version {version} already exists at {final!r}; expected a new version "
            f"(present: {existing_versions(export_dir)}; omit --version to take the next one)."
        )
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k={top_k!r} is not accepted; expected an integer >= 1.")
    if keras_output is not None:
        keras_output = os.fspath(keras_output)
        if not keras_output.endswith(".keras"):
            raise ValueError(f"keras_output={keras_output!r} must end with '.keras'.")
        if tf.io.gfile.exists(keras_output):
            raise ValueError(f"keras_output={keras_output!r} already exists; expected a new path.")
    return final


def write_version(
    module: tf.Module, metadata: dict, export_dir: str, final: str, warmup: bool = True
) -> None:
    """Writes a SavedModel version under a hidden name, then publishes it as ``final``.

    The hidden directory holds the SavedModel of ``module.signatures()``, the
    metadata (:data:`METADATA_FILE`) and, with ``warmup``, the warm-up requests
    for ``module.warmup_signatures`` within ``module.limits``. On a local disk it is
    synced and renamed into place (one atomic rename); elsewhere (``gs://``,
    ``ram://``, ...: no atomic rename of a directory) its files are moved one by
    one, :data:`SAVED_MODEL_FILE` last, so a server finds no SavedModel there before
    the rest is in place. On an error nothing is left behind.

    Example:
        >>> write_version(module, {}, "/models/vgg", "/models/vgg/3")  # doctest: +SKIP
    """
    # A dot-name is not a number: TF Serving ignores it until it is published. The name
    # holds this process's tag: an export killed here leaves it for the next one to remove.
    remove_dead_temporaries(export_dir)
    prefix = f".{temporary_tag()}-{os.path.basename(final)}-"
    remote = is_remote(export_dir)
    if remote:
        tmp = os.path.join(export_dir, prefix + secrets.token_hex(4))
        tf.io.gfile.makedirs(tmp)
    else:
        tmp = tempfile.mkdtemp(prefix=prefix, dir=export_dir)
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        tf.io.gfile.makedirs(os.path.join(tmp, os.path.dirname(METADATA_FILE)))
        with tf.io.gfile.GFile(os.path.join(tmp, METADATA_FILE), "w") as f:
            f.write(json.dumps(metadata, indent=2))
        if warmup:
            write_warmup_requests(tmp, module.warmup_signatures, module.limits)
        if tf.io.gfile.exists(final):  # appeared while we were writing
            raise ValueError(
                f"Version {os.path.basename(final)} appeared at {final!r} during the export."
            )
        if remote:
            _publish_file_by_file(tmp, final)
        else:
            os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; a server may run as another user
            _sync_tree(tmp)  # on disk before it has a name a server loads
            os.rename(tmp, final)
            _sync_tree(export_dir, files=False)
    except BaseException:
        _remove_tree(tmp)
        raise


def _tree(root: str) -> tuple[list[str], list[str]]:
    """(directories, files) under ``root``, relative to it, each directory before its own.

    Listed with ``tf.io.gfile``, each name checked: ``ram://`` lists, beside a
    directory's children, the names of its siblings that start with its name
    (``assets`` lists ``.extra`` for ``assets.extra``).
    """
    directories, files, pending = [], [], [""]
    while pending:
        relative = pending.pop()
        for name in tf.io.gfile.listdir(os.path.join(root, relative)):
            child = os.path.join(relative, name.rstrip("/"))
            if tf.io.gfile.isdir(os.path.join(root, child)):
                directories.append(child)
                pending.append(child)
            elif tf.io.gfile.exists(os.path.join(root, child)):
                files.append(child)
    return directories, files


def _publish_file_by_file(tmp: str, final: str) -> None:
    """Moves the files of ``tmp`` to ``final`` with ``tf.io.gfile``, the SavedModel last.

    Object stores have no atomic rename of a directory (on ``ram://`` a renamed
    directory even loses its files): each file is renamed, ``saved_model.pb``
    last. A failure removes what reached ``final`` (a new version's path).
    """
    directories, files = _tree(tmp)
    try:
        for directory in ["", *directories]:
            tf.io.gfile.makedirs(os.path.join(final, directory))
        for name in sorted(files, key=lambda name: name == SAVED_MODEL_FILE):
            tf.io.gfile.rename(os.path.join(tmp, name), os.path.join(final, name))
    except BaseException:
        _remove_tree(final)
        raise
    _remove_tree(tmp)


def _remove_tree(path: str) -> None:
    """Removes a directory tree (local or ``tf.io.gfile``) if it is there; never raises."""
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    with contextlib.suppress(tf.errors.OpError):
        directories, files = _tree(path)
        for name in files:
            tf.io.gfile.remove(os.path.join(path, name))
        # Deepest and last-listed first: a directory goes once nothing is listed in it.
        for directory in [*sorted(directories, reverse=True), ""]:
            with contextlib.suppress(tf.errors.OpError):
                tf.io.gfile.rmtree(os.path.join(path, directory) if directory else path)
