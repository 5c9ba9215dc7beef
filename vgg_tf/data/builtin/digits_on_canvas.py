"""Real handwritten digits placed on a canvas with their boxes: offline localisation data.

A composition of scikit-learn's real 8x8 digits, not a natural-image benchmark:
each 64x64 black RGB canvas holds one target digit, enlarged to a random square
side of 20-40 pixels at a random position, and 1-2 smaller distractor digits
(sides of 8-14 pixels) of other classes that never overlap the target's box. The
image's label and its first object are the target; the box is the exact square
the digit was drawn into. Like :class:`~vgg_tf.data.builtin.Digits` it prepares
offline in seconds, with the same fixed stratified 80/20 split of the digits (so
test canvases hold test digits only): 2,874 train canvases (two per train digit)
and 360 test canvases (one per test digit).

Example:
    >>> import tempfile
    >>> builder = DigitsOnCanvas(data_dir=tempfile.mkdtemp())
    >>> builder.download_and_prepare()  # doctest: +ELLIPSIS
    Downloading and preparing dataset ...
    Dataset digits_on_canvas downloaded and prepared to ...
    >>> builder.info.splits["train"].num_examples, builder.info.splits["test"].num_examples
    (2874, 360)
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow_datasets as tfds

from vgg_tf.data.builtin.digits import SPLIT_SEED, TEST_FRACTION, PackagedBuilder

CANVAS_SIZE = 64
TARGET_SIDES = (20, 40)  # inclusive, pixels
DISTRACTOR_SIDES = (8, 14)  # inclusive, pixels: clearly smaller than any target
DISTRACTORS = (1, 2)  # inclusive, per canvas
_COPIES = {"train": 2, "test": 1}
_SEEDS = {"train": 1, "test": 2}


@functools.cache
def _bilinear_weights(size_in: int, size_out: int) -> np.ndarray:
    """``(size_out, size_in)`` matrix of bilinear resizing with half-pixel centres.

    The same sampling as ``tf.image.resize(method="bilinear")`` when enlarging.
    """
    source = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
    lower = np.floor(source).astype(int)
    upper = np.minimum(lower + 1, size_in - 1)
    weights = np.zeros((size_out, size_in))
    weights[np.arange(size_out), lower] += 1 - (source - lower)
    weights[np.arange(size_out), upper] += source - lower
    return weights


def _resize(digit: np.ndarray, side: int) -> np.ndarray:
    """An 8x8 digit of values 0..16 as a ``side`` x ``side`` uint8 image of 0..255."""
    weights = _bilinear_weights(digit.shape[0], side)
    return np.round(weights @ digit @ weights.T * (255.0 / 16.0)).astype(np.uint8)


def _free_position(rng: np.random.Generator, side: int, target) -> tuple[int, int]:
    """A uniform random top-left corner for a ``side`` square inside the canvas that
    does not overlap the ``target`` square ``(y, x, side)`` (a margin must fit it)."""
    ty, tx, ts = target
    corners = np.arange(CANVAS_SIZE - side + 1)
    clear_y = (corners + side <= ty) | (corners >= ty + ts)
    clear_x = (corners + side <= tx) | (corners >= tx + ts)
    free_y, free_x = np.nonzero(clear_y[:, None] | clear_x[None, :])
    pick = rng.integers(len(free_y))
    return int(free_y[pick]), int(free_x[pick])


def _box(y: int, x: int, side: int) -> np.ndarray:
    return np.array([y, x, y + side, x + side], np.float32) / CANVAS_SIZE


class DigitsOnCanvas(PackagedBuilder, tfds.core.GeneratorBasedBuilder):
    """64x64 canvases of one enlarged target digit and 1-2 small distractors, with boxes.

    Features: ``image`` (64, 64, 3) uint8; ``label`` the target's class (0-9);
    ``objects``: ``bbox`` (normalised ``ymin, xmin, ymax, xmax``) and ``label`` of
    the target first, then of the distractors.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    # DatasetInfo is built directly, as vgg_tf.data.builtin.digits does.
    def _info(self) -> tfds.core.DatasetInfo:
        classes = tfds.features.ClassLabel(names=[str(d) for d in range(10)])
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "A composition of scikit-learn's real 8x8 handwritten digits (UCI ML), "
                "not a natural-image benchmark: on a 64x64 black canvas, one target "
                "digit enlarged to a 20-40 pixel square at a random position, and 1-2 "
                "distractor digits of other classes (8-14 pixels) outside its box."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(CANVAS_SIZE, CANVAS_SIZE, 3)),
                    "label": classes,
                    "objects": tfds.features.Sequence(
                        {"bbox": tfds.features.BBoxFeature(), "label": classes}
                    ),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
            citation="Alpaydin & Kaynak (1998), UCI Optical Recognition of Handwritten Digits.",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # Nothing to download: the digits ship with scikit-learn.
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        indices = np.arange(len(digits.images))
        # The split of Digits, so that no test canvas shows a train digit.
        train, test = train_test_split(
            indices, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=digits.target
        )
        return {
            split: self._generate_examples(digits.images, digits.target, np.sort(chosen), split)
            for split, chosen in (("train", train), ("test", test))
        }

    def _generate_examples(
        self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, split: str
    ):
        rng = np.random.default_rng(_SEEDS[split])
        for copy in range(_COPIES[split]):
            for i in indices:
                yield f"{i}_{copy}", self._canvas(rng, images, labels, indices, int(i))

    @staticmethod
    def _canvas(
        rng: np.random.Generator,
        images: np.ndarray,
        labels: np.ndarray,
        indices: np.ndarray,
        target: int,
    ) -> dict:
        canvas = np.zeros((CANVAS_SIZE, CANVAS_SIZE), np.uint8)
        side = int(rng.integers(TARGET_SIDES[0], TARGET_SIDES[1] + 1))
        y, x = (int(v) for v in rng.integers(0, CANVAS_SIZE - side + 1, size=2))
        canvas[y : y + side, x : x + side] = _resize(images[target], side)
        label = int(labels[target])
        boxes, object_labels = [_box(y, x, side)], [label]

        others = indices[labels[indices] != label]
        # Sides that still fit beside the target: a 40-pixel target in the middle
        # leaves 12-pixel margins, where a 14-pixel distractor cannot go.
        largest = min(
            DISTRACTOR_SIDES[1], max(y, x, CANVAS_SIZE - y - side, CANVAS_SIZE - x - side)
        )
        for _ in range(int(rng.integers(DISTRACTORS[0], DISTRACTORS[1] + 1))):
            small = int(rng.integers(DISTRACTOR_SIDES[0], largest + 1))
            dy, dx = _free_position(rng, small, (y, x, side))
            other = int(rng.choice(others))
            region = canvas[dy : dy + small, dx : dx + small]
            # Distractors may overlap each other (never the target): keep the brighter ink.
            np.maximum(region, _resize(images[other], small), out=region)
            boxes.append(_box(dy, dx, small))
            object_labels.append(int(labels[other]))

        return {
            "image": np.repeat(canvas[..., None], 3, axis=-1),
            "label": label,
            "objects": {"bbox": np.stack(boxes), "label": object_labels},
        }
