"""The run directory (vgg_tf.workdir): config.json, "another run lives here", test scales,
mean RGB, atomic writes, one run per workdir, and loading a trained model; on local paths
and on TensorFlow's in-memory filesystem (ram://), as on gs:// or s3://."""

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from vgg_tf import workdir
from vgg_tf.data import constants
from vgg_tf.training import recipe as config_lib
from vgg_tf.weights import loading
from vgg_tf.weights.trained import TrainedModel, recorded_mean_rgb

MEAN = (120.0, 110.0, 100.0)


# --- config.json -------------------------------------------------------------------------


def test_config_json_round_trip(tmp_path, tiny_run_config):
    assert workdir.read_config(tmp_path) is None  # no run here yet
    recorded = tiny_run_config(mean_rgb=list(MEAN), note="x")
    workdir.write_config(tmp_path, recorded)
    assert workdir.read_config(tmp_path) == recorded
    assert json.loads((tmp_path / workdir.CONFIG_FILE).read_text()) == recorded
    assert os.listdir(tmp_path) == [workdir.CONFIG_FILE]  # no temporary file left
    # The recipe's own JSON is what a run records: it reads back field for field.
    recipe = config_lib.paper_recipe()
    workdir.write_config(tmp_path, json.loads(recipe.to_json()))
    assert workdir.read_config(tmp_path) == recipe.to_dict() | {
        "mean_rgb": None,
        "data_dir": None,
        "manual_dir": None,
    }


def test_prepare_accepts_a_new_or_same_run_and_refuses_another(tmp_path):
    config = config_lib.paper_recipe()
    assert workdir.prepare(str(tmp_path), config) is None  # a new workdir
    recorded = {
        **json.loads(config.to_json()),
        "num_classes": 10,
        "mean_rgb": [1.0, 2.0, 3.0],
        "class_names": ["a"],
    }
    workdir.write_config(tmp_path, recorded)
    assert workdir.prepare(str(tmp_path), config) == recorded  # the same run: resumed
    config.learning_rate, config.variant = 0.5, "E"
    with pytest.raises(ValueError) as refused:
        workdir.prepare(str(tmp_path), config)
    message = str(refused.value)
    assert "holds a run with other settings" in message and "--overwrite" in message
    assert "learning_rate: 0.01 -> 0.5" in message and "variant: 'A' -> 'E'" in message
    assert workdir.read_config(tmp_path) == recorded  # nothing changed on a refusal


def test_workdir_check_ignores_fields_the_recipe_no_longer_has(tmp_path):
    """...nor those it gained since the run started."""
    config = config_lib.paper_recipe()
    # Recorded by an older version: a field the recipe no longer has, one it did not have yet.
    recorded = {**json.loads(config.to_json()), "eval_every_epochs": 1, "num_classes": 10}
    del recorded["warmup_epochs"]
    workdir.write_config(tmp_path, recorded)
    assert workdir.prepare(str(tmp_path), config, overwrite=False) == recorded
    config.epochs = 3
    with pytest.raises(ValueError, match="epochs: 74 -> 3"):
        workdir.prepare(str(tmp_path), config, overwrite=False)


def test_execution_fields_and_recorded_statistics_may_differ(tmp_path):
    config = config_lib.paper_recipe()
    recorded = {**json.loads(config.to_json()), "mean_rgb": [1.0, 2.0, 3.0], "num_classes": 10}
    workdir.write_config(tmp_path, recorded)
    config.strategy, config.steps_per_execution, config.jit_compile = "mirrored", 8, True
    execution = config_lib.EXECUTION_FIELDS
    # Where and how fast, not what: ignored when the caller says so (the trainer does).
    assert workdir.prepare(str(tmp_path), config, ignore=execution) == recorded
    with pytest.raises(ValueError, match="strategy: 'default' -> 'mirrored'"):
        workdir.prepare(str(tmp_path), config)
    config.mean_rgb = (1.0, 2.0, 3.0)  # compared only when the recipe sets one
    assert workdir.prepare(str(tmp_path), config, ignore=execution) == recorded
    config.mean_rgb = (9.0, 2.0, 3.0)
    with pytest.raises(ValueError, match=r"mean_rgb: \[1.0, 2.0, 3.0\] -> \[9.0, 2.0, 3.0\]"):
        workdir.prepare(str(tmp_path), config, ignore=execution)


def test_config_differences_compares_nested_fields_both_sides_have():
    old = {"lr": 0.1, "space": {"dropout": [0, 0.5], "wd": 1}, "gone": 1, "strategy": "a"}
    new = {"lr": 0.1, "space": {"dropout": [0, 0.3], "wd": 1}, "added": 2, "strategy": "b"}
    assert workdir.config_differences(old, new, ignore=("strategy",)) == [
        "space.dropout: [0, 0.5] -> [0, 0.3]"
    ]
    with pytest.raises(ValueError, match=r"holds a search with other settings \(space.dropout"):
        workdir.check_same_run("d", old, new, "a search", ignore=("strategy",))
    workdir.check_same_run("d", None, new, "a search")  # nothing recorded: nothing to refuse
    workdir.check_same_run("d", old, {**old, "strategy": "b"}, "a run", ignore=("strategy",))
    with pytest.raises(ValueError, match="strategy: 'a' -> 'b'"):
        workdir.check_same_run("d", old, {**old, "strategy": "b"}, "a run")


def test_overwrite_removes_the_run_files_and_nothing_else(tmp_path, make_workdir):
    make_workdir(tmp_path)
    for name in ("metrics.csv", "learning_curves.png", "notes.txt"):
        (tmp_path / name).write_text("x")
    for name in ("checkpoints", "logs", "workers", "data"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text("x")
    assert workdir.prepare(str(tmp_path), config_lib.paper_recipe(), overwrite=True) is None
    assert sorted(os.listdir(tmp_path)) == ["data", "notes.txt"]


def test_a_run_never_starts_from_inside_its_own_workdir(tmp_path, ram_dir):
    run = tmp_path / "run"
    (run / "sub").mkdir(parents=True)
    for inside in (run, run / "model.keras", run / "sub" / "model.keras"):
        inside.touch(exist_ok=True)
        with pytest.raises(ValueError, match="inside this run's workdir.*new directory"):
            workdir.check_outside(str(inside), str(run))
    (tmp_path / "run2").mkdir()
    (tmp_path / "run2" / "model.keras").touch()
    workdir.check_outside(str(tmp_path / "run2" / "model.keras"), str(run))  # a sibling
    workdir.check_outside("", str(run))  # no start point
    # On a remote filesystem too.
    remote = f"{ram_dir}/run"
    workdir.save_model(_small_model(), f"{remote}/model.keras")
    with pytest.raises(ValueError, match="inside this run's workdir"):
        workdir.check_outside(f"{remote}/model.keras", remote)
    workdir.check_outside(f"{remote}/model.keras", f"{ram_dir}/other")


def test_a_published_name_is_not_a_path_inside_the_workdir(tmp_path, monkeypatch):
    """``--init_from imagenet-D --workdir .`` trains from the published weights: the name is
    not a file of the workdir; a file of that name there is (it is what a run would read)."""
    monkeypatch.chdir(tmp_path)
    for run in (".", str(tmp_path)):
        workdir.check_outside("imagenet-D", run)
        workdir.check_outside("no_such_model.keras", run)  # nothing there to lose
    (tmp_path / "imagenet-D").mkdir()
    with pytest.raises(ValueError, match="'imagenet-D' is inside this run's workdir '.'"):
        workdir.check_outside("imagenet-D", ".")


def test_default_run_name():
    assert workdir.default_run_name({"dataset": "/data/photos/", "variant": "E"}) == "photos_E"
    assert workdir.default_run_name({"dataset": "digits", "variant": "A-LRN"}) == "digits_A-LRN"


# --- Writing whole files -------------------------------------------------------------------


def test_atomic_path_leaves_the_old_file_on_an_error(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), workdir.atomic_path(target) as tmp:
        assert tmp.startswith(str(tmp_path / "model.tmp-")) and tmp.endswith(".keras")
        with open(tmp, "w") as f:
            f.write("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["model.keras"]
    with workdir.atomic_path(target) as tmp:
        with open(tmp, "w") as f:
            f.write("new")
        assert target.read_text() == "old"  # not before the block succeeds
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["model.keras"]
    with workdir.atomic_path(tmp_path / "new" / "folder" / "a.json") as tmp:  # made when missing
        Path(tmp).write_text("{}")
    assert os.listdir(tmp_path / "new" / "folder") == ["a.json"]


def test_write_json_and_save_model_are_whole_or_nothing(tmp_path, tiny_model, monkeypatch):
    workdir.write_config(tmp_path, {"lr": 0.1})
    with pytest.raises(TypeError):
        workdir.write_config(tmp_path, {"lr": 0.2, "bad": object()})  # fails midway through
    assert workdir.read_config(tmp_path) == {"lr": 0.1}
    assert os.listdir(tmp_path) == [workdir.CONFIG_FILE]

    model = tiny_model()
    path = tmp_path / workdir.MODEL_FILE
    workdir.save_model(model, path)
    before = path.read_bytes()

    def fail_midway(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        workdir.save_model(tiny_model(seed=1), path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [workdir.CONFIG_FILE, workdir.MODEL_FILE]


# --- Test scales and mean RGB ---------------------------------------------------------------


@pytest.mark.parametrize(
    "config, single, multi",
    [
        (dict(crop_size=224, scale_min=256, scale_max=256), (256,), (224, 256, 288)),
        (dict(crop_size=224, scale_min=384, scale_max=384), (384,), (352, 384, 416)),
        (dict(crop_size=224, scale_min=256, scale_max=512), (384,), (256, 384, 512)),
        (dict(crop_size=32, scale_min=32, scale_max=48), (40,), (32, 40, 48)),
        (dict(crop_size=32, scale_min=32, scale_max=32), (32,), (32, 64)),  # 0 -> 32, deduplicated
    ],
)
def test_scales_read_from_training_config(config, single, multi):
    trained = TrainedModel(None, config, "x", "x")
    assert trained.single_scale() == single
    assert trained.multi_scales() == multi
    assert (workdir.single_test_scale(config),) == single
    assert workdir.multi_test_scales(config) == multi


def test_single_scale_q():
    assert workdir.single_test_scale({"scale_min": 256, "scale_max": 512}) == 384
    assert workdir.single_test_scale({"scale_min": 384, "scale_max": 384}) == 384
    # Never below the crop (a recipe with S below it is refused; a hand-made config is not).
    assert workdir.single_test_scale({"scale_min": 20, "scale_max": 30, "crop_size": 32}) == 32


def test_scales_without_training_scales_ask_for_them():
    for config in ({}, {"scale_min": 256}, {"scale_min": None, "scale_max": 256}):
        with pytest.raises(ValueError, match="No training scales for 'here'.*--scales"):
            workdir.single_test_scale(config, "'here'")
        with pytest.raises(ValueError, match="config.json with scale_min and scale_max"):
            workdir.multi_test_scales(config)


def test_mean_rgb_is_the_recorded_one_else_imagenets():
    assert recorded_mean_rgb({}) == constants.IMAGENET_MEAN_RGB
    assert recorded_mean_rgb({"mean_rgb": None}) == constants.IMAGENET_MEAN_RGB
    recorded = recorded_mean_rgb({"mean_rgb": [1, 2, 3]})
    assert recorded == (1.0, 2.0, 3.0) and all(isinstance(v, float) for v in recorded)
    assert TrainedModel(None, {}, "x", "x").mean_rgb == constants.IMAGENET_MEAN_RGB
    assert TrainedModel(None, {"mean_rgb": list(MEAN)}, "x", "x").mean_rgb == MEAN


# --- Trained models --------------------------------------------------------------------------


def test_load_model(tmp_path, make_workdir, tiny_model):
    model = tiny_model()
    config = dict(
        variant="A",
        crop_size=32,
        scale_min=32,
        scale_max=48,
        mean_rgb=list(MEAN),
        class_names=[f"c{i}" for i in range(10)],
    )
    make_workdir(tmp_path, model, config)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    for path in (tmp_path, tmp_path / "model.keras", str(tmp_path)):
        trained = loading.load_model(path)
        assert trained.config == config and trained.crop_size == 32
        assert trained.mean_rgb == MEAN and trained.class_names[3] == "c3"
        assert trained.name == f"A ({tmp_path.name})"
        assert trained.path == str(tmp_path / "model.keras")
        assert trained.num_classes == 10 and trained.flip
        assert trained.single_scale() == (40,) and trained.multi_scales() == (32, 40, 48)
        np.testing.assert_allclose(trained.model(x), model(x), atol=1e-6)
    with pytest.raises(ValueError, match="expected a training workdir holding model.keras"):
        loading.load_model(tmp_path / "missing")
    (tmp_path / "weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="or a .keras file"):
        loading.load_model(tmp_path / "weights.h5")


def test_load_model_from_a_remote_workdir(ram_dir, tiny_model):
    model = tiny_model()
    config = dict(variant="A", crop_size=32, scale_min=32, scale_max=48, mean_rgb=list(MEAN))
    run = f"{ram_dir}/runs/digits_A"
    workdir.save_model(model, f"{run}/{workdir.MODEL_FILE}")
    workdir.write_config(run, config)
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype("float32")
    for path in (run, f"{run}/", f"{run}/model.keras"):
        trained = loading.load_model(path)
        assert trained.config == config and trained.path == f"{run}/model.keras"
        assert trained.name == "A (digits_A)" and trained.multi_scales() == (32, 40, 48)
        np.testing.assert_allclose(trained.model(x), model(x), atol=1e-6)
    assert loading.recorded_config(run) == config
    assert loading.origin_of(run)["path"] == f"{run}/model.keras"
    with pytest.raises(ValueError, match="Cannot load a model from 'ram://.*/missing'"):
        loading.load_model(f"{ram_dir}/missing")


def test_a_keras_file_without_config_loads_with_what_the_model_says(tmp_path, tiny_model):
    model = tiny_model(classes=7, crop_size=64)
    workdir.save_model(model, tmp_path / "imported.keras")
    trained = loading.load_model(tmp_path / "imported.keras")
    assert trained.config == {} and trained.class_names is None
    assert trained.crop_size == 64 and trained.num_classes == 7
    assert trained.mean_rgb == constants.IMAGENET_MEAN_RGB and trained.flip
    assert trained.name == f"{model.name} ({tmp_path.name})"
    with pytest.raises(ValueError, match="config.json with scale_min and scale_max"):
        trained.single_scale()


def test_a_model_trained_without_flips_says_so(tmp_path, make_workdir):
    make_workdir(tmp_path, flip=False)
    assert loading.load_model(tmp_path).flip is False


# --- One run per workdir --------------------------------------------------------------

_HOLD = """
import sys, time
from vgg_tf import workdir
with workdir.exclusive(sys.argv[1], "a test run"):
    print("held", flush=True)
    time.sleep(120)
"""


def _holder(tmp_path, subprocess_env):
    """A child process holding ``tmp_path / 'run'``; returns it once the lock is taken."""
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    assert child.stdout.readline().strip() == "held"
    return child


@pytest.mark.slow
def test_a_second_process_is_refused_at_once_naming_the_holder(tmp_path, subprocess_env):
    child = _holder(tmp_path, subprocess_env)
    try:
        with (
            pytest.raises(
                workdir.WorkdirBusyError, match=rf"in use by a test run \(host .*pid {child.pid}"
            ),
            workdir.exclusive(tmp_path / "run"),
        ):
            pass
    finally:
        child.kill()
        child.wait()


@pytest.mark.slow
def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path, subprocess_env):
    child = _holder(tmp_path, subprocess_env)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert (tmp_path / "run" / workdir.LOCK_FILE).exists()  # the file stays; the lock does not
    with workdir.exclusive(tmp_path / "run"):
        pass


def test_temporary_names_are_unique_to_the_process(tmp_path):
    with workdir.atomic_path(tmp_path / "model.keras") as tmp:
        assert tmp.endswith(".keras") and str(os.getpid()) in os.path.basename(tmp)
        Path(tmp).write_text("x")
    assert (tmp_path / "model.keras").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_a_snapshot_puts_back_only_what_was_added(tmp_path):
    """A refused run removes what it added: the new workdir and the empty folders above it,
    or in a workdir that existed the names it added; never what was there, nor a
    neighbour another run made meanwhile."""
    new = tmp_path / "runs" / "a" / "run"
    before = workdir.Snapshot.take(new)
    with workdir.exclusive(new):
        (new / "config.json").write_text("{}")
        (tmp_path / "runs" / "other").mkdir()  # another run, started beside it
        before.put_back()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["other"]

    kept = tmp_path / "kept"
    (kept / "checkpoints").mkdir(parents=True)
    (kept / "notes.txt").write_text("the user's")
    before = workdir.Snapshot.take(kept)
    with workdir.exclusive(kept):
        (kept / "logs").mkdir()
        (kept / "checkpoints" / "inside").write_text("left: inside what was there")
        before.put_back()
    assert sorted(p.name for p in kept.iterdir()) == ["checkpoints", "notes.txt"]


def test_temporaries_of_dead_processes_are_removed_and_no_others(tmp_path):
    """Issue 20: ``.tmp-*`` version folders stayed in an export base after SIGTERM (and a
    killed run's temporary files in its workdir)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead, host = int(child.stdout), socket.gethostname()
    litter = [f"model.tmp-{host}-{dead}.keras", f".tmp-{host}-{dead}-3-k2j_x9a"]
    kept = [
        f"config.tmp-{host}-{os.getpid()}.json",  # a live process's (this one)
        f".tmp-elsewhere-{dead}-4-abc",  # another host's: its process may be alive
        ".tmp-5-abcdefgh",  # no tag: whose it is cannot be told
        "model.keras",
    ]
    for name in litter + kept:
        if name.startswith(".tmp"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "saved_model.pb").write_bytes(b"half")
        else:
            (tmp_path / name).write_text("x")
    assert workdir.remove_dead_temporaries(tmp_path) == sorted(litter)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


# --- Remote workdirs (TensorFlow's in-memory filesystem, as gs:// or s3://) ---------------


def _small_model():
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="dense")])


def _read(path):
    with tf.io.gfile.GFile(path) as f:
        return f.read()


def _write(path, text):
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(text)


def test_atomic_path_renames_into_place_on_a_remote_filesystem(ram_dir, tmp_path, monkeypatch):
    target = f"{ram_dir}/run/metrics.csv"
    with workdir.atomic_path(target) as tmp:
        assert tmp.startswith(f"{ram_dir}/run/metrics.tmp-") and tmp.endswith(".csv")
        _write(tmp, "old")
        assert not tf.io.gfile.exists(target)  # not before the block succeeds
    assert _read(target) == "old" and tf.io.gfile.listdir(f"{ram_dir}/run") == ["metrics.csv"]
    # Its folder is made (as a folder: ram:// lists and removes only those).
    assert tf.io.gfile.listdir(ram_dir) == ["run"]
    with pytest.raises(RuntimeError, match="disk full"), workdir.atomic_path(target) as tmp:
        _write(tmp, "half of the new")
        raise RuntimeError("disk full")
    assert _read(target) == "old" and tf.io.gfile.listdir(f"{ram_dir}/run") == ["metrics.csv"]
    with workdir.atomic_path(target) as tmp:
        _write(tmp, "new")
    assert _read(target) == "new" and tf.io.gfile.listdir(f"{ram_dir}/run") == ["metrics.csv"]
    # A file at the filesystem's root: nothing made on the local disk ("ram:/" as a folder).
    monkeypatch.chdir(tmp_path)
    workdir.write_json(f"{ram_dir}.json", {"lr": 0.1})
    assert _read(f"{ram_dir}.json") and not list(tmp_path.iterdir())
    tf.io.gfile.remove(f"{ram_dir}.json")


def test_config_and_model_round_trip_on_a_remote_filesystem(ram_dir, tiny_run_config):
    run = f"{ram_dir}/runs/run"
    assert workdir.read_config(run) is None
    recorded = tiny_run_config(mean_rgb=list(MEAN))
    workdir.write_config(run, recorded)
    assert workdir.read_config(run) == recorded
    with pytest.raises(TypeError):
        workdir.write_config(run, {"lr": 0.2, "bad": object()})
    assert workdir.read_config(run) == recorded  # whole or not at all
    model = _small_model()
    workdir.save_model(model, f"{run}/{workdir.MODEL_FILE}")
    assert sorted(tf.io.gfile.listdir(run)) == [workdir.CONFIG_FILE, workdir.MODEL_FILE]
    loaded = keras.models.load_model(f"{run}/{workdir.MODEL_FILE}")
    x = np.ones((1, 2), "float32")
    np.testing.assert_allclose(loaded(x), model(x))


def test_a_snapshot_puts_back_a_remote_workdir(ram_dir):
    """A refused run on gs:// or s3:// leaves the bucket as it found it, as on a disk."""
    new = f"{ram_dir}/runs/a/run"
    tf.io.gfile.makedirs(f"{ram_dir}/kept")
    before = workdir.Snapshot.take(new)
    assert before.created == f"{ram_dir}/runs"
    workdir.write_config(new, {"lr": 0.1})
    tf.io.gfile.makedirs(f"{new}/logs")
    _write(f"{new}/logs/events", "x")
    tf.io.gfile.makedirs(f"{ram_dir}/runs/other")  # another run, started beside it
    before.put_back()
    assert not tf.io.gfile.exists(f"{ram_dir}/runs/a")
    assert tf.io.gfile.listdir(f"{ram_dir}/runs") == ["other"]
    assert sorted(tf.io.gfile.listdir(ram_dir)) == ["kept", "runs"]

    kept = f"{ram_dir}/kept"
    tf.io.gfile.makedirs(f"{kept}/checkpoints")
    _write(f"{kept}/notes.txt", "the user's")
    before = workdir.Snapshot.take(kept)
    assert before.created is None and before.entries == {"checkpoints", "notes.txt"}
    workdir.write_config(kept, {"lr": 0.1})
    tf.io.gfile.makedirs(f"{kept}/logs")
    _write(f"{kept}/checkpoints/inside", "left: inside what was there")
    before.put_back()
    assert sorted(tf.io.gfile.listdir(kept)) == ["checkpoints", "notes.txt"]
    assert _read(f"{kept}/notes.txt") == "the user's"

    # A workdir whose every folder is new goes with them (nothing of the test's is left).
    fresh = f"ram://{uuid.uuid4().hex}/run"
    before = workdir.Snapshot.take(fresh)
    workdir.write_config(fresh, {"lr": 0.1})
    before.put_back()
    assert not tf.io.gfile.exists(fresh) and not tf.io.gfile.exists(before.created)


def test_overwrite_removes_a_remote_runs_files_and_nothing_else(ram_dir):
    run = f"{ram_dir}/run"
    workdir.write_config(run, {"lr": 0.1})
    for name in ("metrics.csv", "notes.txt"):
        _write(f"{run}/{name}", "x")
    for name in ("checkpoints", "logs", "data"):
        tf.io.gfile.makedirs(f"{run}/{name}")
        _write(f"{run}/{name}/f", "x")
    workdir.clear_run(run)
    assert sorted(tf.io.gfile.listdir(run)) == ["data", "notes.txt"]
    assert _read(f"{run}/data/f") == "x"


def test_temporaries_of_dead_processes_are_removed_from_a_remote_folder(ram_dir):
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead, host = int(child.stdout), socket.gethostname()
    litter = [f"model.tmp-{host}-{dead}.keras", f".tmp-{host}-{dead}-3-k2j_x9a"]
    kept = [f"config.tmp-{host}-{os.getpid()}.json", f".tmp-elsewhere-{dead}-4-abc", "1"]
    for name in litter + kept:
        if name.startswith(".tmp") or name == "1":
            tf.io.gfile.makedirs(f"{ram_dir}/{name}")
            _write(f"{ram_dir}/{name}/saved_model.pb", "half")
        else:
            _write(f"{ram_dir}/{name}", "x")
    assert workdir.remove_dead_temporaries(ram_dir) == sorted(litter)
    assert sorted(tf.io.gfile.listdir(ram_dir)) == sorted(kept)
    assert not tf.io.gfile.exists(f"{ram_dir}/{litter[1]}/saved_model.pb")
    assert workdir.remove_dead_temporaries(f"{ram_dir}/missing") == []
