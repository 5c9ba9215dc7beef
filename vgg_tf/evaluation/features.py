"""The paper's image descriptor for transfer (Appendix B), and a linear SVM on top.

Appendix B describes each image by the penultimate layer of a trained net: the
fully-convolutional net (:func:`vgg_tf.nets.fcn.to_fully_convolutional` with
``head="fc7"``) runs densely on the image rescaled so its shorter side is Q,
minus the training-set mean RGB; its fc7 map (after the ReLU) is averaged over
the locations; the vectors of the image and of its horizontal flip are
averaged, then those of the scales Q; the result is L2-normalised. 4,096
numbers per image for the paper's nets (fc7's width in general). A linear SVM
trained on such descriptors gave the paper's transfer results; fine-tuning was
not used there.

Scales: Q in {256, 384, 512} for the paper's 224 crop; for another crop the
same ratios to it (:func:`default_scales`: 8/7, 12/7 and 16/7 of the crop,
so (37, 55, 73) for the digits recipe's crop of 32), or explicit scales.

The flip is averaged whatever the model was trained with (a descriptor of an
image and of its mirror image are then the same).

Example:
    >>> extractor = FeatureExtractor(load_model("workdirs/digits_A"))  # doctest: +SKIP
    >>> extractor(image).shape  # doctest: +SKIP
    (256,)
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from vgg_tf.data import images as images_lib
from vgg_tf.data import sources
from vgg_tf.evaluation.datasets import DatasetSplit
from vgg_tf.inference.protocol import check_scales, preprocess
from vgg_tf.nets.fcn import to_fully_convolutional
from vgg_tf.weights.loading import load_model
from vgg_tf.weights.trained import TrainedModel
from vgg_tf.workdir import atomic_path

#: Appendix B's scales are these multiples of the 224 crop / 7 (256, 384, 512).
SCALE_RATIOS = (8, 12, 16)
#: Images per batch are bounded by their pixels at the largest Q (both flips).
BATCH_PIXELS = 1 << 21
MAX_BATCH = 64


def default_scales(crop_size: int) -> tuple[int, ...]:
    """Appendix B's Q in {256, 384, 512} at the 224 crop; the same ratios to any other crop.

    Example:
        >>> default_scales(224), default_scales(32)
        ((256, 384, 512), (37, 55, 73))
    """
    return tuple(round(crop_size * r / 7) for r in SCALE_RATIOS)


def descriptors(
    fc7_net: keras.Model,
    images: tf.Tensor,
    scales: Sequence[int],
    mean_rgb: Sequence[float] | None,
    flip: bool = True,
) -> tf.Tensor:
    """Appendix B's descriptors ``(N, fc7 width)`` of a batch of same-size RGB images.

    Args:
        fc7_net: The fully-convolutional net up to fc7 (``head="fc7"``).
        images: ``(N, H, W, 3)`` RGB in [0, 255] (not mean-subtracted).
        scales: Test scales Q, each rescaling the shorter side.
        mean_rgb: The training-set mean RGB to subtract; None when ``fc7_net`` subtracts it.
        flip: Average each image's horizontal flip in (the paper does).
    """
    n = tf.shape(images)[0]
    views = tf.concat([images, tf.reverse(images, axis=[2])], axis=0) if flip else images
    per_scale = []
    for q in scales:
        pooled = tf.reduce_mean(
            tf.cast(fc7_net(preprocess(views, q, mean_rgb)), tf.float32), axis=[1, 2]
        )
        per_scale.append((pooled[:n] + pooled[n:]) / 2.0 if flip else pooled)
    return tf.math.l2_normalize(tf.add_n(per_scale) / float(len(per_scale)), axis=-1)


class FeatureExtractor:
    """Appendix B's descriptor for one trained model.

    Args:
        trained: The model and its training config.
        scales: Test scales Q (each at least the training crop); default
            :func:`default_scales` of the model's crop.
        flip: Average the horizontal flip in (Appendix B: yes).
    """

    def __init__(
        self, trained: TrainedModel, scales: Sequence[int] | None = None, flip: bool = True
    ):
        trained.check_rgb()
        self.trained = trained
        crop = trained.crop_size
        self.scales = check_scales(scales, crop) if scales else default_scales(crop)
        self.flip = bool(flip)
        self.fc7_net = to_fully_convolutional(trained.model, head="fc7")
        self.dim = int(self.fc7_net.output_shape[-1])
        net, scales, mean = self.fc7_net, self.scales, trained.mean_to_subtract
        self._batch = tf.function(
            lambda batch: descriptors(net, batch, scales, mean, self.flip),
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


# --- A dataset's descriptors ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """Descriptors of a split: ``features`` ``(N, dim)`` float32, ``labels`` ``(N,)``,
    ``filenames``, the dataset's ``class_names``, and how they were made."""

    features: np.ndarray
    labels: np.ndarray
    filenames: tuple[str, ...]
    class_names: tuple[str, ...]
    dataset: str
    split: str
    model: str
    scales: tuple[int, ...]
    flip: bool

    def metadata(self) -> dict:
        return dict(
            dataset=self.dataset,
            split=self.split,
            model=self.model,
            scales=list(self.scales),
            flip=self.flip,
            class_names=list(self.class_names),
        )


def _same_size_batches(examples: Iterable, extractor: FeatureExtractor) -> Iterator[tuple]:
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
    extractor: FeatureExtractor, data: DatasetSplit, source: sources.Source, *, verbose: int = 1
) -> FeatureSet:
    """The descriptors of every image of ``data``'s split; bad records are skipped, counted
    and named (:func:`vgg_tf.data.sources.decoded_images`).

    Args:
        extractor: The model's descriptor.
        data: The images (the split: ``data.split``, else the source's test split).
        source: ``data.source()``, opened once by the caller.
        verbose: 1 draws a progress bar.
    """
    split = data.split_of(source)
    progress = (
        keras.utils.Progbar(data.count(source, split), unit_name="image") if verbose else None
    )
    features, labels, names = [], [], []
    decoded = data.decoded(source, split).as_numpy_iterator()
    for batch in _same_size_batches(decoded, extractor):
        features.append(extractor.batch(np.stack([image for image, _, _ in batch])))
        labels += [int(label) for _, label, _ in batch]
        names += [name.decode("utf-8", "replace") for _, _, name in batch]
        if progress is not None:
            progress.update(len(labels))
    if not labels:
        raise ValueError(f"Split {split!r} of {source.name!r} has no decodable image.")
    return FeatureSet(
        np.concatenate(features).astype(np.float32),
        np.asarray(labels, np.int64),
        tuple(names),
        tuple(source.class_names),
        source.name,
        split,
        extractor.trained.name,
        tuple(extractor.scales),
        extractor.flip,
    )


def extract_features(
    model: str | os.PathLike | TrainedModel,
    data: DatasetSplit,
    *,
    scales: Sequence[int] | None = None,
    flip: bool = True,
    verbose: int = 1,
) -> FeatureSet:
    """Appendix B's descriptors of a split of a dataset (``bin/features --output``).

    Args:
        model: A training workdir, a ``.keras`` file, ``"imagenet-D"`` or a
            :class:`TrainedModel` (see :func:`vgg_tf.weights.loading.load_model`).
        data: The images: a dataset's split (its test split by default), the
            first n, within the image limits.
        scales, flip: See :class:`FeatureExtractor`.
        verbose: 1 draws a progress bar.

    Example:
        >>> extract_features("workdirs/digits_A", DatasetSplit("digits", split="test"))  # doctest: +SKIP
    """
    extractor = FeatureExtractor(load_model(model), scales, flip)
    return split_features(extractor, data, data.source(), verbose=verbose)


# --- Files ---------------------------------------------------------------------------------


def _sidecar(path: str) -> str:
    return os.path.splitext(path)[0] + ".json"


def save_features(feature_set: FeatureSet, path: str | os.PathLike) -> list[str]:
    """Writes the features; returns the paths written (each whole or not at all).

    * ``.npz``: one file with arrays ``features`` (N, dim) float32, ``labels`` (N,)
      int64, ``filenames`` (N,) str, ``class_names`` str and ``metadata`` (a
      JSON string: dataset, split, model, scales, flip, class_names).
    * ``.npy``: ``features`` alone, and beside it ``<name>.json`` with
      ``filenames``, ``labels`` and the metadata.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fs = feature_set
    if path.endswith(".npz"):
        with atomic_path(path) as tmp:
            np.savez(
                tmp,
                features=fs.features,
                labels=fs.labels,
                filenames=np.asarray(fs.filenames, dtype=str),
                class_names=np.asarray(fs.class_names, dtype=str),
                metadata=np.asarray(json.dumps(fs.metadata())),
            )
        return [path]
    if path.endswith(".npy"):
        with atomic_path(path) as tmp:
            np.save(tmp, fs.features)
        sidecar = _sidecar(path)
        with atomic_path(sidecar) as tmp, open(tmp, "w") as f:
            json.dump(
                {**fs.metadata(), "filenames": list(fs.filenames), "labels": fs.labels.tolist()},
                f,
                indent=1,
            )
        return [path, sidecar]
    raise ValueError(f"Output {path!r} is not accepted; expected a .npz or .npy file name.")


def load_features(path: str | os.PathLike) -> FeatureSet:
    """Reads what :func:`save_features` wrote."""
    path = os.fspath(path)
    if path.endswith(".npz"):
        with np.load(path) as data:
            meta = json.loads(str(data["metadata"]))
            features, labels = data["features"], data["labels"]
            filenames = tuple(str(n) for n in data["filenames"])
    else:
        features = np.load(path)
        with open(_sidecar(path)) as f:
            meta = json.load(f)
        labels, filenames = np.asarray(meta.pop("labels"), np.int64), tuple(meta.pop("filenames"))
    return FeatureSet(
        features,
        labels,
        filenames,
        tuple(meta["class_names"]),
        meta["dataset"],
        meta["split"],
        meta["model"],
        tuple(meta["scales"]),
        meta["flip"],
    )


# --- A linear SVM on top -----------------------------------------------------------------


def _svm(c: float, seed: int):
    """scikit-learn's ``LinearSVC`` solving the primal problem: on these descriptors the
    dual solver (its default) needed thousands of iterations at large C, and sometimes
    did not converge, where the primal one takes a fraction of a second."""
    from sklearn.svm import LinearSVC

    return LinearSVC(C=c, dual=False, random_state=seed, max_iter=10_000)


#: The SVM constants C cross-validation chooses from, and its folds.
C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
CV_FOLDS = 3


def choose_c(train: FeatureSet, *, seed: int = 0) -> float:
    """The C of :data:`C_GRID` with the best mean accuracy over :data:`CV_FOLDS` stratified
    folds of ``train`` (the held-out split is not looked at); 1.0 when a class has fewer
    than two examples.

    L2-normalised descriptors are small: scikit-learn's default C = 1 underfits
    them (on the digits, a tiny net's descriptors gave 72% test accuracy at C = 1
    and 89% at C = 100), so C is chosen on the training split.
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    folds = min(CV_FOLDS, int(np.unique(train.labels, return_counts=True)[1].min()))
    if folds < 2:
        return 1.0
    search = GridSearchCV(
        _svm(1.0, seed),
        {"C": list(C_GRID)},
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
    )
    search.fit(train.features, train.labels)
    return float(search.best_params_["C"])


def fit_linear_svm(
    train: FeatureSet, test: FeatureSet, *, c: float | None = None, seed: int = 0
) -> dict:
    """Fits scikit-learn's ``LinearSVC`` on ``train``'s descriptors; scores ``test``.

    Args:
        train, test: Descriptors and labels.
        c: The SVM's C; None chooses it by cross-validation on ``train``
            (:func:`choose_c`).
        seed: For the solver and the folds.

    Returns:
        ``accuracy`` (a fraction) on ``test``, ``train_accuracy``, the example counts
        and the ``c`` used.
    """
    if c is not None and not c > 0:
        raise ValueError(f"c={c!r} is not accepted; expected > 0 (or None: cross-validated).")
    c = choose_c(train, seed=seed) if c is None else float(c)
    svm = _svm(c, seed).fit(train.features, train.labels)
    return dict(
        accuracy=float(svm.score(test.features, test.labels)),
        train_accuracy=float(svm.score(train.features, train.labels)),
        train_examples=len(train.labels),
        test_examples=len(test.labels),
        c=c,
    )


def linear_eval(
    model: str | os.PathLike | TrainedModel,
    data: DatasetSplit,
    *,
    train_split: str | None = None,
    c: float | None = None,
    scales: Sequence[int] | None = None,
    flip: bool = True,
    verbose: int = 1,
) -> tuple[dict, FeatureSet, FeatureSet]:
    """Appendix B's protocol: a linear SVM on the train split's descriptors, scored on a
    held-out split (``bin/features --linear_eval``).

    Args:
        model, scales, flip, verbose: As :func:`extract_features`.
        data: The held-out images (its split: default the dataset's test split);
            the train split is read the same way (its first n, within the limits).
        train_split: Default: the dataset's train split (for a dataset without a
            validation split, its first 90%, so that the held-out 10% stays unseen).
        c: The SVM's regularisation constant C; None chooses it by cross-validation
            on the train split (:func:`choose_c`).

    Returns:
        ``(scores, train features, test features)``; scores as :func:`fit_linear_svm`,
        plus the split names.
    """
    extractor = FeatureExtractor(load_model(model), scales, flip)
    source = data.source()
    test_data = dataclasses.replace(data, split=data.split_of(source))
    train_data = dataclasses.replace(data, split=train_split or source.train_split)
    train = split_features(extractor, train_data, source, verbose=verbose)
    test = split_features(extractor, test_data, source, verbose=verbose)
    scores = fit_linear_svm(train, test, c=c)
    return {**scores, "train_split": train_data.split, "test_split": test_data.split}, train, test
