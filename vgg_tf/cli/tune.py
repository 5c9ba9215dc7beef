"""bin/tune: searches the training recipe's hyper-parameters with keras-tuner.

    bin/tune --variant A --tuner random --max_trials 3 --epochs 1 --directory tuning
    bin/tune --tuner bayesian --max_trials 20 --learning_rate_range=1e-3,0.05 --inits=glorot
    bin/tune --config=imagenet_s256 --variant A --config.manual_dir=/data/imagenet --max_trials 5
    bin/train --config=tuning/digits_A/best_config.py          # the best setting, in full

``--config`` names a packaged recipe (default digits) or a recipe file's path, as
in bin/train; ``--config.<field>=value`` overrides any field of the base recipe (listed
below with the recipe's values).
Needs keras-tuner: ``pip install 'vgg_tf[tune]'``.

Rerunning the same command continues the search in --directory (a killed trial
resumes from its checkpoint); --overwrite starts over. See BUILD.md for the
distributed chief/worker mode.
"""

from __future__ import annotations

import sys

import tensorflow as tf
from absl import app, flags

from vgg_tf.cli import recipe_flags
from vgg_tf.cli.entry import run_app
from vgg_tf.training import search_space
from vgg_tf.training import tuning as tune
from vgg_tf.training.checkpoints import PREEMPTED_EXIT_CODE, Preempted, error_line

_SHORTHANDS = recipe_flags.define(
    [
        "variant",
        "init_from",
        "dataset",
        "data_dir",
        "strategy",
        "devices",
        "mixed_precision",
        "deterministic",
        "seed",
    ],
    "Base recipe of the search.",
)
_TUNER = flags.DEFINE_string("tuner", "random", f"Search algorithm: {', '.join(tune.TUNERS)}.")
_MAX_TRIALS = flags.DEFINE_integer(
    "max_trials", 10, "Number of trials (Hyperband: at most this many)."
)
_DIRECTORY = flags.DEFINE_string("directory", "tuning", "Where the search lives.")
_PROJECT = flags.DEFINE_string(
    "project_name", None, "Sub-folder of --directory (default: <dataset>_<variant>)."
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Start the search over.")
_OBJECTIVE = flags.DEFINE_string("objective", "top1", "Validation error minimised: top1 or top5.")
_EPOCHS = flags.DEFINE_integer(
    "epochs",
    None,
    "Epochs per trial (Hyperband: the maximum; default: the recipe's). The best recipe file "
    "keeps the recipe's epochs, for the full run.",
)
_TUNER_SEED = flags.DEFINE_integer("tuner_seed", 1, "Seed of the search algorithm (>= 1).")
_FACTOR = flags.DEFINE_integer("hyperband_factor", 3, "Hyperband's reduction factor.")
_RANGES = {
    "learning_rate": flags.DEFINE_string(
        "learning_rate_range",
        None,
        "MIN,MAX of the learning rate, log scale (default lr/10,lr*10).",
    ),
    "weight_decay": flags.DEFINE_string(
        "weight_decay_range",
        None,
        "MIN,MAX of the weight decay, log scale if MIN > 0 (default 1e-5,1e-3).",
    ),
    "dropout": flags.DEFINE_string(
        "dropout_range", None, "MIN,MAX of the dropout (default 0,0.6)."
    ),
    "batch_sizes": flags.DEFINE_string(
        "batch_sizes", None, "Global batch sizes to choose from (default batch/2,batch,batch*2)."
    ),
    "scale_ranges": flags.DEFINE_string(
        "scale_ranges",
        None,
        "Training scale ranges SMIN-SMAX to choose from, e.g. 32-32,32-48 "
        "(default: the recipe's, S fixed at SMIN, and SMIN-2*SMIN).",
    ),
    "inits": flags.DEFINE_string(
        "inits", None, "Initialisers to choose from (default paper,glorot)."
    ),
}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    recipe = recipe_flags.resolve(_SHORTHANDS)
    try:
        space = search_space.make_space(
            recipe, **{name: flag.value for name, flag in _RANGES.items()}
        )
        settings = tune.SearchSettings(
            tuner=_TUNER.value,
            objective=_OBJECTIVE.value,
            max_trials=_MAX_TRIALS.value,
            trial_epochs=_EPOCHS.value,
            seed=_TUNER_SEED.value,
            hyperband_factor=_FACTOR.value,
        )
        result = tune.search(
            recipe,
            _DIRECTORY.value,
            space=space,
            settings=settings,
            project_name=_PROJECT.value,
            overwrite=_OVERWRITE.value,
        )
    except Preempted as stop:
        print(f"vgg_tf: {stop}", file=sys.stderr)
        sys.exit(PREEMPTED_EXIT_CODE)
    except (ValueError, RuntimeError) as error:
        # keras-tuner's RuntimeError carries a trial's traceback after its first line.
        lines = str(error).strip().splitlines() or [repr(error)]
        cause = f" (last: {lines[-1].strip()})" if len(lines) > 1 else ""
        print(f"error: {lines[0]}{cause}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(
            f"error: interrupted; run the same command again to continue the search in "
            f"{_DIRECTORY.value}.",
            file=sys.stderr,
        )
        sys.exit(130)
    except (OSError, tf.errors.OpError) as error:
        print(f"error: {error_line(error)}", file=sys.stderr)
        sys.exit(1)
    if result.worker:
        print(f"worker done; the chief reports the trials of {result.project_dir}")
        return
    print()
    print(result.table)
    if result.best_config_path is None:
        print(f"error: no trial of {result.project_dir} completed", file=sys.stderr)
        sys.exit(1)
    print()
    print(
        f"best trial {result.best_trial}: {tune.OBJECTIVES[_OBJECTIVE.value]} "
        f"= {result.best_value:.4f}"
    )
    print(f"best config: {result.best_config_path}")
    print(f"train it in full: bin/train --config={result.best_config_path}")


def run():
    """Console entry point (``vgg-tune``)."""
    run_app(main, recipe_flags.usage(__doc__))
