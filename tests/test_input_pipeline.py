"""Input pipeline: preprocessing ops, sources, train/eval streams, bad records."""

import io
import os

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image
from skimage import data

from vgg_tf import images, sources
from vgg_tf import input_pipeline as ip

CROP = 32  # small crops keep the streams fast; the 224 geometry is tested on ops


def encode(array, fmt="JPEG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image = array if isinstance(array, Image.Image) else Image.fromarray(array)
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def coffee():
    return data.coffee()  # 400 x 600 real photo


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return sources.get_source("digits", data_dir=str(tmp_path_factory.mktemp("tfds")))


def translucent(pil):
    """The image with an alpha channel that is not all opaque."""
    rgba = pil.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(pil.size))
    return rgba


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


# --- preprocessing ops -----------------------------------------------------------------


@pytest.mark.parametrize(
    "make, gray",
    [
        (lambda p: encode(p.convert("L")), True),
        (lambda p: encode(p.convert("CMYK")), False),
        (lambda p: encode(p.convert("RGBA"), "PNG"), False),
        (lambda p: encode(Image.fromarray(np.asarray(p.convert("L"), np.uint16) * 257), "PNG"), True),
        (lambda p: encode(p, "GIF"), False),
        (lambda p: encode(p, "BMP"), False),
        (lambda p: encode(p, "JPEG", progressive=True), False),
        (lambda p: encode(p, "WEBP", quality=90), False),
        (lambda p: encode(translucent(p), "WEBP", lossless=True), False),
        (lambda p: encode(translucent(p), "WEBP", quality=90), False),
    ],
    ids=["gray-jpeg", "cmyk-jpeg", "rgba-png", "png16", "gif", "bmp", "progressive", "webp",
         "webp-lossless-alpha", "webp-alpha"],
)
def test_decode_rgb_converts_to_8bit_rgb(coffee, make, gray):
    pil = Image.fromarray(coffee)
    image = images.decode_rgb(make(pil)).numpy()
    assert image.shape == (400, 600, 3) and image.dtype == np.uint8
    reference = np.asarray(pil.convert("L").convert("RGB")) if gray else coffee
    # Colour conversions (CMYK, GIF palette, JPEG) are lossy: compare on average.
    assert np.abs(image.astype(float) - reference).mean() < 6


@pytest.mark.parametrize("hw, size, expected", [((100, 50), 32, (64, 32)), ((30, 90), 64, (64, 192))])
def test_rescale_shorter_side(hw, size, expected):
    out = images.rescale_shorter_side(tf.zeros([*hw, 3], tf.uint8), size)
    assert tuple(out.shape[:2]) == expected and out.dtype == tf.float32
    batch = images.rescale_shorter_side(tf.zeros([2, *hw, 3]), size)
    assert tuple(batch.shape) == (2, *expected, 3)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("scale", [224, 256, 384, 512])
def test_fused_crop_matches_rescale_then_crop(coffee, fmt, scale):
    image_bytes = encode(coffee, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    for offset in [(0.0, 0.0), (0.5, 0.5), (1.0, 1.0), (0.3, 0.8)]:
        fused = images.scaled_crop(image_bytes, scale, 224, offset).numpy()
        naive = images.scaled_crop(image_bytes, scale, 224, offset, fused=False).numpy()
        assert fused.shape == naive.shape == (224, 224, 3)
        assert fused.min() >= 0 and fused.max() <= 255
        # The window is rounded to whole source pixels (at most half a pixel off):
        # on this textured photo that is a few grey levels on average.
        diff = np.abs(fused - naive)
        assert diff.mean() < 6.0, (offset, diff.mean())
        assert np.corrcoef(fused.ravel(), naive.ravel())[0, 1] > 0.97


def test_crop_window_arithmetic():
    # A horizontal ramp: the crop's left column tells where in the source it starts.
    ramp = np.tile((np.arange(400) // 2).astype(np.uint8), (200, 1))  # value = column / 2
    image_bytes = encode(np.stack([ramp] * 3, -1), "PNG")
    # S = 100 halves the image (200 x 400 -> 100 x 200); offset 1 = rightmost crop.
    out = images.scaled_crop(image_bytes, 100, 50, (0.0, 1.0)).numpy()
    assert abs(out[0, 0, 0] - 300 / 2) <= 1.0  # rescaled column 150 = source column 300
    assert abs(out[0, -1, 0] - 398 / 2) <= 1.0  # rescaled column 199 = source column 398
    centre = images.scaled_crop(image_bytes, 100, 50).numpy()  # rescaled columns 75..124
    assert abs(centre[0, 0, 0] - 150 / 2) <= 1.0


def test_small_and_very_large_images(coffee):
    tiny = images.scaled_crop(encode(np.full((8, 6, 3), 200, np.uint8), "PNG"), 64, 48, (0.5, 0.5))
    assert tiny.shape == (48, 48, 3) and np.allclose(tiny, 200)
    big = np.tile(coffee, (8, 8, 1))  # 3200 x 4800
    out = images.scaled_crop(encode(big, quality=80), 256, 224, (0.7, 0.2))
    assert out.shape == (224, 224, 3) and np.isfinite(out.numpy()).all()


def test_ops_work_eagerly_in_graphs_and_in_dataset_map(coffee):
    image_bytes = encode(coffee)
    eager = images.scaled_crop(image_bytes, 256, 224, (0.2, 0.4))
    graph = tf.function(lambda b: images.scaled_crop(b, 256, 224, (0.2, 0.4)))(image_bytes)
    mapped = next(iter(tf.data.Dataset.from_tensors(image_bytes).map(
        lambda b: images.scaled_crop(b, 256, 224, (0.2, 0.4)))))
    np.testing.assert_allclose(eager, graph, atol=1e-3)
    np.testing.assert_allclose(eager, mapped, atol=1e-3)
    serving = tf.function(
        lambda b: images.rescale_shorter_side(images.decode_rgb(b), 64),
        input_signature=[tf.TensorSpec([], tf.string)],
    )
    assert serving(image_bytes).shape == (64, 96, 3)


@pytest.mark.parametrize("fused", [True, False])
def test_bad_bytes_raise_in_ops(coffee, fused):
    jpeg = encode(coffee)
    truncated = jpeg[: len(jpeg) // 2]
    for bad in (truncated, b"this is a text file", b""):
        with pytest.raises(tf.errors.InvalidArgumentError):
            # Offset (0, 0) lies in the intact half: truncation must still be caught.
            images.scaled_crop(bad, 256, 224, (0.0, 0.0), fused=fused)


def test_pca_lighting():
    image = tf.fill([2, 2, 3], 100.0)
    assert np.allclose(ip.pca_lighting(image, tf.zeros(3)), 100.0)
    alpha = tf.constant([0.1, -0.2, 0.05])
    expected = np.asarray(sources.IMAGENET_PCA_EIGVEC) @ (alpha.numpy() * np.asarray(sources.IMAGENET_PCA_EIGVAL))
    np.testing.assert_allclose(ip.pca_lighting(image, alpha)[0, 0], 100.0 + expected, rtol=1e-5)


# --- sources and streams ----------------------------------------------------------------


def test_digits_source(digits):
    assert digits.num_classes == 10 and digits.class_names == tuple(str(d) for d in range(10))
    assert (digits.train_split, digits.eval_split, digits.test_split) == (
        "train[:90%]", "train[90%:]", "test")
    assert digits.num_examples(digits.train_split) + digits.num_examples(digits.eval_split) == 1437
    image_bytes, label, name = next(iter(digits.raw_records("test")))
    assert images.decode_rgb(image_bytes).shape == (8, 8, 3) and label.dtype == tf.int32
    assert name.numpy()  # TFDS record id when the dataset has no file names


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
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 3)),
                "label": tfds.features.ClassLabel(num_classes=2)}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples([0, 1, 0, 1]),
                "validation": self._generate_examples([1, 0]),
                "test": self._generate_examples([-1, -1, -1])}

    def _generate_examples(self, labels):
        for i, label in enumerate(labels):
            yield i, {"image": np.full((8, 8, 3), 40 * i, np.uint8), "label": label}


def test_unlabelled_test_split_is_not_the_test_split(tmp_path):
    source = sources.get_source("unlabelled_test_split", data_dir=str(tmp_path))
    assert (source.train_split, source.eval_split, source.test_split) == (
        "train", "validation", "validation")


def take(ds, n):
    it = iter(ds)
    return [next(it) for _ in range(n)]


def test_train_dataset_shapes_dtype_range(digits):
    ds = ip.train_dataset(digits, batch_size=8, crop_size=CROP, scale_min=CROP,
                          scale_max=2 * CROP, mean_rgb=(10.0, 20.0, 30.0), seed=0)
    for images, labels in take(ds, 3):
        assert images.shape == (8, CROP, CROP, 3) and images.dtype == tf.float32
        assert labels.shape == (8,) and labels.dtype == tf.int32
        assert 0 <= labels.numpy().min() and labels.numpy().max() < 10
        # Pixels in [0, 255], minus the mean, plus a colour shift of a few levels.
        assert images.numpy().min() > -30 - 40 and images.numpy().max() < 255 - 10 + 40


def test_seeded_determinism_and_resume(digits):
    def stream(seed, skip=0):
        return ip.train_dataset(digits, batch_size=4, crop_size=CROP, scale_min=CROP,
                                scale_max=48, seed=seed, skip_examples=skip)

    first, again, other = take(stream(7), 4), take(stream(7), 4), take(stream(8), 4)
    for (a, la), (b, lb) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(first[0][0], other[0][0])
    resumed = take(stream(7, skip=8), 2)  # 8 records = the first two batches
    for (a, la), (b, lb) in zip(first[2:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)


def test_unseeded_streams_differ_and_cache_works(digits):
    a = take(ip.train_dataset(digits, batch_size=4, crop_size=CROP, scale_min=CROP,
                              scale_max=CROP, cache=True), 2)
    b = take(ip.train_dataset(digits, batch_size=4, crop_size=CROP, scale_min=CROP,
                              scale_max=CROP, cache=True), 2)
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))


def test_sharding_with_input_context(digits):
    whole = take(ip.train_dataset(digits, batch_size=8, crop_size=CROP, scale_min=CROP,
                                  scale_max=CROP + 8, seed=3), 2)
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline)
        part = take(ip.train_dataset(digits, batch_size=4, crop_size=CROP, scale_min=CROP,
                                     scale_max=CROP + 8, seed=3, input_context=context), 2)
        # Pipeline i gets records i, i+2, ... of the shared stream: the two pipelines'
        # batches together are the global batch one process would see.
        for (images, labels), (all_images, all_labels) in zip(part, whole):
            np.testing.assert_array_equal(labels, all_labels[pipeline::2])
            np.testing.assert_allclose(images, all_images[pipeline::2], atol=1e-4)
        resumed = take(ip.train_dataset(digits, batch_size=4, crop_size=CROP, scale_min=CROP,
                                        scale_max=CROP + 8, seed=3, input_context=context,
                                        skip_examples=8), 1)
        np.testing.assert_array_equal(resumed[0][1], whole[1][1][pipeline::2])
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline)
        ds = ip.eval_dataset(digits, split="test", batch_size=64, image_size=CROP,
                             crop_size=CROP, input_context=context)
        seen.append(sum(int(labels.shape[0]) for _, labels in ds))
        train = ip.train_dataset(digits, batch_size=4, crop_size=CROP, scale_min=CROP,
                                 scale_max=CROP, seed=1, input_context=context)
        assert take(train, 1)[0][0].shape == (4, CROP, CROP, 3)
    assert seen == [180, 180]


def test_eval_dataset_modes(digits):
    centre = ip.eval_dataset(digits, split="test", batch_size=100, image_size=40, crop_size=CROP)
    batches = list(centre)
    assert sum(len(b[1]) for b in batches) == 360
    assert batches[0][0].shape == (100, CROP, CROP, 3)
    again = next(iter(ip.eval_dataset(digits, split="test", batch_size=100, image_size=40,
                                      crop_size=CROP)))
    np.testing.assert_array_equal(batches[0][0], again[0])  # fixed order
    full = next(iter(ip.eval_dataset(digits, split="test", batch_size=1, image_size=40,
                                     mode="full")))
    assert full[0].shape == (1, 40, 40, 3)


def test_folder_source_and_statistics(tmp_path):
    for label, colour in {"red": (255, 0, 0), "grey": (100, 100, 100)}.items():
        os.makedirs(tmp_path / label)
        for i in range(3):
            encode(np.full((20, 30, 3), colour, np.uint8), "PNG")
            (tmp_path / label / f"{i}.png").write_bytes(
                encode(np.full((20, 30, 3), colour, np.uint8), "PNG"))
    source = sources.get_source(str(tmp_path))
    assert source.class_names == ("grey", "red") and source.num_classes == 2
    mean = sources.compute_mean_rgb(source, split="train")
    np.testing.assert_allclose(mean, (177.5, 50.0, 50.0), atol=1e-6)
    eigval, eigvec = sources.compute_pca_lighting(source, split="train")
    assert eigval[0] >= eigval[1] >= eigval[2] >= 0
    np.testing.assert_allclose(np.asarray(eigvec).T @ np.asarray(eigvec), np.eye(3), atol=1e-6)


def test_folder_with_bad_files_trains_an_epoch_and_names_them(tmp_path, capfd):
    jpeg = encode(data.coffee(), quality=90)
    root = photo_folder(tmp_path, {
        "other/truncated.jpg": jpeg[: len(jpeg) // 2],
        "cat/notes.jpg": b"not an image, just text",
    })
    source = sources.get_source(root)
    assert source.num_examples("train") == 7
    ds = ip.train_dataset(source, batch_size=2, crop_size=CROP, scale_min=CROP,
                          scale_max=48, seed=0)
    model = keras.Sequential([keras.Input((CROP, CROP, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, steps_per_epoch=6, epochs=1, verbose=0)  # 12 images > 1 epoch
    assert np.isfinite(history.history["loss"][0])
    log = capfd.readouterr().err
    assert "truncated.jpg" in log and "notes.jpg" in log and "so far" in log


def test_skipped_records_keep_images_and_labels_aligned(tmp_path, capfd):
    # Class 0 images are dark, class 1 bright; bad files sit among them, so a record
    # dropped inside a decoding group would shift the labels of the ones after it.
    for label, level in (("0dark", 30), ("1bright", 220)):
        os.makedirs(tmp_path / label)
        for i in range(7):
            (tmp_path / label / f"{i}.jpg").write_bytes(
                encode(np.full((40 + i, 50, 3), level, np.uint8)))
        for i in range(3):
            (tmp_path / label / f"{i}_bad.jpg").write_bytes(b"not an image %d" % i)
    source = sources.get_source(str(tmp_path))
    ds = ip.train_dataset(source, batch_size=5, crop_size=CROP, scale_min=CROP, scale_max=48,
                          mean_rgb=(0.0, 0.0, 0.0), color_shift_std=0.0, seed=0)
    batches = take(ds, 12)  # 60 examples: 3 passes over the 20 records
    labels = np.concatenate([b[1].numpy() for b in batches])
    levels = np.concatenate([b[0].numpy().mean(axis=(1, 2, 3)) for b in batches])
    assert len(labels) == 60 and set(labels) == {0, 1}
    np.testing.assert_allclose(levels, np.where(labels == 1, 220.0, 30.0), atol=3)
    log = capfd.readouterr().err
    assert log.count("skipped a bad record") >= 10 and "(10 so far): " in log
    assert "(11 so far)" not in log  # after the first ten, only every power of ten
    ordered = list(ip.eval_dataset(source, split="train", batch_size=4, image_size=CROP,
                                   crop_size=CROP, mean_rgb=(0.0, 0.0, 0.0)))
    labels = np.concatenate([b[1].numpy() for b in ordered])
    levels = np.concatenate([b[0].numpy().mean(axis=(1, 2, 3)) for b in ordered])
    assert [len(b[1]) for b in ordered] == [4, 4, 4, 2]  # 14 good of 20, rebatched
    np.testing.assert_allclose(levels, np.where(labels == 1, 220.0, 30.0), atol=3)
    # Whole images (one per group, sides differing) skip bad records too.
    whole = list(ip.eval_dataset(source, split="train", batch_size=1, image_size=CROP,
                                 mode="full", mean_rgb=(0.0, 0.0, 0.0)))
    assert len(whole) == 14 and {b[0].shape[1] for b in whole} == {CROP}
    assert len({b[0].shape[2] for b in whole}) > 1
    levels = [float(b[0].numpy().mean()) for b in whole]
    np.testing.assert_allclose(levels, [220.0 if b[1][0] == 1 else 30.0 for b in whole], atol=3)


def test_source_without_valid_images_raises_naming_it(tmp_path):
    os.makedirs(tmp_path / "a")
    for i in range(3):
        (tmp_path / "a" / f"{i}.jpg").write_bytes(b"garbage")
    source = sources.get_source(str(tmp_path))
    ds = ip.train_dataset(source, batch_size=2, crop_size=CROP, scale_min=CROP, scale_max=CROP)
    with pytest.raises(tf.errors.InvalidArgumentError, match=str(tmp_path)):
        next(iter(ds))


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scale_min=300, scale_max=256), "scale_min=300 > scale_max=256"),
        (dict(scale_min=200, scale_max=256), "scale_min=200 is smaller than crop_size"),
        (dict(crop_size=0), "crop_size=0"),
        (dict(crop_size=-4, scale_min=8, scale_max=8), "crop_size=-4"),
        (dict(batch_size=0), "batch_size=0"),
    ],
)
def test_invalid_parameters(digits, kwargs, match):
    kwargs = {"batch_size": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        ip.train_dataset(digits, **kwargs)


def test_eval_parameters(digits):
    with pytest.raises(ValueError, match="mode='tiles'"):
        ip.eval_dataset(digits, batch_size=1, image_size=256, mode="tiles")
    with pytest.raises(ValueError, match="image_size=100 is smaller than crop_size=224"):
        ip.eval_dataset(digits, batch_size=1, image_size=100)


def test_unknown_dataset_names_folder_option(tmp_path):
    with pytest.raises(ValueError, match="folder of class subfolders"):
        sources.get_source("no_such_dataset_xyz", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        sources.get_source(str(tmp_path / "missing"))
