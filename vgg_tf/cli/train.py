"""bin/train: trains a VGG network with the paper's recipe.

    bin/train --variant A                                  # built-in digits, CPU-sized
    bin/train --variant E --init_from workdirs/digits_A     # deeper net from A (paper §3.1)
    bin/train --config=configs/imagenet_s256.py --variant D --config.manual_dir=/data/imagenet
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from vgg_tf import config as config_lib
from vgg_tf import distribute, models, train

config_flags.DEFINE_config_file(
    "config",
    config_lib.default_config_path(),
    "Recipe file (configs/*.py); override any field with --config.<field>=value.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory (default: workdirs/<dataset>_<variant>)."
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Start over in a workdir that holds a run with another config."
)
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", 0, "Split the CPU into this many logical devices (testing mirrored on CPU)."
)
# Shorthands for the recipe fields changed most often (None: keep the recipe's value).
_SHORTHANDS = {
    "variant": flags.DEFINE_enum("variant", None, list(models.VARIANTS), "Network of Table 1."),
    "init_from": flags.DEFINE_string(
        "init_from", None, "Workdir or .keras of a trained model to start from (net A for B-E)."
    ),
    "kernel_initializer": flags.DEFINE_enum(
        "init", None, list(models.KERNEL_INITIALIZERS), "Random init: paper N(0, 0.01) or glorot."
    ),
    "dataset": flags.DEFINE_string(
        "dataset", None, "TFDS name, 'digits' (built in) or a folder of class subfolders."
    ),
    "data_dir": flags.DEFINE_string("data_dir", None, "TFDS data directory."),
    "strategy": flags.DEFINE_enum(
        "strategy", None, list(distribute.STRATEGIES), "Distribution strategy."
    ),
    "devices": flags.DEFINE_string("devices", None, "Comma-separated devices for 'mirrored'."),
    "epochs": flags.DEFINE_integer("epochs", None, "Number of epochs."),
    "batch_size": flags.DEFINE_integer("batch_size", None, "Global batch size."),
    "learning_rate": flags.DEFINE_float("learning_rate", None, "Initial learning rate."),
    "mixed_precision": flags.DEFINE_enum(
        "mixed_precision", None, list(train.MIXED_PRECISION[1:]), "Compute in bfloat16/float16."
    ),
    "jit_compile": flags.DEFINE_bool("jit_compile", None, "Compile the train step with XLA."),
    "steps_per_execution": flags.DEFINE_integer(
        "steps_per_execution", None, "Train steps per tf.function call."
    ),
    "deterministic": flags.DEFINE_bool(
        "deterministic", None, "Op determinism and fixed data order: resumes are bit-identical."
    ),
    "seed": flags.DEFINE_integer("seed", None, "Seed of init, data order and augmentation."),
}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep the progress bars readable
    config = flags.FLAGS.config
    with config.unlocked():
        for field, flag in _SHORTHANDS.items():
            if flag.value is not None:
                config[field] = flag.value
    if _CPU_DEVICES.value:
        distribute.split_logical_cpus(_CPU_DEVICES.value)
    workdir = _WORKDIR.value or os.path.join(
        "workdirs", f"{os.path.basename(os.path.normpath(config.dataset))}_{config.variant}"
    )
    try:
        result = train.train_and_evaluate(config, workdir, overwrite=_OVERWRITE.value)
    except (ValueError, train.NonFiniteLossError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"workdir: {workdir}")
    print(train.final_lines(result))


def run():
    """Console entry point (``vgg-train``)."""
    app.run(main)
