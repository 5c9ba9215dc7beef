"""Input pipeline: TFDS sources and the paper's training / evaluation preprocessing.

Sources (:func:`get_source`) are any TFDS image-classification dataset, a folder of
class subfolders (read with ``tfds.folder_dataset.ImageFolder``) or the built-in
``"digits"``. Records are read as raw encoded bytes, so this module decides how to
decode them: for JPEGs the training crop is decoded alone (``decode_and_crop_jpeg``).

Training preprocessing follows §3.1 of Simonyan & Zisserman (arXiv 1409.1556):
isotropic rescale so the shorter side is S (fixed, or drawn per image from
[Smin, Smax]), one random ``crop_size`` crop, random horizontal flip, Krizhevsky's
PCA colour shift, and subtraction of the training-set mean RGB. All randomness is
stateless and keyed by (seed, pipeline, position in the stream), so a stream is
reproducible, unaffected by parallelism, and resumable with ``skip_examples``.

Example:
    >>> source = get_source("digits")
    >>> ds = train_dataset(source, batch_size=32, crop_size=32, scale_min=32,
    ...                    scale_max=48, mean_rgb=compute_mean_rgb(source), seed=0)
    >>> images, labels = next(iter(ds))  # float32 [32, 32, 32, 3], int32 [32]
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

IMAGENET_MEAN_RGB = (123.68, 116.78, 103.94)
# Krizhevsky et al. (2012) PCA lighting on ImageNet, as published with
# fb.resnet.torch for pixels in [0, 1]; scaled here to pixels in [0, 255].
# Columns of the eigenvector matrix are the eigenvectors.
IMAGENET_PCA_EIGVAL = tuple(255.0 * v for v in (0.2175, 0.0188, 0.0045))
IMAGENET_PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)

_HOLDOUT = 10  # percent of train held out for validation when a dataset has none
_MAX_SHUFFLE_BUFFER = 8192
_LOGGED_SKIP_NAMES = 10
_FOLDER_SPLITS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
_AUTOTUNE = tf.data.AUTOTUNE


# --------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Source:
    """A dataset of labelled encoded images, read through TFDS.

    Attributes:
        name: The dataset name or folder path it was made from.
        num_classes: Number of classes.
        class_names: The TFDS ``ClassLabel`` names, index = label.
        train_split: Split (TFDS split spec) to train on.
        eval_split: Validation split: ``"validation"`` where the dataset has one, else
            the last 10% of train (and ``train_split`` is then the first 90%).
        test_split: ``"test"`` where the dataset has a labelled one, else ``eval_split``.
    """

    name: str
    num_classes: int
    class_names: tuple[str, ...]
    train_split: str
    eval_split: str
    test_split: str
    builder: Any = dataclasses.field(repr=False, compare=False)
    # Folder sources: split -> (file paths, labels); None for TFDS record datasets.
    files: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def num_examples(self, split: str) -> int:
        """Number of records in ``split`` (a TFDS split spec such as ``"train[:90%]"``)."""
        if self.files is not None:
            return len(self._folder_split(split)[0])
        return int(self.builder.info.splits[split].num_examples)

    def raw_records(
        self,
        split: str,
        *,
        shuffle_files: bool = False,
        seed: int | None = None,
        input_context: tf.distribute.InputContext | None = None,
        deterministic: bool = True,
    ) -> tf.data.Dataset:
        """Raw records of ``split`` as ``(image bytes, label int32, filename)``.

        ``filename`` is the file path (folders), the dataset's file-name feature, or
        the TFDS record id; never empty. Sharded per input pipeline when
        ``input_context`` has several.

        Example:
            >>> image_bytes, label, filename = next(iter(source.raw_records("test")))
        """
        if self.files is not None:
            paths, labels = self._folder_split(split)
            ds = tf.data.Dataset.from_tensor_slices((list(paths), np.asarray(labels, np.int32)))
            if input_context and input_context.num_input_pipelines > 1:
                ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
            if shuffle_files:
                ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
            return ds.map(
                lambda path, label: (tf.io.read_file(path), label, path),
                num_parallel_calls=_AUTOTUNE,
                deterministic=deterministic,
            )

        info = self.builder.info
        image_key, label_key = info.supervised_keys
        name_key = next((k for k in ("image/filename", "file_name") if k in info.features), None)
        num_files = len(info.splits[split].file_instructions)
        options = tf.data.Options()
        options.deterministic = deterministic
        pipelines = input_context.num_input_pipelines if input_context else 1
        # TFDS shards by file; with fewer files than pipelines shard by example.
        file_sharding = pipelines > 1 and num_files >= pipelines
        read_config = tfds.ReadConfig(
            shuffle_seed=seed,
            shuffle_reshuffle_each_iteration=True,
            input_context=input_context if file_sharding else None,
            add_tfds_id=name_key is None,
            options=options,
        )
        ds = self.builder.as_dataset(
            split=split,
            shuffle_files=shuffle_files,
            decoders={image_key: tfds.decode.SkipDecoding()},
            read_config=read_config,
        )
        if pipelines > 1 and not file_sharding:
            ds = ds.shard(pipelines, input_context.input_pipeline_id)
        return ds.map(
            lambda ex: (
                ex[image_key],
                tf.cast(ex[label_key], tf.int32),
                ex[name_key or "tfds_id"],
            ),
            num_parallel_calls=_AUTOTUNE,
            deterministic=deterministic,
        )

    def _folder_split(self, split: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
        instruction = tfds.core.ReadInstruction.from_spec(split)
        infos = {
            name: tfds.core.SplitInfo(name=name, shard_lengths=[len(paths)], num_bytes=0)
            for name, (paths, _) in self.files.items()
        }
        try:
            (absolute,) = instruction.to_absolute(infos)
        except (AssertionError, KeyError, ValueError) as e:
            raise ValueError(
                f"Unknown split {split!r} of {self.name!r}; expected one of {sorted(infos)}, "
                "optionally sliced like 'train[:90%]'."
            ) from e
        paths, labels = self.files[absolute.splitname]
        window = slice(absolute.from_, absolute.to)
        return paths[window], labels[window]


def get_source(
    dataset: str, *, data_dir: str | None = None, manual_dir: str | None = None
) -> Source:
    """Returns the :class:`Source` for a TFDS name, ``"digits"`` or a folder path.

    Args:
        dataset: A TFDS name (``"cifar10"``, ``"imagenet2012"``, ``"name/config:1.0.0"``),
            ``"digits"`` (scikit-learn's digits, prepared offline), or the path of a
            folder of class subfolders (``root/<class>/*.jpg``) or of split folders
            (``root/{train,validation,test}/<class>/*.jpg``).
        data_dir: TFDS data directory (where datasets are prepared and read).
        manual_dir: Where manually downloaded files are (e.g. ImageNet's tars).

    Returns:
        The source, prepared (downloaded and converted by TFDS if needed).

    Raises:
        ValueError: If the dataset is unknown or not an image-classification dataset.

    Example:
        >>> source = get_source("digits", data_dir="/tmp/tfds")
        >>> source.class_names[:3], source.train_split, source.eval_split
        (('0', '1', '2'), 'train[:90%]', 'train[90%:]')
    """
    if dataset == "digits":
        from vgg_tf.datasets import Digits

        builder = Digits(data_dir=data_dir)
        builder.download_and_prepare()
        return _tfds_source("digits", builder)
    if os.path.isdir(os.path.expanduser(dataset)):
        return _folder_source(os.path.expanduser(dataset))
    if os.sep in dataset or dataset.startswith((".", "~")):
        raise ValueError(f"Folder {dataset!r} does not exist; expected a folder of class subfolders.")
    try:
        builder = tfds.builder(dataset, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ValueError(
            f"Unknown dataset {dataset!r}. Expected a TFDS name (see tfds.list_builders()), "
            "'digits' (built in, no download), or the path of a folder of class subfolders, "
            "e.g. --dataset=/data/photos with /data/photos/<class>/*.jpg "
            "(or /data/photos/{train,validation,test}/<class>/*.jpg)."
        ) from e
    if not builder.is_prepared():
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
        )
    return _tfds_source(dataset, builder)


def _splits(name: str, available: Sequence[str]) -> tuple[str, str, str]:
    if "train" not in available:
        raise ValueError(f"Dataset {name!r} has no 'train' split; it has {sorted(available)}.")
    test = "test" if "test" in available else None
    if "validation" in available:
        return "train", "validation", test or "validation"
    held_out = f"train[{100 - _HOLDOUT}%:]"
    return f"train[:{100 - _HOLDOUT}%]", held_out, test or held_out


def _tfds_source(name: str, builder: tfds.core.DatasetBuilder) -> Source:
    info = builder.info
    keys = info.supervised_keys
    if not keys or not isinstance(info.features[keys[1]], tfds.features.ClassLabel):
        raise ValueError(
            f"Dataset {name!r} is not an image-classification dataset; expected supervised "
            f"keys (image, ClassLabel label), got {keys}."
        )
    label = info.features[keys[1]]
    # Evaluation splits published without labels (ImageNet's test images, when their
    # tar is in the manual dir) cannot be scored: as if absent.
    available = [
        split for split in info.splits.keys()
        if split == "train" or _is_labelled(builder, split, keys)
    ]
    train, val, test = _splits(name, available)
    return Source(name, label.num_classes, tuple(label.names), train, val, test, builder)


def _is_labelled(builder: tfds.core.DatasetBuilder, split: str, keys: Sequence[str]) -> bool:
    """False for a split whose first record has no label (TFDS writes -1 for none)."""
    image_key, label_key = keys
    records = builder.as_dataset(split=split, decoders={image_key: tfds.decode.SkipDecoding()})
    return any(int(example[label_key]) >= 0 for example in records.take(1))


def _folder_source(path: str) -> Source:
    subdirs = [d for d in sorted(os.listdir(path)) if os.path.isdir(os.path.join(path, d))]
    if "train" in subdirs:
        builder = tfds.folder_dataset.ImageFolder(path)
        link_root = None
    else:
        # Class folders directly under `path`: ImageFolder wants root/<split>/<class>,
        # so give it a root whose only split links to `path`.
        link_root = tempfile.mkdtemp(prefix="vgg_tf_folder_")
        os.symlink(os.path.abspath(path), os.path.join(link_root, "train"))
        builder = tfds.folder_dataset.ImageFolder(link_root)
    try:
        label = builder.info.features["label"]
        files = {}
        # ImageFolder reads files itself (with an unseeded shuffle and no sharding);
        # the pipeline reads its (already deterministically ordered) file list instead.
        for split, examples in builder._split_examples.items():  # pylint: disable=protected-access
            if split not in _FOLDER_SPLITS:
                continue
            paths = tuple(
                os.path.join(path, os.path.relpath(e.image_path, os.path.join(link_root, "train")))
                if link_root
                else e.image_path
                for e in examples
            )
            files[_FOLDER_SPLITS[split]] = (paths, tuple(label.str2int(e.label) for e in examples))
    finally:
        if link_root:
            shutil.rmtree(link_root)
    if not files.get("train"):
        raise ValueError(
            f"Folder {path!r} has no images (.jpg, .jpeg, .png) in class subfolders; expected "
            f"{path}/<class>/*.jpg or {path}/train/<class>/*.jpg."
        )
    train, val, test = _splits(path, list(files))
    return Source(path, label.num_classes, tuple(label.names), train, val, test, builder, files)


# --------------------------------------------------------------------------------------
# Preprocessing ops (pure TF: usable eagerly, in Dataset.map and in serving graphs)
# --------------------------------------------------------------------------------------


def decode_rgb(image_bytes: tf.Tensor) -> tf.Tensor:
    """Decodes JPEG, PNG, GIF (first frame), BMP or WebP bytes to 8-bit RGB.

    Grayscale is replicated to three channels, alpha dropped, CMYK JPEG converted,
    16-bit PNG scaled to 8 bits.

    Args:
        image_bytes: Scalar string tensor.

    Returns:
        uint8 tensor [height, width, 3].

    Example:
        >>> decode_rgb(tf.io.encode_png(tf.zeros([4, 6, 1], tf.uint8))).shape
        TensorShape([4, 6, 3])
    """
    is_webp = tf.logical_and(
        tf.equal(tf.strings.substr(image_bytes, 0, 4), b"RIFF"),
        tf.equal(tf.strings.substr(image_bytes, 8, 4), b"WEBP"),
    )

    def webp():  # RGB or RGBA; channels=3 refuses a WebP with alpha
        rgba = tf.io.decode_image(image_bytes, channels=0, dtype=tf.uint8, expand_animations=False)
        return rgba[..., :3]

    def other():
        return tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)

    image = tf.cond(is_webp, webp, other)
    image.set_shape([None, None, 3])
    return image


def rescale_shorter_side(image: tf.Tensor, size: int | tf.Tensor) -> tf.Tensor:
    """Isotropically rescales (bilinear) so that the shorter side is ``size``.

    Args:
        image: [height, width, channels] or [batch, height, width, channels], any
            real dtype.
        size: Target length of the shorter side (Q or S in the paper).

    Returns:
        float32 image(s); the longer side is rounded to the nearest pixel.

    Example:
        >>> rescale_shorter_side(tf.zeros([100, 50, 3]), 32).shape
        TensorShape([64, 32, 3])
    """
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    height, width = shape[-3], shape[-2]
    scaled = _scaled_size(height, width, size)
    return tf.image.resize(image, scaled, method="bilinear")


def _scaled_size(height: tf.Tensor, width: tf.Tensor, size) -> tf.Tensor:
    """(height, width) after rescaling the shorter side to ``size``; int32 [2]."""
    hw = tf.cast(tf.stack([height, width]), tf.float32)
    size = tf.cast(size, tf.float32)
    scaled = tf.round(hw * size / tf.reduce_min(hw))
    # The shorter side is exactly `size`, whatever the float rounding.
    scaled = tf.where(hw == tf.reduce_min(hw), size, scaled)
    return tf.cast(scaled, tf.int32)


def scaled_crop(
    image_bytes: tf.Tensor,
    scale: int | tf.Tensor,
    crop_size: int,
    offset: tf.Tensor | Sequence[float] = (0.5, 0.5),
    *,
    flip: bool | tf.Tensor = False,
    fused: bool = True,
) -> tf.Tensor:
    """A ``crop_size`` square of the image rescaled so its shorter side is ``scale``.

    The crop's top-left corner in the rescaled image is ``floor(offset * (room + 1))``
    per axis, ``room`` being rescaled size minus ``crop_size``: offset (0, 0) is the
    top-left crop, (0.5, 0.5) the centre and uniform offsets give a uniform crop.

    With ``fused=True`` the crop's window in source pixels (side ``crop_size *
    shorter side / scale``) is cut first and resized to ``crop_size``; for JPEGs
    only that window is decoded (``decode_and_crop_jpeg``), a fraction of the
    pixels at large ``scale``. With ``fused=False`` the whole image is decoded,
    rescaled and cropped. Both give the same image up to resampling: the window
    is rounded to whole source pixels (at most half a pixel off).

    Args:
        image_bytes: Scalar string tensor (any format :func:`decode_rgb` reads).
        scale: Shorter side after rescaling (S or Q); at least ``crop_size``.
        crop_size: Side of the square crop.
        offset: Two floats in [0, 1], (y, x).
        flip: Mirror the crop horizontally (a bool or a scalar bool tensor). The
            fused path mirrors the 8-bit window before resampling: the same image,
            as bilinear resampling is symmetric, and cheaper.
        fused: Crop before resampling (and decoding) rather than after.

    Returns:
        float32 [crop_size, crop_size, 3], values in [0, 255].

    Example:
        >>> jpeg = tf.io.encode_jpeg(tf.zeros([300, 400, 3], tf.uint8))
        >>> scaled_crop(jpeg, 256, 224).shape
        TensorShape([224, 224, 3])
    """
    offset = tf.convert_to_tensor(offset, tf.float32)

    def maybe_flip(image):
        if isinstance(flip, bool):
            return tf.reverse(image, [1]) if flip else image
        return tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)

    if not fused:
        image = rescale_shorter_side(decode_rgb(image_bytes), scale)
        corner = _crop_corner(tf.shape(image)[:2], crop_size, offset)
        crop = tf.slice(image, tf.concat([corner, [0]], 0), [crop_size, crop_size, 3])
        return maybe_flip(crop)

    def window(shape):
        """The crop's window in source pixels: (top-left corner, size)."""
        shape = tf.cast(shape[:2], tf.int32)
        scaled = _scaled_size(shape[0], shape[1], scale)
        corner = tf.cast(_crop_corner(scaled, crop_size, offset), tf.float32)
        ratio = tf.cast(scaled, tf.float32) / tf.cast(shape, tf.float32)
        size = tf.clip_by_value(tf.cast(tf.round(crop_size / ratio), tf.int32), 1, shape)
        first = tf.clip_by_value(tf.cast(tf.round(corner / ratio), tf.int32), 0, shape - size)
        return first, size

    def jpeg():
        first, size = window(tf.io.extract_jpeg_shape(image_bytes))
        # A crop inside the intact part of a truncated JPEG would decode: reject
        # truncated files here, as a full decode does.
        with tf.control_dependencies([_assert_complete(image_bytes)]):
            return tf.image.decode_and_crop_jpeg(
                image_bytes, tf.concat([first, size], 0), channels=3
            )

    def other():
        image = decode_rgb(image_bytes)
        first, size = window(tf.shape(image))
        return tf.slice(image, tf.concat([first, [0]], 0), tf.concat([size, [3]], 0))

    crop = maybe_flip(tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other))
    out = tf.image.resize(crop, [crop_size, crop_size], method="bilinear")
    return tf.ensure_shape(out, [crop_size, crop_size, 3])


def _crop_corner(scaled_hw: tf.Tensor, crop_size: int, offset: tf.Tensor) -> tf.Tensor:
    room = tf.cast(scaled_hw, tf.float32) - crop_size
    corner = tf.floor(offset * (room + 1.0))
    return tf.cast(tf.clip_by_value(corner, 0.0, room), tf.int32)


def pca_lighting(
    image: tf.Tensor,
    alpha: tf.Tensor,
    eigval: Sequence[float] = IMAGENET_PCA_EIGVAL,
    eigvec: Sequence[Sequence[float]] = IMAGENET_PCA_EIGVEC,
) -> tf.Tensor:
    """Krizhevsky et al. (2012) colour shift: adds ``eigvec @ (alpha * eigval)`` to RGB.

    Args:
        image: float [..., 3] in the pixel scale of ``eigval`` (0..255 by default).
        alpha: float [3], drawn from N(0, std) once per image (std 0.1 in the paper).
        eigval: Eigenvalues of the RGB pixel covariance.
        eigvec: 3x3 matrix whose columns are the matching eigenvectors.

    Returns:
        The shifted image (not clipped).

    Example:
        >>> pca_lighting(tf.zeros([2, 2, 3]), tf.constant([0.1, 0.0, 0.0])).shape
        TensorShape([2, 2, 3])
    """
    return image + _pca_shift(alpha, eigval, eigvec)


def _pca_shift(alpha, eigval, eigvec) -> tf.Tensor:
    """The RGB shift ``eigvec @ (alpha * eigval)``, float32 [3]."""
    weights = tf.cast(alpha, tf.float32) * tf.constant(eigval, tf.float32)
    return tf.linalg.matvec(tf.constant(eigvec, tf.float32), weights)


# --------------------------------------------------------------------------------------
# Skipping bad records
# --------------------------------------------------------------------------------------


def _assert_complete(jpeg_bytes: tf.Tensor) -> tf.Operation:
    """Raises for a JPEG without its end-of-image marker (a truncated file) in the
    last 64 bytes (allowing for trailing padding)."""
    tail = tf.strings.substr(jpeg_bytes, -tf.minimum(tf.strings.length(jpeg_bytes), 64), 64)
    tail = tf.io.decode_raw(tail, tf.uint8)
    marker = tf.logical_and(tf.equal(tail[:-1], 0xFF), tf.equal(tail[1:], 0xD9))
    return tf.debugging.Assert(tf.reduce_any(marker), ["truncated JPEG"])


# Records decoded per nested dataset (see _decode_skipping_bad): setting one up costs
# about as much as decoding a small JPEG, so a group of records shares it.
_DECODE_GROUP = 32


def _decode_skipping_bad(
    records: tf.data.Dataset,
    transform,
    image_shape: Sequence[int],
    *,
    source_name: str,
    split: str,
    limit: int,
    group_size: int = _DECODE_GROUP,
    deterministic: bool = True,
) -> tf.data.Dataset:
    """Applies ``transform`` to every record, skipping the records it fails on.

    A graph has no try/except. Each group of ``group_size`` consecutive records runs
    through a small nested dataset whose ``ignore_errors`` drops a record that
    raises; the indices of the survivors tell which were dropped. Skipped files are
    named on stderr, the first few and then at every power of ten of the running
    count. ``limit`` consecutive bad records mean no valid example is coming: that
    raises, naming the source.

    Args:
        records: Elements ``(index, (image_bytes, label, filename))``, indices distinct.
        transform: ``(index, image_bytes) -> float32 image of image_shape``; may raise.
        image_shape: Shape of ``transform``'s output (None for a varying side).
        source_name: Named in the log and in the error.
        split: Named in the log and in the error.
        limit: Consecutive bad records that raise.
        group_size: Records per nested dataset (1 where images differ in shape).
        deterministic: Keep the order of the groups.

    Returns:
        ``(images [n, *image_shape], labels [n])`` per group with a good record: its
        good records in order, n varying (``rebatch`` it).
    """
    message = (
        "vgg_tf.input_pipeline: skipped an undecodable or truncated record of "
        f"'{source_name}' [{split}]"
    )
    nothing = (tf.zeros([0], tf.int64), tf.zeros([0, *(d or 0 for d in image_shape)], tf.float32))

    def decode_group(indices, record):
        image_bytes, labels, filenames = record

        def attempt(index, one_image):
            return index, transform(index, one_image)

        good = tf.data.Dataset.from_tensor_slices((indices, image_bytes)).map(attempt)
        good = good.ignore_errors().batch(group_size)
        good = good.concatenate(tf.data.Dataset.from_tensors(nothing))  # all bad: empty
        kept, images = good.take(1).get_single_element()
        ok = tf.reduce_any(tf.equal(indices[:, None], kept[None, :]), axis=1)
        return images, tf.boolean_mask(labels, ok), tf.boolean_mask(filenames, tf.logical_not(ok))

    def count(state, group):
        images, labels, bad_names = group
        total, run = state
        num_good, num_bad = tf.shape(labels, tf.int64)[0], tf.shape(bad_names, tf.int64)[0]
        # Consecutive bad records, counted in whole groups without a good one.
        run = tf.where(num_good > 0, tf.constant(0, tf.int64), run + num_bad)
        check = tf.debugging.assert_less(
            run,
            tf.constant(limit, tf.int64),
            message=(
                f"Source '{source_name}' split '{split}' yielded no valid example in {limit} "
                "records: every image is undecodable or truncated."
            ),
        )
        numbers = total + tf.range(1, num_bad + 1, dtype=tf.int64)
        milestones = tf.constant([10**k for k in range(2, 10)], tf.int64)
        logged = tf.logical_or(
            numbers <= _LOGGED_SKIP_NAMES,
            tf.reduce_any(tf.equal(numbers[:, None], milestones[None, :]), axis=1),
        )
        lines = tf.strings.join(
            [message, " (", tf.strings.as_string(numbers), " so far): ", bad_names]
        )
        lines = tf.boolean_mask(lines, logged)

        def report():
            tf.print(tf.strings.reduce_join(lines, separator="\n"), output_stream=sys.stderr)
            return tf.constant(True)

        with tf.control_dependencies([check]):
            printed = tf.cond(tf.size(lines) > 0, report, lambda: tf.constant(False))
        with tf.control_dependencies([printed]):
            return (total + num_bad, run), (tf.identity(images), labels)

    def not_empty(images, labels):
        # An all-bad group's empty batch (of side 0 where sides vary) cannot be
        # rebatched with real images.
        return tf.size(labels) > 0

    groups = records.batch(group_size).map(
        decode_group, num_parallel_calls=_AUTOTUNE, deterministic=deterministic
    )
    zero = tf.constant(0, tf.int64)
    return groups.scan((zero, zero), count).filter(not_empty)


# --------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------


def _validate(crop_size: int, scales: dict[str, int]) -> None:
    if not isinstance(crop_size, (int, np.integer)) or crop_size <= 0:
        raise ValueError(f"crop_size={crop_size!r} is invalid; expected a positive integer.")
    for name, value in scales.items():
        if value < crop_size:
            raise ValueError(f"{name}={value} is smaller than crop_size={crop_size}; expected >= {crop_size}.")


def _finish(ds: tf.data.Dataset, ordered: bool) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = ordered
    # The nested datasets that skip bad records are stateless in effect; without
    # this, checkpointing an iterator refuses their ops.
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    return ds.prefetch(_AUTOTUNE).with_options(options)


def train_dataset(
    source: Source,
    *,
    batch_size: int,
    crop_size: int = 224,
    scale_min: int = 256,
    scale_max: int = 256,
    mean_rgb: Sequence[float] = IMAGENET_MEAN_RGB,
    color_shift_std: float = 0.1,
    pca_eigval: Sequence[float] | None = None,
    pca_eigvec: Sequence[Sequence[float]] | None = None,
    flip: bool = True,
    seed: int | None = None,
    deterministic: bool = False,
    skip_examples: int = 0,
    cache: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    fused_decode: bool = True,
    shuffle_buffer: int | None = None,
) -> tf.data.Dataset:
    """The infinite training stream of §3.1: jittered rescale, crop, flip, colour, mean.

    Args:
        source: From :func:`get_source`; reads ``source.train_split``.
        batch_size: Examples per batch from this pipeline (per replica under a strategy).
        crop_size: Side of the square training crop (224 in the paper).
        scale_min: Smin; each image's shorter side S is drawn uniformly (integers)
            from [scale_min, scale_max] (equal values: fixed S).
        scale_max: Smax.
        mean_rgb: Training-set mean RGB to subtract (see :func:`compute_mean_rgb`).
        color_shift_std: Std of the PCA colour-shift coefficients (0 disables).
        pca_eigval: RGB covariance eigenvalues (0..255 pixels); ImageNet's by default,
            or from :func:`compute_pca_lighting`.
        pca_eigvec: Matching eigenvectors, as columns of a 3x3 matrix.
        flip: Random horizontal flips.
        seed: Seed of the shuffle and of all augmentation; drawn (and logged) if None.
        deterministic: Keep element order fixed. Also implied by an explicit ``seed``:
            the same seed gives the same stream.
        skip_examples: Start the stream this many raw records in (resuming a run);
            skipped before decoding. Counted in the unsharded stream (all pipelines
            together). Undecodable records count as records.
        cache: Cache the encoded records in memory (small datasets).
        input_context: Shards the stream per input pipeline (multi-worker
            training): pipeline i decodes records i, i + n, i + 2n, ... of the
            shared shuffled stream.
        fused_decode: Decode (JPEG) and resample only the crop window.
        shuffle_buffer: Example shuffle buffer; default min(split size, 8192).

    Returns:
        Batches of (float32 [batch_size, crop_size, crop_size, 3], int32 [batch_size]),
        repeating forever, remainders dropped.

    Raises:
        ValueError: On invalid sizes, or a split without records.

    Example:
        >>> ds = train_dataset(get_source("digits"), batch_size=8, crop_size=32,
        ...                    scale_min=32, scale_max=64, seed=1)
    """
    _validate(crop_size, {"scale_min": scale_min, "scale_max": scale_max})
    if scale_min > scale_max:
        raise ValueError(f"scale_min={scale_min} > scale_max={scale_max}; expected scale_min <= scale_max.")
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size!r} is invalid; expected a positive integer.")
    if skip_examples < 0:
        raise ValueError(f"skip_examples={skip_examples} is invalid; expected >= 0.")
    split = source.train_split
    num_records = source.num_examples(split)
    if num_records == 0:
        raise ValueError(f"Source '{source.name}' split '{split}' has no records.")
    ordered = deterministic or seed is not None
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
        logging.info("train_dataset: drew seed %d", seed)
    logging.info(
        "train_dataset '%s' [%s]: S in [%d, %d], crop %d, mean RGB %s, colour std %g",
        source.name, split, scale_min, scale_max, crop_size, tuple(mean_rgb), color_shift_std,
    )
    key = tf.constant([seed, 0], tf.int64)
    eigval = IMAGENET_PCA_EIGVAL if pca_eigval is None else tuple(pca_eigval)
    eigvec = IMAGENET_PCA_EIGVEC if pca_eigvec is None else tuple(map(tuple, pca_eigvec))
    mean = tf.constant(mean_rgb, tf.float32)

    def augment(index, image_bytes):
        # Per-element randomness from (seed, pipeline, position): reproducible, and
        # independent of parallel map order and of where the stream was resumed.
        uniform_key, normal_key = tf.unstack(
            tf.random.experimental.stateless_split(
                tf.random.experimental.stateless_fold_in(key, index), 2
            )
        )
        u = tf.random.stateless_uniform([4], uniform_key)  # S, crop y, crop x, flip
        scale = scale_min + tf.cast(tf.floor(u[0] * (scale_max - scale_min + 1)), tf.int32)
        mirror = u[3] < 0.5 if flip else False
        image = scaled_crop(image_bytes, scale, crop_size, u[1:3], flip=mirror, fused=fused_decode)
        offset = -mean
        if color_shift_std:
            alpha = tf.random.stateless_normal([3], normal_key, stddev=color_shift_std)
            offset += _pca_shift(alpha, eigval, eigvec)
        return image + offset  # colour shift and mean subtraction in one pass

    records = source.raw_records(split, shuffle_files=True, seed=seed, deterministic=ordered)
    if cache:
        records = records.cache()
    buffer = shuffle_buffer or min(num_records, _MAX_SHUFFLE_BUFFER)
    records = records.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    records = records.enumerate().skip(skip_examples)
    if input_context and input_context.num_input_pipelines > 1:
        # Every pipeline reads the same shuffled stream and decodes every n-th
        # record: the replicas' batches together are exactly the global batch one
        # process would train on (§3.3), keyed by the same stream positions.
        records = records.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    # 2 x split size consecutive bad records contain a whole epoch: nothing is valid.
    groups = _decode_skipping_bad(
        records, augment, (crop_size, crop_size, 3), source_name=source.name, split=split,
        limit=2 * num_records + 1, deterministic=ordered,
    )
    return _finish(groups.rebatch(batch_size, drop_remainder=True), ordered)


def eval_dataset(
    source: Source,
    *,
    split: str | None = None,
    batch_size: int,
    image_size: int,
    crop_size: int = 224,
    mode: str = "center",
    mean_rgb: Sequence[float] = IMAGENET_MEAN_RGB,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """One pass over a split, rescaled to shorter side Q = ``image_size`` (§3.2).

    Args:
        source: From :func:`get_source`.
        split: Split spec; ``source.eval_split`` by default.
        batch_size: Examples per batch (the last batch may be smaller).
        image_size: Q, the shorter side after rescaling.
        crop_size: Side of the centre crop (mode "center").
        mode: "center" (one centre crop) or "full" (the whole rescaled image; batch
            size must be 1 unless all images share a shape).
        mean_rgb: Training-set mean RGB to subtract.
        input_context: Shards the split per input pipeline.

    Returns:
        Finite dataset of (float32 images, int32 labels), in a fixed order;
        undecodable records are skipped and logged.

    Example:
        >>> ds = eval_dataset(get_source("digits"), batch_size=64, image_size=32,
        ...                   crop_size=32)
    """
    if mode not in ("center", "full"):
        raise ValueError(f"mode={mode!r} is invalid; expected 'center' or 'full'.")
    _validate(crop_size, {"image_size": image_size} if mode == "center" else {})
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size!r} is invalid; expected a positive integer.")
    split = split or source.eval_split
    num_records = source.num_examples(split)
    if num_records == 0:
        raise ValueError(f"Source '{source.name}' split '{split}' has no records.")
    mean = tf.constant(mean_rgb, tf.float32)

    def transform(index, image_bytes):
        if mode == "center":
            image = scaled_crop(image_bytes, image_size, crop_size)
        else:
            image = rescale_shorter_side(decode_rgb(image_bytes), image_size)
        return image - mean

    records = source.raw_records(split, input_context=input_context).enumerate()
    groups = _decode_skipping_bad(
        records, transform, (crop_size, crop_size, 3) if mode == "center" else (None, None, 3),
        source_name=source.name, split=split, limit=num_records,
        # Whole images differ in shape: one per nested dataset.
        group_size=_DECODE_GROUP if mode == "center" else 1,
    )
    return _finish(groups.rebatch(batch_size), ordered=True)


# --------------------------------------------------------------------------------------
# Dataset statistics
# --------------------------------------------------------------------------------------


def _pixel_moments(source: Source, split: str | None, max_examples: int | None):
    """Pixel count, RGB sum and RGB outer-product sum (float64) over a split."""
    split = split or source.train_split
    records = source.raw_records(split)
    if max_examples is not None:
        records = records.take(max_examples)

    def moments(image_bytes, label, filename):
        pixels = tf.reshape(tf.cast(decode_rgb(image_bytes), tf.float64), [-1, 3])
        return tf.cast(tf.shape(pixels)[0], tf.float64), tf.reduce_sum(pixels, 0), tf.matmul(
            pixels, pixels, transpose_a=True
        )

    zero = (tf.constant(0.0, tf.float64), tf.zeros([3], tf.float64), tf.zeros([3, 3], tf.float64))
    ds = records.map(moments, num_parallel_calls=_AUTOTUNE).ignore_errors()
    n, total, outer = ds.reduce(zero, lambda s, m: tuple(a + b for a, b in zip(s, m)))
    if n.numpy() == 0:
        raise ValueError(f"Source '{source.name}' split '{split}' has no decodable image.")
    return n.numpy(), total.numpy(), outer.numpy()


def compute_mean_rgb(
    source: Source, split: str | None = None, max_examples: int | None = None
) -> tuple[float, float, float]:
    """Mean RGB (0..255) over all pixels of a split (the train split by default).

    Example:
        >>> compute_mean_rgb(get_source("digits"))  # doctest: +SKIP
        (47.6, 47.6, 47.6)
    """
    n, total, _ = _pixel_moments(source, split, max_examples)
    return tuple(float(v) for v in total / n)


def compute_pca_lighting(
    source: Source, split: str | None = None, max_examples: int | None = None
) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """PCA lighting constants of a split, in the convention of the ImageNet ones.

    Returns the eigenvalues of the RGB covariance of pixels scaled to [0, 1],
    multiplied by 255 (as :data:`IMAGENET_PCA_EIGVAL`), and the eigenvectors as
    columns; they feed ``train_dataset(pca_eigval=..., pca_eigvec=...)``.

    Example:
        >>> eigval, eigvec = compute_pca_lighting(get_source("digits"), max_examples=100)
    """
    n, total, outer = _pixel_moments(source, split, max_examples)
    mean = total / n
    covariance = (outer / n - np.outer(mean, mean)) / 255.0**2
    eigval, eigvec = np.linalg.eigh(covariance)
    order = np.argsort(eigval)[::-1]
    eigval = np.maximum(eigval[order], 0.0) * 255.0
    return tuple(map(float, eigval)), tuple(map(tuple, eigvec[:, order].tolist()))
