"""Flags shared by bin/train and bin/tune: the recipe (``--config``) and short flags for its fields.

``--config`` takes the name of a recipe shipped in the package
(``--config=imagenet_s384``; ``vgg_tf.training.recipe.recipe_names()`` lists them) or the
path of a recipe file (``--config=path/to/my_recipe.py``, a module whose
``get_config()`` returns the recipe). Any field can then be overridden with
``--config.<field>=value``, and the common ones with the short flags below. A field the
recipe lacks is refused in one line naming the closest ones (:func:`check_overrides`), and
``--help`` lists the recipe's fields with their values (:func:`usage`).
"""

from __future__ import annotations

import difflib
import re
import runpy
import sys
import textwrap
from collections.abc import Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags

from vgg_tf.cli import quiet
from vgg_tf.nets import specs
from vgg_tf.training import recipe as config_lib


def _definitions() -> dict:
    return {
        "task": lambda: flags.DEFINE_enum(
            "task",
            None,
            list(config_lib.TASKS),
            "What the net learns: class scores, or a box (Appendix A; default recipe "
            "localisation_digits).",
        ),
        "head": lambda: flags.DEFINE_enum(
            "head",
            None,
            list(config_lib.HEADS),
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
            list(specs.KERNEL_INITIALIZERS),
            "Random init: paper N(0, 0.01), glorot or he.",
        ),
        "dataset": lambda: flags.DEFINE_string(
            "dataset", None, "TFDS name, 'digits' (built in) or a folder of class subfolders."
        ),
        "data_dir": lambda: flags.DEFINE_string("data_dir", None, "TFDS data directory."),
        "strategy": lambda: flags.DEFINE_enum(
            "strategy", None, list(config_lib.STRATEGIES), "Distribution strategy."
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


def _does_not_load(recipe: str, error: Exception) -> ValueError:
    # A recipe is a Python file: whatever it raises (a SyntaxError, a NameError) is the
    # recipe's fault, reported in one line rather than as a traceback.
    return ValueError(f"recipe {recipe!r} does not load: {type(error).__name__}: {error}")


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
        except Exception as error:  # noqa: BLE001 (see _does_not_load)
            # ml_collections re-raises a recipe's TypeError or ValueError with its traceback
            # in the message: the recipe's own error is the one to name.
            raise _does_not_load(path, error.__context__ or error) from None
        check_overrides(config, sys.argv, str(argument))
        return config

    def flag_type(self):
        return self._file_parser.flag_type()


_OVERRIDE = re.compile(r"^--?(?:no)?config\.([^=]+)")
_CONFIG = re.compile(r"^--?config(=|$)")


def closest_fields(name: str, fields: Sequence[str]) -> list[str]:
    """The fields whose names are closest to ``name`` (a typo's likely meaning), best first.

    Example:
        >>> closest_fields("learning_rte", config_lib.paper_recipe().keys())
        ['learning_rate']
    """
    return difflib.get_close_matches(name, list(fields), n=3, cutoff=0.6)


def _no_such_field(flag: str, recipe: str, missing: str, fields: Sequence[str]) -> str:
    prefix = missing.rpartition(".")[0]
    close = closest_fields(missing.rpartition(".")[2], fields)
    if close:
        names = [f"{prefix}.{name}" if prefix else name for name in close]
        hint = f"did you mean {' or '.join(names)}?"
    else:
        hint = f"expected one of {', '.join(sorted(fields))}."
    return f"--config.{flag}: recipe {recipe!r} has no field {missing!r}; {hint}"


def check_overrides(config: ml_collections.ConfigDict, argv: Sequence[str], recipe: str) -> None:
    """Refuses a ``--config.<field>`` in ``argv`` that names no field of ``config``.

    Raises:
        ValueError: Naming the flag, the recipe and the closest fields (all of them when none
            is close).

    Example:
        >>> argv = ["bin/train", "--config.learning_rte=1"]
        >>> check_overrides(config_lib.paper_recipe(), argv, "digits")
        Traceback (most recent call last):
        ...
        ValueError: --config.learning_rte: recipe 'digits' has no field 'learning_rte'; did you mean learning_rate?
    """
    for arg in argv:
        match = _OVERRIDE.match(arg)
        if not match:
            continue
        flag = match.group(1)
        node, path = config, []
        for part in flag.split("."):
            if not isinstance(node, ml_collections.ConfigDict):
                raise ValueError(
                    f"--config.{flag}: {'.'.join(path)} of recipe {recipe!r} is a value, not a "
                    "group of fields."
                )
            path.append(part)
            if part not in node:
                raise ValueError(_no_such_field(flag, recipe, ".".join(path), list(node.keys())))
            node = node[part]


def requested_recipe(argv: Sequence[str], default_recipe: str) -> str:
    """What ``--config`` names on the command line (a recipe's name or path, with its
    ``:ARG`` if any), else ``default_recipe``; the last one given counts.

    Example:
        >>> requested_recipe(["bin/train", "--config=imagenet_s384"], "digits")
        'imagenet_s384'
        >>> requested_recipe(["bin/train", "--config", "mine.py:small"], "digits")
        'mine.py:small'
    """
    requested = default_recipe
    for arg, following in zip(argv, [*argv[1:], ""]):
        if arg == "--":
            break
        if match := _CONFIG.match(arg):
            requested = arg[match.end() :] if match.group(1) else following
    return requested


def load_recipe(name_or_path: str) -> ml_collections.ConfigDict:
    """The recipe ``--config=name_or_path`` gives (``PATH:ARG`` calls ``get_config(ARG)``, as
    ml_collections does), before any ``--config.<field>`` override.

    Raises:
        ValueError: No such recipe (the packaged ones named), or it does not load (why).

    Example:
        >>> load_recipe("digits").crop_size
        32
    """
    name, colon, argument = name_or_path.partition(":")
    path = config_lib.recipe_path(name)
    try:
        get_config = runpy.run_path(path)["get_config"]
        return get_config(argument) if colon else get_config()
    except Exception as error:  # noqa: BLE001 (see _does_not_load)
        raise _does_not_load(name, error) from None


def _check_requested_recipe(argv: Sequence[str], default_recipe: str) -> None:
    """Exits with one line for a requested recipe that does not load, a ``--config.<field>``
    it does not have, or one given before ``--config`` (ml_collections would refuse each in
    its own words, over several lines)."""
    argv = flags.FLAGS.read_flags_from_files(list(argv), force_gnu=False)
    config_at = next((i for i, arg in enumerate(argv) if _CONFIG.match(arg)), 0)
    early = next((arg for arg in argv[:config_at] if _OVERRIDE.match(arg)), None)
    if early:
        raise SystemExit(
            f"error: {early} comes before {argv[config_at]}; give --config first, then the "
            "--config.<field> overrides of that recipe."
        )
    requested = requested_recipe(argv, default_recipe)
    try:
        check_overrides(load_recipe(requested), argv, requested)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


def fields_help(config: ml_collections.ConfigDict, recipe: str, width: int = 100) -> str:
    """The recipe's fields with their values and notes, as ``--help`` lists them.

    One line per field, ``field = value  # note`` (the note from
    :func:`vgg_tf.training.recipe.field_notes`), in the order and sections of
    :func:`~vgg_tf.training.recipe.paper_recipe`; fields a recipe file adds come last.

    Example:
        >>> print(fields_help(load_recipe("digits"), "digits").splitlines()[2])
          recipe = 'digits'              # the recipe's name, for messages
    """
    notes = [note for note in config_lib.field_notes() if note.field in config]
    known = {note.field for note in notes}
    notes += [config_lib.FieldNote(field, "", "") for field in config if field not in known]
    assignments = {note.field: f"{note.field} = {config[note.field]!r}" for note in notes}
    column = min(max(map(len, assignments.values())), 34) + 4
    lines = [
        f"Recipe fields, with the values of recipe {recipe!r} (--config=NAME --help lists "
        "another's);",
        "override any with --config.<field>=value:",
    ]
    section = ""
    for note in notes:
        if note.section != section:
            section = note.section
            lines.append(f"  -- {section} --")
        assignment = f"  {assignments[note.field]}"
        if not note.note:
            lines.append(assignment)
            continue
        indent = max(column, len(assignment) + 2)
        wrapped = textwrap.wrap(note.note, max(width - indent - 2, 30))
        lines.append(f"{assignment.ljust(indent)}# {wrapped[0]}")
        lines += [f"{' ' * indent}# {rest}" for rest in wrapped[1:]]
    return "\n".join(lines)


def usage(doc: str, default_recipe: str | None = None, argv: Sequence[str] | None = None) -> str:
    """``doc`` followed by the fields of the recipe ``--config`` names (:func:`fields_help`):
    the usage text of ``--help`` of a command with recipe flags.

    Only the doc when that recipe does not load (``--config`` then says why).
    """
    argv = sys.argv if argv is None else argv
    requested = requested_recipe(argv, default_recipe or config_lib.DEFAULT_RECIPE)
    try:
        config = load_recipe(requested)
    except ValueError:
        return doc
    return f"{doc.rstrip()}\n\n{fields_help(config, requested)}\n"


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
    _check_requested_recipe(sys.argv, default_recipe)
    try:
        holder = config_flags.DEFINE_config_file(
            "config",
            config_lib.recipe_path(default_recipe),
            f"{config_help} A packaged recipe ({', '.join(config_lib.recipe_names())}) or a "
            "recipe file's path; override any field with --config.<field>=value.",
            lock_config=True,
        )
    except AttributeError as error:
        # ml_collections checks the overrides against the default recipe as the flag is
        # defined, in a message of several lines: say it in ours.
        lines = str(error).strip("'\"").splitlines()
        try:
            check_overrides(load_recipe(default_recipe), sys.argv, default_recipe)
        except ValueError as why:
            lines = [str(why)]
        raise SystemExit(f"error: {' '.join(lines)}") from None
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
        from vgg_tf.training import distribute  # TensorFlow: not imported for --help

        distribute.split_logical_cpus(flags.FLAGS.cpu_devices)
    return config
