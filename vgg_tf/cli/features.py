"""bin/features: the paper's image descriptor (Appendix B) of a dataset, and a linear SVM on top.

    bin/features --model workdirs/digits_A --dataset digits --split test --output feats.npz
    bin/features --model workdirs/digits_A --dataset digits --linear_eval
    bin/features --model imagenet-D --dataset /data/photos --scales 256,384,512 --output feats.npy

Each image's descriptor: the fully-convolutional net up to fc7 (after its ReLU)
applied to the image rescaled to each test scale Q, averaged over the
locations, over the image and its horizontal flip and over the scales, then
L2-normalised (4,096 numbers for the paper's nets, fc7's width in general).
--scales defaults to the paper's 256,384,512 for the 224 crop, and to the same
ratios of any other crop (37,55,73 for a crop of 32).

--output FILE.npz writes arrays features, labels, filenames, class_names and
metadata (JSON); --output FILE.npy writes the features alone, with FILE.json
beside it holding the file names, labels and metadata.

--linear_eval fits scikit-learn's LinearSVC on the descriptors of the dataset's
train split and prints its accuracy on --split (default: the test split); its C
is --svm_c, or chosen by cross-validation on the train split alone. With
--output the --split's descriptors are written too.
"""

from __future__ import annotations

import sys

from absl import app, flags

from vgg_tf.cli import image_flags, quiet
from vgg_tf.cli.entry import run_app
from vgg_tf.evaluation import features
from vgg_tf.evaluation.datasets import DatasetSplit

_MODEL = flags.DEFINE_string(
    "model", None, "Training workdir, .keras file, or imagenet-D / imagenet-E.", required=True
)
_DATASET = flags.DEFINE_string(
    "dataset", "digits", "TFDS name, 'digits' (built in) or a folder of class subfolders."
)
_SPLIT = flags.DEFINE_string(
    "split",
    None,
    "Split to describe (default: the dataset's test split, else its validation split).",
)
_TRAIN_SPLIT = flags.DEFINE_string(
    "train_split", None, "--linear_eval: split the SVM is fitted on (default: the train split)."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_OUTPUT = flags.DEFINE_string("output", None, "Write the descriptors to this .npz or .npy file.")
_LINEAR_EVAL = flags.DEFINE_bool(
    "linear_eval", False, "Fit a linear SVM on the train split and print the --split accuracy."
)
_SVM_C = flags.DEFINE_float(
    "svm_c",
    None,
    "--linear_eval: the SVM's constant C (default: chosen by 3-fold "
    "cross-validation on the train split from 0.1, 1, 10, 100, 1000).",
)
_SCALES = flags.DEFINE_list(
    "scales",
    None,
    "Test scales Q (default: 256,384,512 for the 224 crop, the same ratios of another crop).",
)
_FLIP = flags.DEFINE_bool("flip", True, "Average each image's horizontal flip in (Appendix B).")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", None, "Only the first n images of a split.")
image_flags.define_limits("Skip")


def _describe(fs: features.FeatureSet) -> str:
    return (
        f"{len(fs.labels)} descriptors of {fs.features.shape[1]} numbers "
        f"({fs.dataset} [{fs.split}], Q = {','.join(map(str, fs.scales))})"
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not (_OUTPUT.value or _LINEAR_EVAL.value):
        raise app.UsageError(
            "Nothing to do; expected --output FILE.npz|.npy, --linear_eval, or both."
        )
    if _OUTPUT.value and not _OUTPUT.value.endswith((".npz", ".npy")):
        raise app.UsageError(
            f"--output={_OUTPUT.value} is not accepted; expected a .npz or .npy file name."
        )
    quiet.absl_logging_to_warnings()
    try:
        data = DatasetSplit(
            _DATASET.value,
            split=_SPLIT.value,
            data_dir=_DATA_DIR.value,
            max_examples=_MAX_EXAMPLES.value,
            limits=image_flags.limits(),
        )
        options = dict(scales=image_flags.scales(_SCALES.value), flip=_FLIP.value)
        if _LINEAR_EVAL.value:
            scores, train, test = features.linear_eval(
                _MODEL.value,
                data,
                train_split=_TRAIN_SPLIT.value,
                c=_SVM_C.value,
                **options,
            )
        else:
            test = features.extract_features(_MODEL.value, data, **options)
        if _OUTPUT.value:
            written = features.save_features(test, _OUTPUT.value)
            print(f"{_describe(test)} -> {', '.join(written)}")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    if _LINEAR_EVAL.value:
        print(f"linear SVM (C={scores['c']:g}) fitted on {_describe(train)}")
        print(f"train accuracy: {100 * scores['train_accuracy']:.2f}%")
        print(
            f"test accuracy on {test.dataset} [{test.split}] ({len(test.labels)} images): "
            f"{100 * scores['accuracy']:.2f}%"
        )


def run():
    """Console entry point (``vgg-features``)."""
    run_app(main, __doc__)
