"""The paper's image descriptor for transfer (Appendix B), and a linear SVM on top.

Appendix B describes each image by the penultimate layer of a trained net: the
fully-convolutional net (:func:`vgg_tf.nets.fcn.to_fully_convolutional` with
``head="fc7"``) runs densely on the image rescaled so its shorter side is Q,
minus the training-set mean RGB (unless the net subtracts it itself); its fc7
map (after the ReLU) is averaged over the locations, and the vectors of the
image and of its horizontal flip are averaged. 4,096 numbers per image and
scale for the paper's nets (fc7's width in general). A linear SVM trained on
such descriptors gave the paper's transfer results; fine-tuning was not used.

Across the scales Q the descriptors are combined as Appendix B does, by
:class:`Descriptor` (``across_scales``):

* ``"average"``: averaged, then L2-normalised (fc7's width). The paper's choice
  for VOC-2007/2012, over Q in {256, 384, 512, 640, 768} (stacking was no better
  there, and averaging keeps the width).
* ``"stack"``: each scale's descriptor L2-normalised, the scales' stacked end to
  end, the whole L2-normalised (fc7's width times the scales). The paper's
  choice for Caltech-101/256, over Q in {256, 384, 512}.

Several nets (the paper's D and E) are combined by stacking their descriptors
the same way (:class:`StackedNets`). :data:`PRESETS` holds the paper's
choices per dataset, with the measure each reports
(:mod:`vgg_tf.evaluation.measures`). Scales are given as ratios to the crop
(Q = ratio x crop / 7: 256, 384, 512 ... at 224, 37, 55, 73 ... at 32), or
explicitly. Without a preset the descriptor averages Q in {256, 384, 512}
(:func:`default_scales`), a default of this package, not one of the paper's.

The flip is averaged whatever the model was trained with (a descriptor of an
image and of its mirror image are then the same).

Example:
    >>> extractor = FeatureExtractor(load_model("workdirs/digits_A"))  # doctest: +SKIP
    >>> extractor(image).shape  # doctest: +SKIP
    (256,)
    >>> PRESETS["caltech"].descriptor.scales_for(224)
    (256, 384, 512)
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from vgg_tf.data import images as images_lib
from vgg_tf.data import sources
from vgg_tf.evaluation.datasets import DatasetSplit
from vgg_tf.inference.models import load_models
from vgg_tf.inference.protocol import check_scales, preprocess
from vgg_tf.nets.fcn import to_fully_convolutional
from vgg_tf.progress import Progress
from vgg_tf.weights.trained import TrainedModel
from vgg_tf.workdir import atomic_path

#: Appendix B's scales are these multiples of the 224 crop / 7 (256, 384, 512).
SCALE_RATIOS = (8, 12, 16)
#: How descriptors of several scales become one: averaged (VOC) or stacked (Caltech).
ACROSS_SCALES = ("average", "stack")
#: Images per batch are bounded by their pixels at the largest Q (both flips).
BATCH_PIXELS = 1 << 21
MAX_BATCH = 64


def default_scales(crop_size: int, ratios: Sequence[int] = SCALE_RATIOS) -> tuple[int, ...]:
    """Q in {256, 384, 512} at the 224 crop (or other ``ratios`` x 32); the same ratios to any
    other crop.

    Example:
        >>> default_scales(224), default_scales(32), default_scales(224, (8, 12, 16, 20, 24))
        ((256, 384, 512), (37, 55, 73), (256, 384, 512, 640, 768))
    """
    return tuple(round(crop_size * r / 7) for r in ratios)


@dataclasses.dataclass(frozen=True)
class Descriptor:
    """How an image's descriptor is made (Appendix B): the scales, how they combine, the flip.

    Attributes:
        scales: Explicit test scales Q (each at least the crop); None: ``scale_ratios``
            of the model's crop.
        scale_ratios: Q as multiples of the crop / 7 (8, 12, 16: 256, 384, 512 at 224).
        across_scales: ``"average"`` or ``"stack"`` (:data:`ACROSS_SCALES`).
        flip: Average each image's horizontal flip in (Appendix B: yes).

    Raises:
        ValueError: An unknown ``across_scales``.

    Example:
        >>> Descriptor(across_scales="stack").scales_for(32)
        (37, 55, 73)
        >>> Descriptor(across_scales="max")
        Traceback (most recent call last):
        ...
        ValueError: across_scales='max' is not accepted; expected one of average, stack.
    """

    scales: tuple[int, ...] | None = None
    scale_ratios: tuple[int, ...] = SCALE_RATIOS
    across_scales: str = "average"
    flip: bool = True

    def __post_init__(self):
        if self.across_scales not in ACROSS_SCALES:
            raise ValueError(
                f"across_scales={self.across_scales!r} is not accepted; expected one of "
                f"{', '.join(ACROSS_SCALES)}."
            )
        if self.scales is not None:
            object.__setattr__(self, "scales", tuple(int(q) for q in self.scales))

    def scales_for(self, crop_size: int) -> tuple[int, ...]:
        """The test scales Q for a model of this crop."""
        if self.scales:
            return check_scales(self.scales, crop_size)
        return default_scales(crop_size, self.scale_ratios)


@dataclasses.dataclass(frozen=True)
class Preset:
    """The paper's descriptor for a kind of dataset and the measure it reports there."""

    descriptor: Descriptor
    measure: str


#: Appendix B per dataset: VOC averages Q in {256, ..., 768} and reports mean AP (11-point
#: for VOC-2007, all points for VOC-2012); Caltech stacks Q in {256, 384, 512} and reports
#: mean class recall.
PRESETS = {
    "voc2007": Preset(Descriptor(scale_ratios=(8, 12, 16, 20, 24)), "map_voc2007"),
    "voc2012": Preset(Descriptor(scale_ratios=(8, 12, 16, 20, 24)), "map"),
    "caltech": Preset(Descriptor(across_scales="stack"), "mean_class_recall"),
}


#: No preset: Q in {256, 384, 512} (the same ratios of another crop), averaged, with the flip.
DEFAULT_DESCRIPTOR = Descriptor()


def preset(name: str) -> Preset:
    """The :data:`PRESETS` entry ``name``; one line naming the accepted ones otherwise.

    Example:
        >>> preset("voc2007").measure
        'map_voc2007'
    """
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is not accepted; expected one of {', '.join(PRESETS)}.")
    return PRESETS[name]


def stack_normalised(parts: Sequence[tf.Tensor]) -> tf.Tensor:
    """Each ``(N, d_i)`` part L2-normalised, stacked end to end, the whole L2-normalised.

    Example:
        >>> stack_normalised([tf.constant([[3.0, 4.0]]), tf.constant([[2.0]])]).numpy()
        array([[0.42426407, 0.56568545, 0.70710677]], dtype=float32)
    """
    parts = [tf.math.l2_normalize(tf.cast(p, tf.float32), axis=-1) for p in parts]
    return tf.math.l2_normalize(tf.concat(parts, axis=-1), axis=-1)


def descriptors(
    fc7_net: keras.Model,
    images: tf.Tensor,
    scales: Sequence[int],
    mean_rgb: Sequence[float] | None,
    flip: bool = True,
    across_scales: str = "average",
) -> tf.Tensor:
    """Appendix B's descriptors of a batch of same-size RGB images.

    Args:
        fc7_net: The fully-convolutional net up to fc7 (``head="fc7"``).
        images: ``(N, H, W, 3)`` RGB in [0, 255] (not mean-subtracted).
        scales: Test scales Q, each rescaling the shorter side.
        mean_rgb: The training-set mean RGB to subtract; None when ``fc7_net`` subtracts it.
        flip: Average each image's horizontal flip in (the paper does).
        across_scales: ``"average"`` (``(N, fc7 width)``) or ``"stack"``
            (``(N, fc7 width x scales)``).
    """
    n = tf.shape(images)[0]
    views = tf.concat([images, tf.reverse(images, axis=[2])], axis=0) if flip else images
    per_scale = []
    for q in scales:
        pooled = tf.reduce_mean(
            tf.cast(fc7_net(preprocess(views, q, mean_rgb)), tf.float32), axis=[1, 2]
        )
        per_scale.append((pooled[:n] + pooled[n:]) / 2.0 if flip else pooled)
    if across_scales == "stack":
        return stack_normalised(per_scale)
    return tf.math.l2_normalize(tf.add_n(per_scale) / float(len(per_scale)), axis=-1)


class FeatureExtractor:
    """Appendix B's descriptor for one trained model.

    Args:
        trained: The model and its training config.
        descriptor: The scales, their combination and the flip (default: Q in
            {256, 384, 512} or the same ratios of the model's crop, averaged, flip).
    """

    def __init__(self, trained: TrainedModel, descriptor: Descriptor = DEFAULT_DESCRIPTOR):
        trained.check_rgb()
        self.trained = trained
        self.name = trained.name
        self.descriptor = descriptor
        self.scales = descriptor.scales_for(trained.crop_size)
        self.flip = bool(descriptor.flip)
        self.fc7_net = to_fully_convolutional(trained.model, head="fc7")
        width = int(self.fc7_net.output_shape[-1])
        self.dim = width * (len(self.scales) if descriptor.across_scales == "stack" else 1)
        net, scales, mean = self.fc7_net, self.scales, trained.mean_to_subtract
        self._batch = tf.function(
            lambda batch: descriptors(
                net, batch, scales, mean, self.flip, descriptor.across_scales
            ),
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
        )

    def batch(self, images) -> np.ndarray:
        """Descriptors ``(N, dim)`` of same-size RGB images ``(N, H, W, 3)`` in [0, 255]."""
        return self._batch(tf.cast(images, tf.float32)).numpy()

    def __call__(self, image) -> np.ndarray:
        """The descriptor ``(dim,)`` of one RGB image ``(H, W, 3)`` in [0, 255]."""
        return self.batch(np.asarray(image)[None])[0]

    def batch_size(self, height: int, width: int) -> int:
        """Images of this size per batch: :data:`BATCH_PIXELS` at the largest Q, both flips."""
        scaled = images_lib.scaled_size(height, width, max(self.scales)).numpy()
        views = 2 if self.flip else 1
        return int(max(1, min(MAX_BATCH, BATCH_PIXELS // (views * int(np.prod(scaled))))))


class StackedNets:
    """Several nets' descriptors stacked (Appendix B combines nets D and E this way).

    Each net's descriptor (unit length) is stacked end to end and the whole
    L2-normalised: ``dim`` is the sum of the nets'.

    Args:
        extractors: One :class:`FeatureExtractor` per net.

    Example:
        >>> fused = StackedNets([FeatureExtractor(d), FeatureExtractor(e)])  # doctest: +SKIP
        >>> fused(image).shape  # doctest: +SKIP
        (8192,)
    """

    def __init__(self, extractors: Sequence[FeatureExtractor]):
        if not extractors:
            raise ValueError("No net given; expected one or more models.")
        self.extractors = tuple(extractors)
        self.name = " + ".join(e.name for e in self.extractors)
        self.dim = sum(e.dim for e in self.extractors)
        self.scales = tuple(sorted({q for e in self.extractors for q in e.scales}))
        self.flip = self.extractors[0].flip
        self.descriptor = self.extractors[0].descriptor

    def batch(self, images) -> np.ndarray:
        """Stacked descriptors ``(N, dim)`` of same-size RGB images ``(N, H, W, 3)``."""
        return stack_normalised([e.batch(images) for e in self.extractors]).numpy()

    def __call__(self, image) -> np.ndarray:
        return self.batch(np.asarray(image)[None])[0]

    def batch_size(self, height: int, width: int) -> int:
        return min(e.batch_size(height, width) for e in self.extractors)


def extractor_for(
    models: Sequence[str | os.PathLike | TrainedModel], descriptor: Descriptor = DEFAULT_DESCRIPTOR
) -> FeatureExtractor | StackedNets:
    """One model's :class:`FeatureExtractor`, or several models' :class:`StackedNets`.

    Example:
        >>> extractor_for(["workdirs/D", "workdirs/E"]).dim  # doctest: +SKIP
        8192
    """
    extractors = [FeatureExtractor(m, descriptor) for m in load_models(models)]
    return extractors[0] if len(extractors) == 1 else StackedNets(extractors)


# --- A dataset's descriptors ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """Descriptors of a split and how they were made.

    Attributes:
        features: ``(N, dim)`` float32 descriptors.
        labels: ``(N,)`` int64: each image's class (VOC: its largest object's).
        filenames: Each image's file name.
        class_names: The dataset's classes.
        dataset, split, model: Where the descriptors come from (``model``: the net's
            name, or the stacked nets' joined by ``+``).
        scales: The test scales Q.
        flip: Whether each image's flip was averaged in.
        across_scales: ``"average"`` or ``"stack"``.
        targets: ``(N, classes)`` bool, every class each image holds, for a dataset
            whose images hold several (VOC); None otherwise.
    """

    features: np.ndarray
    labels: np.ndarray
    filenames: tuple[str, ...]
    class_names: tuple[str, ...]
    dataset: str
    split: str
    model: str
    scales: tuple[int, ...]
    flip: bool
    across_scales: str = "average"
    targets: np.ndarray | None = dataclasses.field(default=None, compare=False)

    def metadata(self) -> dict:
        return dict(
            dataset=self.dataset,
            split=self.split,
            model=self.model,
            scales=list(self.scales),
            flip=self.flip,
            across_scales=self.across_scales,
            class_names=list(self.class_names),
        )

    def class_targets(self) -> np.ndarray:
        """``(N, classes)`` bool: :attr:`targets`, or each image's one class."""
        if self.targets is not None:
            return self.targets
        return np.eye(len(self.class_names), dtype=bool)[self.labels]


Extractor = FeatureExtractor | StackedNets


def _same_size_batches(examples: Iterable, extractor: Extractor) -> Iterator[tuple]:
    """Groups consecutive ``(image, label, filename)`` of one size into batches."""
    batch: list = []
    for example in examples:
        if batch and (
            example[0].shape != batch[0][0].shape
            or len(batch) >= extractor.batch_size(*batch[0][0].shape[:2])
        ):
            yield batch
            batch = []
        batch.append(example)
    if batch:
        yield batch


def split_features(
    extractor: Extractor, data: DatasetSplit, source: sources.Source, *, verbose: int = 1
) -> FeatureSet:
    """The descriptors of every image of ``data``'s split; bad records are skipped, counted
    and named (:func:`vgg_tf.data.sources.decoded_images`). For a dataset whose images hold
    several classes (:meth:`DatasetSplit.label_sets`) the set gets their ``targets``.

    Args:
        extractor: The model's descriptor, or the stacked nets'.
        data: The images (the split: ``data.split``, else the source's test split).
        source: ``data.source()``, opened once by the caller.
        verbose: 1 draws a progress bar.
    """
    split = data.split_of(source)
    progress = Progress(data.count(source, split)) if verbose else None
    features, labels, names = [], [], []
    decoded = data.decoded(source, split).as_numpy_iterator()
    for batch in _same_size_batches(decoded, extractor):
        features.append(extractor.batch(np.stack([image for image, _, _ in batch])))
        labels += [int(label) for _, label, _ in batch]
        names += [name.decode("utf-8", "replace") for _, _, name in batch]
        if progress is not None:
            progress.update(len(labels))
    if progress is not None:
        progress.update(len(labels), final=True)
    if not labels:
        raise ValueError(f"Split {split!r} of {source.name!r} has no decodable image.")
    label_sets = data.label_sets(source, split)
    targets = None
    if label_sets is not None:
        targets = np.zeros([len(labels), source.num_classes], bool)
        for row, (name, label) in enumerate(zip(names, labels)):
            targets[row, [label, *label_sets.get(name, ())]] = True
    return FeatureSet(
        features=np.concatenate(features).astype(np.float32),
        labels=np.asarray(labels, np.int64),
        filenames=tuple(names),
        class_names=tuple(source.class_names),
        dataset=source.name,
        split=split,
        model=extractor.name,
        scales=tuple(extractor.scales),
        flip=extractor.flip,
        across_scales=extractor.descriptor.across_scales,
        targets=targets,
    )


def extract_features(
    models: str | os.PathLike | TrainedModel | Sequence[str | os.PathLike | TrainedModel],
    data: DatasetSplit,
    descriptor: Descriptor = DEFAULT_DESCRIPTOR,
    *,
    verbose: int = 1,
) -> FeatureSet:
    """Appendix B's descriptors of a split of a dataset (``bin/features --output``).

    Args:
        models: A training workdir, a ``.keras`` file, ``"imagenet-D"`` or a
            :class:`TrainedModel` (see :func:`vgg_tf.weights.loading.load_model`);
            several (the paper's D and E) have their descriptors stacked.
        data: The images: a dataset's split (its test split by default), the
            first n, within the image limits.
        descriptor: The scales, their combination and the flip (:class:`Descriptor`).
        verbose: 1 draws a progress bar.

    Example:
        >>> extract_features("workdirs/digits_A", DatasetSplit("digits", split="test"))  # doctest: +SKIP
    """
    extractor = extractor_for(models, descriptor)
    return split_features(extractor, data, data.source(), verbose=verbose)


# --- Files ---------------------------------------------------------------------------------


def _sidecar(path: str) -> str:
    return os.path.splitext(path)[0] + ".json"


def save_features(feature_set: FeatureSet, path: str | os.PathLike) -> list[str]:
    """Writes the features; returns the paths written (each whole or not at all).

    * ``.npz``: one file with arrays ``features`` (N, dim) float32, ``labels`` (N,)
      int64, ``filenames`` (N,) str, ``class_names`` str, ``targets`` (N, classes)
      bool for a multi-label dataset, and ``metadata`` (a JSON string: dataset,
      split, model, scales, flip, across_scales, class_names).
    * ``.npy``: ``features`` alone, and beside it ``<name>.json`` with
      ``filenames``, ``labels``, ``targets`` (each image's classes, multi-label
      datasets) and the metadata.

    ``path`` may be local or on a filesystem TensorFlow serves (``gs://``,
    ``s3://``, ``ram://``); its folder is made when missing.
    """
    path = os.fspath(path)
    fs = feature_set
    if path.endswith(".npz"):
        targets = {} if fs.targets is None else {"targets": fs.targets}
        # A zip file is written with seeks, which a GFile being written does not take.
        archive = io.BytesIO()
        np.savez(
            archive,
            features=fs.features,
            labels=fs.labels,
            filenames=np.asarray(fs.filenames, dtype=str),
            class_names=np.asarray(fs.class_names, dtype=str),
            metadata=np.asarray(json.dumps(fs.metadata())),
            **targets,
        )
        with atomic_path(path) as tmp, tf.io.gfile.GFile(tmp, "wb") as f:
            f.write(archive.getvalue())
        return [path]
    if path.endswith(".npy"):
        with atomic_path(path) as tmp, tf.io.gfile.GFile(tmp, "wb") as f:
            np.save(f, fs.features)
        sidecar = _sidecar(path)
        extra = {"filenames": list(fs.filenames), "labels": fs.labels.tolist()}
        if fs.targets is not None:
            extra["targets"] = [np.flatnonzero(row).tolist() for row in fs.targets]
        with atomic_path(sidecar) as tmp, tf.io.gfile.GFile(tmp, "w") as f:
            f.write(json.dumps({**fs.metadata(), **extra}, indent=1))
        return [path, sidecar]
    raise ValueError(f"Output {path!r} is not accepted; expected a .npz or .npy file name.")


def load_features(path: str | os.PathLike) -> FeatureSet:
    """Reads what :func:`save_features` wrote (local, or ``gs://``, ``s3://``, ...)."""
    path = os.fspath(path)
    if path.endswith(".npz"):
        with tf.io.gfile.GFile(path, "rb") as f, np.load(f) as data:
            meta = json.loads(str(data["metadata"]))
            features, labels = data["features"], data["labels"]
            filenames = tuple(str(n) for n in data["filenames"])
            targets = data.get("targets")
    else:
        with tf.io.gfile.GFile(path, "rb") as f:
            features = np.load(f)
        with tf.io.gfile.GFile(_sidecar(path)) as f:
            meta = json.load(f)
        labels, filenames = np.asarray(meta.pop("labels"), np.int64), tuple(meta.pop("filenames"))
        targets = None
        if "targets" in meta:
            targets = np.zeros([len(labels), len(meta["class_names"])], bool)
            for row, classes in enumerate(meta.pop("targets")):
                targets[row, classes] = True
    return FeatureSet(
        features=features,
        labels=labels,
        filenames=filenames,
        class_names=tuple(meta["class_names"]),
        dataset=meta["dataset"],
        split=meta["split"],
        model=meta["model"],
        scales=tuple(meta["scales"]),
        flip=meta["flip"],
        across_scales=meta.get("across_scales", "average"),
        targets=targets,
    )
