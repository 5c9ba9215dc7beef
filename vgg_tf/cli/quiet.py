"""A quiet start for the command line: TensorFlow's start-up logs stay out of the terminal.

TensorFlow 2.21 prints its oneDNN and CPU-feature INFO lines, and absl's "All log
messages before absl::InitializeLog()" warning, while ``import tensorflow`` runs,
whatever ``TF_CPP_MIN_LOG_LEVEL`` says: the C++ logger is not initialised yet.
So the import runs with file descriptor 2 pointed at a temporary file, which is
dropped (or replayed, if the import fails) before fd 2 is restored. After the
import, ``TF_CPP_MIN_LOG_LEVEL`` (1 unless asked otherwise: C++ INFO lines
hidden, warnings and errors shown) governs the C++ logs. Deprecation notices of
TensorFlow's Python API (tf.data's CounterV2 inside tensorflow-datasets, ...)
and Python ``DeprecationWarning``/``FutureWarning`` of third-party code are
silenced.

What the run prints itself -- progress bars, epoch lines, the skipped-record
lines that ``tf.print`` writes to stderr from inside tf.data -- is untouched.

Asking for logs turns this off:

* ``--verbosity=N`` (or ``-v N``): absl's level for the Python logs, and the C++
  level follows it (``TF_CPP_MIN_LOG_LEVEL = max(0, -N)``: 0 shows INFO, -1
  warnings, -2 errors only); deprecation notices are shown;
* the user's own ``TF_CPP_MIN_LOG_LEVEL`` is kept as given (0 shows the start-up
  lines; 1 or more hides them at import too);
* Python's own ``-W`` / ``PYTHONWARNINGS`` keep their say over the ``warnings``
  filters.

This module is for entry points only: :mod:`vgg_tf.cli.entry` calls
:func:`quiet_tensorflow` before it imports the command, and so before any
module imports TensorFlow. A plain ``import vgg_tf`` changes nothing.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence

#: ``TF_CPP_MIN_LOG_LEVEL`` of a run that asked for nothing: C++ INFO hidden.
DEFAULT_CPP_MIN_LOG_LEVEL = 1
_ENV = "TF_CPP_MIN_LOG_LEVEL"
_LEVEL_NAMES = {"debug": 1, "info": 0, "warning": -1, "warn": -1, "error": -2, "fatal": -3}


def requested_verbosity(argv: Sequence[str]) -> int | None:
    """The value of ``--verbosity`` / ``-v`` on the command line, or None when absent.

    Example:
        >>> requested_verbosity(["bin/train", "--variant", "A"]) is None
        True
        >>> requested_verbosity(["bin/train", "--verbosity=-1"]), requested_verbosity(["x", "-v", "1"])
        (-1, 1)
    """
    args = list(argv[1:])
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if not arg.startswith("-"):
            continue
        name, has_value, value = arg.lstrip("-").partition("=")
        if name not in ("verbosity", "v"):
            continue
        if not has_value:
            value = args[i + 1] if i + 1 < len(args) else ""
        try:
            return int(value)
        except ValueError:
            return _LEVEL_NAMES.get(value.lower(), 0)
    return None


def cpp_min_log_level(verbosity: int | None, environ=os.environ) -> int:
    """The C++ log level a run uses: the user's ``TF_CPP_MIN_LOG_LEVEL``, else one
    that follows ``--verbosity``, else :data:`DEFAULT_CPP_MIN_LOG_LEVEL`.

    Example:
        >>> cpp_min_log_level(None, {}), cpp_min_log_level(0, {}), cpp_min_log_level(-2, {})
        (1, 0, 2)
        >>> cpp_min_log_level(None, {"TF_CPP_MIN_LOG_LEVEL": "0"})
        0
    """
    if environ.get(_ENV, "").strip():
        try:
            return int(environ[_ENV])
        except ValueError:
            return 0  # TensorFlow reads an unparsable value as 0
    if verbosity is None:
        return DEFAULT_CPP_MIN_LOG_LEVEL
    return max(0, min(3, -verbosity))


@contextlib.contextmanager
def stderr_fd_silenced():
    """Points file descriptor 2 at a temporary file for the block, then back.

    What was written there is dropped, or written to the real stderr if the block
    raises (an import that fails says why). Does nothing when fd 2 is not open.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            with contextlib.suppress(OSError):
                os.write(2, captured.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def absl_logging_to_warnings() -> None:
    """absl's Python logs at WARNING and above, unless ``--verbosity`` was given (call
    after flag parsing)."""
    from absl import flags, logging

    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def quiet_logs(argv: Sequence[str] | None = None) -> int:
    """Sets ``TF_CPP_MIN_LOG_LEVEL`` (unless the user did) and silences third-party
    deprecation notices, unless the command line asks for logs; returns the C++ log level.

    Example (in an entry point, before TensorFlow is imported)::

        if quiet_logs(sys.argv) >= 1: ...   # TensorFlow's import lines are to be hidden
    """
    argv = sys.argv if argv is None else argv
    verbosity = requested_verbosity(argv)
    level = cpp_min_log_level(verbosity)
    if not os.environ.get(_ENV, "").strip():
        os.environ[_ENV] = str(level)
    if verbosity is None and not sys.warnoptions:
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category)
    return level


def quiet_tensorflow(argv: Sequence[str] | None = None) -> None:
    """Imports TensorFlow quietly unless the command line or the environment asks for logs."""
    argv = sys.argv if argv is None else argv
    level = quiet_logs(argv)
    if "tensorflow" not in sys.modules:
        if level >= 1:
            with stderr_fd_silenced():
                importlib.import_module("tensorflow")
        else:
            importlib.import_module("tensorflow")
    if requested_verbosity(argv) is None:
        logging.getLogger("tensorflow").addFilter(_not_a_deprecation_notice)


def _not_a_deprecation_notice(record: logging.LogRecord) -> bool:
    """False for the notices TensorFlow's ``deprecation`` module logs (tf.data's CounterV2
    inside tensorflow-datasets, ...), which its Python logger writes from that file."""
    return os.path.basename(record.pathname) != "deprecation.py"
