"""Which images an evaluation reads: a dataset's split, its first n images, within the limits.

``bin/evaluate`` (both tasks) and ``bin/features`` read their images the same
way: the dataset's test split by default, optionally only its first n records,
images over the limits skipped, counted and named
(:func:`vgg_tf.data.sources.decoded_images`). :class:`DatasetSplit` holds those
choices together; :func:`trained_on` finds the dataset the models were trained on,
which both commands read when ``--dataset`` is not given.

Example:
    >>> data = DatasetSplit("digits", max_examples=100)
    >>> data.split is None, data.limits.max_pixels
    (True, 40000000)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import tensorflow as tf
import tensorflow_datasets as tfds

from vgg_tf.data import sources
from vgg_tf.data.images import DEFAULT_LIMITS, ImageLimits
from vgg_tf.weights.loading import recorded_config


@dataclasses.dataclass(frozen=True)
class DatasetChoice:
    """The dataset an evaluation reads when none is named, and why.

    Attributes:
        dataset: The dataset's name (or folder).
        reason: One line for the user: which dataset, and where it comes from.
    """

    dataset: str
    reason: str


def trained_on(models: Sequence[str | os.PathLike], default: str) -> DatasetChoice:
    """The dataset ``models`` were trained on, as their workdirs record it (``imagenet-D``:
    ImageNet's ``imagenet2012``); ``default`` when none records one (a bare ``.keras``).

    Models that record nothing go with those that do.

    Raises:
        ValueError: The models record different datasets (each named).

    Example:
        >>> trained_on(["imagenet-D", "imagenet-E"], "digits").dataset
        'imagenet2012'
        >>> trained_on(["/no/such/model.keras"], "digits").reason
        'dataset: digits (the default: no training dataset recorded by /no/such/model.keras)'
    """
    recorded = {os.fspath(m): recorded_config(m).get("dataset") or "" for m in models}
    named = {model: dataset for model, dataset in recorded.items() if dataset}
    if len(set(named.values())) > 1:
        each = ", ".join(f"{model}: {dataset}" for model, dataset in named.items())
        raise ValueError(
            f"The models were trained on different datasets ({each}); pass --dataset to name "
            "the one to evaluate on."
        )
    if named:
        dataset = next(iter(named.values()))
        return DatasetChoice(dataset, f"dataset: {dataset} (what {', '.join(named)} trained on)")
    return DatasetChoice(
        default,
        f"dataset: {default} (the default: no training dataset recorded by {', '.join(recorded)})",
    )


@dataclasses.dataclass(frozen=True)
class DatasetSplit:
    """The images an evaluation reads.

    Attributes:
        dataset: A TFDS name, ``"digits"`` (built in) or a folder of class subfolders.
        split: The split to read; default the dataset's test split (``"test"``
            where it has a labelled one, else its validation split, as for ImageNet).
        data_dir: TFDS data directory.
        max_examples: Read only the first n records (None: all).
        limits: Images over them are skipped, counted and named.

    Raises:
        ValueError: An empty dataset name or a ``max_examples`` below 1.

    Example:
        >>> DatasetSplit("digits", max_examples=0)
        Traceback (most recent call last):
        ...
        ValueError: max_examples=0 is not accepted; expected a positive integer or None (all).
    """

    dataset: str
    split: str | None = None
    data_dir: str | None = None
    max_examples: int | None = None
    limits: ImageLimits = DEFAULT_LIMITS

    def __post_init__(self):
        if not self.dataset:
            raise ValueError(
                f"dataset={self.dataset!r} is not accepted; expected a TFDS name, 'digits' "
                "or a folder of class subfolders."
            )
        if self.max_examples is not None and not (
            isinstance(self.max_examples, int) and self.max_examples >= 1
        ):
            raise ValueError(
                f"max_examples={self.max_examples!r} is not accepted; expected a positive "
                "integer or None (all)."
            )

    def source(self) -> sources.Source:
        """The dataset (:func:`vgg_tf.data.sources.get_source`)."""
        return sources.get_source(self.dataset, data_dir=self.data_dir)

    def split_of(self, source: sources.Source) -> str:
        """:attr:`split`, or the source's test split."""
        return self.split or source.test_split

    def count(self, source: sources.Source, split: str) -> int:
        """Records read from ``split``: all of them, or the first :attr:`max_examples`."""
        total = source.num_examples(split)
        return total if self.max_examples is None else min(total, self.max_examples)

    def decoded(
        self, source: sources.Source, split: str, *, with_boxes: bool = False
    ) -> tf.data.Dataset:
        """Whole decoded images of ``split``, ``(uint8 (H, W, 3), label, filename)``;
        ``with_boxes``: the label is ``(label, boxes)``. Bad records are skipped,
        counted and named."""
        return sources.decoded_images(
            source,
            split,
            max_examples=self.max_examples,
            max_pixels=self.limits.max_pixels,
            max_aspect_ratio=self.limits.max_aspect_ratio,
            with_boxes=with_boxes,
        )

    def label_sets(self, source: sources.Source, split: str) -> dict[str, tuple[int, ...]] | None:
        """Every class each record of ``split`` holds, by file name, for a TFDS dataset
        whose images hold several: its ``labels`` sequence (VOC's) or, without one, its
        ``objects``' labels. None for a dataset of one class per image (a folder, the
        digits, ImageNet, Caltech).

        The file names are those :meth:`decoded` gives (the dataset's file-name
        feature, else the TFDS record id), so the sets can be matched to its images.
        """
        builder = source.builder
        if builder is None or builder.info.supervised_keys:
            return None
        features = builder.info.features
        key = _classes_key(features)
        if key is None:
            return None
        name_key = next((k for k in ("image/filename", "file_name") if k in features), None)
        records = builder.as_dataset(
            split=split,
            decoders={"image": tfds.decode.SkipDecoding()} if "image" in features else None,
            read_config=tfds.ReadConfig(add_tfds_id=name_key is None, try_autocache=False),
        )
        if self.max_examples is not None:
            records = records.take(self.max_examples)
        return {
            example[name_key or "tfds_id"].decode("utf-8", "replace"): tuple(
                sorted({int(c) for c in _read(example, key)})
            )
            for example in records.as_numpy_iterator()
        }


def _classes_key(features) -> tuple[str, ...] | None:
    """Where a TFDS record lists the classes it holds: ``("labels",)`` (VOC) or
    ``("objects", "label")``; None when it lists none."""
    if "labels" in features and isinstance(features["labels"], tfds.features.Sequence):
        return ("labels",)
    if (
        "objects" in features
        and isinstance(features["objects"], tfds.features.Sequence)
        and "label" in features["objects"].feature
    ):
        return ("objects", "label")
    return None


def _read(example: dict, key: tuple[str, ...]):
    for part in key:
        example = example[part]
    return example
