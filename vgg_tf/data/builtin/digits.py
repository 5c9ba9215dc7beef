"""scikit-learn's 1,797 handwritten digits as a TFDS dataset.

The digits ship inside scikit-learn's wheel, so this builder prepares offline (in
well under a second) and makes the CLI's default dataset work on a fresh machine.

Example:
    >>> import tempfile
    >>> builder = Digits(data_dir=tempfile.mkdtemp())
    >>> builder.download_and_prepare()  # doctest: +ELLIPSIS
    Downloading and preparing dataset ...
    Dataset digits downloaded and prepared to ...
    >>> builder.info.splits["train"].num_examples, builder.info.splits["test"].num_examples
    (1437, 360)
"""

from __future__ import annotations

import inspect

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

#: The seeded, stratified train/test split every packaged digits dataset shares.
SPLIT_SEED = 0
TEST_FRACTION = 0.2


class PackagedBuilder:
    """Mixin of the builders that ship inside vgg_tf: their code path is their file.

    TFDS 4.9.10 resolves the code path of a builder that lives in a package
    through the `importlib_resources` backport, which tensorflow-datasets does not
    declare; the plain file path is all it needs (to look for a checksums file).
    """

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(inspect.getfile(cls))


class Digits(PackagedBuilder, tfds.core.GeneratorBasedBuilder):
    """8x8 RGB images of the digits 0-9 (UCI optical recognition set, via sklearn).

    Pixel values 0..16 are scaled to 0..255. The train/test split is a fixed,
    class-stratified 80/20 split (seed 0): 1,437 train and 360 test images.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def _info(self) -> tfds.core.DatasetInfo:
        # A plain module has no metadata files beside it, so DatasetInfo is built
        # directly (tfds.core.dataset_info_from_configs would look for them).
        return tfds.core.DatasetInfo(
            builder=self,
            description="scikit-learn's 1,797 8x8 handwritten digits (UCI ML).",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 3)),
                    "label": tfds.features.ClassLabel(names=[str(d) for d in range(10)]),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
            citation="Alpaydin & Kaynak (1998), UCI Optical Recognition of Handwritten Digits.",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # Nothing to download: the data ship with scikit-learn.
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
        rgb = np.repeat(images[..., None], 3, axis=-1)
        indices = np.arange(len(rgb))
        train, test = train_test_split(
            indices, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=digits.target
        )
        return {
            "train": self._generate_examples(rgb, digits.target, np.sort(train)),
            "test": self._generate_examples(rgb, digits.target, np.sort(test)),
        }

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray):
        for i in indices:
            yield int(i), {"image": images[i], "label": int(labels[i])}
