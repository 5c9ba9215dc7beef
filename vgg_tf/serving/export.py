"""SavedModel export for TensorFlow Serving (and ``.keras`` for Keras scripts).

``export_saved_model`` writes ``BASE/<version>/``, TensorFlow Serving's model
base-path layout: the server polls BASE and serves the highest numeric
version. The version is written into a hidden temporary directory inside BASE
and renamed into place only when complete, so a polling server never sees a
half-written version; an existing version is never overwritten.

The graph holds the whole test-time pipeline -- decoding, RGB conversion, the
decompression-bomb guard, rescaling to each Q, mean subtraction (by the net's
own first layer when it has one, as every run's model has), the
fully-convolutional net, score-map and flip averaging (paper §3.2) -- built
from the same functions as ``bin/evaluate``'s dense protocol
(:mod:`vgg_tf.inference.protocol`), so both give the same probabilities.

Signatures:

* ``serving_default``: ``image_bytes`` (string ``[N]``: JPEG/PNG/GIF/BMP) ->
  ``probabilities`` ``[N, classes]``, ``classes`` ``[N, k]`` (int32, best
  first), ``scores`` ``[N, k]`` and, when the training data had class names,
  ``labels`` ``[N, k]`` (string).
* ``predict_images``: ``images`` (float32 RGB in [0, 255], ``[N, H, W, 3]``,
  any size) -> the same outputs.

Loading needs only TensorFlow: ``tf.saved_model.load(path)`` or
``tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence

import keras
import tensorflow as tf

from vgg_tf.data.images import DEFAULT_LIMITS, ImageLimits, decode_rgb
from vgg_tf.inference.protocol import check_scales, dense_probabilities
from vgg_tf.inference.untracked import Untracked
from vgg_tf.nets.fcn import to_fully_convolutional
from vgg_tf.weights.loading import load_model
from vgg_tf.weights.trained import TrainedModel
from vgg_tf.workdir import atomic_path, remove_dead_temporaries, temporary_tag

SERVING_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "predict_images"
METADATA_FILE = os.path.join("assets.extra", "vgg_tf_export.json")


class ServingModule(tf.Module):
    """The exported graph: the dense protocol behind two serving signatures.

    Args:
        fcn: Fully-convolutional net returning logits (``head="logits"``).
        scales: Test scales Q averaged by the graph.
        mean_rgb: Training-set mean RGB subtracted after rescaling; None when ``fcn``
            subtracts it itself (:attr:`TrainedModel.mean_to_subtract`).
        class_names: Optional names; adds the ``labels`` output.
        top_k: How many classes ``classes``/``scores`` list (capped at the
            number of classes).
        limits: Images over them are rejected before decoding.
        flip: Also average the horizontally flipped image (as trained).

    Call :meth:`signatures` to get the concrete functions to save: it also
    tracks the variables they capture.
    """

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
        self._limits = limits
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
        image = decode_rgb(image_bytes, self._limits.max_pixels, self._limits.max_aspect_ratio)
        image = tf.cast(image, tf.float32)
        return dense_probabilities(
            self._fcn.value, image[None], self._scales, self._mean, self._flip
        )[0]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(self, image_bytes):
        """Class posteriors of a batch of encoded images (each at its own size)."""

        def compute():
            # Per image: each rescales to its own shape. One at a time bounds memory.
            return tf.map_fn(
                self._one_image,
                image_bytes,
                fn_output_signature=tf.TensorSpec([self._num_classes], tf.float32),
                parallel_iterations=1,
            )

        return self._guard_empty(tf.size(image_bytes), compute)

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

    Example:
        >>> existing_versions("/no/such/base")
        []
    """
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(d) for d in os.listdir(export_dir) if d.isdigit())


def _sync_tree(root: str, files: bool = True) -> None:
    """fsyncs the files (unless ``files`` is False) and directories under ``root``."""
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
    verbose: int = 1,
) -> str:
    """Exports a trained model as ``export_dir/<version>/`` for TensorFlow Serving.

    Args:
        model: A training workdir, a ``.keras`` file (with ``config.json``
            beside it unless ``scales`` is given), or a :class:`TrainedModel`.
        export_dir: The model base path TensorFlow Serving polls.
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
    os.makedirs(export_dir, exist_ok=True)
    with contextlib.ExitStack() as stack:
        # Written before the version is published, renamed into place after it.
        if keras_output is not None:
            os.makedirs(os.path.dirname(os.path.abspath(keras_output)), exist_ok=True)
            keras_tmp = stack.enter_context(atomic_path(keras_output))
            to_fully_convolutional(trained.model).save(keras_tmp)
        write_version(module, metadata, export_dir, final)
    if verbose:
        print(f"Exported {trained.name} (Q={','.join(map(str, scales))}) to {final}")
    return final


def check_export_arguments(export_dir: str, version, top_k, keras_output) -> str:
    """Refuses a bad version, top_k or keras_output; returns the new version's path."""
    if not isinstance(version, int) or version < 0:
        raise ValueError(f"version={version!r} is not accepted; expected an integer >= 0.")
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
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
        if os.path.exists(keras_output):
            raise ValueError(f"keras_output={keras_output!r} already exists; expected a new path.")
    return final


def write_version(module: tf.Module, metadata: dict, export_dir: str, final: str) -> None:
    """Writes the SavedModel under a hidden name, syncs it, then renames it to ``final``."""
    # A dot-name is not a number: TF Serving ignores it until the rename. The name holds
    # this process's tag: an export killed here leaves it for the next one to remove.
    remove_dead_temporaries(export_dir)
    tmp = tempfile.mkdtemp(prefix=f".{temporary_tag()}-{os.path.basename(final)}-", dir=export_dir)
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        os.makedirs(os.path.join(tmp, os.path.dirname(METADATA_FILE)), exist_ok=True)
        with open(os.path.join(tmp, METADATA_FILE), "w") as f:
            json.dump(metadata, f, indent=2)
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; a server may run as another user
        if os.path.exists(final):  # appeared while we were writing
            raise ValueError(
                f"Version {os.path.basename(final)} appeared at {final!r} during the export."
            )
        _sync_tree(tmp)  # on disk before it has a name a server loads
        os.rename(tmp, final)
        _sync_tree(export_dir, files=False)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
