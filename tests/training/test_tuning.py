"""Hyper-parameter search: space and recipe mapping, resuming, the CLI, chief/worker mode."""

import importlib.util
import json
import os
import signal
import subprocess
import time
import types

import keras_tuner
import numpy as np
import pytest

from vgg_tf.training import loop as train
from vgg_tf.training import recipe as config_lib
from vgg_tf.training import search_space
from vgg_tf.training import tuning as tune
from vgg_tf.training.checkpoints import Preempted

# A tiny net on the built-in digits, 1 epoch a trial: seconds per trial on one core.
TINY_FLAGS = [
    "--config.width_multiplier=0.0625",
    "--config.checkpoint_every_steps=5",
    "--config.warmup_epochs=0",
    "--epochs=1",
    "--batch_sizes=32,64",
    "--scale_ranges=32-32,32-40",
    "--inits=glorot",
    "--learning_rate_range=0.005,0.05",
]


def _recipe(**changes):
    config = config_lib.paper_recipe()
    config.update(
        dict(
            dataset="digits",
            crop_size=32,
            scale_min=32,
            scale_max=48,
            batch_size=64,
            epochs=8,
            kernel_initializer="glorot",
        )
    )
    config.update(changes)
    return config


class FakeTrain:
    """Stands in for train.train_and_evaluate: records each call, scores by learning rate."""

    def __init__(self, interrupt_at=None, interruption=KeyboardInterrupt):
        self.calls = []
        self.interrupt_at = interrupt_at
        self.interruption = interruption

    def __call__(self, config, workdir, strategy=None):
        self.calls.append((config, workdir))
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise self.interruption  # like a kill: keras-tuner does not catch it
        error = abs(config.learning_rate - 0.02)
        return {
            "val_top1_error": error,
            "val_top5_error": error / 2,
            "val_loss": 1.0,
            "epochs": config.epochs,
            "run_config": {},
        }


def _trials(project_dir):
    trials = {}
    for name in sorted(os.listdir(project_dir)):
        path = os.path.join(project_dir, name, "trial.json")
        if name.startswith("trial_") and os.path.exists(path):
            with open(path) as f:
                trial = json.load(f)
            trials[trial["trial_id"]] = trial
    return trials


def _table(stdout):
    """Header and rows of the trials table bin/tune prints at the end."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("trial  status"))
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return lines[start].split(), [line.split() for line in lines[start + 1 : end]]


@pytest.fixture
def tune_command(bin_command, tfds_dir):
    """``command(directory, *flags)``: bin/tune's argv for project "p" on the digits."""

    def command(directory, *flags):
        return bin_command(
            "tune", f"--directory={directory}", f"--data_dir={tfds_dir}", "--project_name=p", *flags
        )

    return command


@pytest.fixture
def tune_run(tune_command, subprocess_env):
    """``run(directory, *flags, timeout=600, check=True, env=None)``: bin/tune to the end."""

    def run(directory, *flags, timeout=600, check=True, env=None):
        result = subprocess.run(
            tune_command(directory, *flags),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env or subprocess_env(),
        )
        if check:
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-4000:]
        return result

    return run


# --- Space and recipe ------------------------------------------------------


def test_default_space_surrounds_the_recipe():
    space = search_space.default_space(_recipe())
    assert space.learning_rate == pytest.approx((0.001, 0.1))
    assert space.batch_sizes == (32, 64, 128)
    assert space.scale_ranges == ((32, 32), (32, 48), (32, 64))
    assert set(space.inits) == {"paper", "glorot"}
    search_space.validate_space(space, crop_size=32)


@pytest.mark.parametrize(
    "flag, text, message",
    [
        ("learning_rate", "0.1,0.001", "learning_rate range min=0.1 > max=0.001"),
        ("learning_rate", "-0.01,0.1", "learning_rate range min=-0.01 is not accepted"),
        ("learning_rate", "abc", "learning_rate_range='abc' is not accepted; expected MIN,MAX"),
        ("weight_decay", "1e-3,1e-5", "weight_decay range min=0.001 > max=1e-05"),
        ("dropout", "0.2,1.0", "dropout range 0.2,1 is not accepted; expected 0 <= min <= max < 1"),
        ("batch_sizes", "0,32", "batch_sizes=[0, 32] is not accepted"),
        ("scale_ranges", "48-32", "scale range 48-32 has min > max"),
        ("scale_ranges", "24-48", "scale range 24-48 starts below crop_size=32"),
        ("inits", "lecun", "inits='lecun' is not accepted; expected some of paper, glorot, he"),
    ],
)
def test_bad_ranges_name_the_value_and_what_is_accepted(flag, text, message):
    with pytest.raises(
        ValueError,
        match="^"
        + message.replace("[", r"\[")
        .replace("]", r"\]")
        .replace("(", r"\(")
        .replace(")", r"\)")
        .replace("+", r"\+"),
    ):
        search_space.make_space(_recipe(), **{flag: text})


def test_bad_search_settings_are_refused_naming_the_value():
    with pytest.raises(ValueError, match="Unknown tuner 'grid'; expected one of random, bayesian"):
        tune.SearchSettings(tuner="grid")
    with pytest.raises(ValueError, match="Unknown objective 'top3'; expected one of top1, top5"):
        tune.SearchSettings(objective="top3")
    for name, value in (("max_trials", 0), ("seed", 0), ("hyperband_factor", 1)):
        with pytest.raises(ValueError, match=f"{name}={value} is not accepted; expected >= "):
            tune.SearchSettings(**{name: value})
    with pytest.raises(ValueError, match="epochs=0 is not accepted; expected >= 1"):
        tune.SearchSettings(trial_epochs=0)
    # Epochs per trial: the recipe's unless given.
    assert tune.SearchSettings().for_recipe(_recipe()).trial_epochs == 8
    assert tune.SearchSettings(trial_epochs=3).for_recipe(_recipe()).trial_epochs == 3


def test_bayesian_search_fits_its_model_after_a_third_of_the_trials():
    for max_trials, initial in ((4, 2), (10, 3), (30, 10)):
        settings = tune.SearchSettings("bayesian", max_trials=max_trials, trial_epochs=1)
        oracle = tune.make_oracle(settings)
        assert oracle.num_initial_points == initial


def test_batch_sizes_that_do_not_divide_over_the_replicas_are_refused(tmp_path):
    three_replicas = types.SimpleNamespace(num_replicas_in_sync=3)
    with pytest.raises(
        ValueError,
        match=r"batch_size=32,64,128 does not divide over "
        r"the 3 replicas; expected a multiple of 3",
    ):
        tune.search(_recipe(), str(tmp_path), strategy=three_replicas, train_fn=FakeTrain())
    assert not os.listdir(tmp_path)  # refused before anything was written


def test_hypermodel_maps_trial_values_onto_a_copy_of_the_recipe():
    recipe = _recipe()
    hypermodel = search_space.RecipeHyperModel(recipe, trial_epochs=2)
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    assert [p.name for p in hp.space] == list(search_space.FIELDS)
    hp.values.update(
        learning_rate=0.03,
        weight_decay=2e-4,
        dropout=0.25,
        batch_size=32,
        scale="32-64",
        init="paper",
    )
    config = hypermodel.build(hp)
    assert (config.learning_rate, config.weight_decay, config.dropout, config.batch_size) == (
        0.03,
        2e-4,
        0.25,
        32,
    )
    assert (config.scale_min, config.scale_max, config.kernel_initializer) == (32, 64, "paper")
    assert config.epochs == 2
    assert (recipe.learning_rate, recipe.epochs, recipe.scale_max) == (0.01, 8, 48)  # untouched
    hp.values.update({"tuner/epochs": 3, "tuner/initial_epoch": 1})
    assert hypermodel.build(hp).epochs == 2  # Hyperband: the epochs still to train


def test_fixed_ranges_become_fixed_hyperparameters():
    space = search_space.make_space(
        _recipe(), learning_rate="0.01", batch_sizes="64", inits="glorot"
    )
    hp = keras_tuner.HyperParameters()
    search_space.RecipeHyperModel(_recipe(), space).declare_hyperparameters(hp)
    kinds = {p.name: type(p).__name__ for p in hp.space}
    assert kinds == {
        "learning_rate": "Fixed",
        "weight_decay": "Float",
        "dropout": "Float",
        "batch_size": "Fixed",
        "scale": "Choice",
        "init": "Fixed",
    }
    assert hp.get("learning_rate") == 0.01


def test_best_config_file_round_trips_with_field_types(tmp_path):
    config = _recipe(learning_rate=0.0123, scale_max=64, width_multiplier=0.0625)
    path = tmp_path / "best_config.py"
    path.write_text(tune.config_source(config, "Best trial 1."))
    spec = importlib.util.spec_from_file_location("best_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loaded = module.get_config()
    assert loaded.to_dict() == config.to_dict()
    loaded.data_dir = "/data"  # a str field that is None in the recipe keeps its type
    assert loaded.data_dir == "/data"


# --- The search with a stand-in trainer ------------------------------------


@pytest.mark.parametrize("tuner", tune.TUNERS)
def test_search_runs_max_trials_and_writes_the_best_recipe(tmp_path, tuner):
    fake = FakeTrain()
    result = tune.search(
        _recipe(),
        str(tmp_path),
        settings=tune.SearchSettings(tuner, max_trials=4, trial_epochs=3, hyperband_factor=3),
        project_name="p",
        train_fn=fake,
    )
    assert len(fake.calls) == 4
    workdirs = [w for _, w in fake.calls]
    assert workdirs == [
        os.path.join(str(tmp_path), "p", f"trial_{i}")
        for i in sorted(result.rows[i]["trial"] for i in range(4))
    ]
    scores = {row["trial"]: row["val_top1_error"] for row in result.rows}
    assert result.best_value == pytest.approx(min(scores.values()))
    assert scores[result.best_trial] == result.best_value
    assert result.table.splitlines()[0].split()[:2] == ["trial", "status"]
    assert f"{result.best_trial}*" in result.table
    # The best recipe is the base recipe (its 8 epochs) with the best trial's values.
    spec = importlib.util.spec_from_file_location("best", result.best_config_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    best = module.get_config()
    trial_config = fake.calls[sorted(scores).index(result.best_trial)][0]
    assert best.learning_rate == trial_config.learning_rate
    assert best.batch_size == trial_config.batch_size
    assert best.epochs == 8
    assert os.path.exists(os.path.join(result.project_dir, tune.TRIALS_FILE))
    if tuner == "hyperband":
        promoted = [(c, w) for c, w in fake.calls if c.init_from]
        assert promoted, "Hyperband with 3 epochs and factor 3 promotes a trial"
        for config, _ in promoted:
            assert os.path.basename(config.init_from).startswith("trial_")
            assert config.epochs in (1, 2)


def test_an_interrupted_search_continues_with_the_same_trial(tmp_path):
    recipe = _recipe()
    first = FakeTrain(interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        tune.search(
            recipe,
            str(tmp_path),
            settings=tune.SearchSettings(max_trials=3),
            project_name="p",
            train_fn=first,
        )
    second = FakeTrain()
    result = tune.search(
        recipe,
        str(tmp_path),
        settings=tune.SearchSettings(max_trials=3),
        project_name="p",
        train_fn=second,
    )
    # Trial 0 is not rerun; trial 1 reruns in its own workdir with its own values.
    assert [w for _, w in second.calls] == [
        first.calls[1][1],
        first.calls[1][1].replace("_1", "_2"),
    ]
    assert second.calls[0][0].to_dict() == first.calls[1][0].to_dict()
    assert [row["status"] for row in result.rows] == ["COMPLETED"] * 3
    # More trials on a rerun extend the search.
    third = FakeTrain()
    result = tune.search(
        recipe,
        str(tmp_path),
        settings=tune.SearchSettings(max_trials=4),
        project_name="p",
        train_fn=third,
    )
    assert len(third.calls) == 1 and len(result.rows) == 4


def test_a_preempted_trial_stops_the_search_and_the_rerun_resumes_it(tmp_path):
    """Issue 20: SIGTERM during a trial (its checkpoint saved) stops the search, rather than
    failing the trial and starting the next; the rerun continues that trial."""
    recipe, settings = _recipe(), tune.SearchSettings(max_trials=3)
    stop = Preempted("stopped by SIGTERM at step 7: its checkpoint is saved")
    first = FakeTrain(interrupt_at=2, interruption=stop)
    with pytest.raises(Preempted, match="SIGTERM at step 7"):
        tune.search(recipe, str(tmp_path), settings=settings, project_name="p", train_fn=first)
    second = FakeTrain()
    result = tune.search(
        recipe, str(tmp_path), settings=settings, project_name="p", train_fn=second
    )
    assert second.calls[0][1] == first.calls[1][1]  # the stopped trial, in its own workdir
    assert [row["status"] for row in result.rows] == ["COMPLETED"] * 3


def test_a_rerun_with_other_ranges_is_refused_unless_overwrite(tmp_path, monkeypatch):
    tune.search(
        _recipe(),
        str(tmp_path),
        settings=tune.SearchSettings(max_trials=1),
        project_name="p",
        train_fn=FakeTrain(),
    )
    space = search_space.make_space(_recipe(), dropout="0,0.3")
    with pytest.raises(ValueError, match=r"holds a search with other settings \(space.dropout"):
        tune.search(
            _recipe(),
            str(tmp_path),
            space=space,
            settings=tune.SearchSettings(max_trials=1),
            project_name="p",
            train_fn=FakeTrain(),
        )
    with pytest.raises(ValueError, match=r"seed: 1 -> 2"):  # a resumed oracle keeps its seed
        tune.search(
            _recipe(),
            str(tmp_path),
            settings=tune.SearchSettings(max_trials=1, seed=2),
            project_name="p",
            train_fn=FakeTrain(),
        )
    record = (tmp_path / "p" / "search.json").read_text()
    with monkeypatch.context() as worker:  # a worker of a distributed search checks too
        worker.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
        worker.setenv("KERASTUNER_ORACLE_PORT", "1")
        worker.setenv("KERASTUNER_TUNER_ID", "tuner0")
        with pytest.raises(ValueError, match=r"holds a search with other settings"):
            tune.search(
                _recipe(),
                str(tmp_path),
                space=space,
                settings=tune.SearchSettings(max_trials=1),
                project_name="p",
                train_fn=FakeTrain(),
            )
    assert (tmp_path / "p" / "search.json").read_text() == record
    fake = FakeTrain()
    tune.search(
        _recipe(),
        str(tmp_path),
        space=space,
        settings=tune.SearchSettings(max_trials=1),
        project_name="p",
        overwrite=True,
        train_fn=fake,
    )
    assert len(fake.calls) == 1 and fake.calls[0][0].dropout <= 0.3


def test_a_diverging_trial_fails_without_stopping_the_search(tmp_path):
    calls = []

    def diverging(config, workdir, strategy=None):
        calls.append(workdir)
        if len(calls) == 1:
            raise train.NonFiniteLossError("The training loss became nan at step 3")
        return {"val_top1_error": 0.5, "val_top5_error": 0.1, "val_loss": 1.0}

    result = tune.search(
        _recipe(),
        str(tmp_path),
        settings=tune.SearchSettings(max_trials=2),
        project_name="p",
        train_fn=diverging,
    )
    assert [row["status"] for row in result.rows] == ["FAILED", "COMPLETED"]
    assert result.best_trial == result.rows[1]["trial"] and len(calls) == 2


# --- bin/tune on the digits ------------------------------------------------

# C++ log lines TensorFlow writes at import, whatever TF_CPP_MIN_LOG_LEVEL says.
_NATIVE_LOG = (
    "CPU: ",  # the command's line naming its CPU path (vgg_tf.cli.cpu_path)
    "WARNING: All log messages before absl",
    "I0000",
    "W0000",
    "E0000",
    "To enable the following instructions",
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "flag, message",
    [
        (
            "--learning_rate_range=0.1,0.001",
            "error: learning_rate range min=0.1 > max=0.001; expected min <= max.",
        ),
        ("--learning_rate_range=-0.01,0.1", "error: learning_rate range min=-0.01 is not accepted"),
        (
            "--tuner=grid",
            "error: Unknown tuner 'grid'; expected one of random, bayesian, hyperband.",
        ),
        ("--epochs=0", "error: epochs=0 is not accepted; expected >= 1."),
    ],
)
def test_cli_bad_input_exits_with_one_clear_line(tmp_path, tune_run, flag, message):
    result = tune_run(tmp_path, flag, check=False, timeout=120)
    assert result.returncode == 1
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.startswith(_NATIVE_LOG)
    ]
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr[-2000:]
    assert not os.path.exists(tmp_path / "p")  # refused before any trial or file


@pytest.mark.slow
def test_cli_killed_mid_trial_continues_on_rerun_then_the_best_config_trains(
    tmp_path, tfds_dir, tune_command, tune_run, run_bin, subprocess_env
):
    """bin/tune killed while its second trial trains, then run again: the second trial goes
    on from its checkpoint, the first is not rerun, the third runs; the table of the three
    is printed and the best trial's recipe trains with bin/train."""
    flags = ["--tuner=random", "--max_trials=3", *TINY_FLAGS]
    search = tmp_path / "search"
    project = search / "p"
    log = open(tmp_path / "first.log", "w")  # noqa: SIM115 (the child writes it until killed)
    process = subprocess.Popen(
        tune_command(search, *flags), stdout=log, stderr=subprocess.STDOUT, env=subprocess_env()
    )
    deadline = time.time() + 300
    try:
        # Kill once the second trial has a checkpoint (the first one is then complete).
        while not (project / "trial_1" / "checkpoints" / "checkpoint").exists():
            assert process.poll() is None, "bin/tune ended before it could be killed"
            assert time.time() < deadline, "no checkpoint of trial 1 within 300 s"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
        log.close()
    before = _trials(project)
    assert before["0"]["status"] == "COMPLETED" and before["1"]["status"] == "RUNNING"
    assert set(before) == {"0", "1"}
    finished = project / "trial_0" / "metrics.csv"
    stamp, content = os.stat(finished).st_mtime_ns, finished.read_text()

    result = tune_run(search, *flags)
    after = _trials(project)
    assert set(after) == {"0", "1", "2"}
    assert [after[t]["status"] for t in ("0", "1", "2")] == ["COMPLETED"] * 3
    assert after["1"]["hyperparameters"]["values"] == before["1"]["hyperparameters"]["values"]
    assert "Resumed from" in result.stdout  # trial 1 went on from its checkpoint
    assert os.stat(finished).st_mtime_ns == stamp and finished.read_text() == content
    epochs = (project / "trial_1" / "metrics.csv").read_text().strip().splitlines()[1:]
    assert len(epochs) == 1  # one epoch recorded once: continued, not trained again

    header, rows = _table(result.stdout)
    assert header == [
        "trial",
        "status",
        "learning_rate",
        "weight_decay",
        "dropout",
        "batch_size",
        "scale",
        "init",
        "val_top1_error",
    ]
    assert [row[1] for row in rows] == ["COMPLETED"] * 3
    errors = {row[0].rstrip("*"): float(row[-1]) for row in rows}
    assert sorted(errors) == ["0", "1", "2"]
    best = next(row[0].rstrip("*") for row in rows if row[0].endswith("*"))
    assert errors[best] == min(errors.values()) and 0 <= errors[best] < 1
    for trial in errors:  # every trial is a training workdir
        assert os.path.exists(project / f"trial_{trial}" / "model.keras")
    best_config = project / "best_config.py"
    assert f"best config: {best_config}" in result.stdout
    trained = run_bin(
        "train",
        f"--config={best_config}",
        f"--workdir={tmp_path / 'full'}",
        f"--data_dir={tfds_dir}",
        "--epochs=1",
        timeout=300,
    )
    assert "final validation top-1 error" in trained.stdout
    with open(tmp_path / "full" / "config.json") as f:
        recorded = json.load(f)
    with open(project / f"trial_{best}" / "config.json") as f:
        trial = json.load(f)
    for field in (
        "learning_rate",
        "weight_decay",
        "dropout",
        "batch_size",
        "scale_min",
        "scale_max",
        "kernel_initializer",
        "width_multiplier",
    ):
        assert recorded[field] == trial[field], field


@pytest.mark.slow
def test_chief_and_worker_on_localhost_run_two_trials(
    tmp_path, tune_command, subprocess_env, free_ports
):
    (port,) = free_ports(1)
    cmd = tune_command(tmp_path, "--tuner=bayesian", "--max_trials=2", *TINY_FLAGS)
    processes = {}
    for tuner_id in ("chief", "tuner0"):
        env = subprocess_env(
            KERASTUNER_TUNER_ID=tuner_id,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=port,
        )
        processes[tuner_id] = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
    outputs = {}
    try:
        for tuner_id, process in processes.items():
            outputs[tuner_id] = process.communicate(timeout=300)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    for tuner_id, process in processes.items():
        assert process.returncode == 0, (tuner_id, outputs[tuner_id][1][-3000:])
    chief_out, worker_out = outputs["chief"][0], outputs["tuner0"][0]
    assert "worker done" in worker_out and "Epoch 1/1" in worker_out
    assert "Epoch 1/1" not in chief_out  # the chief serves the oracle, the worker trains
    _, rows = _table(chief_out)
    assert len(rows) == 2 and all(row[1] == "COMPLETED" for row in rows)
    assert (tmp_path / "p" / "best_config.py").exists()
    for trial in ("0", "1"):
        assert (tmp_path / "p" / f"trial_{trial}" / "model.keras").exists()


def test_the_top5_objective_is_refused_for_five_classes_or_fewer(tmp_path, encode):
    """Every label is among the top 5 of 3 classes: each trial would score 0."""
    data = tmp_path / "photos"
    for name in ("cat", "dog", "owl"):
        (data / name).mkdir(parents=True)
        for i in range(2):
            (data / name / f"{i}.png").write_bytes(encode(np.full([8, 8, 3], i, np.uint8), "PNG"))

    def must_not_train(*args, **kwargs):
        raise AssertionError("a trial ran")

    recipe = _recipe(dataset=str(data))
    with pytest.raises(ValueError, match=r"objective='top5' is not accepted .* 3 classes"):
        tune.search(
            recipe,
            str(tmp_path / "tuning"),
            settings=tune.SearchSettings(objective="top5"),
            train_fn=must_not_train,
        )
    assert not (tmp_path / "tuning").exists()
