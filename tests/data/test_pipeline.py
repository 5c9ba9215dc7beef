"""The training and evaluation streams (vgg_tf.data.pipeline): jitter, crop, flip,
colour, mean; determinism, resuming, sharding; and issue 10's acceptance folder."""

import dataclasses
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from vgg_tf.data import constants, sources
from vgg_tf.data import pipeline as ip

CROP = 32  # small crops keep the streams fast; the 224 geometry is tested on ops


# --- colour ------------------------------------------------------------------------------


def test_pca_lighting():
    image = tf.fill([2, 2, 3], 100.0)
    assert np.allclose(ip.pca_lighting(image, tf.zeros(3)), 100.0)
    alpha = tf.constant([0.1, -0.2, 0.05])
    expected = np.asarray(constants.IMAGENET_PCA_EIGVEC) @ (
        alpha.numpy() * np.asarray(constants.IMAGENET_PCA_EIGVAL)
    )
    np.testing.assert_allclose(ip.pca_lighting(image, alpha)[0, 0], 100.0 + expected, rtol=1e-5)


# --- streams -------------------------------------------------------------------------------


def take(ds, n):
    it = iter(ds)
    return [next(it) for _ in range(n)]


def test_train_dataset_shapes_dtype_range(digits):
    ds = ip.train_dataset(
        digits,
        ip.TrainStream(
            batch_size=8,
            crop_size=CROP,
            scale_min=CROP,
            scale_max=2 * CROP,
            mean_rgb=(10.0, 20.0, 30.0),
            seed=0,
        ),
    )
    for images, labels in take(ds, 3):
        assert images.shape == (8, CROP, CROP, 3) and images.dtype == tf.float32
        assert labels.shape == (8,) and labels.dtype == tf.int32
        assert labels.numpy().min() >= 0 and labels.numpy().max() < 10
        # Pixels in [0, 255], minus the mean, plus a colour shift of a few levels.
        assert images.numpy().min() > -30 - 40 and images.numpy().max() < 255 - 10 + 40


def test_seeded_determinism_and_resume(digits):
    def stream(seed, skip=0, cache=False):
        return ip.train_dataset(
            digits,
            ip.TrainStream(
                batch_size=4, crop_size=CROP, scale_min=CROP, scale_max=48, seed=seed, cache=cache
            ),
            skip_examples=skip,
        )

    # The same seed, cached in memory or not, gives the same stream.
    first, again, other = take(stream(7), 4), take(stream(7, cache=True), 4), take(stream(8), 4)
    for (a, la), (b, lb) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(first[0][0], other[0][0])
    resumed = take(stream(7, skip=8), 2)  # 8 records = the first two batches
    for (a, la), (b, lb) in zip(first[2:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)


def test_unseeded_streams_differ(digits):
    stream = ip.TrainStream(
        batch_size=4, crop_size=CROP, scale_min=CROP, scale_max=CROP, cache=True
    )
    a = take(ip.train_dataset(digits, stream), 2)
    b = take(ip.train_dataset(digits, stream), 2)
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))


# Flat colours per class, lossless files of several shapes: any crop of any rescaling, flipped
# or not, is the class's colour exactly.
FLAT_COLOURS = {"red": (200, 30, 60), "green": (20, 180, 90), "blue": (35, 70, 250)}


@pytest.fixture(scope="module")
def flat_source(tmp_path_factory, encode):
    """A folder source of 6 flat-colour PNG and BMP files (2 per class), all in training."""
    root = tmp_path_factory.mktemp("flat") / "colours"
    for i, (name, colour) in enumerate(FLAT_COLOURS.items()):
        (root / name).mkdir(parents=True)
        for j, (shape, fmt) in enumerate((((40 + 8 * i, 56), "PNG"), ((70, 33 + 5 * i), "BMP"))):
            (root / name / f"{j}.{fmt.lower()}").write_bytes(
                encode(np.full((*shape, 3), colour, np.uint8), fmt)
            )
    source = sources.get_source(str(root))
    return dataclasses.replace(source, train_split="train")


def test_training_pixels_are_the_colour_less_the_mean(flat_source):
    """Crops at jittered S, flipped or not, colour shift off: every pixel is exactly the
    image's colour minus the mean RGB (the paper's only preprocessing, §2.1)."""
    mean = np.asarray((123.68, 116.779, 103.939), np.float32)  # not whole grey levels
    stream = ip.train_dataset(
        flat_source,
        ip.TrainStream(
            batch_size=6,
            crop_size=CROP,
            scale_min=CROP,
            scale_max=2 * CROP,
            mean_rgb=tuple(mean),
            color_shift_std=0.0,
            flip=True,
            seed=0,
        ),
    )
    for images, labels in take(stream, 2):
        for image, label in zip(images.numpy(), labels.numpy()):
            colour = np.float32(FLAT_COLOURS[flat_source.class_names[label]])
            np.testing.assert_allclose(
                image, np.broadcast_to(colour - mean, image.shape), atol=1e-3
            )


@pytest.mark.parametrize("color_shift_std", [0.0, 0.1])
def test_without_a_mean_the_streams_give_the_pixels_the_net_subtracts_it_from(
    flat_source, color_shift_std
):
    """mean_rgb=None (a net that subtracts its mean itself, as every run's does): the same
    crops, flips and colour shift, the mean not subtracted; to float rounding, the stream
    with the mean plus the mean. Evaluation: the decoded pixels."""
    mean = (123.68, 116.779, 103.939)
    stream = ip.TrainStream(
        batch_size=6,
        crop_size=CROP,
        scale_min=CROP,
        scale_max=2 * CROP,
        mean_rgb=mean,
        color_shift_std=color_shift_std,
        seed=1,
    )
    with_mean = take(ip.train_dataset(flat_source, stream), 2)
    pixels = take(ip.train_dataset(flat_source, dataclasses.replace(stream, mean_rgb=None)), 2)
    for (a, labels_a), (b, labels_b) in zip(with_mean, pixels):
        np.testing.assert_array_equal(labels_a, labels_b)
        np.testing.assert_allclose(b.numpy(), a.numpy() + np.float32(mean), atol=1e-4)
        if not color_shift_std:  # flat colours: the pixels are the files' own
            for image, label in zip(b.numpy(), labels_b.numpy()):
                colour = FLAT_COLOURS[flat_source.class_names[label]]
                np.testing.assert_allclose(image, np.broadcast_to(colour, image.shape), atol=1e-3)
    for mode, size in (("center", CROP), ("full", 48)):
        evaluation = ip.EvalStream(batch_size=1, image_size=size, crop_size=CROP, mode=mode)
        a = take(ip.eval_dataset(flat_source, evaluation, split="train"), 1)[0][0].numpy()
        no_mean = dataclasses.replace(evaluation, mean_rgb=None)
        b = take(ip.eval_dataset(flat_source, no_mean, split="train"), 1)[0][0].numpy()
        np.testing.assert_allclose(b, a + np.float32(constants.IMAGENET_MEAN_RGB), atol=1e-4)
        assert b.min() >= 0 and b.max() <= 255
    recipe = dict(
        batch_size=4,
        crop_size=CROP,
        scale_min=CROP,
        scale_max=CROP,
        color_shift_std=0.1,
        flip=True,
        seed=0,
        deterministic=False,
        cache=False,
        max_pixels=0,
        max_aspect_ratio=0,
    )
    assert ip.TrainStream.from_recipe(recipe, mean_rgb=None).mean_rgb is None
    assert ip.EvalStream.from_recipe(recipe, CROP, mean_rgb=None).mean_rgb is None


def test_cache_reads_each_record_once(flat_source, monkeypatch):
    """cache=True reads each file once however many epochs are drawn; without it every
    epoch reads the files again."""
    reads = []
    raw_records = sources.Source.raw_records

    def counted(self, *args, **kwargs):
        def note(name):
            reads.append(name.numpy().decode())
            return 0

        def count(image_bytes, label, name):
            read = tf.py_function(note, [name], tf.int32)
            with tf.control_dependencies([read]):
                return tf.identity(image_bytes), label, name

        return raw_records(self, *args, **kwargs).map(count)

    monkeypatch.setattr(sources.Source, "raw_records", counted)
    files = sorted(str(path) for path in flat_source.files["train"][0])
    for cache in (True, False):
        reads.clear()
        stream = ip.train_dataset(
            flat_source,
            ip.TrainStream(
                batch_size=3,
                crop_size=CROP,
                scale_min=CROP,
                scale_max=CROP,
                color_shift_std=0.0,
                seed=0,
                cache=cache,
            ),
        )
        batches = take(stream, 3 * len(files) // 3)  # three epochs
        assert sum(len(labels) for _, labels in batches) == 3 * len(files)
        del stream, batches
        if cache:
            assert sorted(reads) == files  # each file once, then from memory
        else:
            assert len(reads) > 2 * len(files)  # the check above could see a re-read


# Nine streams of the digits (about 15 s): the raw records' sharding is checked in the quick
# loop (test_sources.py).
@pytest.mark.slow
def test_sharding_with_input_context(digits):
    stream = ip.TrainStream(
        batch_size=8, crop_size=CROP, scale_min=CROP, scale_max=CROP + 8, seed=3
    )
    whole = take(ip.train_dataset(digits, stream), 2)

    def context(pipeline):
        """Input pipeline ``pipeline`` of two, one replica each (two workers)."""
        return tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2
        )

    for pipeline in range(2):
        part = take(ip.train_dataset(digits, stream, input_context=context(pipeline)), 2)
        # Pipeline i gets records i, i+2, ... of the shared stream, in batches of its replica's
        # share: the two pipelines' batches together are the global batch one process would see.
        for (images, labels), (all_images, all_labels) in zip(part, whole):
            assert images.shape[0] == 4
            np.testing.assert_array_equal(labels, all_labels[pipeline::2])
            np.testing.assert_allclose(images, all_images[pipeline::2], atol=1e-4)
        resumed = take(
            ip.train_dataset(digits, stream, input_context=context(pipeline), skip_examples=8), 1
        )
        np.testing.assert_array_equal(resumed[0][1], whole[1][1][pipeline::2])
    seen = []
    evaluation = ip.EvalStream(batch_size=128, image_size=CROP, crop_size=CROP)
    for pipeline in range(2):
        ds = ip.eval_dataset(digits, evaluation, split="test", input_context=context(pipeline))
        batches = [int(labels.shape[0]) for _, labels in ds]
        assert max(batches) == 64  # the replica's share of the batch
        seen.append(sum(batches))
        train = ip.train_dataset(
            digits,
            ip.TrainStream(batch_size=8, crop_size=CROP, scale_min=CROP, scale_max=CROP, seed=1),
            input_context=context(pipeline),
        )
        assert take(train, 1)[0][0].shape == (4, CROP, CROP, 3)
    assert seen == [180, 180]


def test_eval_dataset_modes(digits):
    centre = ip.EvalStream(batch_size=100, image_size=40, crop_size=CROP)
    batches = list(ip.eval_dataset(digits, centre, split="test"))
    assert sum(len(b[1]) for b in batches) == 360
    assert batches[0][0].shape == (100, CROP, CROP, 3)
    again = next(iter(ip.eval_dataset(digits, centre, split="test")))
    np.testing.assert_array_equal(batches[0][0], again[0])  # fixed order
    whole = ip.EvalStream(batch_size=1, image_size=40, mode="full")
    full = next(iter(ip.eval_dataset(digits, whole, split="test")))
    assert full[0].shape == (1, 40, 40, 3)


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scale_min=300, scale_max=256), "scale_min=300 > scale_max=256"),
        (dict(scale_min=200, scale_max=256), "scale_min=200 is smaller than crop_size"),
        (dict(crop_size=0), "crop_size=0"),
        (dict(crop_size=-4, scale_min=8, scale_max=8), "crop_size=-4"),
        (dict(batch_size=0), "batch_size=0"),
        (dict(max_pixels=-1), "max_pixels=-1"),
    ],
)
def test_invalid_parameters(kwargs, match):
    kwargs = {"batch_size": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        ip.TrainStream(**kwargs)


def test_eval_parameters():
    with pytest.raises(ValueError, match="mode='tiles'"):
        ip.EvalStream(batch_size=1, image_size=256, mode="tiles")
    with pytest.raises(ValueError, match="image_size=100 is smaller than crop_size=224"):
        ip.EvalStream(batch_size=1, image_size=100)
    with pytest.raises(ValueError, match="batch_size=0"):
        ip.EvalStream(batch_size=0, image_size=256)


def test_the_streams_read_every_field_of_the_recipe_they_use():
    from vgg_tf.training import recipe

    config = recipe.paper_recipe()
    # Every field away from its default (and from the stream's), so that one left unread shows.
    config.update(
        task="localisation",
        batch_size=16,
        crop_size=32,
        scale_min=40,
        scale_max=48,
        color_shift_std=0.25,
        flip=False,
        seed=5,
        deterministic=True,
        cache=True,
        max_pixels=0,
        max_aspect_ratio=4.0,
    )
    mean = (1.0, 2.0, 3.0)
    assert ip.TrainStream.from_recipe(config, mean_rgb=mean) == ip.TrainStream(
        batch_size=16,
        crop_size=32,
        scale_min=40,
        scale_max=48,
        mean_rgb=mean,
        color_shift_std=0.25,
        flip=False,
        seed=5,
        deterministic=True,
        cache=True,
        max_pixels=None,
        max_aspect_ratio=4.0,
        with_boxes=True,
    )
    assert ip.EvalStream.from_recipe(config, 44, mean_rgb=mean) == ip.EvalStream(
        batch_size=16,
        image_size=44,
        crop_size=32,
        mean_rgb=mean,
        max_pixels=None,
        max_aspect_ratio=4.0,
        with_boxes=True,
    )
    config.update(task="classification", max_pixels=1000, max_aspect_ratio=0)
    stream = ip.TrainStream.from_recipe(config, mean_rgb=mean)
    assert (stream.with_boxes, stream.max_pixels, stream.max_aspect_ratio) == (False, 1000, None)


def test_a_negative_skip_is_refused(digits):
    with pytest.raises(ValueError, match="skip_examples=-1 is invalid"):
        ip.train_dataset(digits, ip.TrainStream(batch_size=4), skip_examples=-1)


def test_mean_is_subtracted_and_the_colour_shift_is_one_per_image(bad_image_folder):
    folder = bad_image_folder
    source = sources.get_source(str(folder.root))
    mean = (10.0, 20.0, 30.0)
    stream = ip.TrainStream(
        batch_size=9, crop_size=CROP, scale_min=CROP, scale_max=48, mean_rgb=mean, seed=0
    )
    plain = take(ip.train_dataset(source, dataclasses.replace(stream, color_shift_std=0.0)), 1)
    shifted = take(ip.train_dataset(source, dataclasses.replace(stream, color_shift_std=0.1)), 1)
    shifts = []
    for image, other in zip(plain[0][0].numpy(), shifted[0][0].numpy()):
        name = folder.identify(image + np.float32(mean))  # the flat colour, less the mean
        shift = (other - image).reshape(-1, 3)
        np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-3)
        shifts.append(shift[0])
        assert name in folder.good
    shifts = np.asarray(shifts)
    # N(0, 0.1) coefficients of ImageNet's eigenvalues: a few grey levels, differing per image.
    assert 0.5 < np.abs(shifts).max() < 60 and len({tuple(np.round(s, 3)) for s in shifts}) == 9


# --- Issue 10's acceptance folder ----------------------------------------------------------

SKIPPED = re.compile(r"skipped a bad record .* \((\d+) so far\): (\S+)")


def _skipped_names(log):
    return [os.path.basename(path) for _, path in SKIPPED.findall(log)]


def test_streams_skip_and_name_exactly_the_bad_files_and_use_gif_bmp_webp(bad_image_folder, capfd):
    """The two bombs, the thin strip and the truncated JPEG are skipped and named by the
    training stream and both evaluation streams; the GIF, BMP and WebP are listed, never
    named, and seen: every good file once per pass, with its label."""
    folder = bad_image_folder
    source = sources.get_source(str(folder.root))
    assert source.num_examples("train") == len(folder.good) + len(folder.bad) == 13
    label_of = {name: source.class_names.index(c) for name, c in folder.classes.items()}
    good = sorted(folder.good)
    assert {"animated.gif", "bitmap.bmp", "lossy.webp"} < set(good)
    capfd.readouterr()

    for mode, options in (
        ("center", dict(crop_size=CROP, batch_size=4)),
        ("full", dict(batch_size=1)),
    ):
        stream = ip.EvalStream(image_size=CROP, mode=mode, mean_rgb=(0.0, 0.0, 0.0), **options)
        batches = list(ip.eval_dataset(source, stream, split="train"))
        seen = [
            (folder.identify(image), int(label))
            for images, labels in batches
            for image, label in zip(images.numpy(), labels)
        ]
        assert sorted(name for name, _ in seen) == good, mode  # each good file, once
        assert all(label == label_of[name] for name, label in seen), mode
        assert sorted(_skipped_names(capfd.readouterr().err)) == sorted(folder.bad), mode

    # Every file in the training stream (the folder's own train split holds 90% of them).
    everything = dataclasses.replace(source, train_split="train")
    stream = iter(
        ip.train_dataset(
            everything,
            ip.TrainStream(
                batch_size=len(good),
                crop_size=CROP,
                scale_min=CROP,
                scale_max=48,
                mean_rgb=(0.0, 0.0, 0.0),
                color_shift_std=0.0,
                seed=0,
            ),
        )
    )
    for _ in range(3):
        # Each pass over the 13 records holds the 9 good ones: one batch, each file once.
        images, labels = next(stream)
        names = [folder.identify(image) for image in images.numpy()]
        assert sorted(names) == good
        assert [label_of[name] for name in names] == labels.numpy().tolist()
    del stream
    assert set(_skipped_names(capfd.readouterr().err)) == set(folder.bad)


def test_add_rgb_is_the_broadcast_sum_for_any_shape():
    rgb = tf.constant([-123.68, -116.78, 103.94])
    for shape in ([7, 5, 3], [1, 1, 3], [224, 224, 3]):
        image = tf.random.stateless_uniform(shape, [1, 2], 0, 255)
        np.testing.assert_array_equal(ip.add_rgb(image, rgb), image + rgb)
    dynamic = tf.function(
        ip.add_rgb, input_signature=[tf.TensorSpec([None, None, 3]), tf.TensorSpec([3])]
    )
    image = tf.ones([6, 9, 3])
    np.testing.assert_array_equal(dynamic(image, rgb), image + rgb)
    assert dynamic.get_concrete_function().structured_outputs.shape.as_list() == [None, None, 3]


# --- Boxes (localisation) -------------------------------------------------------------------


def test_crop_window_is_scaled_crops_window_in_normalised_corners(encode):
    from vgg_tf.data import images

    # A 100x200 image, left half black, right half white: S = 50 gives 50x100, and
    # the crop at offset (0, 0.5) spans x in [25, 75) of 100: half black, half white.
    pixels = np.zeros([100, 200, 3], np.uint8)
    pixels[:, 100:] = 255
    png = tf.constant(encode(pixels, "PNG"))
    np.testing.assert_allclose(
        ip.crop_window(png, 50, 50, (0.0, 0.5)).numpy(), [0.0, 0.25, 1.0, 0.75]
    )
    crop = images.scaled_crop(png, 50, 50, (0.0, 0.5)).numpy()
    assert crop[:, :24].max() < 10 and crop[:, 26:].min() > 245


def test_boxes_in_window_maps_corners_and_mirrors_with_the_crop():
    window = tf.constant([0.2, 0.4, 0.6, 0.8])
    box = tf.constant([[0.3, 0.5, 0.5, 0.6]])
    np.testing.assert_allclose(
        ip.boxes_in_window(box, window).numpy(), [[0.25, 0.25, 0.75, 0.5]], atol=1e-6
    )
    np.testing.assert_allclose(
        ip.boxes_in_window(box, window, flip=True).numpy(), [[0.25, 0.5, 0.75, 0.75]], atol=1e-6
    )


@pytest.mark.parametrize("flip", [False, True])
def test_training_boxes_follow_each_crop_and_flip(canvas, flip):
    # In each crop's frame, the target digit's box holds its ink: the crop is far
    # brighter inside the box than outside it (only the small distractors are there).
    from vgg_tf.training import tasks

    ds = ip.train_dataset(
        canvas,
        ip.TrainStream(
            batch_size=16,
            crop_size=32,
            scale_min=48,
            scale_max=64,
            mean_rgb=(0.0, 0.0, 0.0),
            color_shift_std=0.0,
            flip=flip,
            seed=3,
            with_boxes=True,
        ),
    )
    crops, (labels, boxes) = next(iter(ds))
    assert crops.shape == (16, 32, 32, 3) and boxes.shape == (16, 64, 4) and labels.shape == (16,)
    checked = 0
    for crop, box in zip(
        crops.numpy().mean(axis=-1), tasks.Localisation.target_boxes(boxes).numpy()
    ):
        y0, x0, y1, x1 = np.clip(np.round(box * 32).astype(int), 0, 32)
        if (y1 - y0) * (x1 - x0) < 64:  # mostly outside this crop
            continue
        inside = np.zeros_like(crop, bool)
        inside[y0:y1, x0:x1] = True
        assert crop[inside].mean() > 2 * crop[~inside].mean(), box
        checked += 1
    assert checked >= 8
