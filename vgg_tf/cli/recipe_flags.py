"""Flags shared by bin/train and bin/tune: the recipe (``--config``) and short flags for its fields.

``--config`` takes the name of a recipe shipped in the package
(``--config=imagenet_s384``; ``vgg_tf.training.recipe.recipe_names()`` lists them) or the
path of a recipe file (``--config=path/to/my_recipe.py``, a module whose
``get_config()`` returns the recipe). Any field can then be overridden with
``--config.<field>=value``, and the common ones with the short flags below.
"""

from __future__ import annotations

import re
import runpy
import sys
from collections.abc import Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags

from vgg_tf.cli import quiet
from vgg_tf.nets import builder, specs
from vgg_tf.training import distribute, tasks
from vgg_tf.training import recipe as config_lib


def _definitions() -> dict:
    return {
        "task": lambda: flags.DEFINE_enum(
            "task",
            None,
            list(tasks.TASKS),
            "What the net learns: class scores, or a box (Appendix A; default recipe "
            "localisation_digits).",
        ),
        "head": lambda: flags.DEFINE_enum(
            "head",
            None,
            list(tasks.HEADS),
            "Localisation: one box for all classes (scr) or one per class (pcr).",
        ),
        "variant": lambda: flags.DEFINE_enum(
            "variant", None, list(specs.VARIANTS), "Network of Table 1."
        ),
        "init_from": lambda: flags.DEFINE_string(
            "init_from", None, "Workdir or .keras of a trained model to start from (net A for B-E)."
        ),
        "kernel_initializer": lambda: flags.DEFINE_enum(
            "init",
            None,
            list(builder.KERNEL_INITIALIZERS),
            "Random init: paper N(0, 0.01) or glorot.",
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
            "mixed_precision",
            None,
            list(config_lib.MIXED_PRECISION[1:]),
            "Compute in bfloat16/float16.",
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


class _RecipeParser(flags.ArgumentParser):
    """Parses ``--config=NAME`` (a packaged recipe) or ``--config=PATH`` (a recipe file).

    Resolves the name with :func:`vgg_tf.training.recipe.recipe_path`, then hands the file to
    ml_collections' own parser (``PATH:ARG`` passes ARG to ``get_config`` as before).
    """

    def __init__(self, file_parser: flags.ArgumentParser):
        self._file_parser = file_parser

    def parse(self, argument):
        path, colon, config_string = str(argument).partition(":")
        path = config_lib.recipe_path(path)
        try:
            config = self._file_parser.parse(path + colon + config_string)
        except flags.Error:
            raise
        # A recipe is a Python file: whatever it raises (a SyntaxError, a NameError) is the
        # recipe's fault, reported in one line rather than as a traceback.
        except Exception as error:  # noqa: BLE001
            raise ValueError(
                f"recipe {path!r} does not load: {type(error).__name__}: {error}"
            ) from None
        check_overrides(config, sys.argv, str(argument))
        return config

    def flag_type(self):
        return self._file_parser.flag_type()


def check_overrides(config: ml_collections.ConfigDict, argv: Sequence[str], recipe: str) -> None:
    """Refuses a ``--config.<field>`` in ``argv`` that names no field of ``config``.

    Raises:
        ValueError: Naming the flag and the recipe's fields.

    Example:
        >>> check_overrides(config_lib.paper_recipe(), ["bin/train", "--config.lr=1"], "digits")
        Traceback (most recent call last):
        ...
        ValueError: --config.lr: recipe 'digits' has no field 'lr'; expected one of ...
    """
    for arg in argv:
        match = re.match(r"^--?(?:no)?config\.([^=]+)", arg)
        if not match:
            continue
        node, path = config, []
        for part in match.group(1).split("."):
            if not isinstance(node, ml_collections.ConfigDict):
                raise ValueError(
                    f"--config.{match.group(1)}: {'.'.join(path)} of recipe {recipe!r} is a "
                    "value, not a group of fields."
                )
            path.append(part)
            if part not in node:
                raise ValueError(
                    f"--config.{match.group(1)}: recipe {recipe!r} has no field {part!r}; "
                    f"expected one of {', '.join(sorted(node.keys()))}."
                )
            node = node[part]


def _check_requested_overrides(argv: Sequence[str], default_recipe: str) -> None:
    """Exits with one line for a ``--config.<field>`` the requested recipe does not have
    (ml_collections would raise a bare AttributeError as the flag is defined)."""
    requested = default_recipe
    for arg, following in zip(argv, [*argv[1:], ""]):
        if re.match(r"^--?config=", arg):
            requested = arg.split("=", 1)[1].partition(":")[0]
        elif re.match(r"^--?config$", arg):
            requested = following.partition(":")[0]
    try:
        config = runpy.run_path(config_lib.recipe_path(requested))["get_config"]()
    except Exception:  # noqa: BLE001 (a recipe that does not load is reported as --config is parsed)
        return
    try:
        check_overrides(config, argv, requested)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


def define(fields: Sequence[str], config_help: str, default_recipe: str | None = None) -> dict:
    """Defines ``--config``, ``--cpu_devices`` and short flags for ``fields`` of the recipe.

    Args:
        fields: Recipe fields that get a short flag.
        config_help: The help of ``--config``.
        default_recipe: The recipe when ``--config`` is not given (default: digits).

    Returns:
        ``{field: FlagHolder}`` for :func:`resolve`.
    """
    default_recipe = default_recipe or config_lib.DEFAULT_RECIPE
    _check_requested_overrides(sys.argv, default_recipe)
    try:
        holder = config_flags.DEFINE_config_file(
            "config",
            config_lib.recipe_path(default_recipe),
            f"{config_help} A packaged recipe ({', '.join(config_lib.recipe_names())}) or a "
            "recipe file's path; override any field with --config.<field>=value.",
            lock_config=True,
        )
    except AttributeError as error:  # ml_collections checks them against the default recipe
        raise SystemExit(
            f"error: a --config.<field> flag names {error} (checked against the default recipe "
            f"{default_recipe!r}): add the field to paper_recipe() or to that recipe."
        ) from None
    config_flag = flags.FLAGS[holder.name]
    config_flag.parser = _RecipeParser(config_flag.parser)
    config_flag.default_as_str = repr(default_recipe)
    flags.DEFINE_integer(
        "cpu_devices", 0, "Split the CPU into this many logical devices (testing mirrored on CPU)."
    )
    definitions = _definitions()
    return {field: definitions[field]() for field in fields}


def resolve(shorthands: dict) -> ml_collections.ConfigDict:
    """The recipe with the short flags that were given applied; also quiets absl logging
    (unless --verbosity is given) and splits the CPU when --cpu_devices asks."""
    quiet.absl_logging_to_warnings()  # keep the progress bars readable
    config = flags.FLAGS.config
    with config.unlocked():
        for field, flag in shorthands.items():
            if flag.value is not None:
                config[field] = flag.value
    if flags.FLAGS.cpu_devices:
        distribute.split_logical_cpus(flags.FLAGS.cpu_devices)
    return config
