"""Recipes (vgg_tf.training.recipe): the paper's numbers, the packaged recipe files, and what
validate_config refuses."""

import runpy
import subprocess
import sys
import textwrap

import pytest

from vgg_tf.training import recipe as config_lib


def _load(name):
    return runpy.run_path(config_lib.recipe_path(name))["get_config"]()


def test_paper_recipe_numbers():
    c = config_lib.paper_recipe()
    assert (c.batch_size, c.momentum, c.weight_decay, c.dropout) == (256, 0.9, 5e-4, 0.5)
    assert (c.learning_rate, c.lr_drop_factor, c.lr_max_drops, c.epochs) == (0.01, 0.1, 3, 74)
    assert (c.crop_size, c.scale_min, c.scale_max, c.kernel_initializer) == (224, 256, 256, "paper")


@pytest.mark.parametrize(
    "name, scales, lr",
    [
        ("imagenet_s256", (256, 256), 0.01),
        ("imagenet_s384", (384, 384), 1e-3),
        ("imagenet_jitter", (256, 512), 1e-3),
        ("digits", (32, 48), 0.01),
    ],
)
def test_recipe_files_load_and_validate(name, scales, lr):
    c = _load(name)
    if c.init_from_required:  # the fine-tuning recipes need their start point
        c.init_from = "workdirs/start"
    config_lib.validate_config(c)
    assert (c.scale_min, c.scale_max) == scales
    assert c.learning_rate == pytest.approx(lr)


@pytest.mark.parametrize(
    "name, expects", [("imagenet_s384", "S = 256"), ("imagenet_jitter", "S = 384")]
)
def test_fine_tuning_recipes_refuse_to_start_from_scratch(name, expects):
    with pytest.raises(
        ValueError, match=f"Recipe '{name}' fine-tunes .* from the {expects} run.*--init_from"
    ):
        config_lib.validate_config(_load(name))


def test_recipes_ship_inside_the_package():
    assert set(config_lib.recipe_names()) >= {
        "digits",
        "imagenet_s256",
        "imagenet_s384",
        "imagenet_jitter",
    }
    assert config_lib.recipe_path("imagenet_s384.py") == config_lib.recipe_path("imagenet_s384")
    # The message lists every packaged recipe, in order.
    with pytest.raises(ValueError, match="'nope'.*one of " + ", ".join(config_lib.recipe_names())):
        config_lib.recipe_path("nope")


def test_default_config_is_the_digits_recipe():
    assert config_lib.default_config_path().endswith("vgg_tf/configs/digits.py")
    assert _load("digits").dataset == "digits"


def test_validate_config_names_bad_fields():
    config = config_lib.paper_recipe()
    for field, value, message in [
        ("variant", "Z", "'Z'.*A, A-LRN"),
        ("strategy", "horovod", "'horovod'.*default, mirrored, multi_worker"),
        ("learning_rate", -0.1, "learning_rate=-0.1"),
        ("scale_max", 200, "scale_min=256 > scale_max=200"),
        ("kernel_initializer", "lecun", "kernel_initializer 'lecun'.*paper, glorot, he"),
        ("new_layer_initializer", "x", "new_layer_initializer 'x'"),
        ("warmup_epochs", -1.0, "warmup_epochs=-1.0"),
        ("max_pixels", -5, "max_pixels=-5"),
        ("max_aspect_ratio", 0.5, "max_aspect_ratio=0.5"),
    ]:
        bad = config_lib.paper_recipe()
        bad[field] = value
        with pytest.raises(ValueError, match=message):
            config_lib.validate_config(bad)
    config_lib.validate_config(config)
    # 0 turns an image limit off.
    config.max_pixels, config.max_aspect_ratio = 0, 0
    config_lib.validate_config(config)


def test_recipes_load_without_tensorflow():
    """The recipe schema and the packaged recipes import no TensorFlow or Keras: the
    commands' --help lists the fields and flag choices from them at once."""
    script = textwrap.dedent(
        """
        import runpy, sys
        from vgg_tf.training import recipe
        for name in recipe.recipe_names():
            runpy.run_path(recipe.recipe_path(name))["get_config"]()
        recipe.field_notes()
        heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
        assert not heavy, f"imported {heavy}"
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_choices_live_in_one_place():
    """The flags' choices come from the TF-free schema; the modules that use them import them."""
    from vgg_tf.nets import builder, specs
    from vgg_tf.training import distribute, tasks

    assert tasks.TASKS is config_lib.TASKS and tasks.HEADS is config_lib.HEADS
    assert distribute.STRATEGIES is config_lib.STRATEGIES
    assert builder.KERNEL_INITIALIZERS is specs.KERNEL_INITIALIZERS


def test_field_notes_cover_paper_recipe_in_order():
    notes = config_lib.field_notes()
    assert [n.field for n in notes][:3] == ["recipe", "task", "head"]
    assert {n.field for n in notes} == set(config_lib.paper_recipe().keys())
    by_field = {n.field: n for n in notes}
    assert by_field["batch_size"] == config_lib.FieldNote(
        "batch_size", "Optimisation", "global, split over replicas"
    )
    # A comment above a field is its note when none is beside it; section lines are not notes.
    assert by_field["manual_dir"].note == "where TFDS finds ImageNet's downloaded archives"
    assert by_field["variant"].section == "Network" and "Network" not in by_field["variant"].note
    assert [n.section for n in notes].count("") == 3  # recipe, task, head
