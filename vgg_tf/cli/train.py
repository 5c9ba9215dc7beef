"""bin/train: trains a VGG network with the paper's recipe.

    bin/train --variant A                                  # built-in digits, CPU-sized
    bin/train --variant E --init_from workdirs/digits_A     # deeper net from A (paper §3.1)
    bin/train --config=imagenet_s256 --variant D --config.manual_dir=/data/imagenet
    bin/train --config=imagenet_s384 --variant D --init_from workdirs/s256_D --workdir workdirs/s384_D
    bin/train --config=path/to/my_recipe.py --config.batch_size=64

``--config`` names a recipe shipped in the package (digits, imagenet_s256,
imagenet_s384, imagenet_jitter; default digits) or the path of a recipe file;
``--config.<field>=value`` overrides any field. ``--verbosity=0`` shows
TensorFlow's INFO logs, which are hidden by default.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from vgg_tf import train
from vgg_tf import workdir as workdir_lib
from vgg_tf.cli import recipe_flags, run_app

_SHORTHANDS = recipe_flags.define(
    [
        "variant", "init_from", "kernel_initializer", "dataset", "data_dir", "strategy",
        "devices", "epochs", "batch_size", "learning_rate", "mixed_precision", "jit_compile",
        "steps_per_execution", "deterministic", "seed",
    ],
    "Training recipe.",
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
    run_app(main, __doc__)
