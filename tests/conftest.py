"""Shared test settings and fixtures.

Settings: quiet TensorFlow, the TensorFlow Keras backend.

Fixtures (each test file asks for what it uses):

* ``tfds_dir``: a TFDS data directory with the built-in digits prepared, once per
  session; ``digits``: the digits :class:`vgg_tf.data.sources.Source` read from it.
* ``subprocess_env``, ``bin_command``, ``run_bin``: the environment and the
  command lines for running ``bin/*`` in a child process.
* ``free_ports``: free localhost ports (multi-worker and tuning clusters).
* ``encode``: image bytes as Pillow writes them; ``zero_png``: a PNG of zeros
  written row by row (a decompression bomb that never exists in memory);
  ``animated_gif``: a GIF of many full-canvas frames; ``png_header``,
  ``patched_image``, ``patched_jpeg``: small files whose headers declare another size;
  ``header_bombs``: one such file per format and header kind (WebP's VP8, VP8L and
  VP8X among them), each declaring more than 40 MP on a body of a few hundred bytes.
* ``tiny_model``, ``tiny_run_config``, ``make_workdir``: a tiny net A and a run
  directory holding it, written by :mod:`vgg_tf.workdir` as the trainer does.
* ``digit_images``: scikit-learn's digits as 40 x 40 RGB images and their labels.
* ``trained_digits_run``: a run directory of a tiny net A trained for a few seconds on
  the digits, once per session.
* ``make_bad_image_folder`` / ``bad_image_folder``: issue 10's acceptance folder
  (the two bombs, a thin strip, an animated GIF, a BMP, a WebP and a truncated
  JPEG among good JPEGs in two classes).

Tests that spawn a process or train for real for more than a few seconds are
marked ``slow``: ``pytest -m "not slow"`` is the quick loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import socket
import struct
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "bin"
# The distributed-tuning variables a child must not inherit unless a test sets them.
_CLUSTER_VARIABLES = (
    "TF_CONFIG",
    "KERASTUNER_TUNER_ID",
    "KERASTUNER_ORACLE_IP",
    "KERASTUNER_ORACLE_PORT",
)


# --- Data and processes ------------------------------------------------------------------


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory) -> Path:
    """A TFDS data directory with the digits prepared (child processes only read it)."""
    from vgg_tf.data.builtin import Digits

    root = tmp_path_factory.mktemp("tfds")
    Digits(data_dir=str(root)).download_and_prepare()
    return root


@pytest.fixture(scope="session")
def digits(tfds_dir):
    """The digits source (train[:90%] / train[90%:] / test) from ``tfds_dir``."""
    from vgg_tf.data import sources

    return sources.get_source("digits", data_dir=str(tfds_dir))


@pytest.fixture(scope="session")
def subprocess_env(tfds_dir):
    """``env(**extra)``: the environment of a child process running ``bin/*``.

    TFDS reads the session's data dir, output is unbuffered, TensorFlow's C++ INFO
    lines are off, the checkout is importable, and no cluster variable leaks in.
    """

    def env(**extra) -> dict[str, str]:
        result = {k: v for k, v in os.environ.items() if k not in _CLUSTER_VARIABLES}
        result.update(
            TF_CPP_MIN_LOG_LEVEL="2",
            TFDS_DATA_DIR=str(tfds_dir),
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(REPO),
        )
        result.update({k: str(v) for k, v in extra.items()})
        return result

    return env


@pytest.fixture(scope="session")
def bin_command():
    """``command(name, *flags)``: the argv running ``bin/<name>`` with this interpreter."""

    def command(name: str, *flags) -> list[str]:
        return [sys.executable, str(BIN / name), *map(str, flags)]

    return command


@pytest.fixture(scope="session")
def run_bin(bin_command, subprocess_env):
    """``run(name, *flags, env=None, timeout=600, check=True)``: runs ``bin/<name>`` to the end.

    With ``check`` a non-zero exit fails the test, showing the ends of stdout and stderr.
    """

    def run(name: str, *flags, env=None, timeout: float = 600, check: bool = True, cwd=None):
        result = subprocess.run(
            bin_command(name, *flags),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env or subprocess_env(),
            cwd=cwd,
        )
        if check:
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-4000:]
        return result

    return run


@pytest.fixture
def free_ports():
    """``ports(n)``: n distinct free TCP ports on 127.0.0.1."""

    def ports(n: int = 1) -> list[int]:
        sockets = [socket.socket() for _ in range(n)]
        try:
            for s in sockets:
                s.bind(("127.0.0.1", 0))
            return [s.getsockname()[1] for s in sockets]
        finally:
            for s in sockets:
                s.close()

    return ports


# --- Image bytes -------------------------------------------------------------------------


def _encode(array, fmt: str = "JPEG", mode: str | None = None, **kwargs) -> bytes:
    from PIL import Image

    image = array if isinstance(array, Image.Image) else Image.fromarray(np.asarray(array))
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def encode():
    """``encode(array_or_pil, fmt="JPEG", mode=None, **save_options) -> bytes`` (Pillow)."""
    return _encode


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def _zero_png(width: int, height: int) -> bytes:
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + a row of zeros
    rows_per_block = max(1, min(height, (1 << 24) // len(row)))
    parts = [compressor.compress(row * rows_per_block) for _ in range(height // rows_per_block)]
    parts += [compressor.compress(row * (height % rows_per_block)), compressor.flush()]
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="session")
def zero_png():
    """``zero_png(width, height) -> bytes``: a real, valid grayscale PNG of zeros.

    Compressed a block of rows at a time, so that a 40000 x 40000 bomb (1.6 GB of
    pixels, 1.6 MB of file) never exists uncompressed.
    """
    return _zero_png


def _animated_gif(width, height, frames, first=(200, 40, 40), rest=(40, 40, 200)) -> bytes:
    from PIL import Image

    palette = [*first, *rest] + [0] * (3 * 254)

    def encoded(index):
        image = Image.new("P", (width, height), index)
        image.putpalette(palette)
        buffer = io.BytesIO()
        image.save(buffer, "GIF", optimize=False)
        return buffer.getvalue()

    def split(data):  # (header with the global colours, the image block)
        packed = data[10]
        pos = 13 + (3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0)
        head = data[:pos]
        while data[pos] == 0x21:  # an extension: label, then sub-blocks up to a 0
            pos += 2
            while data[pos]:
                pos += data[pos] + 1
            pos += 1
        assert data[pos] == 0x2C and data[-1] == 0x3B
        return head, data[pos:-1]

    head, first_block = split(encoded(0))
    same_head, rest_block = split(encoded(1))
    assert head == same_head  # one global colour table for both frames
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    control = b"\x21\xf9\x04\x04\x05\x00\x00\x00"  # 50 ms, do not dispose
    blocks = [control + (first_block if i == 0 else rest_block) for i in range(frames)]
    return b"".join([head, loop, *blocks, b"\x3b"])


@pytest.fixture(scope="session")
def animated_gif():
    """``animated_gif(width, height, frames, first=RGB, rest=RGB) -> bytes``.

    Every frame covers the whole canvas; the first is the colour ``first``, the
    others ``rest``. Frames are spliced from two one-frame encodings, so 400
    frames of 2000 x 2000 (4.8 GB decoded) take a second and 1.6 MB.
    """
    return _animated_gif


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + b"\0" * 64


@pytest.fixture(scope="session")
def png_header():
    """``png_header(width, height) -> bytes``: a PNG signature and IHDR, and no pixels at all."""
    return _png_header


def _patched_image(fmt: str, offset: int, fields: str, values, **options) -> bytes:
    blob = bytearray(_encode(np.zeros((16, 16, 3), "uint8"), fmt, **options))
    blob[offset : offset + struct.calcsize(fields)] = struct.pack(fields, *values)
    return bytes(blob)


@pytest.fixture(scope="session")
def patched_image():
    """``patched_image(fmt, offset, fields, values) -> bytes``: a 16 x 16 black image in
    ``fmt`` with ``struct.pack(fields, *values)`` written at ``offset`` (a header field)."""
    return _patched_image


def _patched_jpeg(width: int, height: int) -> bytes:
    blob = bytearray(_encode(np.zeros((16, 16, 3), "uint8"), "JPEG"))
    sof = blob.index(b"\xff\xc0")  # baseline SOF0: length, precision, height, width
    blob[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(blob)


def _webp(fmt_chunk: bytes, **options) -> bytearray:
    """A 16 x 16 WebP whose first chunk is ``fmt_chunk`` (b"VP8 ", b"VP8L" or b"VP8X")."""
    from PIL import Image

    image = Image.new("RGB", (16, 16), (40, 80, 120))
    if fmt_chunk == b"VP8X":  # alpha that is not all opaque needs the extended header
        image = image.convert("RGBA")
        image.putalpha(Image.linear_gradient("L").resize(image.size))
    blob = bytearray(_encode(image, "WEBP", **options))
    assert blob[12:16] == fmt_chunk, bytes(blob[12:16])
    return blob


def _header_bombs() -> dict:
    """Format -> (bytes, declared (height, width)): headers declaring more than 40 MP on a
    body of a few hundred bytes, so that only a check of the header can refuse them."""
    # VP8 (lossy): after the frame tag and the start code 9d 01 2a, 14-bit width and
    # height (little-endian, 2 scale bits above) at bytes 26 and 28.
    vp8 = _webp(b"VP8 ", quality=80)
    assert vp8[23:26] == b"\x9d\x01\x2a"
    vp8[26:30] = struct.pack("<HH", 16383, 12000)
    # VP8L (lossless): signature 0x2f at byte 20, then width - 1 and height - 1 in 14 bits
    # each, then the alpha hint and version bits, which are kept.
    vp8l = _webp(b"VP8L", lossless=True)
    assert vp8l[20] == 0x2F
    bits = struct.unpack("<I", vp8l[21:25])[0]
    vp8l[21:25] = struct.pack("<I", (bits & ~((1 << 28) - 1)) | (16383 - 1) | (9000 - 1) << 14)
    # VP8X (extended): canvas width - 1 and height - 1, 24 bits each, at bytes 24 and 27.
    vp8x = _webp(b"VP8X", quality=80)
    vp8x[24:30] = (70_000 - 1).to_bytes(3, "little") + (6000 - 1).to_bytes(3, "little")
    return {
        "png": (_png_header(100_000, 100_000), (100_000, 100_000)),
        "jpeg": (_patched_jpeg(20_000, 20_000), (20_000, 20_000)),
        "gif": (_patched_image("GIF", 6, "<HH", (65_535, 65_535)), (65_535, 65_535)),
        "bmp": (_patched_image("BMP", 18, "<ii", (20_000, -20_000)), (20_000, 20_000)),
        "webp-vp8": (bytes(vp8), (12000, 16383)),
        "webp-vp8l": (bytes(vp8l), (9000, 16383)),
        "webp-vp8x": (bytes(vp8x), (6000, 70_000)),
    }


@pytest.fixture(scope="session")
def header_bombs():
    """Format -> (bytes, declared (height, width)): PNG, JPEG, GIF, BMP (top-down) and the
    three WebP headers (VP8, VP8L, VP8X), each a few hundred bytes declaring more than
    40 MP: refused from the header, they never reach a decoder."""
    return _header_bombs()


@pytest.fixture(scope="session")
def patched_jpeg():
    """``patched_jpeg(width, height) -> bytes``: a 16 x 16 JPEG whose SOF0 declares another size."""
    return _patched_jpeg


# --- Models and run directories ----------------------------------------------------------


def _tiny_model(
    seed: int = 0, classes: int = 10, variant: str = "A", crop_size: int = 32, **kwargs
):
    import keras

    from vgg_tf.weights.applications import VGG

    keras.utils.set_random_seed(seed)
    options = dict(width_multiplier=1 / 16, kernel_initializer="glorot", **kwargs)
    return VGG(variant, classes=classes, crop_size=crop_size, **options)


@pytest.fixture(scope="session")
def tiny_model():
    """``tiny_model(seed=0, classes=10, variant="A", crop_size=32, **VGG_kwargs)``: a
    1/16-width Glorot-initialised net, seeded."""
    return _tiny_model


def _tiny_run_config(**changes) -> dict:
    from vgg_tf.training import recipe as config_lib

    recipe = config_lib.paper_recipe()
    recipe.update(
        dict(
            recipe="digits",
            dataset="digits",
            variant="A",
            crop_size=32,
            scale_min=32,
            scale_max=48,
            width_multiplier=1 / 16,
            kernel_initializer="glorot",
            flip=False,
            batch_size=32,
        )
    )
    run_config = {
        **json.loads(recipe.to_json()),
        "mean_rgb": [47.6, 47.6, 47.6],
        "num_classes": 10,
        "class_names": [str(d) for d in range(10)],
    }
    run_config.update(changes)
    return run_config


@pytest.fixture(scope="session")
def tiny_run_config():
    """``config(**changes) -> dict``: what the trainer records in config.json for a tiny
    net A on the digits (the recipe plus mean_rgb, num_classes, class_names)."""
    return _tiny_run_config


@pytest.fixture(scope="session")
def make_workdir():
    """``make(path, model=None, config=None, **changes) -> Path``: a run directory.

    Writes ``model.keras`` (``model``, or a fresh :func:`tiny_model`) and
    ``config.json`` (``config``, or :func:`tiny_run_config` with ``changes``)
    through :func:`vgg_tf.workdir.save_model` and :func:`vgg_tf.workdir.write_config`.
    ``model=False`` writes the config alone.
    """
    from vgg_tf import workdir

    def make(path, model=None, config: dict | None = None, **changes) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if model is not False:
            workdir.save_model(model or _tiny_model(), path / workdir.MODEL_FILE)
        workdir.write_config(path, config if config is not None else _tiny_run_config(**changes))
        return path

    return make


def _digit_images():
    """scikit-learn's digits as 40 x 40 RGB uint8 images (8 x 8 upsampled 5x) and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = (digits.images * (255.0 / 16.0)).astype("uint8")
    up = np.kron(gray, np.ones((1, 5, 5), "uint8"))
    return np.repeat(up[..., None], 3, axis=-1), digits.target.astype("int32")


@pytest.fixture(scope="session")
def digit_images():
    """``(images, labels)``: scikit-learn's digits as 40 x 40 RGB uint8 images, int32 labels."""
    return _digit_images()


@pytest.fixture(scope="session")
def trained_digits_run(tmp_path_factory, make_workdir) -> Path:
    """A tiny net A trained for a few seconds on the first 1500 digits (Keras' fit on centre
    crops at S = 32, 40, 48), at least 80% right on the other 297, saved per the workdir
    contract; its config has flips on."""
    import keras
    import tensorflow as tf

    images, labels = _digit_images()
    mean = images.reshape(-1, 3).mean(axis=0)
    model = _tiny_model(seed=0)
    train = (
        np.concatenate(
            [
                tf.image.resize(images[:1500].astype("float32"), (s, s)).numpy()[
                    :, (s - 32) // 2 : (s + 32) // 2, (s - 32) // 2 : (s + 32) // 2
                ]
                for s in (32, 40, 48)
            ]
        )
        - mean
    )
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    model.fit(train, np.tile(labels[:1500], 3), batch_size=64, epochs=6, verbose=0)
    # Tests compare served answers with this model's: it must have learned, on every CPU
    # and with or without oneDNN (about 93% on the held-out digits with either path).
    held_out = tf.image.resize(images[1500:].astype("float32"), (32, 32)).numpy() - mean
    accuracy = np.mean(model.predict(held_out, verbose=0).argmax(axis=1) == labels[1500:])
    assert accuracy >= 0.8, f"the fixture's net reached {accuracy:.1%} on held-out digits"
    return make_workdir(
        tmp_path_factory.mktemp("digits_A"),
        model,
        mean_rgb=[float(m) for m in mean],
        weight_decay=0.0,
        flip=True,
    )


# --- Issue 10's acceptance folder --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BadImageFolder:
    """A folder source of good and bad images.

    Attributes:
        root: The folder (``root/cat/*``, ``root/other/*``).
        good: File name -> the flat RGB colour the file decodes to (its first
            frame for the GIF): every good image is one colour, so an example of
            a stream tells which file it came from.
        classes: File name -> its class folder, for every file.
        bad: File names a stream must skip and name.
    """

    root: Path
    good: dict
    classes: dict
    bad: tuple

    def identify(self, image, tolerance: float = 8.0) -> str:
        """The good file whose colour an image ``(H, W, 3)`` has, or AssertionError."""
        pixels = np.asarray(image, np.float64).reshape(-1, 3)
        mean = pixels.mean(axis=0)
        name, colour = min(self.good.items(), key=lambda kv: np.abs(mean - kv[1]).max())
        assert np.abs(pixels - colour).max() <= tolerance, (mean, name, colour)
        return name


def _bad_image_folder(root, *, full: bool = False) -> BadImageFolder:
    """Issue 10's acceptance folder. ``full``: the issue's sizes (a 20000^2 JPEG, a 40000^2
    PNG, 400 GIF frames of 2000^2); otherwise bombs just as refused, quicker to write."""
    from skimage import data

    root = Path(root)
    cat, other = root / "cat", root / "other"
    cat.mkdir(parents=True)
    other.mkdir()
    good = {}

    def flat(folder, name, shape, colour, fmt="JPEG", **options):
        (folder / name).write_bytes(_encode(np.full((*shape, 3), colour, np.uint8), fmt, **options))
        good[name] = colour

    flat(cat, "tabby.jpg", (60, 80), (230, 120, 40), quality=95)
    flat(cat, "ginger.JPEG", (90, 70), (40, 160, 90), quality=95)
    flat(cat, "kitten.jpg", (48, 120), (120, 40, 200), quality=95)
    flat(other, "sky.jpg", (64, 64), (60, 110, 240), quality=95)
    flat(other, "grass.jpeg", (100, 50), (20, 220, 30), quality=95)
    flat(other, "sand.jpg", (70, 90), (240, 220, 150), quality=95)
    flat(cat, "bitmap.bmp", (45, 61), (150, 150, 20), "BMP")
    flat(other, "lossy.webp", (52, 66), (200, 60, 140), "WEBP", quality=90)
    gif_side, frames = (2000, 400) if full else (500, 40)
    (cat / "animated.gif").write_bytes(
        _animated_gif(gif_side, gif_side, frames, first=(90, 200, 200), rest=(0, 0, 0))
    )
    good["animated.gif"] = (90, 200, 200)

    jpeg_side, png_side = (20000, 40000) if full else (7000, 10000)
    from PIL import Image

    Image.new("L", (jpeg_side, jpeg_side), 128).save(other / "bomb.jpg", quality=50)
    (other / "bomb.png").write_bytes(_zero_png(png_side, png_side))
    (other / "strip.png").write_bytes(_zero_png(100_000, 10))
    photo = _encode(data.astronaut(), "JPEG", quality=90)
    (cat / "truncated.jpg").write_bytes(photo[: len(photo) // 2])
    classes = {path.name: path.parent.name for path in root.glob("*/*")}
    return BadImageFolder(
        root, good, classes, ("bomb.jpg", "bomb.png", "strip.png", "truncated.jpg")
    )


@pytest.fixture(scope="session")
def make_bad_image_folder():
    """``make(root, full=False) -> BadImageFolder`` (see :class:`BadImageFolder`)."""
    return _bad_image_folder


@pytest.fixture(scope="session")
def bad_image_folder(tmp_path_factory) -> BadImageFolder:
    """Issue 10's acceptance folder at the quick sizes (a 49 MP JPEG, a 100 MP PNG)."""
    return _bad_image_folder(tmp_path_factory.mktemp("bad_images") / "photos")


# --- Localisation ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def canvas_dir(tmp_path_factory) -> Path:
    """A TFDS data directory with the built-in digits_on_canvas prepared (localisation)."""
    from vgg_tf.data.builtin import DigitsOnCanvas

    root = tmp_path_factory.mktemp("tfds_canvas")
    DigitsOnCanvas(data_dir=str(root)).download_and_prepare()
    return root


@pytest.fixture(scope="session")
def canvas(canvas_dir):
    """The digits_on_canvas source (boxes included) from ``canvas_dir``."""
    from vgg_tf.data import sources

    return sources.get_source("digits_on_canvas", data_dir=str(canvas_dir))


@pytest.fixture
def ram_dir():
    """A folder of its own on TensorFlow's in-memory filesystem (``ram://``, standing in for
    gs:// or s3://), removed after the test."""
    import tensorflow as tf

    root = f"ram://{uuid.uuid4().hex}"
    yield root
    with contextlib.suppress(tf.errors.NotFoundError):
        tf.io.gfile.rmtree(root)


@pytest.fixture(scope="session")
def tiny_recipe(tfds_dir):
    """``tiny_recipe(**changes)``: the paper's recipe for a 1/16-width net A on the built-in
    digits (32-pixel crops, S in [32, 40], Glorot, no flips, no warm-up), with ``changes``."""
    from vgg_tf.training import recipe as config_lib

    def make(**changes):
        config = config_lib.paper_recipe()
        config.update(
            dict(
                dataset="digits",
                data_dir=str(tfds_dir),
                variant="A",
                crop_size=32,
                scale_min=32,
                scale_max=40,
                width_multiplier=1 / 16,
                kernel_initializer="glorot",
                flip=False,
                batch_norm=False,
                warmup_epochs=0,
            )
        )
        config.update(changes)
        return config

    return make
