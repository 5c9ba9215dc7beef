"""bin/export: a trained model as a SavedModel version for TensorFlow Serving.

    bin/export --model workdirs/digits_A --export_dir /models/vgg           # -> /models/vgg/1
    bin/export --model workdirs/digits_A --export_dir /models/vgg --version 7 --scales 40
    bin/export --model model.keras --export_dir /models/vgg --keras_output vgg_fcn.keras
"""

from __future__ import annotations

import sys

from absl import app, flags

from vgg_tf import export, images
from vgg_tf.cli import quiet, run_app

_MODEL = flags.DEFINE_string("model", None, "Training workdir or .keras file.", required=True)
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "Model base path (TensorFlow Serving's --model_base_path).", required=True
)
_VERSION = flags.DEFINE_integer(
    "version", None, "Version number (default: one more than the highest present)."
)
_SCALES = flags.DEFINE_list(
    "scales", None, "Test scales Q in the graph (default: the model's multi-scale set)."
)
_TOP_K = flags.DEFINE_integer("top_k", 5, "Number of classes/scores returned per image.")
_MAX_PIXELS = flags.DEFINE_integer(
    "max_pixels",
    images.DEFAULT_MAX_PIXELS,
    "Reject images whose header declares more pixels (decompression bombs); 0 disables.",
)
_MAX_ASPECT_RATIO = flags.DEFINE_float(
    "max_aspect_ratio",
    images.DEFAULT_MAX_ASPECT_RATIO,
    "Reject images whose longer side is more than this times the shorter; 0 disables.",
)
_KERAS_OUTPUT = flags.DEFINE_string(
    "keras_output", None, "Also save the fully-convolutional Keras model to this .keras file."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.absl_logging_to_warnings()  # keep the SavedModel writer's INFO lines out
    try:
        scales = [int(q) for q in _SCALES.value] if _SCALES.value else None
    except ValueError:
        print(f"error: --scales={','.join(_SCALES.value)} is not accepted; expected integers.",
              file=sys.stderr)
        sys.exit(1)
    try:
        export.export_saved_model(
            _MODEL.value,
            _EXPORT_DIR.value,
            version=_VERSION.value,
            scales=scales,
            top_k=_TOP_K.value,
            max_pixels=_MAX_PIXELS.value or None,
            max_aspect_ratio=_MAX_ASPECT_RATIO.value or None,
            keras_output=_KERAS_OUTPUT.value,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


def run():
    """Console entry point (``vgg-export``)."""
    run_app(main, __doc__)
