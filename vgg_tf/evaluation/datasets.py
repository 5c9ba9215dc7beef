"""Which images an evaluation reads: a dataset's split, its first n images, within the limits.

``bin/evaluate`` (both tasks) and ``bin/features`` read their images the same
way: the dataset's test split by default, optionally only its first n records,
images over the limits skipped, counted and named
(:func:`vgg_tf.data.sources.decoded_images`). :class:`DatasetSplit` holds those
choices together.

Example:
    >>> data = DatasetSplit("digits", max_examples=100)
    >>> data.split is None, data.limits.max_pixels
    (True, 40000000)
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from vgg_tf.data import sources
from vgg_tf.data.images import DEFAULT_LIMITS, ImageLimits


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
