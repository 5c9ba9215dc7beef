"""Flags shared by bin/train and bin/tune: the recipe file and short flags for its fields."""

from __future__ import annotations

from collections.abc import Sequence

import ml_collections
from absl import flags, logging
from ml_collections import config_flags

from vgg_tf import config as config_lib
from vgg_tf import distribute, models


def _definitions() -> dict:
    return {
        "variant": lambda: flags.DEFINE_enum(
            "variant", None, list(models.VARIANTS), "Network of Table 1."
        ),
        "init_from": lambda: flags.DEFINE_string(
            "init_from", None, "Workdir or .keras of a trained model to start from (net A for B-E)."
        ),
        "kernel_initializer": lambda: flags.DEFINE_enum(
            "init", None, list(models.KERNEL_INITIALIZERS), "Random init: paper N(0, 0.01) or glorot."
        ),
        "dataset": lambda: flags.DEFINE_string(
            "dataset", None, "TFDS name, 'digits' (built in) or a folder of class subfolders."
        ),
        "data_dir": lambda: flags.DEFINE_string("data_dir", None, "TFDS data directory."),
        "strategy": lambda: flags.DEFINE_enum(
            "strategy", None, list(distribute.STRATEGIES), "Distribution strategy."
        ),
        "devices": lambda: flags.DEFINE_string(
            "devices", None, "Comma-separated devices for 'mirrored'."
        ),
        "epochs": lambda: flags.DEFINE_integer("epochs", None, "Number of epochs."),
        "batch_size": lambda: flags.DEFINE_integer("batch_size", None, "Global batch size."),
        "learning_rate": lambda: flags.DEFINE_float(
            "learning_rate", None, "Initial learning rate."
        ),
        "mixed_precision": lambda: flags.DEFINE_enum(
            "mixed_precision", None, list(config_lib.MIXED_PRECISION[1:]), "Compute in bfloat16/float16."
        ),
        "jit_compile": lambda: flags.DEFINE_bool(
            "jit_compile", None, "Compile the train step with XLA."
        ),
        "steps_per_execution": lambda: flags.DEFINE_integer(
            "steps_per_execution", None, "Train steps per tf.function call."
        ),
        "deterministic": lambda: flags.DEFINE_bool(
            "deterministic", None, "Op determinism and fixed data order: resumes are bit-identical."
        ),
        "seed": lambda: flags.DEFINE_integer(
            "seed", None, "Seed of init, data order and augmentation."
        ),
    }


def define(fields: Sequence[str], config_help: str) -> dict:
    """Defines ``--config``, ``--cpu_devices`` and short flags for ``fields`` of the recipe.

    Returns:
        ``{field: FlagHolder}`` for :func:`resolve`.
    """
    config_flags.DEFINE_config_file(
        "config", config_lib.default_config_path(), config_help, lock_config=True
    )
    flags.DEFINE_integer(
        "cpu_devices", 0, "Split the CPU into this many logical devices (testing mirrored on CPU)."
    )
    definitions = _definitions()
    return {field: definitions[field]() for field in fields}


def resolve(shorthands: dict) -> ml_collections.ConfigDict:
    """The recipe with the short flags that were given applied; also quiets absl logging
    (unless --verbosity is given) and splits the CPU when --cpu_devices asks."""
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep the progress bars readable
    config = flags.FLAGS.config
    with config.unlocked():
        for field, flag in shorthands.items():
            if flag.value is not None:
                config[field] = flag.value
    if flags.FLAGS.cpu_devices:
        distribute.split_logical_cpus(flags.FLAGS.cpu_devices)
    return config
