"""Every operation on one encoded image, in one place.

Training, validation, ``bin/evaluate`` and the exported serving graph all read
images through this module, so that they accept and refuse the same files:

* :func:`image_format` sniffs the format from the magic bytes (the one place
  that does);
* :func:`declared_size` reads the size from the header, without decoding;
* :func:`check_limits` refuses, from that header, a decompression bomb (more
  than ``max_pixels``) and a thin strip (a longer side more than
  ``max_aspect_ratio`` times the shorter: rescaled so its shorter side is Q, a
  10 x 100000 strip would need tens of GB);
* :func:`decode_rgb` decodes JPEG, PNG, GIF (first frame only), BMP and WebP
  to 8-bit RGB after those checks;
* :func:`refusal` says, without raising, why :func:`decode_rgb` would refuse
  an image from its header, and :func:`refusals` why each image of a batch
  would fail to decode (a corrupt body included);
* :func:`rescale_shorter_side` and :func:`scaled_crop` give the paper's
  isotropic rescaling (§3.1) and its training crop, the latter decoding only
  the crop's window of a JPEG (``decode_and_crop_jpeg``).

All are pure TensorFlow: usable eagerly, in ``Dataset.map`` and in a SavedModel.
A refused image raises ``InvalidArgumentError``; the input pipeline skips, counts
and names such records (:func:`vgg_tf.data.sources.decode_skipping_bad`), the
serving graph answers that image's row as failed, with the reason
(:func:`refusals`), or fails the request (its strict signature).

Example:
    >>> png = tf.io.encode_png(tf.zeros([30, 40, 1], tf.uint8))
    >>> declared_size(png).numpy().tolist(), decode_rgb(png).shape
    ([30, 40], TensorShape([30, 40, 3]))
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import tensorflow as tf

from vgg_tf.data.constants import DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS

# Format codes of image_format() and the magic bytes at offset 0 that give them
# (WebP: "RIFF" there and "WEBP" at offset 8).
UNKNOWN, JPEG, PNG, GIF, BMP, WEBP = range(6)
FORMAT_NAMES = ("unknown", "JPEG", "PNG", "GIF", "BMP", "WebP")
_MAGIC = ((JPEG, b"\xff\xd8\xff"), (PNG, b"\x89PN"), (GIF, b"GIF"), (BMP, b"BM"), (WEBP, b"RIFF"))
_WEBP_CHUNKS = (b"VP8 ", b"VP8L", b"VP8X")

#: Why an image is refused: the messages of the raising checks and of :func:`refusal`.
UNSUPPORTED_FORMAT = "Unsupported image format: expected JPEG, PNG, GIF, BMP or WebP bytes"
UNSUPPORTED_WEBP = "Unsupported image format: a WebP without a VP8, VP8L or VP8X chunk"
UNDECODABLE = "Undecodable image: its header or data is corrupt or truncated"


def too_many_pixels_message(max_pixels: int) -> str:
    """The refusal of an image whose header declares more than ``max_pixels`` pixels."""
    return f"Image rejected: its header declares more than {int(max_pixels)} pixels"


def too_thin_message(max_aspect_ratio: float) -> str:
    """The refusal of an image whose longer side is over ``max_aspect_ratio`` times the other."""
    return (
        f"Image rejected: its header declares a side more than {max_aspect_ratio:g} times the other"
    )


def image_format(image_bytes: tf.Tensor) -> tf.Tensor:
    """The format code (:data:`JPEG`, :data:`PNG`, ... or :data:`UNKNOWN`) of encoded bytes.

    Example:
        >>> int(image_format(tf.io.encode_png(tf.zeros([2, 2, 3], tf.uint8)))) == PNG
        True
    """
    # Zero-padded, so that short inputs are simply unknown.
    head = tf.strings.join([tf.strings.substr(image_bytes, 0, 12), tf.constant(b"\0" * 12)])
    fmt = tf.constant(UNKNOWN)
    for code, magic in _MAGIC:
        fmt = tf.where(tf.strings.substr(head, 0, len(magic)) == magic, code, fmt)
    not_webp = tf.strings.substr(head, 8, 4) != b"WEBP"
    return tf.where(tf.logical_and(tf.equal(fmt, WEBP), not_webp), UNKNOWN, fmt)


def is_jpeg(image_bytes: tf.Tensor) -> tf.Tensor:
    """Whether :func:`image_format` is :data:`JPEG`, in one comparison (the JPEG magic is
    the only one starting with its bytes).

    Example:
        >>> bool(is_jpeg(tf.io.encode_jpeg(tf.zeros([2, 2, 3], tf.uint8))))
        True
    """
    jpeg_magic = dict(_MAGIC)[JPEG]
    return tf.equal(tf.strings.substr(image_bytes, 0, len(jpeg_magic)), jpeg_magic)


def _header_int(head: tf.Tensor, start: int, size: int, little_endian: bool) -> tf.Tensor:
    """Unsigned integer of ``size`` bytes at ``start`` of a (zero-padded) header."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(head, start, size), tf.uint8), tf.int64)
    weights = tf.constant([256**i for i in range(size)], tf.int64)
    return tf.reduce_sum(raw * (weights if little_endian else tf.reverse(weights, [0])))


def _webp_chunk_known(head: tf.Tensor) -> tf.Tensor:
    """Whether a WebP's first chunk is one whose header gives the size (VP8, VP8L, VP8X)."""
    return tf.reduce_any(tf.equal(tf.strings.substr(head, 12, 4), _WEBP_CHUNKS))


def _webp_size(head: tf.Tensor) -> tf.Tensor:
    chunk = tf.strings.substr(head, 12, 4)
    # VP8 (lossy): 14-bit width and height at bytes 26 and 28, after the start code.
    lossy = tf.stack([_header_int(head, 28, 2, True), _header_int(head, 26, 2, True)]) % 16384
    # VP8L (lossless): width - 1 and height - 1 in 14 bits each from byte 21.
    bits = _header_int(head, 21, 4, True)
    lossless = tf.stack([(bits // 16384) % 16384, bits % 16384]) + 1
    # VP8X (extended): canvas width - 1 and height - 1, 24 bits each, at bytes 24, 27.
    extended = tf.stack([_header_int(head, 27, 3, True), _header_int(head, 24, 3, True)]) + 1
    return tf.where(
        tf.equal(chunk, b"VP8 "), lossy, tf.where(tf.equal(chunk, b"VP8L"), lossless, extended)
    )


def _padded_head(image_bytes: tf.Tensor) -> tf.Tensor:
    """The first 32 bytes, zero-padded: short inputs parse as zeros."""
    return tf.strings.join([tf.strings.substr(image_bytes, 0, 32), tf.constant(b"\0" * 32)])


def _header_size(image_bytes: tf.Tensor, fmt: tf.Tensor, head: tf.Tensor) -> tf.Tensor:
    """(height, width) from the header of bytes of the known format ``fmt``, unchecked."""

    def jpeg():
        return tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)[:2]

    def png():  # IHDR: width, height as big-endian uint32 at bytes 16 and 20
        return tf.stack([_header_int(head, 20, 4, False), _header_int(head, 16, 4, False)])

    def gif():  # logical screen: little-endian uint16 width, height at bytes 6 and 8
        return tf.stack([_header_int(head, 8, 2, True), _header_int(head, 6, 2, True)])

    def bmp():  # BITMAPINFOHEADER: little-endian int32 width, height (negative: top-down)
        def signed(v):
            return tf.abs(tf.where(v >= 2**31, v - 2**32, v))

        return tf.stack(
            [signed(_header_int(head, 22, 4, True)), signed(_header_int(head, 18, 4, True))]
        )

    return tf.switch_case(fmt - 1, [jpeg, png, gif, bmp, lambda: _webp_size(head)])


def declared_size(image_bytes: tf.Tensor, fmt: tf.Tensor | None = None) -> tf.Tensor:
    """(height, width) an encoded image declares in its header, without decoding it.

    JPEG via ``tf.image.extract_jpeg_shape`` (reads the SOF marker), PNG from the
    IHDR chunk, GIF from the logical screen descriptor, BMP from the
    BITMAPINFOHEADER, WebP from its VP8, VP8L or VP8X chunk header. Other
    formats raise InvalidArgument. ``fmt``: the bytes' :func:`image_format`, when
    already known.

    Example:
        >>> declared_size(tf.io.encode_png(tf.zeros((30, 40, 3), tf.uint8))).numpy()
        array([30, 40])
    """
    head = _padded_head(image_bytes)
    fmt = image_format(image_bytes) if fmt is None else fmt
    known = tf.debugging.assert_positive(fmt, message=UNSUPPORTED_FORMAT)
    webp_readable = tf.debugging.Assert(
        tf.logical_or(tf.not_equal(fmt, WEBP), _webp_chunk_known(head)), [UNSUPPORTED_WEBP]
    )
    with tf.control_dependencies([known, webp_readable]):
        return _header_size(image_bytes, fmt, head)


def declared_pixels(image_bytes: tf.Tensor) -> tf.Tensor:
    """Width x height an encoded image declares in its header, without decoding it.

    Example:
        >>> int(declared_pixels(tf.io.encode_png(tf.zeros((30, 40, 3), tf.uint8))))
        1200
    """
    return tf.reduce_prod(declared_size(image_bytes))


def check_image_limits(max_pixels: int | None, max_aspect_ratio: float | None) -> None:
    """Raises ValueError for a limit that :func:`check_limits` does not accept.

    Example:
        >>> check_image_limits(0, None)
        Traceback (most recent call last):
        ...
        ValueError: max_pixels=0 is not accepted; expected > 0 or None.
    """
    if max_pixels is not None and not max_pixels > 0:
        raise ValueError(f"max_pixels={max_pixels!r} is not accepted; expected > 0 or None.")
    if max_aspect_ratio is not None and not max_aspect_ratio >= 1:
        raise ValueError(
            f"max_aspect_ratio={max_aspect_ratio!r} is not accepted; expected >= 1 or None."
        )


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    """What an image's header may declare before it is decoded (None: no limit).

    The pair travels together through every command that reads images; the
    checks themselves are :func:`check_limits` (:func:`decode_rgb` runs them).

    Attributes:
        max_pixels: Images declaring more pixels are refused (decompression bombs).
        max_aspect_ratio: Images whose longer side is more than this times the
            shorter are refused (rescaled to Q, a thin strip would be huge).

    Raises:
        ValueError: A limit :func:`check_image_limits` does not accept.

    Example:
        >>> ImageLimits().max_pixels, ImageLimits(max_aspect_ratio=None).max_aspect_ratio
        (40000000, None)
        >>> ImageLimits.from_settings(max_pixels=0, max_aspect_ratio=16).max_pixels is None
        True
        >>> ImageLimits(max_pixels=0)
        Traceback (most recent call last):
        ...
        ValueError: max_pixels=0 is not accepted; expected > 0 or None.
    """

    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO

    def __post_init__(self):
        check_image_limits(self.max_pixels, self.max_aspect_ratio)

    @classmethod
    def from_settings(cls, max_pixels: int | None, max_aspect_ratio: float | None) -> ImageLimits:
        """The limits as a recipe's fields or the ``--max_pixels`` flags give them: 0 is no limit."""
        return cls(max_pixels or None, max_aspect_ratio or None)


#: The limits every command and the serving graph use unless told otherwise.
DEFAULT_LIMITS = ImageLimits()


def check_limits(
    size: tf.Tensor, max_pixels: int | None, max_aspect_ratio: float | None
) -> list[tf.Operation]:
    """Assertions that a declared ``(height, width)`` is within the limits (None: no limit)."""
    check_image_limits(max_pixels, max_aspect_ratio)
    checks = []
    if max_pixels is not None:
        checks.append(
            tf.debugging.assert_less_equal(
                tf.reduce_prod(size),
                tf.constant(int(max_pixels), tf.int64),
                message=too_many_pixels_message(max_pixels),
            )
        )
    if max_aspect_ratio is not None:
        checks.append(
            tf.debugging.assert_less_equal(
                tf.cast(tf.reduce_max(size), tf.float64),
                _longest_allowed(size, max_aspect_ratio),
                message=too_thin_message(max_aspect_ratio),
            )
        )
    return checks


def _longest_allowed(size: tf.Tensor, max_aspect_ratio: float) -> tf.Tensor:
    return float(max_aspect_ratio) * tf.cast(tf.maximum(tf.reduce_min(size), 1), tf.float64)


def limits_refusal(
    size: tf.Tensor, max_pixels: int | None, max_aspect_ratio: float | None
) -> tf.Tensor:
    """The message of the first check of :func:`check_limits` a declared ``(height, width)``
    fails, or ``""``; never raises.

    Example:
        >>> limits_refusal(tf.constant([10, 200], tf.int64), None, 16.0).numpy()
        b'Image rejected: its header declares a side more than 16 times the other'
    """
    check_image_limits(max_pixels, max_aspect_ratio)
    reason = tf.constant("")
    if max_aspect_ratio is not None:
        thin = tf.cast(tf.reduce_max(size), tf.float64) > _longest_allowed(size, max_aspect_ratio)
        reason = tf.where(thin, too_thin_message(max_aspect_ratio), reason)
    if max_pixels is not None:
        over = tf.reduce_prod(size) > tf.constant(int(max_pixels), tf.int64)
        reason = tf.where(over, too_many_pixels_message(max_pixels), reason)
    return reason


def refusal(
    image_bytes: tf.Tensor,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO,
) -> tf.Tensor:
    """Why :func:`decode_rgb` refuses these bytes before decoding, or ``""``; never raises.

    The refusals are the raising checks' own messages: an unknown format
    (:data:`UNSUPPORTED_FORMAT`), a WebP whose header gives no size
    (:data:`UNSUPPORTED_WEBP`), a header over the limits (:func:`limits_refusal`).
    Reading a JPEG's size parses its markers: a JPEG whose header cannot be read
    raises, as decoding it would (:func:`refusals` turns that into a reason too).

    Args:
        image_bytes: Scalar string tensor.
        max_pixels: Limit on declared pixels (None: no limit).
        max_aspect_ratio: Limit on longer side / shorter side (None: no limit).

    Returns:
        A scalar string tensor: the first refusal, or empty.

    Example:
        >>> refusal(b"GIF89a" + b"\\xff" * 10, max_pixels=1000).numpy()
        b'Image rejected: its header declares more than 1000 pixels'
        >>> refusal(tf.io.encode_png(tf.zeros([30, 40, 3], tf.uint8))).numpy()
        b''
    """
    check_image_limits(max_pixels, max_aspect_ratio)
    return _refusal(image_bytes, image_format(image_bytes), max_pixels, max_aspect_ratio, True)


def _refusal(
    image_bytes: tf.Tensor,
    fmt: tf.Tensor,
    max_pixels: int | None,
    max_aspect_ratio: float | None,
    read_jpeg: bool,
) -> tf.Tensor:
    """:func:`refusal`; without ``read_jpeg``, a JPEG's size is left unread (and unjudged):
    only reading a JPEG's header can raise."""
    head = _padded_head(image_bytes)

    def judged():
        return limits_refusal(_header_size(image_bytes, fmt, head), max_pixels, max_aspect_ratio)

    def known():
        readable = tf.logical_or(tf.not_equal(fmt, WEBP), _webp_chunk_known(head))
        return tf.cond(readable, judged, lambda: tf.constant(UNSUPPORTED_WEBP))

    def known_but_jpeg():
        return tf.cond(tf.equal(fmt, JPEG), lambda: tf.constant(""), known)

    return tf.cond(
        tf.equal(fmt, UNKNOWN),
        lambda: tf.constant(UNSUPPORTED_FORMAT),
        known if read_jpeg else known_but_jpeg,
    )


def refusals(
    image_bytes: tf.Tensor,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO,
) -> tf.Tensor:
    """Why :func:`decode_rgb` fails on each image of a batch, ``""`` for those it decodes.

    Never raises: each image is judged on its own. An image :func:`refusal`
    refuses gets that reason; the others are decoded (one at a time, and
    discarded), and one whose decoding fails -- a corrupt or truncated body,
    an unreadable JPEG header -- gets :data:`UNDECODABLE`. Decoding errors are
    caught as ``tf.data`` catches them (``ignore_errors``), so this works eagerly,
    in a ``tf.function`` and in a SavedModel that TF1 loaders run.

    Args:
        image_bytes: String tensor ``[N]``.
        max_pixels: Limit on declared pixels (None: no limit).
        max_aspect_ratio: Limit on longer side / shorter side (None: no limit).

    Returns:
        String tensor ``[N]``.

    Example:
        >>> png = tf.io.encode_png(tf.zeros([30, 40, 3], tf.uint8))
        >>> reasons = refusals(tf.stack([png, tf.strings.substr(png, 0, 50), b"text"]))
        >>> [reason.decode().split(":")[0] for reason in reasons.numpy()]
        ['', 'Undecodable image', 'Unsupported image format']
    """
    check_image_limits(max_pixels, max_aspect_ratio)
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)

    def prepare(data):  # what cannot raise: the format, the other headers, the GIF cut
        fmt = image_format(data)
        reason = _refusal(data, fmt, max_pixels, max_aspect_ratio, read_jpeg=False)
        return reason, _first_frame_if_gif(data, fmt), fmt

    reasons, prepared, formats = tf.map_fn(
        prepare, image_bytes, fn_output_signature=(tf.string, tf.string, tf.int32)
    )
    # What can raise -- reading a JPEG's header, decoding -- runs in tf.data, whose
    # ignore_errors drops a row that raised: that row keeps UNDECODABLE. The function
    # is instantiated at each call, so it holds no branch (each would be a function of
    # its own): an op whose input the row does not need reads a 1 x 1 image instead.
    pending = tf.where(tf.equal(reasons, ""))[:, 0]
    with tf.init_scope():
        tiny_jpeg, tiny_png = (
            encode(tf.zeros([1, 1, 3], tf.uint8)).numpy()
            for encode in (tf.io.encode_jpeg, tf.io.encode_png)
        )

    def judge(index, data, fmt):
        is_jpeg, is_webp = tf.equal(fmt, JPEG), tf.equal(fmt, WEBP)
        size = tf.image.extract_jpeg_shape(tf.where(is_jpeg, data, tiny_jpeg))[:2]
        refused = tf.where(
            is_jpeg, limits_refusal(tf.cast(size, tf.int64), max_pixels, max_aspect_ratio), ""
        )
        data = tf.where(tf.equal(refused, ""), data, tiny_png)  # a bomb is never decoded
        # _decode_cut's two decodings, each of the row's bytes or of the 1 x 1 image.
        webp = tf.io.decode_image(
            tf.where(is_webp, data, tiny_png), channels=0, expand_animations=False
        )
        other = tf.io.decode_image(
            tf.where(is_webp, tiny_png, data), channels=3, expand_animations=False
        )
        # The reason depends on the decoded pixels, so the decoding is never pruned.
        decoded = tf.logical_and(tf.size(webp[..., :3]) > 0, tf.size(other) > 0)
        return index, tf.where(tf.equal(refused, ""), tf.where(decoded, "", UNDECODABLE), refused)

    options = tf.data.Options()
    # One image at a time (memory is bounded by one image), in this thread's order.
    options.experimental_optimization.apply_default_optimizations = False
    options.autotune.enabled = False
    # Collected in one batch (a reduce would instantiate a function of its own), after a
    # last row of index -1, so that the batch is never empty.
    judged = (
        tf.data.Dataset.from_tensor_slices(
            (pending, tf.gather(prepared, pending), tf.gather(formats, pending))
        )
        .map(judge)
        .ignore_errors()
        .concatenate(tf.data.Dataset.from_tensors((tf.constant(-1, tf.int64), tf.constant(""))))
        .batch(tf.size(pending, tf.int64) + 1)
        .with_options(options)
    )
    indices, found = judged.get_single_element()
    indices, found = indices[:-1], found[:-1]
    unjudged = tf.where(tf.equal(reasons, ""), UNDECODABLE, reasons)
    return tf.tensor_scatter_nd_update(unjudged, indices[:, None], found)


def _gif_first_frame(gif: tf.Tensor) -> tf.Tensor:
    """The GIF's bytes up to the end of its first image, plus a trailer.

    TensorFlow decodes every frame of a GIF before it returns the first, so a
    small animated GIF of many full-canvas frames takes gigabytes; cut to its
    first frame it takes one canvas. This walks the block structure (GIF89a):
    extensions and the first image's LZW data are chains of sub-blocks of at
    most 255 bytes. A GIF it cannot walk comes back unchanged, for the decoder
    to judge.
    """
    data = tf.cast(tf.io.decode_raw(gif, tf.uint8), tf.int32)
    n = tf.size(data)

    def byte(i):  # -1 past the end
        return tf.where(i < n, tf.gather(data, tf.clip_by_value(i, 0, tf.maximum(n - 1, 0))), -1)

    def color_table(packed):  # a flag in bit 7, the size in bits 0-2
        size = 3 * tf.bitwise.left_shift(2, tf.bitwise.bitwise_and(packed, 7))
        return tf.where(tf.bitwise.bitwise_and(packed, 128) > 0, size, 0)

    between, extension, image, done, unknown = 0, 1, 2, 3, 4

    def step(pos, state):
        b = byte(pos)
        new_block = tf.where(
            tf.equal(b, 0x21),
            tf.stack([pos + 2, extension]),
            tf.where(
                tf.equal(b, 0x2C),  # descriptor (10 bytes), colours, LZW code size
                tf.stack([pos + 11 + color_table(byte(pos + 9)), image]),
                tf.stack([pos, unknown]),
            ),
        )
        sub_block = tf.where(
            b < 0,
            tf.stack([pos, unknown]),
            tf.where(
                tf.equal(b, 0),
                tf.stack([pos + 1, tf.where(tf.equal(state, image), done, between)]),
                tf.stack([pos + b + 1, state]),
            ),
        )
        following = tf.where(tf.equal(state, between), new_block, sub_block)
        return following[0], following[1]

    start = 13 + color_table(byte(10))  # header, logical screen, global colours
    end, state = tf.while_loop(
        lambda pos, state: state < done,
        step,
        (start, tf.constant(between)),
        maximum_iterations=n,
    )
    return tf.cond(
        tf.equal(state, done),
        lambda: tf.strings.join([tf.strings.substr(gif, 0, end), b"\x3b"]),
        lambda: gif,
    )


def _decode_checked(image_bytes: tf.Tensor, fmt: tf.Tensor) -> tf.Tensor:
    """Decodes bytes whose size was checked: GIF cut to its first frame, WebP alpha dropped."""
    return _decode_cut(_first_frame_if_gif(image_bytes, fmt), fmt)


def _first_frame_if_gif(image_bytes: tf.Tensor, fmt: tf.Tensor) -> tf.Tensor:
    return tf.cond(tf.equal(fmt, GIF), lambda: _gif_first_frame(image_bytes), lambda: image_bytes)


def _decode_cut(data: tf.Tensor, fmt: tf.Tensor) -> tf.Tensor:
    """Decodes bytes of format ``fmt`` (a GIF already cut) to RGB, WebP alpha dropped."""

    def webp():  # RGB or RGBA; channels=3 refuses a WebP with alpha
        rgba = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
        return rgba[..., :3]

    def other():
        return tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)

    image = tf.cond(tf.equal(fmt, WEBP), webp, other)
    image.set_shape([None, None, 3])
    return image


def decode_rgb(
    image_bytes: tf.Tensor,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO,
) -> tf.Tensor:
    """Decodes JPEG/PNG/GIF/BMP/WebP bytes to uint8 RGB ``(H, W, 3)``, checking the size first.

    Grayscale is replicated to RGB, alpha is dropped, CMYK JPEGs are converted,
    16-bit PNGs scaled to 8 bits, animated GIFs give their first frame (cut
    before decoding, so the other frames cost nothing). Refused with
    InvalidArgument before any pixel is decoded: an unknown format, and a header
    over the limits of :func:`check_limits`.

    Args:
        image_bytes: Scalar string tensor.
        max_pixels: Limit on declared pixels (None: no limit).
        max_aspect_ratio: Limit on longer side / shorter side (None: no limit).

    Raises:
        ValueError: A limit that is not positive (aspect ratio: not >= 1).

    Example:
        >>> decode_rgb(tf.io.encode_png(tf.zeros((30, 40, 1), tf.uint8))).shape
        TensorShape([30, 40, 3])
    """
    checks = check_limits(declared_size(image_bytes), max_pixels, max_aspect_ratio)
    with tf.control_dependencies(checks):
        return _decode_checked(image_bytes, image_format(image_bytes))


def scaled_size(height: tf.Tensor, width: tf.Tensor, size) -> tf.Tensor:
    """(height, width) after rescaling the shorter side to ``size``; int32 [2].

    Example:
        >>> scaled_size(100, 50, 32).numpy().tolist()
        [64, 32]
    """
    hw = tf.cast(tf.stack([height, width]), tf.float32)
    size = tf.cast(size, tf.float32)
    scaled = tf.round(hw * size / tf.reduce_min(hw))
    # The shorter side is exactly `size`, whatever the float rounding.
    scaled = tf.where(hw == tf.reduce_min(hw), size, scaled)
    return tf.cast(scaled, tf.int32)


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
    return tf.image.resize(image, scaled_size(shape[-3], shape[-2], size), method="bilinear")


def crop_corner(scaled_hw: tf.Tensor, crop_size: int, offset: tf.Tensor) -> tf.Tensor:
    room = tf.cast(scaled_hw, tf.float32) - crop_size
    corner = tf.floor(offset * (room + 1.0))
    return tf.cast(tf.clip_by_value(corner, 0.0, room), tf.int32)


def _assert_complete(jpeg_bytes: tf.Tensor) -> tf.Operation:
    """Raises for a JPEG without its end-of-image marker (a truncated file) in the
    last 64 bytes (allowing for trailing padding)."""
    tail = tf.strings.substr(jpeg_bytes, -tf.minimum(tf.strings.length(jpeg_bytes), 64), 64)
    tail = tf.io.decode_raw(tail, tf.uint8)
    marker = tf.logical_and(tf.equal(tail[:-1], 0xFF), tf.equal(tail[1:], 0xD9))
    return tf.debugging.Assert(tf.reduce_any(marker), ["truncated JPEG"])


#: The reduced sizes libjpeg decodes to directly (``ratio`` of ``decode_and_crop_jpeg``).
JPEG_RATIOS = (1, 2, 4, 8)


def jpeg_scale_step(size: tf.Tensor, scale: int | tf.Tensor) -> tf.Tensor:
    """log2 of the largest JPEG ratio k in :data:`JPEG_RATIOS` that keeps the shorter side
    of ``size`` (height, width) at least ``scale`` once decoded at 1/k: int32 in [0, 3].

    The paper rescales the shorter side to S; decoding a large photo at 1/k first
    (libjpeg's reduced DCT, far cheaper than a full decode) loses nothing as long as
    the decoded image is still at least S pixels on its shorter side.

    Example:
        >>> [int(jpeg_scale_step(tf.constant([h, 4000]), 256)) for h in (300, 600, 1100, 3000)]
        [0, 1, 2, 3]
    """
    shorter = tf.cast(tf.reduce_min(size), tf.int64)
    scale = tf.cast(scale, tf.int64)
    step = tf.constant(0, tf.int32)
    for i in range(1, len(JPEG_RATIOS)):
        step = tf.where(shorter // JPEG_RATIOS[i] >= scale, tf.constant(i, tf.int32), step)
    return step


def scaled_crop(
    image_bytes: tf.Tensor,
    scale: int | tf.Tensor,
    crop_size: int,
    offset: tf.Tensor | Sequence[float] = (0.5, 0.5),
    *,
    flip: bool | tf.Tensor = False,
    fused: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO,
) -> tf.Tensor:
    """A ``crop_size`` square of the image rescaled so its shorter side is ``scale``.

    The crop's top-left corner in the rescaled image is ``floor(offset * (room + 1))``
    per axis, ``room`` being rescaled size minus ``crop_size``: offset (0, 0) is the
    top-left crop, (0.5, 0.5) the centre and uniform offsets give a uniform crop.

    With ``fused=True`` the crop's window in source pixels (side ``crop_size *
    shorter side / scale``) is cut first and resized to ``crop_size``; for JPEGs
    only that window is decoded (``decode_and_crop_jpeg``), a fraction of the
    pixels at large ``scale``, and at 1/2, 1/4 or 1/8 of the size when the shorter
    side stays at least ``scale`` (:func:`jpeg_scale_step`). With ``fused=False`` the whole image is decoded,
    rescaled and cropped. Both give the same image up to resampling: the window
    is rounded to whole source pixels (at most half a pixel off). Either way the
    header is checked against the limits first, as :func:`decode_rgb` does.

    Args:
        image_bytes: Scalar string tensor (any format :func:`decode_rgb` reads).
        scale: Shorter side after rescaling (S or Q); at least ``crop_size``.
        crop_size: Side of the square crop.
        offset: Two floats in [0, 1], (y, x).
        flip: Mirror the crop horizontally (a bool or a scalar bool tensor). The
            fused path mirrors the 8-bit window before resampling: the same image,
            as bilinear resampling is symmetric, and cheaper.
        fused: Crop before resampling (and decoding) rather than after.
        max_pixels: Limit on declared pixels (None: no limit).
        max_aspect_ratio: Limit on longer side / shorter side (None: no limit).

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
        image = rescale_shorter_side(decode_rgb(image_bytes, max_pixels, max_aspect_ratio), scale)
        corner = crop_corner(tf.shape(image)[:2], crop_size, offset)
        crop = tf.slice(image, tf.concat([corner, [0]], 0), [crop_size, crop_size, 3])
        return maybe_flip(crop)

    def window(shape):
        """The crop's window in source pixels: (top-left corner, size)."""
        shape = tf.cast(shape[:2], tf.int32)
        scaled = scaled_size(shape[0], shape[1], scale)
        corner = tf.cast(crop_corner(scaled, crop_size, offset), tf.float32)
        ratio = tf.cast(scaled, tf.float32) / tf.cast(shape, tf.float32)
        size = tf.clip_by_value(tf.cast(tf.round(crop_size / ratio), tf.int32), 1, shape)
        first = tf.clip_by_value(tf.cast(tf.round(corner / ratio), tf.int32), 0, shape - size)
        return first, size

    limits = dict(max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)

    def jpeg():
        # The header's size (SOF marker), as declared_size reads it, without the
        # format dispatch (a tenth of the crop's cost).
        size = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)[:2]
        # Decoded at 1/k of its size (k = 1, 2, 4, 8: libjpeg's reduced DCT) when the
        # shorter side stays >= scale: the window then still has >= crop_size pixels.
        step = jpeg_scale_step(size, scale)
        k = tf.bitwise.left_shift(tf.constant(1, tf.int64), tf.cast(step, tf.int64))
        first, crop_hw = window((size + k - 1) // k)  # libjpeg rounds the reduced size up
        box = tf.concat([first, crop_hw], 0)
        # A crop inside the intact part of a truncated JPEG would decode: reject
        # truncated files here, as a full decode does.
        checks = check_limits(size, **limits) + [_assert_complete(image_bytes)]
        with tf.control_dependencies(checks):
            return tf.switch_case(
                step,
                [
                    functools.partial(
                        tf.image.decode_and_crop_jpeg, image_bytes, box, channels=3, ratio=ratio
                    )
                    for ratio in JPEG_RATIOS
                ],
            )

    def other():
        fmt = image_format(image_bytes)
        with tf.control_dependencies(check_limits(declared_size(image_bytes, fmt), **limits)):
            image = _decode_checked(image_bytes, fmt)
        first, crop_hw = window(tf.shape(image))
        return tf.slice(image, tf.concat([first, [0]], 0), tf.concat([crop_hw, [3]], 0))

    crop = maybe_flip(tf.cond(is_jpeg(image_bytes), jpeg, other))
    # Resampled from float32: the same values, and TensorFlow's bilinear kernel runs
    # faster on float32 than on uint8 input (0.13 against 0.25 ms for a crop).
    out = tf.image.resize(tf.cast(crop, tf.float32), [crop_size, crop_size], method="bilinear")
    return tf.ensure_shape(out, [crop_size, crop_size, 3])
