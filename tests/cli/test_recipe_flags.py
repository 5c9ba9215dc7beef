"""The recipe flags: a bad --config.<field> is one line naming the closest fields, and --help
lists the requested recipe's fields with their values."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ml_collections
import pytest

from vgg_tf.cli import recipe_flags
from vgg_tf.training import recipe as config_lib

ROOT = Path(__file__).resolve().parents[2]

# A recipe file taking an argument (--config=PATH:ARG) with a group of fields.
_NESTED_RECIPE = """
import ml_collections
from vgg_tf.configs import digits


def get_config(size):
    config = digits.get_config()
    config.recipe = "nested_" + size
    config.optim = ml_collections.ConfigDict({"beta": 0.5, "nesterov": False})
    return config
"""


def _nested() -> ml_collections.ConfigDict:
    config = config_lib.paper_recipe()
    config.optim = ml_collections.ConfigDict({"beta": 0.5, "nesterov": False})
    return config


def _refusal(config, *args: str, recipe: str = "digits") -> str:
    with pytest.raises(ValueError) as caught:
        recipe_flags.check_overrides(config, ["bin/train", *args], recipe)
    return str(caught.value)


def test_a_typo_names_the_closest_field():
    assert _refusal(config_lib.paper_recipe(), "--config.learning_rte=0.1") == (
        "--config.learning_rte: recipe 'digits' has no field 'learning_rte'; "
        "did you mean learning_rate?"
    )
    # Several close ones, best first; a boolean's --noconfig.<field> spelling too.
    assert _refusal(config_lib.paper_recipe(), "--noconfig.scale_mix").endswith(
        "has no field 'scale_mix'; did you mean scale_min or scale_max?"
    )


def test_a_typo_in_a_group_names_the_closest_field_of_that_group():
    assert _refusal(_nested(), "--config.optim.bta", "1", recipe="mine.py:small") == (
        "--config.optim.bta: recipe 'mine.py:small' has no field 'optim.bta'; "
        "did you mean optim.beta?"
    )
    assert _refusal(_nested(), "--config.optim.beta.x=1") == (
        "--config.optim.beta.x: optim.beta of recipe 'digits' is a value, not a group of fields."
    )


def test_a_name_close_to_no_field_lists_them_all():
    message = _refusal(config_lib.paper_recipe(), "--config.zzz=1")
    fields = ", ".join(sorted(config_lib.paper_recipe().keys()))
    assert message == f"--config.zzz: recipe 'digits' has no field 'zzz'; expected one of {fields}."


def test_known_fields_pass():
    argv = ["bin/train", "--config.learning_rate=0.1", "--noconfig.flip", "--config.optim.beta=1"]
    recipe_flags.check_overrides(_nested(), argv, "digits")


def test_requested_recipe_and_its_argument(tmp_path):
    assert recipe_flags.requested_recipe(["bin/train"], "digits") == "digits"
    argv = ["bin/train", "--config=imagenet_s256", "-config", "mine.py:small", "--", "--config=x"]
    assert recipe_flags.requested_recipe(argv, "digits") == "mine.py:small"
    (tmp_path / "mine.py").write_text(_NESTED_RECIPE)
    config = recipe_flags.load_recipe(f"{tmp_path / 'mine.py'}:small")
    assert config.recipe == "nested_small" and config.optim.beta == 0.5
    with pytest.raises(ValueError, match="does not load: TypeError: get_config.. missing 1"):
        recipe_flags.load_recipe(str(tmp_path / "mine.py"))


def test_fields_help_lists_every_field_once_with_its_value_and_note():
    config = _nested()
    text = recipe_flags.fields_help(config, "mine")
    lines = text.splitlines()
    assert lines[0].startswith("Recipe fields, with the values of recipe 'mine'")
    listed = [line.split(" = ")[0].strip() for line in lines if " = " in line]
    assert sorted(listed) == sorted(config.keys())
    assert listed[:3] == ["recipe", "task", "head"] and listed[-1] == "optim"  # added: last
    assert "  weight_decay = 0.0005" in text and "# Caffe meaning" in text
    assert "  -- Optimisation --" in lines
    assert max(map(len, lines)) <= 100


def test_usage_follows_config():
    doc = recipe_flags.usage("DOC", argv=["bin/train", "--config", "imagenet_s384"])
    assert doc.startswith("DOC\n\nRecipe fields, with the values of recipe 'imagenet_s384'")
    assert "  learning_rate = 0.001" in doc
    # A recipe that does not load: the doc alone (parsing --config says why).
    assert recipe_flags.usage("DOC", argv=["bin/train", "--config=nope"]) == "DOC"


def _user_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}


@pytest.mark.slow
@pytest.mark.parametrize(
    "command, flags, line",
    [
        (
            "train",
            ["--config=mine.py:small", "--config.optim.bta=1"],
            "error: --config.optim.bta: recipe 'mine.py:small' has no field 'optim.bta'; "
            "did you mean optim.beta?",
        ),
        (
            "train",
            ["--config=mine.py", "--config.epochs=1"],
            "error: recipe 'mine.py' does not load: TypeError: get_config() missing 1 required "
            "positional argument: 'size'",
        ),
        (
            "train",
            ["--config.epochs=1", "--config=imagenet_s256"],
            "error: --config.epochs=1 comes before --config=imagenet_s256; give --config first, "
            "then the --config.<field> overrides of that recipe.",
        ),
        (
            "tune",
            ["--config.lerning_rate=0.1"],
            "error: --config.lerning_rate: recipe 'digits' has no field 'lerning_rate'; "
            "did you mean learning_rate?",
        ),
    ],
    ids=["nested-field-of-a-recipe-with-an-argument", "missing-argument", "override-first", "tune"],
)
def test_bad_recipe_flags_are_one_line(tmp_path, command, flags, line):
    (tmp_path / "mine.py").write_text(textwrap.dedent(_NESTED_RECIPE))
    result = subprocess.run(
        [sys.executable, str(ROOT / "bin" / command), *flags],
        cwd=tmp_path,
        env=_user_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    # The CPU line, then the error.
    assert result.stderr.splitlines()[1:] == [line], result.stderr[-3000:]
