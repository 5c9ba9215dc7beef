"""bin/evaluate: top-1/top-5 error of trained models under the paper's test protocols.

    bin/evaluate --model workdirs/digits_A --dataset digits --protocol dense
    bin/evaluate --model workdirs/digits_D,workdirs/digits_E --dataset digits \
        --protocol single,dense,multicrop,combined --output results.json
    bin/evaluate --model model.keras --dataset /data/photos --protocol dense --scales 256,384,512

Protocols: single (dense at one Q, Table 3), dense (three Qs, Table 4), multicrop
(5x5 grid x 2 flips per Q, Table 5), combined (dense + multicrop, Table 5).
Several models add a fusion row per protocol (average softmax, Table 6).
"""

from __future__ import annotations

import sys

from absl import app, flags

from vgg_tf import evaluate
from vgg_tf.cli import image_flags, quiet, run_app

_MODEL = flags.DEFINE_list(
    "model", None, "Training workdir(s) or .keras file(s), comma-separated.", required=True
)
_DATASET = flags.DEFINE_string(
    "dataset", "digits", "TFDS name, 'digits' (built in) or a folder of class subfolders."
)
_PROTOCOL = flags.DEFINE_list(
    "protocol", ["dense"], f"One or more of {', '.join(evaluate.PROTOCOLS)}, comma-separated."
)
_SCALES = flags.DEFINE_list(
    "scales", None, "Test scales Q overriding the training config's, e.g. 256,384,512."
)
_SPLIT = flags.DEFINE_string(
    "split", None, "Split to evaluate (default: the dataset's test split, else its validation split)."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", None, "Evaluate only the first n images.")
_OUTPUT = flags.DEFINE_string("output", None, "Write the table as JSON to this file.")
_PREDICTIONS = flags.DEFINE_string(
    "predictions_output", None, "Write every image's posteriors to this file (JSON lines)."
)
_HEATMAP_DIR = flags.DEFINE_string("heatmap_dir", None, "Write score-map heatmaps (PNG) here.")
_HEATMAP_COUNT = flags.DEFINE_integer("heatmap_count", 8, "Number of images with heatmaps.")
image_flags.define_limits("Skip")




def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.absl_logging_to_warnings()
    try:
        evaluate.evaluate(
            _MODEL.value,
            _DATASET.value,
            _PROTOCOL.value,
            scales=image_flags.scales(_SCALES.value),
            split=_SPLIT.value,
            data_dir=_DATA_DIR.value,
            max_examples=_MAX_EXAMPLES.value,
            output=_OUTPUT.value,
            heatmap_dir=_HEATMAP_DIR.value,
            heatmap_count=_HEATMAP_COUNT.value,
            predictions_output=_PREDICTIONS.value,
            **image_flags.limits(),
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


def run():
    """Console entry point (``vgg-evaluate``)."""
    run_app(main, __doc__)
