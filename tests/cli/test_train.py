"""bin/train's own flags: --progress reaches the training loop."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# bin/train with the training loop replaced by one that prints what it was given.
_STUBBED_TRAIN = """
import sys, types

loop = types.ModuleType("vgg_tf.training.loop")


class NonFiniteLossError(Exception):
    pass


def train_and_evaluate(config, workdir, **options):
    print("options:", sorted(options.items()))
    raise SystemExit(0)


loop.NonFiniteLossError = NonFiniteLossError
loop.train_and_evaluate = train_and_evaluate
sys.modules["vgg_tf.training.loop"] = loop
sys.argv = ["bin/train", *sys.argv[1:], "--workdir=unused"]
from vgg_tf.cli import entry

entry.train()
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, progress", [([], "auto"), (["--progress=none"], "none")], ids=["default", "none"]
)
def test_progress_flag_reaches_the_loop(flags, progress):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_STUBBED_TRAIN), *flags],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"('progress', {progress!r})" in result.stdout, result.stdout
