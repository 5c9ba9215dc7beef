"""Flags of every command that reads images: the size limits, the test scales, the localiser's windows."""

from __future__ import annotations

from absl import flags

from vgg_tf.data import boxes, images
from vgg_tf.inference import localiser


def define_limits(verb: str = "Skip") -> None:
    """Defines ``--max_pixels`` and ``--max_aspect_ratio`` (``verb``: what happens to an image over them)."""
    flags.DEFINE_integer(
        "max_pixels",
        images.DEFAULT_MAX_PIXELS,
        f"{verb} images whose header declares more pixels (decompression bombs); 0 disables.",
    )
    flags.DEFINE_float(
        "max_aspect_ratio",
        images.DEFAULT_MAX_ASPECT_RATIO,
        f"{verb} images whose longer side is more than this times the shorter; 0 disables.",
    )


def limits() -> images.ImageLimits:
    """``--max_pixels`` and ``--max_aspect_ratio`` as the library takes them (0: no limit)."""
    return images.ImageLimits.from_settings(flags.FLAGS.max_pixels, flags.FLAGS.max_aspect_ratio)


def scales(values: list[str] | None, name: str = "scales") -> list[int] | None:
    """The integers of a list flag such as ``--scales=256,384,512`` (None when not given).

    Raises:
        ValueError: A value is not an integer.
    """
    if not values:
        return None
    try:
        return [int(v) for v in values]
    except ValueError:
        raise ValueError(
            f"--{name}={','.join(values)} is not accepted; expected integers."
        ) from None


def define_windows() -> None:
    """Defines ``--offsets``, ``--windows``, ``--merge`` and ``--merge_threshold`` of the
    localiser (:class:`vgg_tf.inference.localiser.LocaliserOptions`)."""
    flags.DEFINE_integer(
        "offsets",
        1,
        "Localisation: input shifts per axis; 1 is the paper's dense protocol (windows 32 pixels "
        "apart), n > 1 adds OverFeat's pooling offsets (windows 32/n apart).",
    )
    flags.DEFINE_enum(
        "windows",
        "dense",
        list(localiser.WINDOWS),
        "Localisation: 'dense' runs the box net fully-convolutionally (the paper's protocol); "
        "'crops' runs each window alone, zero-padded as in training (better for nets whose "
        "crop is 32 pixels, such as the digits').",
    )
    flags.DEFINE_enum(
        "merge",
        "overfeat",
        list(boxes.MERGE_CRITERIA),
        "Localisation: how boxes of a class are matched for greedy merging: OverFeat's match "
        "score (centre distance plus the unshared part of the smaller box; the default) or IoU.",
    )
    flags.DEFINE_float(
        "merge_threshold",
        None,
        "Localisation: the largest match score that merges (overfeat, default 1) or the "
        "smallest IoU (iou, default 0.5).",
    )


def localiser_options() -> localiser.LocaliserOptions:
    """The localiser's flags as the localisation functions take them."""
    return localiser.LocaliserOptions(
        offsets=flags.FLAGS.offsets,
        windows=flags.FLAGS.windows,
        merge=flags.FLAGS.merge,
        merge_threshold=flags.FLAGS.merge_threshold,
    )
