"""bin/train: trains a VGG network with the paper's recipe.

    bin/train --variant A                                  # built-in digits, CPU-sized
    bin/train --variant E --init_from workdirs/digits_A     # deeper net from A (paper §3.1)
    bin/train --config=imagenet_s256 --variant D --config.manual_dir=/data/imagenet
    bin/train --config=imagenet_s384 --variant D --init_from workdirs/s256_D --workdir workdirs/s384_D
    bin/train --config=path/to/my_recipe.py --config.batch_size=64
    bin/train --task localisation --head pcr --init_from workdirs/digits_A  # Appendix A

``--config`` names a recipe shipped in the package (digits, finetune, imagenet_s256,
imagenet_s384, imagenet_jitter, localisation_digits, localisation_s256; default
digits, or localisation_digits with ``--task localisation``) or the path of a recipe file;
``--config.<field>=value`` overrides any field (listed below with the recipe's values).
``--progress`` chooses how training shows its steps: a progress bar on a terminal, plain
lines (every log_every_steps steps, no control characters) otherwise: a log file, nohup,
a scheduler. ``--verbosity=0`` shows TensorFlow's INFO logs, which are hidden by default.
"""

from __future__ import annotations

import functools
import os
import sys

from absl import app, flags

from vgg_tf.cli import recipe_flags
from vgg_tf.cli.entry import run_app
from vgg_tf.training import recipe as config_lib


def _asks_for_localisation(argv: list[str]) -> bool:
    """Whether the command line says ``--task localisation`` (read before flags are
    parsed: it picks the default recipe)."""
    pairs = zip(argv, argv[1:] + [""])
    return any(
        a == "--task=localisation" or (a == "--task" and b == "localisation") for a, b in pairs
    )


_SHORT_FIELDS = (
    "task",
    "head",
    "variant",
    "init_from",
    "kernel_initializer",
    "dataset",
    "data_dir",
    "strategy",
    "devices",
    "epochs",
    "batch_size",
    "learning_rate",
    "mixed_precision",
    "jit_compile",
    "steps_per_execution",
    "deterministic",
    "seed",
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory (default: workdirs/<dataset>_<variant>)."
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Start over in a workdir that holds a run with another config."
)
_PROGRESS = flags.DEFINE_enum(
    "progress",
    None,
    [mode for mode in config_lib.PROGRESS_MODES if mode != "auto"],
    "How training shows its steps: bar (Keras' progress bar), lines (one plain line every "
    "log_every_steps steps and at each epoch's end, no control characters: for log files) or "
    "none (each epoch's result line only). Default: bar on a terminal, lines otherwise.",
)


def main(argv, shorthands: dict):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    # Imported here, not at the top: --help answers without loading TensorFlow.
    import tensorflow as tf

    from vgg_tf import workdir as workdir_lib
    from vgg_tf.training import loop as train
    from vgg_tf.training import reporting
    from vgg_tf.training.checkpoints import PREEMPTED_EXIT_CODE, Preempted, error_line

    config = recipe_flags.resolve(shorthands)
    workdir = _WORKDIR.value or os.path.join("workdirs", workdir_lib.default_run_name(config))
    try:
        result = train.train_and_evaluate(
            config, workdir, overwrite=_OVERWRITE.value, progress=_PROGRESS.value or "auto"
        )
    except Preempted as stop:
        print(f"vgg_tf: {stop}", file=sys.stderr)
        sys.exit(PREEMPTED_EXIT_CODE)
    except (ValueError, train.NonFiniteLossError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(
            f"error: interrupted; run the same command again to resume {workdir} from its last "
            "checkpoint (a run stopped before its first checkpoint left nothing behind, and "
            "starts over).",
            file=sys.stderr,
        )
        sys.exit(130)
    except (OSError, tf.errors.OpError) as error:
        # A read-only or full disk, a worker whose peer died: the reason, not a traceback.
        print(f"error: {error_line(error)} (workdir {workdir})", file=sys.stderr)
        sys.exit(1)
    print(f"workdir: {workdir}")
    print(reporting.final_lines(result))


def run(argv: list[str] | None = None):
    """Runs the command (``vgg-train``): the recipe flags are defined here, since the default
    recipe follows ``--task``."""
    argv = sys.argv if argv is None else argv
    default = "localisation_digits" if _asks_for_localisation(argv) else None
    shorthands = recipe_flags.define(_SHORT_FIELDS, "Training recipe.", default_recipe=default)
    run_app(functools.partial(main, shorthands=shorthands), recipe_flags.usage(__doc__, default))
