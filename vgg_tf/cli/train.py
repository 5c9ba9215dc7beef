"""bin/train: trains a VGG network with the paper's recipe.

    bin/train --variant A                                  # built-in digits, CPU-sized
    bin/train --variant E --init_from workdirs/digits_A     # deeper net from A (paper §3.1)
    bin/train --config=configs/imagenet_s256.py --variant D --config.manual_dir=/data/imagenet
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from vgg_tf import train
from vgg_tf import workdir as workdir_lib
from vgg_tf.cli import recipe_flags

_SHORTHANDS = recipe_flags.define(
    [
        "variant", "init_from", "kernel_initializer", "dataset", "data_dir", "strategy",
        "devices", "epochs", "batch_size", "learning_rate", "mixed_precision", "jit_compile",
        "steps_per_execution", "deterministic", "seed",
    ],
    "Recipe file (configs/*.py); override any field with --config.<field>=value.",
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory (default: workdirs/<dataset>_<variant>)."
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Start over in a workdir that holds a run with another config."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    config = recipe_flags.resolve(_SHORTHANDS)
    workdir = _WORKDIR.value or os.path.join("workdirs", workdir_lib.default_run_name(config))
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
