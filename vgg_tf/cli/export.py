"""bin/export: a trained model as a SavedModel version for TensorFlow Serving.

    bin/export --model workdirs/digits_A --export_dir /models/vgg           # -> /models/vgg/1
    bin/export --model workdirs/digits_A --export_dir /models/vgg --version 7 --scales 40
    bin/export --model model.keras --export_dir /models/vgg --keras_output vgg_fcn.keras
"""

from __future__ import annotations

import sys

from absl import app, flags

from vgg_tf import export
from vgg_tf.cli import image_flags, quiet, run_app

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
image_flags.define_limits("Reject")
_KERAS_OUTPUT = flags.DEFINE_string(
    "keras_output", None, "Also save the fully-convolutional Keras model to this .keras file."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.absl_logging_to_warnings()  # keep the SavedModel writer's INFO lines out
    try:
        export.export_saved_model(
            _MODEL.value,
            _EXPORT_DIR.value,
            version=_VERSION.value,
            scales=image_flags.scales(_SCALES.value),
            top_k=_TOP_K.value,
            **image_flags.limits(),
            keras_output=_KERAS_OUTPUT.value,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


def run():
    """Console entry point (``vgg-export``)."""
    run_app(main, __doc__)
