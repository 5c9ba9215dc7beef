"""Data sources (vgg_tf.data.sources): the digits, TFDS datasets, folders, splits, dataset
statistics, and the one bad-record policy (skipped, counted, named; images and labels
kept aligned)."""

import inspect
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image
from skimage import data

from vgg_tf.data import images, pixel_statistics, sources
from vgg_tf.data import pipeline as ip

CROP = 32
SKIPPED = re.compile(r"skipped a bad record .* \((\d+) so far\): (\S+)")


def _skipped(log):
    """(count, file name) of each skipped-record line of a log."""
    return [(int(n), os.path.basename(path)) for n, path in SKIPPED.findall(log)]


def photo_folder(root, extra=None):
    """root/<class>/*.jpg with small real photos; ``extra`` maps names to bytes."""
    photos = {"cat": ("chelsea", "cat"), "other": ("astronaut", "coffee", "rocket")}
    for label, names in photos.items():
        os.makedirs(root / label, exist_ok=True)
        for name in names:
            small = Image.fromarray(getattr(data, name)()).reduce(4)
            small.save(root / label / f"{name}.jpg", quality=90)
    for name, payload in (extra or {}).items():
        (root / name).write_bytes(payload)
    return str(root)


# --- The digits and TFDS datasets ------------------------------------------------------------


def test_digits_source(digits):
    assert digits.num_classes == 10 and digits.class_names == tuple(str(d) for d in range(10))
    assert (digits.train_split, digits.eval_split, digits.test_split) == (
        "train[:90%]",
        "train[90%:]",
        "test",
    )
    assert digits.num_examples(digits.train_split) + digits.num_examples(digits.eval_split) == 1437
    assert digits.num_examples("test") == 360
    image_bytes, label, name = next(iter(digits.raw_records("test")))
    assert images.decode_rgb(image_bytes).shape == (8, 8, 3) and label.dtype == tf.int32
    assert name.numpy()  # TFDS record id when the dataset has no file names


def test_raw_records_shard_per_input_pipeline(digits):
    whole = [n.numpy() for _, _, n in digits.raw_records("test")]
    parts = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline)
        parts.append([n.numpy() for _, _, n in digits.raw_records("test", input_context=context)])
    assert len(parts[0]) == len(parts[1]) == 180
    assert sorted(parts[0] + parts[1]) == sorted(whole) and not set(parts[0]) & set(parts[1])


class UnlabelledTestSplit(tfds.core.GeneratorBasedBuilder):
    """Like ImageNet with its test tar: a test split whose labels are -1 (none)."""

    VERSION = tfds.core.Version("1.0.0")

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return epath.Path(inspect.getfile(cls))

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 3)),
                    "label": tfds.features.ClassLabel(num_classes=2),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples([0, 1, 0, 1]),
            "validation": self._generate_examples([1, 0]),
            "test": self._generate_examples([-1, -1, -1]),
        }

    def _generate_examples(self, labels):
        for i, label in enumerate(labels):
            yield i, {"image": np.full((8, 8, 3), 40 * i, np.uint8), "label": label}


def test_unlabelled_test_split_is_not_the_test_split(tmp_path):
    source = sources.get_source("unlabelled_test_split", data_dir=str(tmp_path))
    assert (source.train_split, source.eval_split, source.test_split) == (
        "train",
        "validation",
        "validation",
    )
    assert source.num_examples("test") == 3  # there, but not scored


def test_unknown_dataset_names_folder_option(tmp_path):
    with pytest.raises(ValueError, match="folder of class subfolders"):
        sources.get_source("no_such_dataset_xyz", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        sources.get_source(str(tmp_path / "missing"))


# --- Folders ---------------------------------------------------------------------------------


def test_folder_source_reads_every_format_images_decodes(tmp_path, encode):
    pixels = np.full((12, 14, 3), 90, np.uint8)
    files = {
        "a/one.jpg": "JPEG",
        "a/two.JPEG": "JPEG",
        "a/three.png": "PNG",
        "b/four.gif": "GIF",
        "b/five.bmp": "BMP",
        "b/six.webp": "WEBP",
        "b/seven.jpeg": "JPEG",
    }
    for name, fmt in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(encode(pixels, fmt))
    (tmp_path / "a" / "notes.txt").write_text("not listed")
    (tmp_path / "a" / "nested").mkdir()
    (tmp_path / "a" / "nested" / "deep.jpg").write_bytes(encode(pixels))  # not a class folder
    source = sources.get_source(str(tmp_path))
    assert source.class_names == ("a", "b") and source.files is not None
    records = list(source.raw_records("train"))
    listed = {os.path.relpath(n.numpy().decode(), tmp_path): int(label) for _, label, n in records}
    assert listed == {name: "ab".index(name[0]) for name in files}
    assert source.num_examples("train") == 7
    for image_bytes, _, _ in records:  # each listed file is one images decodes
        assert images.decode_rgb(image_bytes).shape == (12, 14, 3)


def test_folder_splits_from_split_folders_or_held_out(tmp_path, encode):
    pixels = encode(np.zeros((8, 8, 3), np.uint8), "PNG")
    for split, classes in {"train": "xyz", "val": "xy", "test": "z"}.items():
        for label in classes:
            (tmp_path / "split" / split / label).mkdir(parents=True)
            for i in range(3):
                (tmp_path / "split" / split / label / f"{i}.png").write_bytes(pixels)
    source = sources.get_source(str(tmp_path / "split"))
    assert (source.train_split, source.eval_split, source.test_split) == (
        "train",
        "validation",
        "test",
    )
    assert source.class_names == ("x", "y", "z")
    assert [source.num_examples(s) for s in ("train", "validation", "test")] == [9, 6, 3]
    assert {int(label) for _, label, _ in source.raw_records("test")} == {2}
    with pytest.raises(ValueError, match="Unknown split 'nope'"):
        source.num_examples("nope")

    for label in "pq":
        (tmp_path / "flat" / label).mkdir(parents=True)
        for i in range(10):
            (tmp_path / "flat" / label / f"{i}.png").write_bytes(pixels)
    flat = sources.get_source(str(tmp_path / "flat"))
    assert (flat.train_split, flat.eval_split, flat.test_split) == (
        "train[:90%]",
        "train[90%:]",
        "train[90%:]",
    )
    train = [n.numpy() for _, _, n in flat.raw_records(flat.train_split)]
    held_out = [n.numpy() for _, _, n in flat.raw_records(flat.eval_split)]
    assert len(train) == 18 and len(held_out) == 2 and not set(train) & set(held_out)
    # The listing is shuffled with a fixed seed, so the held-out slice mixes the classes...
    assert {int(label) for _, label, _ in flat.raw_records("train[50%:]")} == {0, 1}
    # ...and is the same every time.
    again = sources.get_source(str(tmp_path / "flat"))
    assert [n.numpy() for _, _, n in again.raw_records(again.eval_split)] == held_out

    (tmp_path / "empty" / "c").mkdir(parents=True)
    (tmp_path / "empty" / "c" / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match=r"has no images \(.jpg, .jpeg, .png, .gif, .bmp, .webp\)"):
        sources.get_source(str(tmp_path / "empty"))


def test_class_folders_without_a_training_image_are_refused_naming_them(tmp_path, encode):
    """Issue 20: a class folder with no images (or only non-images), or a link back to the
    dataset root, became a class with no examples."""
    pixels = encode(np.zeros((8, 8, 3), np.uint8), "PNG")
    root = tmp_path / "photos"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        (root / label / "0.png").write_bytes(pixels)
    assert sources.get_source(str(root)).class_names == ("cat", "dog")
    (root / "empty").mkdir()
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("no image here")
    os.symlink(root, root / "loop")
    with pytest.raises(
        ValueError,
        match=r"without a training image: 'empty', 'loop' \(a link back to the dataset\), "
        r"'notes'; expected images \(.jpg",
    ):
        sources.get_source(str(root))
    # A class with validation images only is never trained on either.
    for split, labels in {"train": ("cat", "dog"), "validation": ("cat", "dog", "bird")}.items():
        for label in labels:
            (tmp_path / "split" / split / label).mkdir(parents=True)
            (tmp_path / "split" / split / label / "0.png").write_bytes(pixels)
    with pytest.raises(ValueError, match=r"without a training image: 'bird'"):
        sources.get_source(str(tmp_path / "split"))


def test_decoded_images_give_good_records_with_their_names(tmp_path, encode, capfd):
    os.makedirs(tmp_path / "c")
    for i in range(4):
        (tmp_path / "c" / f"{i}.png").write_bytes(
            encode(np.full((5 + i, 6, 3), 10 * i, np.uint8), "PNG")
        )
    (tmp_path / "c" / "2_bad.jpg").write_bytes(b"no image")
    source = sources.get_source(str(tmp_path))
    decoded = list(sources.decoded_images(source, "train"))
    names = sorted(os.path.basename(n.numpy().decode()) for _, _, n in decoded)
    assert names == ["0.png", "1.png", "2.png", "3.png"]
    for image, label, name in decoded:
        i = int(os.path.basename(name.numpy().decode())[0])
        assert image.dtype == tf.uint8 and image.shape == (5 + i, 6, 3)
        assert int(image[0, 0, 0]) == 10 * i and int(label) == 0
    assert [name for _, name in _skipped(capfd.readouterr().err)] == ["2_bad.jpg"]
    # max_examples counts records, bad ones included.
    first = [
        os.path.basename(n.numpy().decode()) for _, _, n in source.raw_records("train").take(3)
    ]
    taken = sources.decoded_images(source, "train", max_examples=3)
    assert [os.path.basename(n.numpy().decode()) for _, _, n in taken] == [
        name for name in first if name != "2_bad.jpg"
    ]


def test_folder_with_bad_files_trains_an_epoch_and_names_them(tmp_path, encode, capfd):
    jpeg = encode(data.coffee(), quality=90)
    root = photo_folder(
        tmp_path,
        {
            "other/truncated.jpg": jpeg[: len(jpeg) // 2],
            "cat/notes.jpg": b"not an image, just text",
        },
    )
    source = sources.get_source(root)
    assert source.num_examples("train") == 7
    ds = ip.train_dataset(
        source, ip.TrainStream(batch_size=2, crop_size=CROP, scale_min=CROP, scale_max=48, seed=0)
    )
    model = keras.Sequential(
        [keras.Input((CROP, CROP, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, steps_per_epoch=6, epochs=1, verbose=0)  # 12 images > 1 epoch
    assert np.isfinite(history.history["loss"][0])
    log = capfd.readouterr().err
    assert "truncated.jpg" in log and "notes.jpg" in log and "so far" in log
    assert {name for _, name in _skipped(log)} == {"truncated.jpg", "notes.jpg"}


def test_skipped_records_keep_images_and_labels_aligned(tmp_path, encode, capfd):
    # Class 0 images are dark, class 1 bright; bad files sit among them, so a record
    # dropped inside a decoding group would shift the labels of the ones after it.
    for label, level in (("0dark", 30), ("1bright", 220)):
        os.makedirs(tmp_path / label)
        for i in range(7):
            (tmp_path / label / f"{i}.jpg").write_bytes(
                encode(np.full((40 + i, 50, 3), level, np.uint8))
            )
        for i in range(3):
            (tmp_path / label / f"{i}_bad.jpg").write_bytes(b"not an image %d" % i)
    source = sources.get_source(str(tmp_path))
    ds = ip.train_dataset(
        source,
        ip.TrainStream(
            batch_size=5,
            crop_size=CROP,
            scale_min=CROP,
            scale_max=48,
            mean_rgb=(0.0, 0.0, 0.0),
            color_shift_std=0.0,
            seed=0,
        ),
    )
    it = iter(ds)
    batches = [next(it) for _ in range(12)]  # 60 examples: 3 passes over the 20 records
    labels = np.concatenate([b[1].numpy() for b in batches])
    levels = np.concatenate([b[0].numpy().mean(axis=(1, 2, 3)) for b in batches])
    assert len(labels) == 60 and set(labels) == {0, 1}
    np.testing.assert_allclose(levels, np.where(labels == 1, 220.0, 30.0), atol=3)
    log = capfd.readouterr().err
    assert log.count("skipped a bad record") >= 10 and "(10 so far): " in log
    assert "(11 so far)" not in log  # after the first ten, only every power of ten
    ordered = list(
        ip.eval_dataset(
            source,
            ip.EvalStream(batch_size=4, image_size=CROP, crop_size=CROP, mean_rgb=(0.0, 0.0, 0.0)),
            split="train",
        )
    )
    labels = np.concatenate([b[1].numpy() for b in ordered])
    levels = np.concatenate([b[0].numpy().mean(axis=(1, 2, 3)) for b in ordered])
    assert [len(b[1]) for b in ordered] == [4, 4, 4, 2]  # 14 good of 20, rebatched
    np.testing.assert_allclose(levels, np.where(labels == 1, 220.0, 30.0), atol=3)
    # Whole images (one per group, sides differing) skip bad records too.
    whole = list(
        ip.eval_dataset(
            source,
            ip.EvalStream(batch_size=1, image_size=CROP, mode="full", mean_rgb=(0.0, 0.0, 0.0)),
            split="train",
        )
    )
    assert len(whole) == 14 and {b[0].shape[1] for b in whole} == {CROP}
    assert len({b[0].shape[2] for b in whole}) > 1
    levels = [float(b[0].numpy().mean()) for b in whole]
    np.testing.assert_allclose(levels, [220.0 if b[1][0] == 1 else 30.0 for b in whole], atol=3)


def test_source_without_valid_images_raises_naming_it(tmp_path):
    os.makedirs(tmp_path / "a")
    for i in range(3):
        (tmp_path / "a" / f"{i}.jpg").write_bytes(b"garbage")
    source = sources.get_source(str(tmp_path))
    ds = ip.train_dataset(
        source, ip.TrainStream(batch_size=2, crop_size=CROP, scale_min=CROP, scale_max=CROP)
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=str(tmp_path)):
        next(iter(ds))
    evaluation = ip.EvalStream(batch_size=2, image_size=CROP, crop_size=CROP)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{tmp_path}.*yielded no valid"):
        list(ip.eval_dataset(source, evaluation, split="train"))
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{tmp_path}.*yielded no valid"):
        pixel_statistics.compute_mean_rgb(source)


# --- The policy itself ----------------------------------------------------------------------


def _records(blobs):
    names = [f"r{i:03d}" for i in range(len(blobs))]
    labels = np.arange(len(blobs), dtype=np.int32)
    return tf.data.Dataset.from_tensor_slices((blobs, labels, names)).enumerate(), names


def _decode_png(index, image_bytes):
    return tf.cast(tf.reshape(tf.io.decode_png(image_bytes, channels=3), [2, 2, 3]), tf.float32)


def test_decode_skipping_bad_counts_names_and_keeps_order(encode, capfd):
    good = encode(np.full((2, 2, 3), 7, np.uint8), "PNG")
    blobs = [good if i % 3 == 0 else b"bad" for i in range(150)]  # 50 good, 100 bad
    records, names = _records(blobs)
    groups = sources.decode_skipping_bad(
        records,
        _decode_png,
        (2, 2, 3),
        source_name="src",
        split="s",
        limit=1000,
        group_size=8,
        with_names=True,
    )
    kept = [(x.numpy(), y.numpy(), n.numpy()) for x, y, n in groups.unbatch()]
    assert [int(y) for _, y, _ in kept] == list(range(0, 150, 3))  # in order, labels aligned
    assert [n.decode() for _, _, n in kept] == names[::3]
    assert all((x == 7).all() for x, _, _ in kept)
    skipped = _skipped(capfd.readouterr().err)
    # The first ten skips and then every power of ten are named, with the running count.
    assert [n for n, _ in skipped] == [*range(1, 11), 100]
    bad_names = [n for i, n in enumerate(names) if i % 3]
    assert [name for _, name in skipped] == bad_names[:10] + [bad_names[99]]
    assert all("of 'src' [s]" in line for line in capfd.readouterr().err.splitlines() if line)


def test_decode_skipping_bad_raises_after_limit_consecutive_bad_records(encode):
    good = encode(np.zeros((2, 2, 3), np.uint8), "PNG")
    records, _ = _records([good] + [b"bad"] * 40)
    groups = sources.decode_skipping_bad(
        records, _decode_png, (2, 2, 3), source_name="src", split="s", limit=20, group_size=4
    )
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"src.*split.*s.*yielded no valid example in 20 records",
    ):
        list(groups)
    roomy = sources.decode_skipping_bad(
        records, _decode_png, (2, 2, 3), source_name="src", split="s", limit=41, group_size=4
    )
    assert sum(int(tf.shape(y)[0]) for _, y in roomy) == 1


@pytest.mark.slow
def test_a_partial_read_of_a_small_tfds_split_is_quiet(subprocess_env):
    # TFDS caches small splits in memory; a cache read in part is discarded with a
    # C++ warning, which `bin/evaluate --max_examples` printed. Tests hide C++
    # warnings, so a child process with them shown reads the split.
    script = (
        "from vgg_tf.data import sources\n"
        "s = sources.get_source('digits')\n"
        "print(len(list(sources.decoded_images(s, 'test', max_examples=3))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=subprocess_env(TF_CPP_MIN_LOG_LEVEL="1"),
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.split() == ["3"], result.stderr[-2000:]
    assert "did not fully read the dataset being cached" not in result.stderr
