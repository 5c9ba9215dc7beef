"""bin/evaluate: top-1/top-5 error of trained models under the paper's test protocols.

    bin/evaluate --model workdirs/digits_A --protocol dense   # on digits, as trained
    bin/evaluate --model workdirs/digits_D,workdirs/digits_E --dataset digits \
        --protocol single,dense,multicrop,combined --output results.json
    bin/evaluate --model model.keras --dataset /data/photos --protocol dense --scales 256,384,512
    bin/evaluate --model imagenet-D,imagenet-E --dataset imagenet2012 --split validation

--model takes training workdirs, .keras files and published ImageNet weights by
name (imagenet-D, imagenet-E, imagenet-vgg16_bn, ...: Keras' cache, or a download).
Without --dataset the models are evaluated on the dataset they were trained on.

Protocols: single (dense at one Q, Table 3), dense (three Qs, Table 4), multicrop
(5x5 grid x 2 flips per Q, Table 5), combined (dense + multicrop, Table 5).
Several models add a fusion row per protocol (average softmax, Table 6).

--task localisation (Appendix A) evaluates localisation nets: --model takes
their workdirs, --classifier the classifier ranking their boxes, and --protocol
center_gt (the central crop's box for the true class), dense_gt (the densely
applied nets' merged box for the true class) or dense (the classifier's top-5
classes with their boxes: ILSVRC's localisation error); several nets add a
fusion row.

    bin/evaluate --task localisation --model workdirs/digits_on_canvas_A_scr \
        --classifier workdirs/digits_A --dataset digits_on_canvas --protocol center_gt,dense
"""

from __future__ import annotations

import sys

from absl import app, flags

from vgg_tf.cli import image_flags, quiet
from vgg_tf.cli.entry import run_app
from vgg_tf.evaluation import classification, localisation
from vgg_tf.evaluation.datasets import DatasetSplit, trained_on
from vgg_tf.inference import protocol
from vgg_tf.training import tasks

_MODEL = flags.DEFINE_list(
    "model",
    None,
    "Training workdir(s), .keras file(s) or published weights (imagenet-D, ...), comma-separated.",
    required=True,
)
_DATASET = flags.DEFINE_string(
    "dataset",
    None,
    "TFDS name, 'digits' (built in) or a folder of class subfolders; --task localisation: a "
    "dataset with boxes. Default: the dataset the --model nets were trained on (their "
    "workdirs' config.json; imagenet2012 for imagenet-D, ...), else 'digits' (localisation: "
    "'digits_on_canvas').",
)
_PROTOCOL = flags.DEFINE_list(
    "protocol",
    None,
    f"One or more of {', '.join(protocol.PROTOCOLS)} (default "
    f"{','.join(classification.DEFAULT_PROTOCOLS)}); --task localisation: "
    f"{', '.join(localisation.PROTOCOLS)} (default {','.join(localisation.DEFAULT_PROTOCOLS)}). "
    "Comma-separated.",
)
_TASK = flags.DEFINE_enum("task", "classification", list(tasks.TASKS), "What the models do.")
_CLASSIFIER = flags.DEFINE_string(
    "classifier", None, "--task localisation: the classifier ranking the boxes (dense protocols)."
)
_SCALES = flags.DEFINE_list(
    "scales", None, "Test scales Q overriding the training config's, e.g. 256,384,512."
)
_SPLIT = flags.DEFINE_string(
    "split",
    None,
    "Split to evaluate (default: the dataset's test split, else its validation split).",
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
image_flags.define_windows()


def _data(default: str) -> DatasetSplit:
    """The --split of --dataset, else of the dataset the models were trained on (named on
    stderr), else of ``default``."""
    dataset = _DATASET.value
    if not dataset:
        choice = trained_on(_MODEL.value, default)
        print(choice.reason, file=sys.stderr)
        dataset = choice.dataset
    return DatasetSplit(
        dataset,
        split=_SPLIT.value,
        data_dir=_DATA_DIR.value,
        max_examples=_MAX_EXAMPLES.value,
        limits=image_flags.limits(),
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.absl_logging_to_warnings()
    try:
        if _TASK.value == "localisation":
            localisation.evaluate_localisation(
                _MODEL.value,
                _data("digits_on_canvas"),
                _PROTOCOL.value or localisation.DEFAULT_PROTOCOLS,
                classifier=_CLASSIFIER.value,
                scales=image_flags.scales(_SCALES.value),
                options=image_flags.localiser_options(),
                output=_OUTPUT.value,
            )
            return
        classification.evaluate(
            _MODEL.value,
            _data("digits"),
            _PROTOCOL.value or classification.DEFAULT_PROTOCOLS,
            scales=image_flags.scales(_SCALES.value),
            image_outputs=classification.ImageOutputs(
                predictions=_PREDICTIONS.value,
                heatmap_dir=_HEATMAP_DIR.value,
                heatmap_count=_HEATMAP_COUNT.value,
            ),
            output=_OUTPUT.value,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


def run():
    """Console entry point (``vgg-evaluate``)."""
    run_app(main, __doc__)
