"""bin/export: a trained model as a SavedModel version for TensorFlow Serving.

    bin/export --model workdirs/digits_A --export_dir /models/vgg           # -> /models/vgg/1
    bin/export --model workdirs/digits_A --export_dir /models/vgg --version 7 --scales 40
    bin/export --model model.keras --export_dir /models/vgg --keras_output vgg_fcn.keras
    bin/export --model imagenet-D --export_dir /models/vgg16          # the published weights
    bin/export --model workdirs/digits_A --export_dir gs://bucket/models/vgg   # any tf.io.gfile path
    bin/export --task localisation --model workdirs/digits_on_canvas_A_scr \
        --classifier workdirs/digits_A --export_dir /models/vgg_boxes

With --task localisation, --model takes localisation workdir(s) (several are
fused) and --classifier the classifier whose scores rank their boxes;
serving_default returns boxes (pixels), classes and scores per image.

Every version holds TensorFlow Serving's warm-up requests
(assets.extra/tf_serving_warmup_requests), which the server replays when it loads
the version; --nowarmup leaves them out.
"""

from __future__ import annotations

import sys

from absl import app, flags

from vgg_tf.cli import image_flags, quiet
from vgg_tf.cli.entry import run_app
from vgg_tf.serving import export, localisation
from vgg_tf.training import recipe as config_lib

_MODEL = flags.DEFINE_list(
    "model",
    None,
    "Training workdir, .keras file or published weights (imagenet-D, ...); localisation: workdirs.",
    required=True,
)
_TASK = flags.DEFINE_enum(
    "task", "classification", list(config_lib.TASKS), "What the export answers."
)
_CLASSIFIER = flags.DEFINE_string(
    "classifier", None, "--task localisation: the classifier workdir ranking the boxes."
)
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
image_flags.define_windows()
_KERAS_OUTPUT = flags.DEFINE_string(
    "keras_output", None, "Also save the fully-convolutional Keras model to this .keras file."
)
_WARMUP = flags.DEFINE_bool(
    "warmup",
    True,
    "Write TensorFlow Serving's warm-up requests (assets.extra/tf_serving_warmup_requests) "
    "into the version; --nowarmup leaves them out.",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.absl_logging_to_warnings()  # keep the SavedModel writer's INFO lines out
    try:
        if _TASK.value == "localisation":
            if not _CLASSIFIER.value:
                raise ValueError(
                    "--task localisation needs --classifier=WORKDIR: the classifier "
                    "whose scores rank the boxes."
                )
            localisation.export_localisation(
                _MODEL.value,
                _CLASSIFIER.value,
                _EXPORT_DIR.value,
                version=_VERSION.value,
                scales=image_flags.scales(_SCALES.value),
                top_k=_TOP_K.value,
                limits=image_flags.limits(),
                options=image_flags.localiser_options(),
                warmup=_WARMUP.value,
            )
            return
        if len(_MODEL.value) != 1:
            raise ValueError(f"--model takes one model; got {len(_MODEL.value)}.")
        export.export_saved_model(
            _MODEL.value[0],
            _EXPORT_DIR.value,
            version=_VERSION.value,
            scales=image_flags.scales(_SCALES.value),
            top_k=_TOP_K.value,
            limits=image_flags.limits(),
            keras_output=_KERAS_OUTPUT.value,
            warmup=_WARMUP.value,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


def run():
    """Console entry point (``vgg-export``)."""
    run_app(main, __doc__)
