"""The models a command runs (vgg_tf.inference.models): a list, or one path alone, never split."""

import pytest

from vgg_tf.inference.models import load_models


def test_a_list_loads_each_model_in_order(tmp_path, make_workdir):
    first = make_workdir(tmp_path / "a")
    second = make_workdir(tmp_path / "b,c")  # a comma inside a path is the path's own
    loaded = load_models([str(first), second])
    assert [m.path for m in loaded] == [str(first / "model.keras"), str(second / "model.keras")]


def test_one_path_alone_is_one_model_and_is_not_split_at_commas(tmp_path, make_workdir):
    run = make_workdir(tmp_path / "b,c")
    assert [m.path for m in load_models(str(run))] == [str(run / "model.keras")]
    one, two = make_workdir(tmp_path / "one"), make_workdir(tmp_path / "two")
    with pytest.raises(ValueError, match=r"Cannot load a model from '.*one,.*two'"):
        load_models(f"{one},{two}")


def test_no_model_is_refused_naming_what_was_expected():
    with pytest.raises(ValueError, match="^No localisation net given; expected one or more"):
        load_models([], "localisation net")
