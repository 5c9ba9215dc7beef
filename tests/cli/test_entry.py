"""The entry points: --help answers without TensorFlow, and stays quiet where a command's
flags need it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vgg_tf.cli import entry

ROOT = Path(__file__).resolve().parents[2]


def test_asks_for_help_reads_absl_spellings():
    for argv in (
        ["bin/train", "--help"],
        ["bin/train", "--variant=A", "--helpshort"],
        ["bin/train", "-helpfull"],
        ["bin/train", "-?"],
        ["bin/train", "--help=true"],
    ):
        assert entry.asks_for_help(argv), argv
    for argv in (
        ["bin/train"],
        ["bin/train", "--nohelp"],
        ["bin/train", "--help=false"],
        ["bin/train", "--", "--help"],
        ["bin/train", "--config.help=1"],
    ):
        assert not entry.asks_for_help(argv), argv


def _help_of(command: str, *flags: str) -> subprocess.CompletedProcess:
    """Runs ``entry.<command>()`` with ``flags`` in a child; it prints the modules it imported
    that are heavy, after the usage."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.argv = ["bin/{command}", *{list(flags)!r}]
        from vgg_tf.cli import entry
        try:
            entry.{command}()
        except SystemExit:
            pass
        heavy = sorted(m for m in ("tensorflow", "keras", "vgg_tf.training.loop") if m in sys.modules)
        print("imported:", ",".join(heavy) or "-")
        """
    )
    # The environment of a user who set nothing (not the tests' TF_CPP_MIN_LOG_LEVEL).
    env = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")
    }
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("help_flag", ["--help", "--helpshort", "--helpfull"])
def test_train_help_imports_no_tensorflow_and_lists_the_recipe_fields(help_flag):
    result = _help_of("train", help_flag)
    assert result.stdout.splitlines()[-1] == "imported: -", result.stdout[-2000:] + result.stderr
    assert result.stderr == ""  # no CPU line: nothing is run
    assert "Recipe fields, with the values of recipe 'digits'" in result.stdout
    assert "  learning_rate = 0.01" in result.stdout
    assert "  batch_size = 32                # global, split over replicas" in result.stdout
    assert "--progress: <bar|lines|none>" in result.stdout


def test_help_lists_the_fields_of_the_recipe_named():
    result = _help_of("train", "--config=imagenet_s256", "--helpshort")
    assert "with the values of recipe 'imagenet_s256'" in result.stdout, result.stderr
    assert "  batch_size = 256 " in result.stdout and "  dataset = 'imagenet2012' " in result.stdout
    # --task localisation picks the localisation recipe as the default.
    result = _help_of("train", "--task=localisation", "--helpshort")
    assert "with the values of recipe 'localisation_digits'" in result.stdout, result.stderr


@pytest.mark.parametrize("command", ["summary", "import_weights"])
def test_help_of_other_light_commands_imports_no_tensorflow(command):
    result = _help_of(command, "--helpshort")
    assert result.stdout.splitlines()[-1] == "imported: -", result.stdout[-2000:] + result.stderr
    assert "--" in result.stdout and result.stderr == ""


@pytest.mark.slow
def test_help_of_a_command_whose_flags_need_tensorflow_stays_quiet():
    # bin/evaluate's flags list the protocols of modules that import TensorFlow.
    result = _help_of("evaluate", "--helpshort")
    assert "bin/evaluate: top-1/top-5 error" in result.stdout, result.stderr[-3000:]
    assert result.stderr == "", result.stderr[-3000:]


def test_help_into_a_closed_pipe_is_no_traceback():
    # `bin/train --help | head -1`: the reader has gone before the usage is written.
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "bin" / "train"), "--help"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child.stdout.close()
    stderr = child.stderr.read()
    assert child.wait(timeout=600) == 1
    assert stderr == "", stderr
