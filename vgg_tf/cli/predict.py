"""bin/predict: the top classes of image files, by the paper's dense multi-scale test.

    bin/predict photo.jpg other.png --model workdirs/digits_A
    bin/predict photos/*.jpg --model imagenet-D --top 5 --heatmap heatmaps/ --output results.json
    bin/predict photo.jpg --model model.keras --scales 256,384,512
    bin/predict photo.jpg --model workdirs/digits_A --localiser workdirs/digits_on_canvas_A_scr \
        --boxes boxes/

Per image: its top classes with names and probabilities, from dense evaluation
at the model's multi-scale set of test scales Q (§3.2, Table 4; --scales
overrides it), averaged with the horizontal flip when the model was trained
with flips -- the probabilities bin/evaluate scores and bin/export serves.
--model takes a training workdir, a .keras file, or imagenet-D / imagenet-E
(the published ImageNet weights, through vgg_tf.weights).

--heatmap DIR writes DIR/<file stem>.png per image: the photo at its own size
with the top class's dense score map (softmax per location at the single test
scale Q) overlaid, coloured from 0 to the map's peak (printed beside it).
--localiser WORKDIR[,WORKDIR] gives each top class its box (Appendix A's dense
protocol: the localisation nets applied densely, boxes merged, weighted by
--model's class scores), printed in pixels; --boxes DIR also writes
DIR/<file stem>.png with the boxes drawn. --output writes every answer as JSON. Answers go to stdout; the progress bar
(more than 4 files) and the lines about bad files go to stderr.

A file that is missing, undecodable, truncated or over the image limits gets
one line on stderr naming it and why (a URL is not fetched: download it first);
the other files are answered. The exit status is 0 when every image was
answered, 1 when any was not (after answering the others) or the model could
not be loaded.
"""

from __future__ import annotations

import sys

from absl import app, flags

from vgg_tf.cli import image_flags, quiet
from vgg_tf.cli.entry import run_app
from vgg_tf.serving import predict as predict_lib

_MODEL = flags.DEFINE_string(
    "model", None, "Training workdir, .keras file, or imagenet-D / imagenet-E.", required=True
)
_TOP = flags.DEFINE_integer("top", 5, "Number of classes shown per image.")
_SCALES = flags.DEFINE_list(
    "scales", None, "Test scales Q overriding the model's multi-scale set, e.g. 256,384,512."
)
_HEATMAP = flags.DEFINE_string(
    "heatmap", None, "Write a heatmap PNG per image (the photo's size) into this folder."
)
_OUTPUT = flags.DEFINE_string("output", None, "Also write the answers as JSON to this file.")
_LOCALISER = flags.DEFINE_list(
    "localiser", None, "Localisation workdir(s) (bin/train --task localisation): a box per class."
)
_BOXES = flags.DEFINE_string(
    "boxes", None, "With --localiser: write a PNG per image with the boxes drawn into this folder."
)
image_flags.define_limits("Refuse")
image_flags.define_windows()


def main(argv):
    paths = argv[1:]
    if not paths:
        raise app.UsageError("No image given; expected one or more image files.")
    quiet.absl_logging_to_warnings()
    # TensorFlow's own log lines about a bad file would repeat the one line given here.
    decode_context = None if flags.FLAGS["verbosity"].present else quiet.stderr_fd_silenced
    try:
        boxes = None
        if _LOCALISER.value:
            boxes = predict_lib.Boxes(
                _LOCALISER.value, image_flags.localiser_options(), drawn_dir=_BOXES.value
            )
        elif _BOXES.value:
            raise ValueError(
                "--boxes needs --localiser=WORKDIR: the localisation workdir(s) whose boxes "
                "to draw."
            )
        result = predict_lib.predict(
            paths,
            _MODEL.value,
            top=_TOP.value,
            scales=image_flags.scales(_SCALES.value),
            heatmap_dir=_HEATMAP.value,
            boxes=boxes,
            limits=image_flags.limits(),
            decode_context=decode_context,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    for line in predict_lib.error_lines(result):
        print(line, file=sys.stderr)
    if result.answered:
        print(predict_lib.format_predictions(result))
    if _OUTPUT.value:
        predict_lib.write_predictions(result, _OUTPUT.value)
        print(f"answers: {_OUTPUT.value}")
    if not result.answered:
        print(f"error: none of the {len(paths)} image(s) could be answered.", file=sys.stderr)
        sys.exit(1)
    if result.failed:
        print(
            f"error: {len(result.failed)} of the {len(paths)} image(s) could not be answered "
            "(named above; the others are answered).",
            file=sys.stderr,
        )
        sys.exit(1)


def run():
    """Console entry point (``vgg-predict``)."""
    run_app(main, __doc__)
