"""Where labelled images come from: TFDS datasets, folders, the built-in digits.

A :class:`Source` gives the raw records of a split (encoded bytes, label, file
name) and its train / validation / test split names; :func:`get_source` makes
one from a TFDS name, ``"digits"`` or a folder path. Records stay encoded here:
what becomes of them is the input pipeline's business.

Bad records have one policy, used by the training and evaluation streams and
by the dataset statistics (:mod:`vgg_tf.data.pixel_statistics`) alike
(:func:`decode_skipping_bad`): a record that cannot be decoded, is truncated, or
declares a size over the limits of :mod:`vgg_tf.data.images` is skipped, counted and
named on stderr; a split in which nothing decodes is an error that names it.

Example:
    >>> source = get_source("digits")  # doctest: +SKIP
    >>> source.train_split, source.eval_split, source.test_split  # doctest: +SKIP
    ('train[:90%]', 'train[90%:]', 'test')
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import random
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from vgg_tf.data import box_records, images

#: File name endings a folder source reads: every format vgg_tf.data.images decodes.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")

_HOLDOUT = 10  # percent of train held out for validation when a dataset has none
_FOLDER_SPLITS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
_LOGGED_SKIP_NAMES = 10
#: Records decoded per nested dataset (see decode_skipping_bad): setting one up
#: costs about as much as decoding a small JPEG, so a group of records shares it.
DECODE_GROUP = 32
#: Datasets built offline from scikit-learn's digits: name -> builder in vgg_tf.data.builtin.
BUILT_IN = {"digits": "Digits", "digits_on_canvas": "DigitsOnCanvas"}
_AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class Source:
    """A dataset of labelled encoded images.

    Attributes:
        name: The dataset name or folder path it was made from.
        num_classes: Number of classes.
        class_names: Class names, index = label.
        train_split: Split (TFDS split spec) to train on.
        eval_split: Validation split: ``"validation"`` where the dataset has one, else
            the last 10% of train (and ``train_split`` is then the first 90%).
        test_split: ``"test"`` where the dataset has a labelled one, else ``eval_split``.
        builder: The TFDS builder (None for a folder).
        files: Folder sources: split -> (file paths, labels); None for TFDS datasets.
        box_reader: Reads a record's class and ground-truth boxes
            (:class:`vgg_tf.data.box_records.BoxReader`); None for a dataset without boxes.
    """

    name: str
    num_classes: int
    class_names: tuple[str, ...]
    train_split: str
    eval_split: str
    test_split: str
    builder: Any = dataclasses.field(default=None, repr=False, compare=False)
    files: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    box_reader: box_records.BoxReader | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    @property
    def boxes_in_pixels(self) -> bool:
        """Whether the records' boxes are in pixels (ILSVRC's files), not normalised."""
        return self.box_reader is not None and self.box_reader.in_pixels

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
        with_boxes: bool = False,
        autocache: bool = True,
    ) -> tf.data.Dataset:
        """Raw records of ``split`` as ``(image bytes, label int32, filename)``.

        ``filename`` is the file path (folders), the dataset's file-name feature, or
        the TFDS record id; never empty. Sharded per input pipeline when
        ``input_context`` has several. ``with_boxes`` makes the label a pair
        ``(label, boxes float32 [MAX_BOXES, 4])``: the ground-truth boxes of the
        label's class (:mod:`vgg_tf.data.box_records`). ``autocache``: TFDS may keep
        a small split in memory for the next epoch; a one-pass read turns it off
        (a cache read in part is discarded with a warning).

        Raises:
            ValueError: ``with_boxes`` for a dataset without boxes.
        """
        if with_boxes and self.box_reader is None:
            raise ValueError(
                f"Dataset {self.name!r} has no bounding boxes; localisation expects a dataset "
                "with boxes: 'digits_on_canvas' (built in), 'voc/2007', 'caltech_birds2011' or "
                "another TFDS dataset with a 'bbox' or 'objects/bbox' feature."
            )
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
        return self._tfds_records(
            split, shuffle_files, seed, input_context, deterministic, with_boxes, autocache
        )

    def _tfds_records(
        self, split, shuffle_files, seed, input_context, deterministic, with_boxes, autocache
    ):
        info = self.builder.info
        image_key, label_key = info.supervised_keys or ("image", None)
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
            try_autocache=autocache,
        )
        ds = self.builder.as_dataset(
            split=split,
            shuffle_files=shuffle_files,
            decoders={image_key: tfds.decode.SkipDecoding()},
            read_config=read_config,
        )
        if pipelines > 1 and not file_sharding:
            ds = ds.shard(pipelines, input_context.input_pipeline_id)

        def record(ex):
            if with_boxes or label_key is None:
                label, boxes = self.box_reader(ex)
                target = (label, boxes) if with_boxes else label
            else:
                target = tf.cast(ex[label_key], tf.int32)
            return ex[image_key], target, ex[name_key or "tfds_id"]

        ds = ds.map(record, num_parallel_calls=_AUTOTUNE, deterministic=deterministic)
        if with_boxes:  # a record without a box of its class has nothing to localise
            ds = ds.filter(
                lambda image, target, name: tf.reduce_any(target[1][:, 2] > target[1][:, 0])
            )
        return ds

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
            (``root/{train,validation,test}/<class>/*.jpg``); a folder source reads
            every format of :data:`IMAGE_EXTENSIONS`.
        data_dir: TFDS data directory (where datasets are prepared and read).
        manual_dir: Where manually downloaded files are (e.g. ImageNet's tars).

    Returns:
        The source, prepared (downloaded and converted by TFDS if needed).

    Raises:
        ValueError: If the dataset is unknown or not an image-classification dataset.

    Example:
        >>> source = get_source("digits", data_dir="/tmp/tfds")  # doctest: +SKIP
        >>> source.class_names[:3], source.train_split, source.eval_split  # doctest: +SKIP
        (('0', '1', '2'), 'train[:90%]', 'train[90%:]')
    """
    if dataset in BUILT_IN:
        from vgg_tf.data import builtin as datasets

        builder = getattr(datasets, BUILT_IN[dataset])(data_dir=data_dir)
        _prepare_quietly(builder)
        return _tfds_source(dataset, builder)
    if os.path.isdir(os.path.expanduser(dataset)):
        return folder_source(os.path.expanduser(dataset))
    if os.sep in dataset or dataset.startswith((".", "~")):
        raise ValueError(
            f"Folder {dataset!r} does not exist; expected a folder of class subfolders."
        )
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
    return _tfds_source(dataset, builder, manual_dir)


def _prepare_quietly(builder: tfds.core.DatasetBuilder) -> None:
    """Prepares a built-in dataset (under a second) with one line instead of TFDS' own.

    TFDS announces a download of "Unknown size" and draws progress bars; the
    built-in datasets download nothing.
    """
    announced, bars = io.StringIO(), io.StringIO()
    # tqdm draws on sys.stderr: the bars go to a buffer with the announcement, and
    # TFDS' own progress-bar setting is left as the caller had it.
    with contextlib.redirect_stdout(announced), contextlib.redirect_stderr(bars):
        builder.download_and_prepare()
    if announced.getvalue():
        print(f"Prepared the built-in {builder.name} dataset in {builder.data_dir}", flush=True)


def _splits(name: str, available: Sequence[str]) -> tuple[str, str, str]:
    if "train" not in available:
        raise ValueError(f"Dataset {name!r} has no 'train' split; it has {sorted(available)}.")
    test = "test" if "test" in available else None
    if "validation" in available:
        return "train", "validation", test or "validation"
    held_out = f"train[{100 - _HOLDOUT}%:]"
    return f"train[:{100 - _HOLDOUT}%]", held_out, test or held_out


def _tfds_source(
    name: str, builder: tfds.core.DatasetBuilder, manual_dir: str | None = None
) -> Source:
    info = builder.info
    keys = info.supervised_keys
    reader = box_records.box_reader(info)
    if keys and isinstance(info.features[keys[1]], tfds.features.ClassLabel):
        label = info.features[keys[1]]
        if reader is None and "file_name" in info.features:  # ImageNet's boxes, if given
            reader = box_records.ilsvrc_reader(manual_dir, label.names)
    elif reader is not None and not keys and box_records.class_feature(info) is not None:
        label, keys = box_records.class_feature(info), ("image", None)  # VOC: boxes give the class
    else:
        raise ValueError(
            f"Dataset {name!r} is not an image-classification dataset; expected supervised "
            f"keys (image, ClassLabel label), got {keys}."
        )
    # Evaluation splits published without labels (ImageNet's test images, when their
    # tar is in the manual dir) cannot be scored: as if absent.
    available = [
        split for split in info.splits if split == "train" or _is_labelled(builder, split, keys)
    ]
    train, val, test = _splits(name, available)
    return Source(
        name, label.num_classes, tuple(label.names), train, val, test, builder, box_reader=reader
    )


def _is_labelled(builder: tfds.core.DatasetBuilder, split: str, keys: Sequence[str]) -> bool:
    """False for a split whose first record has no label (TFDS writes -1 for none)."""
    image_key, label_key = keys
    if label_key is None:
        return True
    records = builder.as_dataset(
        split=split,
        decoders={image_key: tfds.decode.SkipDecoding()},
        # A cached dataset read only in part warns that its cache is discarded.
        read_config=tfds.ReadConfig(try_autocache=False),
    )
    return any(int(example[label_key]) >= 0 for example in records.take(1))


def _subfolders(path: str) -> list[str]:
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))


def _images_in(folder: str) -> list[str]:
    names = sorted(os.listdir(folder))
    return [
        os.path.join(folder, n)
        for n in names
        if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, n))
    ]


def _check_classes(
    path: str, train_dir: str, train_listing: dict[str, list[str]], class_names: list[str]
) -> None:
    """Refuses class folders without a training image.

    A class the net must score but never sees (an empty folder, one of other
    files, a link back to the dataset) would be trained as a class no image has.
    """
    empty = []
    for label in class_names:
        if train_listing.get(label):
            continue
        folder = os.path.realpath(os.path.join(train_dir, label))
        loops = os.path.realpath(path).startswith(folder + os.sep) or folder in (
            os.path.realpath(path),
            os.path.realpath(train_dir),
        )
        empty.append(f"{label!r}" + (" (a link back to the dataset)" if loops else ""))
    if empty:
        raise ValueError(
            f"Folder {path!r} has class folders without a training image: {', '.join(empty)}; "
            f"expected images ({', '.join(IMAGE_EXTENSIONS)}) in every class folder of "
            f"{train_dir}: add images, or move those folders out."
        )


def folder_source(path: str) -> Source:
    """A :class:`Source` over ``path/<class>/*`` or ``path/<split>/<class>/*`` image files.

    Class names are the sorted class folder names (over all splits); each
    split's files are listed in sorted order and then shuffled with a fixed
    seed per split name, as TFDS' ``ImageFolder`` does, so that a held-out
    slice (``train[90%:]``) mixes the classes. A class folder without a
    training image (empty, holding other files only, or a link back to the
    dataset) is refused, naming it (training also refuses fewer than two classes).

    Example:
        >>> source = folder_source("/data/photos")  # doctest: +SKIP
    """
    subdirs = _subfolders(path)
    split_dirs = (
        {"train": path}
        if "train" not in subdirs
        else {d: os.path.join(path, d) for d in subdirs if d in _FOLDER_SPLITS}
    )
    listing = {
        split: {label: _images_in(os.path.join(folder, label)) for label in _subfolders(folder)}
        for split, folder in split_dirs.items()
    }
    class_names = sorted({label for classes in listing.values() for label in classes})
    files = {}
    for split in sorted(listing):
        examples = [
            (p, class_names.index(label))
            for label, paths in sorted(listing[split].items())
            for p in paths
        ]
        random.Random(split).shuffle(examples)
        if examples:
            files[_FOLDER_SPLITS[split]] = tuple(zip(*examples))
    if not files.get("train"):
        raise ValueError(
            f"Folder {path!r} has no images ({', '.join(IMAGE_EXTENSIONS)}) in class "
            f"subfolders; expected {path}/<class>/*.jpg or {path}/train/<class>/*.jpg."
        )
    _check_classes(path, split_dirs["train"], listing["train"], class_names)
    train, val, test = _splits(path, list(files))
    return Source(path, len(class_names), tuple(class_names), train, val, test, files=files)


# --------------------------------------------------------------------------------------
# Bad records: the one policy
# --------------------------------------------------------------------------------------


def decode_skipping_bad(
    records: tf.data.Dataset,
    transform: Callable[..., Any],
    image_shape: Sequence[int | None],
    *,
    source_name: str,
    split: str,
    limit: int,
    group_size: int = DECODE_GROUP,
    deterministic: bool = True,
    dtype: tf.DType = tf.float32,
    with_names: bool = False,
    boxes_in_pixels: bool = False,
) -> tf.data.Dataset:
    """Applies ``transform`` to every record, skipping the records it fails on.

    A graph has no try/except. Each group of ``group_size`` consecutive records runs
    through a small nested dataset whose ``ignore_errors`` drops a record that
    raises; the indices of the survivors tell which were dropped. Skipped files are
    named on stderr, the first few and then at every power of ten of the running
    count. ``limit`` consecutive bad records mean no valid example is coming: that
    raises, naming the source.

    Records with boxes (``raw_records(with_boxes=True)``: the label is a pair
    ``(label, boxes)``) give ``transform`` the boxes too, and it returns the image
    and a target computed from them (such as the boxes in its crop's frame).

    Args:
        records: Elements ``(index, (image_bytes, label, filename))``, indices
            distinct; ``label`` may be a pair ``(label, boxes)``.
        transform: ``(index, image_bytes) -> image`` of image_shape and dtype, or
            for records with boxes ``(index, image_bytes, boxes) -> (image, target)``;
            may raise.
        image_shape: Shape of ``transform``'s image (None for a varying side).
        source_name: Named in the log and in the error.
        split: Named in the log and in the error.
        limit: Consecutive bad records that raise.
        group_size: Records per nested dataset (1 where images differ in shape).
        deterministic: Keep the order of the groups.
        dtype: ``transform``'s image dtype.
        with_names: Also give the good records' file names.
        boxes_in_pixels: The records' boxes are in pixels: they reach ``transform``
            normalised by the size the image's header declares
            (:attr:`Source.boxes_in_pixels`).

    Returns:
        ``(images [n, *image_shape], labels [n])`` per group with a good record: its
        good records in order, n varying (``rebatch`` or ``unbatch`` it); for records
        with boxes the labels are ``(labels [n], targets [n, ...])``; with
        ``with_names``, ``(images, labels, filenames)``.
    """
    del image_shape, dtype  # read from the transform's output (kept for the signature)
    message = (
        "vgg_tf: skipped a bad record (undecodable, truncated, or over the image size "
        f"limits) of '{source_name}' [{split}]"
    )

    def decode_group(indices, record):
        image_bytes, labels, filenames = record
        boxes = ()
        if isinstance(labels, tuple):
            labels, boxes = labels[0], (labels[1],)

        def attempt(index, one_image, *one_boxes):
            if one_boxes and boxes_in_pixels:
                one_boxes = (box_records.normalise(one_boxes[0], one_image),)
            return index, transform(index, one_image, *one_boxes)

        good = tf.data.Dataset.from_tensor_slices((indices, image_bytes, *boxes)).map(attempt)
        good = good.ignore_errors().batch(group_size)
        # All bad: an empty batch of the transform's structure (sides that vary: 0).
        nothing = tf.nest.map_structure(
            lambda spec: tf.zeros([d or 0 for d in spec.shape], spec.dtype), good.element_spec
        )
        good = good.concatenate(tf.data.Dataset.from_tensors(nothing))
        kept, decoded = good.take(1).get_single_element()
        ok = tf.reduce_any(tf.equal(indices[:, None], kept[None, :]), axis=1)
        labels = tf.boolean_mask(labels, ok)
        if boxes:
            decoded, targets = decoded
            labels = (labels, targets)
        names = tf.boolean_mask(filenames, ok)
        return decoded, labels, names, tf.boolean_mask(filenames, ~ok)

    def count(state, group):
        decoded, labels, names, bad_names = group
        total, run = state
        num_good, num_bad = tf.shape(names, tf.int64)[0], tf.shape(bad_names, tf.int64)[0]
        # Consecutive bad records, counted in whole groups without a good one.
        run = tf.where(num_good > 0, tf.constant(0, tf.int64), run + num_bad)
        check = tf.debugging.assert_less(
            run,
            tf.constant(limit, tf.int64),
            message=(
                f"Source '{source_name}' split '{split}' yielded no valid example in {limit} "
                "records: every image is undecodable, truncated or over the size limits."
            ),
        )
        with tf.control_dependencies([check, _log_skipped(message, total, bad_names)]):
            kept = (tf.identity(decoded), labels) + ((names,) if with_names else ())
            return (total + num_bad, run), kept

    def not_empty(decoded, *labels_and_names):
        # An all-bad group's empty batch (of side 0 where sides vary) cannot be
        # rebatched with real images.
        return tf.shape(decoded)[0] > 0

    groups = records.batch(group_size).map(
        decode_group, num_parallel_calls=_AUTOTUNE, deterministic=deterministic
    )
    zero = tf.constant(0, tf.int64)
    return groups.scan((zero, zero), count).filter(not_empty)


def _log_skipped(message: str, total: tf.Tensor, bad_names: tf.Tensor) -> tf.Tensor:
    """Prints the first skipped names and every power of ten of the count; returns a flag."""
    num_bad = tf.shape(bad_names, tf.int64)[0]
    numbers = total + tf.range(1, num_bad + 1, dtype=tf.int64)
    milestones = tf.constant([10**k for k in range(2, 10)], tf.int64)
    logged = tf.logical_or(
        numbers <= _LOGGED_SKIP_NAMES,
        tf.reduce_any(tf.equal(numbers[:, None], milestones[None, :]), axis=1),
    )
    lines = tf.strings.join([message, " (", tf.strings.as_string(numbers), " so far): ", bad_names])
    lines = tf.boolean_mask(lines, logged)

    def report():
        tf.print(tf.strings.reduce_join(lines, separator="\n"), output_stream=sys.stderr)
        return tf.constant(True)

    return tf.cond(tf.size(lines) > 0, report, lambda: tf.constant(False))


def decoded_images(
    source: Source,
    split: str,
    *,
    max_examples: int | None = None,
    max_pixels: int | None = images.DEFAULT_MAX_PIXELS,
    max_aspect_ratio: float | None = images.DEFAULT_MAX_ASPECT_RATIO,
    with_boxes: bool = False,
) -> tf.data.Dataset:
    """Whole decoded images of a split, ``(uint8 (H, W, 3), int32 label, filename)``.

    Bad records are skipped, counted and named (:func:`decode_skipping_bad`).
    ``with_boxes``: the label is ``(label, boxes)`` (:meth:`Source.raw_records`).

    Example:
        >>> image, label, name = next(iter(decoded_images(source, "test")))  # doctest: +SKIP
    """
    records = source.raw_records(split, with_boxes=with_boxes, autocache=False)
    if max_examples is not None:
        records = records.take(max_examples)
    num = source.num_examples(split) if max_examples is None else max_examples

    def decode(index, image_bytes, *boxes):
        image = images.decode_rgb(image_bytes, max_pixels, max_aspect_ratio)
        return (image, boxes[0]) if boxes else image

    decoded = decode_skipping_bad(
        records.enumerate(),
        decode,
        (None, None, 3),
        source_name=source.name,
        split=split,
        limit=max(num, 1),
        group_size=1,
        dtype=tf.uint8,
        with_names=True,
        boxes_in_pixels=source.boxes_in_pixels,
    )
    return decoded.unbatch().prefetch(_AUTOTUNE)
