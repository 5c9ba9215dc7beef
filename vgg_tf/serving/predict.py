"""Classifying image files with a trained or imported net, and where it looks (``bin/predict``).

Each image is answered with the paper's best single-model test, dense
multi-scale evaluation (§3.2, Table 4): :class:`vgg_tf.inference.protocol.ModelEvaluator`'s
``"dense"`` protocol at the model's multi-scale set (or ``scales``), the same
probabilities ``bin/evaluate`` scores and the exported SavedModel serves. The
``top`` classes come with the names the model was trained with (its workdir's
``class_names``; ImageNet's 1,000 names and WordNet ids for a 1,000-class model
without names).

A heatmap (``heatmap_dir``) is the photo at its own size with the dense score
map of its top class overlaid (:mod:`vgg_tf.inference.heatmaps`, as
``bin/evaluate --heatmap_dir`` draws them); the map's peak probability is
reported beside it (``heatmap_peak``).

Files are read with :func:`vgg_tf.data.images.decode_rgb`, with the same limits as
training and serving. A file that is missing, undecodable, truncated or over
the limits is not answered: its :class:`ImagePrediction` carries the reason,
and the other files are answered as usual.

Example:
    >>> result = predict(["cat.jpg", "dog.png"], "workdirs/digits_A")  # doctest: +SKIP
    >>> print(format_predictions(result))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import tensorflow as tf

from vgg_tf.data import images as images_lib
from vgg_tf.data.images import DEFAULT_LIMITS, ImageLimits
from vgg_tf.inference import heatmaps
from vgg_tf.inference.localiser import PAPER_OPTIONS, Localiser, LocaliserOptions
from vgg_tf.inference.models import load_models
from vgg_tf.inference.protocol import ModelEvaluator
from vgg_tf.progress import Progress
from vgg_tf.weights import labels
from vgg_tf.weights.loading import load_model
from vgg_tf.weights.trained import TrainedModel
from vgg_tf.workdir import write_json

#: A progress bar (on stderr) is drawn for more images than this.
PROGRESS_MIN_IMAGES = 4
PROTOCOL = "dense"


# --- Results -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClassScore:
    """One of an image's top classes: label index, id (WordNet id for ImageNet), name."""

    index: int
    id: str
    name: str
    probability: float
    box: tuple[float, float, float, float] | None = None  # pixels (ymin, xmin, ymax, xmax)


@dataclasses.dataclass(frozen=True)
class ImagePrediction:
    """What became of one file: its top classes (best first), or why it was not answered.

    Attributes:
        file: The path as given.
        classes: The top classes, best first (empty when ``error``).
        size: ``(height, width)`` of the decoded image.
        heatmap: Path of the heatmap PNG written for it, if any.
        heatmap_peak: The largest probability of the top class in the heatmap's
            score map (the colour scale's red end).
        error: Why the file was not answered (None when it was).
        boxes_image: Path of the PNG with the classes' boxes drawn, if any.
    """

    file: str
    classes: tuple[ClassScore, ...] = ()
    size: tuple[int, int] | None = None
    heatmap: str | None = None
    error: str | None = None
    heatmap_peak: float | None = None
    boxes_image: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclasses.dataclass(frozen=True)
class Predictions:
    """The answers of :func:`predict`, in the order of the files given.

    Attributes:
        model: The model's short name; ``path`` where it was read from.
        scales: The test scales Q averaged (dense multi-scale protocol).
        flip: Whether each image's horizontal flip was averaged in (as trained).
        heatmap_scale: The Q of the heatmaps' score maps.
        images: One :class:`ImagePrediction` per file.
    """

    model: str
    path: str
    scales: tuple[int, ...]
    flip: bool
    heatmap_scale: int
    images: tuple[ImagePrediction, ...]

    @property
    def answered(self) -> tuple[ImagePrediction, ...]:
        return tuple(p for p in self.images if p.ok)

    @property
    def failed(self) -> tuple[ImagePrediction, ...]:
        return tuple(p for p in self.images if not p.ok)

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of ``--output``: answered ``images`` and bad files' ``errors``."""
        return {
            "model": self.model,
            "path": self.path,
            "protocol": PROTOCOL,
            "scales": list(self.scales),
            "flip": self.flip,
            "heatmap_scale": self.heatmap_scale,
            "images": [_image_dict(p) for p in self.answered],
            "errors": [{"file": p.file, "error": p.error} for p in self.failed],
        }


def _image_dict(p: ImagePrediction) -> dict[str, Any]:
    """One answered image in ``--output``'s layout (boxes only where there are)."""
    entry = {
        "file": p.file,
        "size": list(p.size),
        "heatmap": p.heatmap,
        "heatmap_peak": p.heatmap_peak,
    }
    if p.boxes_image:
        entry["boxes_image"] = p.boxes_image
    entry["classes"] = [
        {
            "rank": rank,
            **{k: v for k, v in dataclasses.asdict(c).items() if k != "box" or v is not None},
        }
        for rank, c in enumerate(p.classes, 1)
    ]
    return entry


@dataclasses.dataclass(frozen=True)
class Boxes:
    """Boxes for each image's top classes by Appendix A's dense protocol, and where to draw them.

    Attributes:
        localisers: Localisation workdirs (``bin/train --task localisation``); the
            boxes of several are pooled, and the model :func:`predict` is given
            ranks and weights them (:class:`vgg_tf.inference.localiser.Localiser`).
        options: The windows' offsets and cropping, and the merge threshold
            (default: the paper's protocol).
        drawn_dir: Write a PNG per answered image there with its boxes drawn
            (``<file stem>.png``); None draws none.

    Example:
        >>> Boxes(["workdirs/loc_scr"], drawn_dir="boxes").options.windows
        'dense'
    """

    localisers: Sequence[str]
    options: LocaliserOptions = PAPER_OPTIONS
    drawn_dir: str | os.PathLike | None = None


# --- Reading files ---------------------------------------------------------------


def _reason(error: tf.errors.OpError) -> str:
    """A one-line reason from a decoding error (the assertion's own words where there is one)."""
    lines = (error.message or "").strip().splitlines()
    first = lines[0] if lines else type(error).__name__
    first = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", first)
    first = re.sub(r"\s*\[Op:.*$", "", first).strip().rstrip(".")
    if first.startswith(("Image rejected", "Unsupported image format")):
        return first
    return f"cannot decode the image ({first})"


def read_image(
    path: str,
    *,
    limits: ImageLimits = DEFAULT_LIMITS,
    decode_context: Callable[[], AbstractContextManager] | None = None,
) -> tuple[np.ndarray | None, str | None]:
    """``(uint8 RGB (H, W, 3), None)`` for a good file, ``(None, reason)`` for a bad one.

    Decoded by :func:`vgg_tf.data.images.decode_rgb`: the header's size is checked
    against the limits before any pixel is decoded.

    Args:
        path: The image file.
        limits: What the header may declare.
        decode_context: A context manager factory the decoding runs in (the
            command line passes one that keeps TensorFlow's native log lines
            about the bad file off the terminal; the reason is reported instead).

    A URL is not fetched: it gets its own reason, not "No such file".

    Example:
        >>> read_image("/nonexistent.jpg")
        (None, 'No such file or directory')
        >>> read_image("https://example.com/cat.jpg")[1]
        'a URL: image files are read from disk, URLs are not fetched (download it first)'
    """
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", os.fspath(path)):
        return (
            None,
            "a URL: image files are read from disk, URLs are not fetched (download it first)",
        )
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        return None, error.strerror or str(error)
    with (decode_context or contextlib.nullcontext)():
        try:
            image = images_lib.decode_rgb(
                tf.constant(data), limits.max_pixels, limits.max_aspect_ratio
            )
            return image.numpy(), None
        except tf.errors.OpError as error:
            return None, _reason(error)


# --- Boxes -------------------------------------------------------------------------


def draw_boxes(
    image: np.ndarray, boxes: Sequence[Sequence[float]], thickness: int = 2
) -> np.ndarray:
    """The image with rectangles drawn (pixel corners ymin, xmin, ymax, xmax): uint8.

    Colours follow matplotlib's ``tab10`` by rank (blue, orange, green, ...);
    the first box is drawn last, on top, and twice as thick.

    Example:
        >>> out = draw_boxes(np.zeros([8, 8, 3], np.uint8), [[1, 1, 6, 6]], thickness=1)
        >>> int(out[1, 3].any()), int(out[3, 3].any())
        (1, 0)
    """
    import matplotlib  # the colormap only

    out = np.array(image, np.uint8, copy=True)
    height, width = out.shape[:2]
    colours = matplotlib.colormaps["tab10"].colors
    for rank in reversed(range(len(boxes))):
        ymin, xmin, ymax, xmax = (int(round(v)) for v in boxes[rank])
        ymin, ymax = np.clip([ymin, ymax], 0, height - 1)
        xmin, xmax = np.clip([xmin, xmax], 0, width - 1)
        t = thickness * (2 if rank == 0 else 1)
        colour = np.round(255 * np.array(colours[rank % len(colours)])).astype(np.uint8)
        out[ymin : ymin + t, xmin : xmax + 1] = colour
        out[max(ymax - t + 1, 0) : ymax + 1, xmin : xmax + 1] = colour
        out[ymin : ymax + 1, xmin : xmin + t] = colour
        out[ymin : ymax + 1, max(xmax - t + 1, 0) : xmax + 1] = colour
    return out


def _output_path(folder: str, file: str, taken: set[str]) -> str:
    """``DIR/<file stem>.png``; ``<stem>_2.png``, ... when two files share a stem."""
    stem = os.path.splitext(os.path.basename(os.path.normpath(file)))[0] or "image"
    name, n = f"{stem}.png", 1
    while name in taken:
        n += 1
        name = f"{stem}_{n}.png"
    taken.add(name)
    return os.path.join(folder, name)


# --- Predicting --------------------------------------------------------------------


def _class_labels(trained: TrainedModel) -> tuple[Sequence[str] | None, Sequence[str] | None]:
    """(names, ids) for :func:`vgg_tf.weights.labels.decode_predictions`: the workdir's names, with
    WordNet ids when they are ImageNet's; (None, None) lets it choose (ImageNet's or indices)."""
    names = trained.class_names
    if names is None:
        return None, None
    if len(names) == labels.NUM_IMAGENET_CLASSES and tuple(names) == labels.imagenet_class_names():
        return names, labels.imagenet_class_ids()
    return names, None


def _top_classes(probabilities: np.ndarray, top: int, names, ids) -> tuple[ClassScore, ...]:
    decoded = labels.decode_predictions(probabilities[None], top, class_names=names, class_ids=ids)[
        0
    ]
    best = np.argsort(-probabilities, kind="stable")[:top]  # decode_predictions' order
    return tuple(
        ClassScore(int(i), str(class_id), str(name), float(p))
        for i, (class_id, name, p) in zip(best, decoded)
    )


def _with_boxes(localiser, image: np.ndarray, classes: tuple[ClassScore, ...]):
    """The classes with their merged boxes, in the image's pixels."""
    indices = tf.constant([c.index for c in classes], tf.int32)
    found = localiser.localise_classes(tf.cast(image, tf.float32), indices).numpy()
    height, width = image.shape[:2]
    pixels = found * np.array([height, width, height, width], np.float32)
    return tuple(
        dataclasses.replace(c, box=tuple(float(v) for v in box)) for c, box in zip(classes, pixels)
    )


def predict(
    paths: Sequence[str | os.PathLike],
    model: str | os.PathLike | TrainedModel,
    *,
    top: int = 5,
    scales: Sequence[int] | None = None,
    heatmap_dir: str | os.PathLike | None = None,
    boxes: Boxes | None = None,
    limits: ImageLimits = DEFAULT_LIMITS,
    verbose: int = 1,
    decode_context: Callable[[], AbstractContextManager] | None = None,
) -> Predictions:
    """The top classes of each image file by dense multi-scale evaluation (``bin/predict``).

    Args:
        paths: Image files (JPEG, PNG, GIF, BMP, WebP).
        model: A training workdir, a ``.keras`` file, ``"imagenet-D"`` (see
            :func:`load_model`) or a :class:`TrainedModel`.
        top: How many classes per image (at most the number of classes).
        scales: Test scales Q overriding the model's multi-scale set; the
            heatmaps then use the first.
        heatmap_dir: Write a heatmap PNG per answered image there
            (``<file stem>.png``).
        boxes: Give each top class its box (and draw them), :class:`Boxes`.
        limits: Files whose header declares more are not answered.
        verbose: 1 draws a progress bar on stderr for more than
            :data:`PROGRESS_MIN_IMAGES` files; 0 is silent.
        decode_context: See :func:`read_image`.

    Returns:
        :class:`Predictions`, one entry per file, in order; bad files carry
        their reason instead of classes.

    Raises:
        ValueError: A model that cannot be loaded or evaluated, bad ``top`` or
            ``scales``.

    Example:
        >>> predict(["photo.jpg"], "workdirs/digits_A",
        ...         boxes=Boxes(["workdirs/digits_on_canvas_A_scr"]))  # doctest: +SKIP
    """
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ValueError(f"top={top!r} is not accepted; expected a positive integer.")
    trained = load_model(model)
    evaluator = ModelEvaluator(trained, scales)
    localiser = None
    if boxes is not None:
        nets = load_models(boxes.localisers, "localisation net")
        # Ranked as the evaluator ranks them, so the boxes are those of the classes shown.
        localiser = Localiser(
            nets, trained, options=boxes.options, class_scales=evaluator.scales_for(PROTOCOL)
        )
    names, ids = _class_labels(trained)
    paths = [os.fspath(p) for p in paths]
    progress = None
    if verbose and len(paths) > PROGRESS_MIN_IMAGES:
        progress = Progress(len(paths), stream=sys.stderr)  # stdout is for the answers
    taken: set[str] = set()
    taken_boxes: set[str] = set()
    results = []
    for done, path in enumerate(paths, 1):
        image, error = read_image(path, limits=limits, decode_context=decode_context)
        if error is not None:
            results.append(ImagePrediction(path, error=error))
        else:
            probabilities = evaluator.probabilities(PROTOCOL, image)
            classes = _top_classes(probabilities, top, names, ids)
            drawn = None
            if localiser is not None:
                classes = _with_boxes(localiser, image, classes)
                if boxes.drawn_dir is not None:
                    drawn = _output_path(os.fspath(boxes.drawn_dir), path, taken_boxes)
                    heatmaps.write_png(draw_boxes(image, [c.box for c in classes]), drawn)
            heatmap = peak = None
            if heatmap_dir is not None:
                heatmap = _output_path(os.fspath(heatmap_dir), path, taken)
                peak = heatmaps.write_heatmap(evaluator, image, classes[0].index, heatmap)
            results.append(
                ImagePrediction(
                    path,
                    classes,
                    tuple(image.shape[:2]),
                    heatmap,
                    heatmap_peak=peak,
                    boxes_image=drawn,
                )
            )
        if progress is not None:
            progress.update(done)
    return Predictions(
        trained.name,
        trained.path,
        evaluator.scales_for(PROTOCOL),
        trained.flip,
        evaluator.single[0],
        tuple(results),
    )


# --- Showing and writing the answers ------------------------------------------------


def format_predictions(result: Predictions) -> str:
    """Readable lines: a header naming the model and scales, then per answered image its
    path and one line per class (rank, probability, name and id) and its heatmap."""
    flip = ", each with its flip" if result.flip else ""
    scales = ", ".join(map(str, result.scales))
    lines = [f"{result.model}: dense evaluation at Q = {scales}{flip}"]
    for p in result.answered:
        lines.append(f"{p.file} ({p.size[1]}x{p.size[0]})")
        for rank, c in enumerate(p.classes, 1):
            label = c.name if c.id == c.name else f"{c.name} ({c.id})"
            box = (
                ""
                if c.box is None
                else "  box (ymin, xmin, ymax, xmax) " + ", ".join(f"{v:.0f}" for v in c.box)
            )
            lines.append(f"  {rank:>2}. {100 * c.probability:6.2f}%  {label}{box}")
        if p.boxes_image:
            lines.append(f"  boxes: {p.boxes_image} (class 1 thick blue, then orange, green, ...)")
        if p.heatmap:
            lines.append(
                f"  heatmap: {p.heatmap} ({p.classes[0].name} at Q = "
                f"{result.heatmap_scale}, peak {100 * p.heatmap_peak:.2f}%)"
            )
    return "\n".join(lines)


def error_lines(result: Predictions) -> list[str]:
    """One line per file that was not answered, naming it and why."""
    return [f"vgg_tf: skipped {p.file}: {p.error}" for p in result.failed]


def write_predictions(result: Predictions, path: str | os.PathLike) -> None:
    """Writes :meth:`Predictions.to_dict` as JSON (whole or not at all)."""
    write_json(path, result.to_dict())
