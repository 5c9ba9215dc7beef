"""bin/features: the paper's image descriptor (Appendix B) of a dataset, and linear SVMs on top.

    bin/features --model workdirs/digits_A --dataset digits --split test --output feats.npz
    bin/features --model workdirs/digits_A --linear_eval   # on digits, as trained
    bin/features --model imagenet-D,imagenet-E --dataset voc/2007 --preset voc2007 --linear_eval
    bin/features --model imagenet-D --dataset caltech101 --preset caltech --linear_eval

Each image's descriptor: the fully-convolutional net up to fc7 (after its ReLU)
applied to the image rescaled to each test scale Q, averaged over the
locations and over the image and its horizontal flip; the scales' descriptors
averaged then L2-normalised (--across_scales average), or each L2-normalised
and stacked (stack); 4,096 numbers per image (per scale when stacked) for the
paper's nets. Several --model nets (the paper's D and E) have their
descriptors stacked. --preset gives the paper's choices per dataset: voc2007
and voc2012 average Q over 256,384,512,640,768 and report mean average
precision (11-point for 2007, all points for 2012); caltech stacks Q over
256,384,512 and reports mean class recall. Without a preset: Q = 256,384,512
averaged, accuracy. Scales scale with the crop (37,55,73 for a crop of 32);
--scales, --across_scales and --measure override.

--output FILE.npz writes arrays features, labels, filenames, class_names and
metadata (JSON); --output FILE.npy writes the features alone, with FILE.json
beside it holding the file names, labels and metadata.

--linear_eval fits scikit-learn's LinearSVC (one-vs-rest; one binary SVM per
class on the classes each image holds for VOC's mean AP) on the descriptors of
the dataset's train split and prints the --measure on --split (default: the
test split); its C is --svm_c, or chosen by cross-validation on the train split
alone. With --output the --split's descriptors are written too.
"""

from __future__ import annotations

import dataclasses
import sys

from absl import app, flags

from vgg_tf.cli import image_flags, quiet
from vgg_tf.cli.entry import run_app
from vgg_tf.evaluation import features, linear_svm, measures
from vgg_tf.evaluation.datasets import DatasetSplit, trained_on

_MODEL = flags.DEFINE_list(
    "model",
    None,
    "Training workdir, .keras file, or imagenet-D / imagenet-E; several: descriptors stacked.",
    required=True,
)
_PRESET = flags.DEFINE_enum(
    "preset",
    None,
    list(features.PRESETS),
    "The paper's descriptor and measure for the dataset (Appendix B).",
)
_ACROSS_SCALES = flags.DEFINE_enum(
    "across_scales",
    None,
    list(features.ACROSS_SCALES),
    "Combine the scales' descriptors (default: the preset's, else average).",
)
_MEASURE = flags.DEFINE_enum(
    "measure",
    None,
    list(measures.MEASURES),
    "--linear_eval: what to report (default: the preset's, else accuracy).",
)
_DATASET = flags.DEFINE_string(
    "dataset",
    None,
    "TFDS name, 'digits' (built in) or a folder of class subfolders. Default: the dataset the "
    "--model nets were trained on (their workdirs' config.json; imagenet2012 for imagenet-D, "
    "...), else 'digits'.",
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
    "linear_eval", False, "Fit linear SVMs on the train split and print the --split --measure."
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
    "Test scales Q (default: the preset's, else 256,384,512 for the 224 crop; the same "
    "ratios of another crop).",
)
_FLIP = flags.DEFINE_bool("flip", True, "Average each image's horizontal flip in (Appendix B).")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", None, "Only the first n images of a split.")
image_flags.define_limits("Skip")


def _describe(fs: features.FeatureSet) -> str:
    stacked = ", stacked" if fs.across_scales == "stack" else ""
    return (
        f"{len(fs.labels)} descriptors of {fs.features.shape[1]} numbers "
        f"({fs.dataset} [{fs.split}], Q = {','.join(map(str, fs.scales))}{stacked})"
    )


def _descriptor_and_measure() -> tuple[features.Descriptor, str]:
    """The preset's descriptor and measure, with what --scales, --across_scales, --flip and
    --measure change."""
    chosen = features.preset(_PRESET.value) if _PRESET.value else None
    descriptor = chosen.descriptor if chosen else features.DEFAULT_DESCRIPTOR
    scales = image_flags.scales(_SCALES.value)
    descriptor = dataclasses.replace(
        descriptor,
        scales=tuple(scales) if scales else None,
        across_scales=_ACROSS_SCALES.value or descriptor.across_scales,
        flip=_FLIP.value,
    )
    return descriptor, _MEASURE.value or (chosen.measure if chosen else "accuracy")


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
        dataset = _DATASET.value
        if not dataset:
            choice = trained_on(_MODEL.value, "digits")
            print(choice.reason, file=sys.stderr)
            dataset = choice.dataset
        data = DatasetSplit(
            dataset,
            split=_SPLIT.value,
            data_dir=_DATA_DIR.value,
            max_examples=_MAX_EXAMPLES.value,
            limits=image_flags.limits(),
        )
        descriptor, measure = _descriptor_and_measure()
        if _LINEAR_EVAL.value:
            scores, train, test = linear_svm.linear_eval(
                _MODEL.value,
                data,
                descriptor,
                train_split=_TRAIN_SPLIT.value,
                c=_SVM_C.value,
                measure=measure,
            )
        else:
            test = features.extract_features(_MODEL.value, data, descriptor)
        if _OUTPUT.value:
            written = features.save_features(test, _OUTPUT.value)
            print(f"{_describe(test)} -> {', '.join(written)}")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    if _LINEAR_EVAL.value:
        name = measures.MEASURE_NAMES[scores["measure"]]
        print(f"linear SVM (C={scores['c']:g}) fitted on {_describe(train)}")
        print(f"train {name}: {100 * scores['train_score']:.2f}%")
        print(
            f"test {name} on {test.dataset} [{test.split}] ({len(test.labels)} images): "
            f"{100 * scores['score']:.2f}%"
        )


def run():
    """Console entry point (``vgg-features``)."""
    run_app(main, __doc__)
