"""Image operations (vgg_tf.data.images): format sniffing, declared size, limits checked before
decoding, decoding every format to 8-bit RGB, the GIF first-frame cut, rescaling and the
fused crop-decode."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import data

from vgg_tf.data import images

LIMIT_MESSAGE = "declares more than 40000000 pixels"


@pytest.fixture(scope="module")
def coffee():
    return data.coffee()  # 400 x 600 real photo


def _image(h, w, seed=0):
    return np.random.RandomState(seed).randint(0, 256, size=(h, w, 3)).astype("uint8")


def _translucent(pil):
    """The image with an alpha channel that is not all opaque."""
    rgba = pil.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(pil.size))
    return rgba


# --- Format and declared size --------------------------------------------------------------


def test_image_format_sniffs_the_magic_bytes(encode):
    pixels = _image(6, 7)
    for fmt, code in (
        ("JPEG", images.JPEG),
        ("PNG", images.PNG),
        ("GIF", images.GIF),
        ("BMP", images.BMP),
        ("WEBP", images.WEBP),
    ):
        assert int(images.image_format(encode(pixels, fmt))) == code, fmt
        assert images.FORMAT_NAMES[code].upper() == fmt
    for junk in (b"", b"\xff\xd8", b"not an image", b"RIFF\0\0\0\0WAVEfmt ", b"GIF"[:2]):
        assert int(images.image_format(junk)) == images.UNKNOWN, junk


@pytest.mark.parametrize(
    "fmt, mode",
    [
        (f, m)
        for f in ("JPEG", "PNG", "GIF", "BMP")
        for m in ("RGB", "L", "RGBA")
        if (f, m) != ("JPEG", "RGBA")
    ]
    + [("JPEG", "CMYK"), ("WEBP", "RGB"), ("WEBP-lossless", "RGB"), ("WEBP", "RGBA")],
)
def test_decode_formats_and_modes(encode, fmt, mode):
    yy, xx = np.mgrid[0:30, 0:41]
    image = np.stack([yy * 8, xx * 6, 255 - xx * 5], axis=-1).astype("uint8")  # smooth colours
    if fmt.startswith("WEBP"):  # lossy (VP8), lossless (VP8L), with alpha (VP8X)
        pil = Image.fromarray(image).convert(mode)
        if mode == "RGBA":
            pil.putalpha(Image.linear_gradient("L").resize(pil.size))  # not all opaque
        data_ = encode(pil, "WEBP", lossless=fmt.endswith("lossless"))
        chunk = b"VP8L" if fmt == "WEBP-lossless" else {"RGB": b"VP8 ", "RGBA": b"VP8X"}[mode]
        assert data_[12:16] == chunk  # each of the three headers is read
    else:
        data_ = encode(image, fmt, mode)
    assert int(images.declared_pixels(data_)) == 30 * 41
    assert images.declared_size(data_).numpy().tolist() == [30, 41]  # (height, width)
    decoded = images.decode_rgb(data_).numpy()
    reference = np.asarray(Image.open(io.BytesIO(data_)).convert("RGB"))
    assert decoded.shape == (30, 41, 3) and decoded.dtype == np.uint8
    # Decoder rounding (JPEG, lossy WebP). A GIF holds palette colours, which Pillow's
    # decoder (the reference, independent of TensorFlow's) and ours must give exactly.
    tolerance = {"JPEG": 6, "WEBP": 6}.get(fmt, 0)
    assert np.abs(decoded.astype(int) - reference).max() <= tolerance


@pytest.mark.parametrize(
    "convert, fmt, options, gray",
    [
        (lambda p: p.convert("L"), "JPEG", {}, True),
        (lambda p: p.convert("CMYK"), "JPEG", {}, False),
        (lambda p: p.convert("RGBA"), "PNG", {}, False),
        (lambda p: Image.fromarray(np.asarray(p.convert("L"), np.uint16) * 257), "PNG", {}, True),
        (lambda p: p, "GIF", {}, False),
        (lambda p: p, "BMP", {}, False),
        (lambda p: p, "JPEG", {"progressive": True}, False),
        (lambda p: p, "WEBP", {"quality": 90}, False),
        (_translucent, "WEBP", {"lossless": True}, False),
        (_translucent, "WEBP", {"quality": 90}, False),
    ],
    ids=[
        "gray-jpeg",
        "cmyk-jpeg",
        "rgba-png",
        "png16",
        "gif",
        "bmp",
        "progressive",
        "webp",
        "webp-lossless-alpha",
        "webp-alpha",
    ],
)
def test_decode_rgb_converts_to_8bit_rgb(coffee, encode, convert, fmt, options, gray):
    pil = Image.fromarray(coffee)
    image = images.decode_rgb(encode(convert(pil), fmt, **options)).numpy()
    assert image.shape == (400, 600, 3) and image.dtype == np.uint8
    reference = np.asarray(pil.convert("L").convert("RGB")) if gray else coffee
    # Colour conversions (CMYK, GIF palette, JPEG) are lossy: compare on average.
    assert np.abs(image.astype(float) - reference).mean() < 6


# --- Limits, checked on the header before any pixel is decoded -------------------------------


BOMB_FORMATS = ["png", "jpeg", "gif", "bmp", "webp-vp8", "webp-vp8l", "webp-vp8x"]


@pytest.mark.parametrize("fmt", BOMB_FORMATS)
def test_a_header_over_the_pixel_limit_is_refused_before_decoding(header_bombs, fmt):
    assert sorted(header_bombs) == sorted(BOMB_FORMATS)
    blob, declared = header_bombs[fmt]
    # The size comes from the header: these files hold no such pixels.
    assert images.declared_size(blob).numpy().tolist() == list(declared)
    assert images.FORMAT_NAMES[int(images.image_format(blob))].lower() == fmt.split("-")[0]
    assert len(blob) < 1000
    # The limit's own message: the check ran before the decoder could fail otherwise.
    with pytest.raises(tf.errors.InvalidArgumentError, match=LIMIT_MESSAGE):
        images.decode_rgb(blob)
    for fused in (True, False):  # the fused crop-decode is guarded too
        with pytest.raises(tf.errors.InvalidArgumentError, match=LIMIT_MESSAGE):
            images.scaled_crop(blob, 256, 224, (0.0, 0.0), fused=fused)


def test_a_real_png_bomb_is_refused_and_decodes_without_the_limit(zero_png):
    bomb = zero_png(3000, 2000)  # 6 MP of zeros, a few KB on disk
    assert len(bomb) < 20_000
    for op in (
        lambda **limit: images.decode_rgb(bomb, **limit),
        lambda **limit: images.scaled_crop(bomb, 64, 32, **limit),
        lambda **limit: images.scaled_crop(bomb, 64, 32, fused=False, **limit),
    ):
        with pytest.raises(tf.errors.InvalidArgumentError, match="more than 5000000 pixels"):
            op(max_pixels=5_000_000)
        assert (
            float(tf.reduce_max(op(max_pixels=None))) == 0.0
        )  # a valid file: only the limit refused it
    assert images.decode_rgb(bomb).shape == (2000, 3000, 3)  # under the default 40 MP


def test_decode_rejects_before_decoding(encode, png_header, patched_image):
    # Headers declaring 1200 pixels on bodies that hold no such image: a PNG with no pixel
    # data at all, a 16 x 16 BMP and WebP. Only a check of the header, before decoding, can
    # give the limit's message: a decoder fails on them or returns the 16 x 16 body.
    webp = bytearray(encode(np.zeros((16, 16, 3), np.uint8), "WEBP", lossless=True))
    bits = int.from_bytes(webp[21:25], "little")
    webp[21:25] = ((bits & ~((1 << 28) - 1)) | (40 - 1) | (30 - 1) << 14).to_bytes(4, "little")
    for blob in (png_header(40, 30), patched_image("BMP", 18, "<ii", (40, 30)), bytes(webp)):
        assert int(images.declared_pixels(blob)) == 1200
        with pytest.raises(tf.errors.InvalidArgumentError, match="declares more than 1000 pixels"):
            images.decode_rgb(blob, max_pixels=1000)
        for fused in (True, False):
            with pytest.raises(
                tf.errors.InvalidArgumentError, match="declares more than 1000 pixels"
            ):
                images.scaled_crop(blob, 32, 32, max_pixels=1000, fused=fused)
    for data_ in (b"", b"not an image", b"RIFF\0\0\0\0WAVEfmt ", b"RIFF\0\0\0\0WEBPVP9 "):
        with pytest.raises(tf.errors.InvalidArgumentError, match="Unsupported image format"):
            images.decode_rgb(data_)
    with pytest.raises(tf.errors.InvalidArgumentError):
        images.decode_rgb(b"\xff\xd8\xff\xe0 truncated jpeg")
    # A thin strip: rescaled so its shorter side is Q it would be enormous.
    for fmt in ("PNG", "JPEG", "GIF", "BMP"):
        assert images.decode_rgb(encode(_image(5, 80), fmt)).shape == (5, 80, 3)  # 16:1
        for strip in (_image(4, 80), _image(80, 4)):  # 20:1 either way round
            with pytest.raises(tf.errors.InvalidArgumentError, match="more than 16 times"):
                images.decode_rgb(encode(strip, fmt))
    assert images.decode_rgb(encode(_image(4, 80), "PNG"), max_aspect_ratio=None).shape[1] == 80
    for limits, match in (((0, None), "max_pixels=0"), ((None, 0.5), "max_aspect_ratio=0.5")):
        with pytest.raises(ValueError, match=match):
            images.decode_rgb(encode(_image(5, 5), "PNG"), *limits)


def test_image_limits_travel_as_one_value_checked_when_made():
    assert images.ImageLimits() == images.ImageLimits(40_000_000, 16.0)
    # A recipe's or a flag's 0 is no limit; the library's None is.
    assert images.ImageLimits.from_settings(0, 0.0) == images.ImageLimits(None, None)
    assert images.ImageLimits.from_settings(100, 2.0) == images.ImageLimits(100, 2.0)
    for limits, match in (((0, None), "max_pixels=0"), ((None, 0.5), "max_aspect_ratio=0.5")):
        with pytest.raises(ValueError, match=f"{match} is not accepted"):
            images.ImageLimits(*limits)


def test_a_thin_strip_is_refused_by_the_crop_too(zero_png):
    strip = zero_png(100_000, 10)  # 1 MP, but 32 x 320000 once its shorter side is 32
    assert images.declared_size(strip).numpy().tolist() == [10, 100_000]
    for fused in (True, False):
        with pytest.raises(tf.errors.InvalidArgumentError, match="more than 16 times the other"):
            images.scaled_crop(strip, 32, 32, fused=fused)
    crop = images.scaled_crop(strip, 32, 32, max_aspect_ratio=None)  # the limit alone refused it
    assert crop.shape == (32, 32, 3)
    with pytest.raises(ValueError, match="max_pixels=0"):
        images.scaled_crop(strip, 32, 32, max_pixels=0)


# --- Refusals without raising: one image's reason, each row of a batch ------------------------


def _raised(blob, **limits) -> str:
    """The message decode_rgb raises with ("" when it decodes)."""
    try:
        images.decode_rgb(blob, **limits)
    except tf.errors.InvalidArgumentError as error:
        return error.message
    return ""


def test_refusal_names_what_decode_rgb_refuses_without_raising(
    encode, header_bombs, png_header, zero_png
):
    good = [encode(_image(6, 9), fmt) for fmt in ("JPEG", "PNG", "GIF", "BMP", "WEBP")]
    bad = {
        images.UNSUPPORTED_FORMAT: [b"", b"not an image", b"RIFF\0\0\0\0WAVEfmt "],
        images.UNSUPPORTED_WEBP: [b"RIFF\0\0\0\0WEBPVP9 " + b"\0" * 20],
        LIMIT_MESSAGE: [blob for blob, _ in header_bombs.values()] + [png_header(7000, 6000)],
        "a side more than 16 times the other": [zero_png(100_000, 10), encode(_image(4, 80))],
    }
    as_graph = tf.function(images.refusal, input_signature=[tf.TensorSpec([], tf.string)])
    for refuse in (images.refusal, as_graph):
        assert [refuse(blob).numpy() for blob in good] == [b""] * 5
        for reason, blobs in bad.items():
            for blob in blobs:
                said = refuse(blob).numpy().decode()
                assert reason in said, (blob[:16], said)
                assert said in _raised(blob)  # the raising check's own words
    # Other limits, and none.
    strip = encode(_image(4, 80), "PNG")
    assert images.refusal(strip, max_aspect_ratio=None).numpy() == b""
    assert images.refusal(strip, max_pixels=100).numpy().decode() == (
        "Image rejected: its header declares more than 100 pixels"
    )


def test_refusals_judge_each_row_of_a_batch_alone(encode, header_bombs, coffee):
    jpeg, png = encode(coffee[:60, :80]), encode(_image(20, 30), "PNG")
    bomb = header_bombs["jpeg"][0]
    rows = {
        "good jpeg": (jpeg, ""),
        "text": (b"these bytes are no image", images.UNSUPPORTED_FORMAT),
        "bomb": (bomb, images.too_many_pixels_message(40_000_000)),
        "truncated jpeg": (jpeg[: len(jpeg) // 2], images.UNDECODABLE),  # its header reads
        "good png": (png, ""),
        "png, corrupt body": (png[:60] + bytes([png[60] ^ 255]) + png[61:], images.UNDECODABLE),
        "jpeg, broken header": (b"\xff\xd8\xff\xe0 broken", images.UNDECODABLE),
        "empty": (b"", images.UNSUPPORTED_FORMAT),
    }
    blobs = [blob for blob, _ in rows.values()]
    expected = [reason.encode() for _, reason in rows.values()]
    as_graph = tf.function(images.refusals, input_signature=[tf.TensorSpec([None], tf.string)])
    for judge in (images.refusals, as_graph):
        assert judge(blobs).numpy().tolist() == expected
        assert judge(blobs[::-1]).numpy().tolist() == expected[::-1]
        assert judge(tf.zeros([0], tf.string)).shape == (0,)
    # Every refused row is one decode_rgb refuses, and the others decode.
    for name, (blob, reason) in rows.items():
        assert bool(_raised(blob)) == bool(reason), name
    assert images.refusals([bomb], max_pixels=None).numpy().tolist() == [
        images.UNDECODABLE.encode()
    ]


# --- GIF: the first frame only --------------------------------------------------------------


def test_an_animated_gif_is_cut_to_its_first_frame_before_decoding(encode):
    frames = [
        Image.fromarray(np.full((60, 80, 3), c, np.uint8))
        for c in ((250, 0, 0), (0, 250, 0), (0, 0, 250))
    ] * 10
    buf = io.BytesIO()
    frames[0].save(
        buf,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        loop=0,
        duration=50,
        comment=b"an extension to skip",
    )
    animated = buf.getvalue()
    assert tf.io.decode_gif(animated).shape[0] == 30
    cut = images._gif_first_frame(tf.constant(animated)).numpy()
    assert tf.io.decode_gif(cut).shape == (1, 60, 80, 3)  # one frame decoded, not 30
    decoded = images.decode_rgb(animated).numpy()
    assert decoded.shape == (60, 80, 3) and decoded[0, 0].tolist() == [250, 0, 0]
    still = encode(_image(30, 41), "GIF")  # a one-frame GIF decodes exactly as before
    np.testing.assert_array_equal(
        images.decode_rgb(still), tf.io.decode_image(still, channels=3, expand_animations=False)
    )
    assert images._gif_first_frame(tf.constant(still[:40])).numpy() == still[:40]  # cannot walk it


def test_many_full_canvas_frames_cost_one_frame(animated_gif):
    gif = animated_gif(400, 300, 200, first=(10, 200, 30), rest=(200, 10, 30))
    assert len(gif) < 1_000_000  # 200 x 400 x 300 x 3 = 72 MB once decoded
    cut = images._gif_first_frame(tf.constant(gif)).numpy()
    assert len(cut) * 50 < len(gif)  # the first of 200 frames
    assert tf.io.decode_gif(cut).shape == (1, 300, 400, 3)
    for image in (images.decode_rgb(gif), images.scaled_crop(gif, 32, 32)):
        np.testing.assert_allclose(image.numpy().reshape(-1, 3).mean(0), (10, 200, 30), atol=1e-3)


# --- Rescale and crop -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "hw, size, expected", [((100, 50), 32, (64, 32)), ((30, 90), 64, (64, 192))]
)
def test_rescale_shorter_side(hw, size, expected):
    out = images.rescale_shorter_side(tf.zeros([*hw, 3], tf.uint8), size)
    assert tuple(out.shape[:2]) == expected and out.dtype == tf.float32
    batch = images.rescale_shorter_side(tf.zeros([2, *hw, 3]), size)
    assert tuple(batch.shape) == (2, *expected, 3)
    assert images.scaled_size(*hw, size).numpy().tolist() == list(expected)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("scale", [224, 256, 384, 512])
def test_fused_crop_matches_rescale_then_crop(coffee, encode, fmt, scale):
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


def test_crop_window_arithmetic(encode):
    # A horizontal ramp: the crop's left column tells where in the source it starts.
    ramp = np.tile((np.arange(400) // 2).astype(np.uint8), (200, 1))  # value = column / 2
    image_bytes = encode(np.stack([ramp] * 3, -1), "PNG")
    # S = 100 halves the image (200 x 400 -> 100 x 200); offset 1 = rightmost crop.
    out = images.scaled_crop(image_bytes, 100, 50, (0.0, 1.0)).numpy()
    assert abs(out[0, 0, 0] - 300 / 2) <= 1.0  # rescaled column 150 = source column 300
    assert abs(out[0, -1, 0] - 398 / 2) <= 1.0  # rescaled column 199 = source column 398
    centre = images.scaled_crop(image_bytes, 100, 50).numpy()  # rescaled columns 75..124
    assert abs(centre[0, 0, 0] - 150 / 2) <= 1.0


@pytest.mark.parametrize("fused", [True, False])
def test_flip_mirrors_the_crop(coffee, encode, fused):
    image_bytes = encode(coffee, "PNG")
    plain = images.scaled_crop(image_bytes, 300, 224, (0.3, 0.8), fused=fused).numpy()
    for flip in (True, tf.constant(True)):
        mirrored = images.scaled_crop(
            image_bytes, 300, 224, (0.3, 0.8), flip=flip, fused=fused
        ).numpy()
        np.testing.assert_allclose(mirrored, plain[:, ::-1], atol=0.01)  # float rounding
    unflipped = images.scaled_crop(
        image_bytes, 300, 224, (0.3, 0.8), flip=tf.constant(False), fused=fused
    ).numpy()
    np.testing.assert_array_equal(unflipped, plain)
    assert not np.allclose(plain, plain[:, ::-1], atol=1)  # the photo is not symmetric


def test_small_and_very_large_images(coffee, encode):
    tiny = images.scaled_crop(encode(np.full((8, 6, 3), 200, np.uint8), "PNG"), 64, 48, (0.5, 0.5))
    assert tiny.shape == (48, 48, 3) and np.allclose(tiny, 200)
    big = np.tile(coffee, (8, 8, 1))  # 3200 x 4800
    out = images.scaled_crop(encode(big, quality=80), 256, 224, (0.7, 0.2))
    assert out.shape == (224, 224, 3) and np.isfinite(out.numpy()).all()


def test_ops_work_eagerly_in_graphs_and_in_dataset_map(coffee, encode):
    image_bytes = encode(coffee)
    eager = images.scaled_crop(image_bytes, 256, 224, (0.2, 0.4))
    graph = tf.function(lambda b: images.scaled_crop(b, 256, 224, (0.2, 0.4)))(image_bytes)
    mapped = next(
        iter(
            tf.data.Dataset.from_tensors(image_bytes).map(
                lambda b: images.scaled_crop(b, 256, 224, (0.2, 0.4))
            )
        )
    )
    np.testing.assert_allclose(eager, graph, atol=1e-3)
    np.testing.assert_allclose(eager, mapped, atol=1e-3)
    serving = tf.function(
        lambda b: images.rescale_shorter_side(images.decode_rgb(b), 64),
        input_signature=[tf.TensorSpec([], tf.string)],
    )
    assert serving(image_bytes).shape == (64, 96, 3)


@pytest.mark.parametrize("fused", [True, False])
def test_bad_bytes_raise_in_ops(coffee, encode, fused):
    jpeg = encode(coffee)
    truncated = jpeg[: len(jpeg) // 2]
    for bad in (truncated, b"this is a text file", b""):
        with pytest.raises(tf.errors.InvalidArgumentError):
            # Offset (0, 0) lies in the intact half: truncation must still be caught.
            images.scaled_crop(bad, 256, 224, (0.0, 0.0), fused=fused)


# --- Reduced-DCT decoding of large JPEGs ---------------------------------------------------


@pytest.mark.parametrize(
    "shorter, scale, step",
    [
        (511, 256, 0),
        (512, 256, 1),
        (1023, 256, 1),
        (1024, 256, 2),
        (2048, 256, 3),
        (9000, 256, 3),
        (768, 384, 1),
        (767, 384, 0),
        (400, 224, 0),
    ],
)
def test_jpeg_scale_step_keeps_the_shorter_side_at_least_s(shorter, scale, step):
    for size in ([shorter, 3 * shorter], [2 * shorter, shorter]):
        assert int(images.jpeg_scale_step(tf.constant(size, tf.int64), scale)) == step
        assert shorter // images.JPEG_RATIOS[step] >= scale


@pytest.mark.parametrize(
    "scale, offset", [(256, (0.5, 0.5)), (256, (0.0, 1.0)), (300, (1.0, 0.2)), (512, (0.3, 0.8))]
)
def test_a_large_jpeg_decoded_at_reduced_size_matches_the_full_decode(
    coffee, encode, scale, offset
):
    # 1600 x 2400: decoded at 1/4 (S = 256, 300) or 1/2 (S = 512), never below S.
    large = np.asarray(Image.fromarray(coffee).resize((2400, 1600), Image.BICUBIC))
    jpeg = encode(large, quality=95)
    step = int(images.jpeg_scale_step(images.declared_size(jpeg), scale))
    assert step == (1 if scale == 512 else 2)
    fused = images.scaled_crop(jpeg, scale, 224, offset).numpy()
    naive = images.scaled_crop(jpeg, scale, 224, offset, fused=False).numpy()  # full decode
    assert fused.shape == naive.shape == (224, 224, 3)
    assert fused.min() >= 0 and fused.max() <= 255
    diff = np.abs(fused - naive)
    assert diff.mean() < 4.0, diff.mean()
    assert np.corrcoef(fused.ravel(), naive.ravel())[0, 1] > 0.99
    flipped = images.scaled_crop(jpeg, scale, 224, offset, flip=True).numpy()
    np.testing.assert_allclose(flipped, fused[:, ::-1], atol=0.01)


def test_a_truncated_large_jpeg_is_refused_by_the_reduced_decode(coffee, encode):
    large = np.asarray(Image.fromarray(coffee).resize((2400, 1600)))
    jpeg = encode(large)
    assert int(images.jpeg_scale_step(images.declared_size(jpeg), 256)) > 0
    with pytest.raises(tf.errors.InvalidArgumentError):
        images.scaled_crop(jpeg[: len(jpeg) // 2], 256, 224, (0.0, 0.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 1000000 pixels"):
        images.scaled_crop(jpeg, 256, 224, max_pixels=1_000_000)
