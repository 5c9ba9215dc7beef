"""The entry points: ``bin/<command>`` and the ``vgg-<command>`` console scripts.

Each entry point prepares the process before TensorFlow is imported
(:func:`prepare_tensorflow`: the CPU path chosen and named in one line,
:mod:`vgg_tf.cli.cpu_path`; start-up INFO lines and third-party deprecation
notices hidden unless asked for, :mod:`vgg_tf.cli.quiet`), then imports the
command's module (:mod:`vgg_tf.cli.train`, ...) and runs it. ``--help`` and its kin
skip TensorFlow (:func:`asks_for_help`): a command whose module imports none
(``bin/train``) answers at once. Nothing here runs at import time.

Example:
    >>> from vgg_tf.cli import entry
    >>> entry.COMMANDS[:3]
    ('train', 'evaluate', 'export')
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from absl import app, flags

from vgg_tf.cli import cpu_path, quiet

#: The commands, each a module of vgg_tf.cli with a ``main(argv)`` and a docstring.
COMMANDS = (
    "train",
    "evaluate",
    "export",
    "tune",
    "import_weights",
    "predict",
    "features",
    "summary",
)

#: Commands that need an optional package: command -> (module, its name on PyPI, the extra).
OPTIONAL_PACKAGES = {"tune": ("keras_tuner", "keras-tuner", "tune")}


def run_app(main, doc: str | None) -> None:
    """``absl.app.run(main)`` with ``doc`` as the usage text of ``--help``.

    absl prints the ``__main__`` module's docstring, and a console script's
    wrapper has none; its ``--helpshort`` lists the key flags of the script
    (``sys.argv[0]``), while the flags live in the command's module and the
    shared flag modules it imports: they are registered for the script here.
    """
    sys.modules["__main__"].__doc__ = doc
    for module in flags.FLAGS.flags_by_module_dict():
        if module.startswith("vgg_tf.cli."):
            for flag in flags.FLAGS.get_key_flags_for_module(module):
                flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main)


def prepare_tensorflow(argv: list[str]) -> cpu_path.CpuPath:
    """Chooses the CPU path, says which on stderr, then imports TensorFlow quietly.

    The line is shown at TensorFlow's default log level and below (``--verbosity`` of -1
    or more, ``TF_CPP_MIN_LOG_LEVEL`` of 0 or 1) and hidden with errors only.

    Example (in a fresh process, before anything imports TensorFlow)::

        path = prepare_tensorflow(sys.argv)   # CPU: oneDNN on (...)
    """
    path = cpu_path.apply()
    if quiet.cpp_min_log_level(quiet.requested_verbosity(argv)) <= 1:
        print(cpu_path.startup_line(path), file=sys.stderr, flush=True)
    quiet.quiet_tensorflow(argv)
    return path


#: absl's flags that print the usage and exit before the command runs.
HELP_FLAGS = ("help", "?", "helpshort", "helpfull", "helpxml")


def asks_for_help(argv: Sequence[str]) -> bool:
    """Whether the command line asks for the usage (``--help``, ``--helpshort``, ...): the
    command then exits while its flags are parsed, and needs no TensorFlow.

    Example:
        >>> asks_for_help(["bin/train", "--variant=A", "--helpshort"])
        True
        >>> asks_for_help(["bin/train", "--", "--help"]), asks_for_help(["bin/train", "--nohelp"])
        (False, False)
    """
    for arg in argv[1:]:
        if arg == "--":
            return False
        name, _, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name in HELP_FLAGS and value.lower() not in ("false", "0"):
            return True
    return False


def _import_quietly(module: str):
    """Imports a command's module for its usage alone: TensorFlow, if the module imports it,
    takes the CPU path a run would and starts as quietly, without the CPU line."""
    cpu_path.apply()
    if quiet.quiet_logs(sys.argv) < 1:
        return importlib.import_module(module)
    with quiet.stderr_fd_silenced():
        return importlib.import_module(module)


def launch(command: str) -> None:
    """Prepares the process, then runs ``vgg_tf.cli.<command>``'s ``run()``.

    ``--help`` and its kin skip TensorFlow's import (:func:`asks_for_help`): the usage
    answers at once for a command whose flags need none (``bin/train``).
    """
    if command not in COMMANDS:
        raise ValueError(f"Unknown command {command!r}; expected one of {', '.join(COMMANDS)}.")
    module, package, extra = OPTIONAL_PACKAGES.get(command, (None, None, None))
    if module and importlib.util.find_spec(module) is None:
        raise SystemExit(
            f"error: bin/{command} needs {package}, which vgg_tf installs with its "
            f"{extra} extra: pip install 'vgg_tf[{extra}]'"
        )
    try:
        if asks_for_help(sys.argv):
            _import_quietly(f"vgg_tf.cli.{command}").run()
        else:
            prepare_tensorflow(sys.argv)
            importlib.import_module(f"vgg_tf.cli.{command}").run()
    except KeyboardInterrupt:
        # Ctrl-C while TensorFlow loads or outside a command's own handling: one line.
        print(f"error: bin/{command} interrupted (Ctrl-C).", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # The reader of standard output left (``bin/train --help | head``): nothing to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def train() -> None:
    """``vgg-train``, ``bin/train``."""
    launch("train")


def evaluate() -> None:
    """``vgg-evaluate``, ``bin/evaluate``."""
    launch("evaluate")


def export() -> None:
    """``vgg-export``, ``bin/export``."""
    launch("export")


def tune() -> None:
    """``vgg-tune``, ``bin/tune``."""
    launch("tune")


def import_weights() -> None:
    """``vgg-import-weights``, ``bin/import_weights``."""
    launch("import_weights")


def predict() -> None:
    """``vgg-predict``, ``bin/predict``."""
    launch("predict")


def features() -> None:
    """``vgg-features``, ``bin/features``."""
    launch("features")


def summary() -> None:
    """``vgg-summary``, ``python -m vgg_tf.cli.summary``."""
    launch("summary")
