"""Prints the paper's Table 1/2 facts, computed from the built models.

Usage:
    python -m vgg_tf.summary [--image_size 224] [--classes 1000]
"""

from __future__ import annotations

import keras
from absl import app, flags

from vgg_tf import models


def summary_rows(image_size: int = 224, classes: int = 1000) -> list[dict]:
    """Weight layers, parameters and GMACs of every variant at ``image_size``.

    Example:
        >>> rows = summary_rows(image_size=224)  # doctest: +SKIP
        >>> rows[4]["params"]  # doctest: +SKIP
        138357544
    """
    rows = []
    for variant in models.VARIANTS:
        model = models.VGG(variant, classes=classes, crop_size=image_size)
        rows.append(
            dict(
                variant=variant,
                builder=models.SPECS[variant].builder_name,
                weight_layers=models.count_weight_layers(model),
                params=model.count_params(),
                gmacs=models.count_macs(model) / 1e9,
            )
        )
        del model
        keras.backend.clear_session()
    return rows


def format_table(rows: list[dict]) -> str:
    """Formats :func:`summary_rows` as a fixed-width text table."""
    lines = [f"{'net':<6} {'builder':<10} {'weight layers':>13} {'parameters':>13} {'GMACs':>7}"]
    for r in rows:
        lines.append(
            f"{r['variant']:<6} {r['builder']:<10} {r['weight_layers']:>13} "
            f"{r['params']:>13,} {r['gmacs']:>7.2f}"
        )
    return "\n".join(lines)


_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Input side (a multiple of 32).")
_CLASSES = flags.DEFINE_integer("classes", 1000, "Number of classes of the top layer.")


def _main(argv):
    del argv
    print(format_table(summary_rows(_IMAGE_SIZE.value, _CLASSES.value)))


def run():
    """Console entry point (``vgg-summary``)."""
    app.run(_main)


if __name__ == "__main__":
    run()
