"""Training: recipe mechanics, distribution equivalences, fault tolerance, the CLI, and
issue 10's acceptance folder trained on by bin/train."""

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from vgg_tf import workdir as workdir_lib
from vgg_tf.inference import protocol as evaluate
from vgg_tf.training import loop as train
from vgg_tf.training import network, optimization
from vgg_tf.training import recipe as config_lib
from vgg_tf.training.reporting import METRIC_COLUMNS
from vgg_tf.weights import loading

# A tiny net on the built-in digits: seconds per epoch on one core.
TINY_FLAGS = [
    "--config.width_multiplier=0.0625",
    "--config.scale_min=32",
    "--config.scale_max=40",
    "--batch_size=32",
    "--config.checkpoint_every_steps=5",
    "--config.warmup_epochs=0",
    "--learning_rate=0.01",
    "--config.batch_norm=false",  # the paper's nets (BN statistics are per replica)
]


def _weights(path):
    model = keras.models.load_model(path, compile=False)
    return [w.numpy() for w in model.weights]


def _assert_same_weights(a, b, atol):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


@pytest.fixture(scope="module")
def train_run(run_bin, tfds_dir):
    """``run(workdir, *flags, env=None, timeout=600, check=True)``: bin/train on the digits."""

    def run(workdir, *flags, **options):
        return run_bin("train", f"--workdir={workdir}", f"--data_dir={tfds_dir}", *flags, **options)

    return run


# --- Units -----------------------------------------------------------------


def test_plateau_schedule_divides_by_ten_at_most_max_drops_times():
    schedule = optimization.PlateauSchedule(
        0.01, factor=0.1, patience=2, min_delta=1e-3, max_drops=3
    )
    history = []
    for epoch, accuracy in enumerate([0.5, 0.6, 0.6, 0.6005, 0.7, 0.7, 0.7] + [0.7] * 10, 1):
        schedule.update(accuracy, epoch)
        history.append(float(schedule.learning_rate.numpy()))
    assert history[:4] == pytest.approx([0.01, 0.01, 0.01, 0.001])  # 0.6005 is within min_delta
    assert history[4:6] == pytest.approx([0.001, 0.001])
    assert history[6] == pytest.approx(1e-4)
    assert min(history) == pytest.approx(1e-5)  # three drops in all
    assert int(schedule.drops.numpy()) == 3
    late = optimization.PlateauSchedule(
        0.01, factor=0.1, patience=1, min_delta=0, max_drops=3, start_epoch=4
    )
    for epoch, accuracy in enumerate([0.3, 0.1, 0.1, 0.5, 0.5], 1):
        late.update(accuracy, epoch)
    assert float(late.learning_rate.numpy()) == pytest.approx(0.001)  # only epoch 5 counted


@pytest.fixture
def precision_policy():
    """``set(name)``: sets Keras' global dtype policy for the test, float32 again after it."""
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("mixed_precision", ["", "float16"], ids=["float32", "float16"])
def test_trainer_steps_are_caffe_sgd_with_weight_decay(mixed_precision, precision_policy):
    """Two trainer steps on the recipe's model, with the trainer's own optimizer
    (:func:`optimization.make_optimizer`), equal Caffe's update (§3.1): v = m v + lr (g + wd w)
    for kernels (biases are not decayed); w -= v. Under float16 the optimizer scales the
    loss (LossScaleOptimizer) and the update is the same."""
    config = config_lib.paper_recipe()
    # A weight decay far above the recipe's 5e-4, so that a decay off by 2x (Keras' L2
    # convention) or applied twice (Keras' decoupled weight_decay= as well as the L2 term)
    # moves the weights by more than float rounding (float16 rounding in that case).
    config.update(
        variant="A",
        crop_size=32,
        width_multiplier=1 / 16,
        dropout=0.0,
        kernel_initializer="glorot",
        mixed_precision=mixed_precision,
        weight_decay=1.0 if mixed_precision else 0.1,
    )
    if mixed_precision:
        precision_policy(f"mixed_{mixed_precision}")
    keras.utils.set_random_seed(0)
    model = network.build_model(config, 10)
    logits_model = keras.Model(model.input, model.get_layer("fc8").output)
    optimizer = optimization.make_optimizer(config)  # what create_state gives the trainer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer) == bool(mixed_precision)
    optimizer.build(logits_model.trainable_variables)
    trainer = train.Trainer(
        tf.distribute.get_strategy(), logits_model, optimizer, global_batch=8, jit_compile=False
    )
    rng = np.random.default_rng(0)
    images = rng.normal(scale=50, size=(8, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, size=8).astype("int32")
    batches = iter(tf.data.Dataset.from_tensors((images, labels)).repeat())
    variables = logits_model.trainable_variables
    assert {v.dtype for v in variables} == {"float32"}
    expected = [v.numpy() for v in variables]
    velocity = [np.zeros_like(w) for w in expected]
    # The data term's gradients, scaled as the trainer scales them (float16 would lose the
    # small ones otherwise) and unscaled again.
    scale = float(optimizer.scale_loss(tf.constant(1.0)).numpy()) if mixed_precision else 1.0
    for _ in range(2):
        with tf.GradientTape() as tape:
            logits = tf.cast(logits_model(images, training=True), tf.float32)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            )
            scaled = loss * scale
        grads = [g.numpy() / scale for g in tape.gradient(scaled, variables)]
        assert all(np.isfinite(g).all() for g in grads)  # no step is skipped for overflow
        trainer.train_steps(batches, 1)
        for i, (v, g) in enumerate(zip(variables, grads)):
            decay = config.weight_decay * expected[i] if v.path.endswith("kernel") else 0.0
            velocity[i] = config.momentum * velocity[i] + config.learning_rate * (g + decay)
            expected[i] = expected[i] - velocity[i]
            if mixed_precision:  # float16 gradients: about 3 significant digits
                np.testing.assert_allclose(
                    v.numpy(),
                    expected[i],
                    rtol=0,
                    err_msg=v.path,
                    atol=2e-3 * config.learning_rate * np.abs(g).max() + 1e-7,
                )
            else:
                np.testing.assert_allclose(
                    v.numpy(), expected[i], rtol=1e-4, atol=1e-6, err_msg=v.path
                )
    assert int(optimizer.iterations.numpy()) == 2


def test_a_run_never_starts_from_a_model_in_its_own_workdir(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"the S=256 model")
    config = config_lib.paper_recipe()
    for source in (tmp_path, tmp_path / "model.keras"):
        config.init_from = str(source)
        with pytest.raises(ValueError, match="inside this run's workdir.*new directory"):
            train.train_and_evaluate(config, str(tmp_path), overwrite=True)
    assert (tmp_path / "model.keras").read_bytes() == b"the S=256 model"


def _random_states():
    """Python's and NumPy's global random states, comparable with ==."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    return random.getstate(), (name, keys.tobytes(), position, has_gauss, gauss)


def test_global_settings_are_put_back_when_the_run_ends_or_fails():
    config = config_lib.paper_recipe()
    config.mixed_precision = "bfloat16"
    before = _random_states()
    for failure in (None, RuntimeError("the run failed")):
        with contextlib.suppress(RuntimeError), train.global_settings(config):
            assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
            keras.utils.set_random_seed(7)  # as create_state seeds the run
            assert _random_states() != before
            if failure:
                raise failure
        assert keras.mixed_precision.global_policy().name == "float32"
        assert _random_states() == before


def test_a_run_that_fails_puts_keras_dtype_policy_back(tmp_path, bad_image_folder):
    config = config_lib.paper_recipe()
    config.update(
        dataset=str(bad_image_folder.root),
        crop_size=32,
        scale_min=32,
        scale_max=48,
        batch_size=64,  # more than the folder's 12 training images: refused in set-up
        mixed_precision="float16",
    )
    with pytest.raises(ValueError, match="batch_size=64 is larger than the 12 training"):
        train.train_and_evaluate(config, str(tmp_path / "run"))
    assert keras.mixed_precision.global_policy().name == "float32"


def _folder_recipe(folder, **changes):
    config = config_lib.paper_recipe()
    config.update(dict(dataset=str(folder), crop_size=32, scale_min=32, scale_max=48, **changes))
    return config


def test_a_refused_run_leaves_the_filesystem_as_it_found_it(tmp_path, bad_image_folder, encode):
    """Issue 20: refused runs left empty workdirs (and a lock file) behind."""
    too_big = _folder_recipe(bad_image_folder.root, batch_size=64)  # 12 training images
    with pytest.raises(ValueError, match="batch_size=64 is larger"):
        train.train_and_evaluate(too_big, str(tmp_path / "runs" / "new"))
    assert not (tmp_path / "runs").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("the user's")
    with pytest.raises(ValueError, match="batch_size=64 is larger"):
        train.train_and_evaluate(too_big, str(kept))
    assert os.listdir(kept) == ["notes.txt"]
    # One class is refused too: every answer would be right ("0.00% error").
    (tmp_path / "one" / "cat").mkdir(parents=True)
    for i in range(4):
        (tmp_path / "one" / "cat" / f"{i}.png").write_bytes(encode(np.zeros((8, 8, 3), "uint8")))
    with pytest.raises(ValueError, match=r"has 1 class \(cat\); expected at least 2"):
        train.train_and_evaluate(_folder_recipe(tmp_path / "one"), str(kept))
    assert os.listdir(kept) == ["notes.txt"]


def test_a_second_run_on_a_workdir_in_use_is_refused_at_once(tmp_path, bad_image_folder):
    """Issue 20: two runs on one workdir both succeeded, leaving one run's files."""
    workdir = tmp_path / "run"
    with workdir_lib.exclusive(workdir, "a training run"):
        (workdir / "config.json").write_text("{}")
        before = sorted(os.listdir(workdir))
        config = _folder_recipe(bad_image_folder.root, batch_size=4)
        with pytest.raises(workdir_lib.WorkdirBusyError, match=r"in use by a training run \(host"):
            train.train_and_evaluate(config, str(workdir))
        assert (
            sorted(os.listdir(workdir)) == before and (workdir / "config.json").read_text() == "{}"
        )


# --- Runs ------------------------------------------------------------------

# Two epochs of the paper's net A, deterministic: the uninterrupted run that a killed and
# resumed run must equal, and the run whose artifacts are checked.
PAPER_RUN = ["--variant=A", "--epochs=2", *TINY_FLAGS, "--deterministic"]


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory, train_run):
    """``(workdir, result)``: bin/train run to the end with ``PAPER_RUN``."""
    workdir = tmp_path_factory.mktemp("paper") / "run"
    return workdir, train_run(workdir, *PAPER_RUN)


@pytest.mark.slow
def test_run_writes_its_artifacts_and_refuses_another_config(tmp_path, paper_run, train_run):
    workdir, result = paper_run
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("final validation top-1 error")
    for name in ("metrics.csv", "config.json", "learning_curves.png", "model.keras"):
        assert (workdir / name).is_file(), name
    assert list((workdir / "logs" / "train").glob("events.out.tfevents.*"))
    assert list((workdir / "logs" / "validation").glob("events.out.tfevents.*"))
    rows = (workdir / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",") == list(METRIC_COLUMNS)
    assert len(rows) == 3
    recorded = json.loads((workdir / "config.json").read_text())
    assert recorded["variant"] == "A" and recorded["num_classes"] == 10
    assert recorded["class_names"] == [str(d) for d in range(10)]
    assert len(recorded["mean_rgb"]) == 3
    # Training did something: better than chance (90% error) after two epochs.
    top1 = float(last.split("top-1 error ")[1].split("%")[0]) / 100
    assert top1 < 0.85
    # keras.models.load_model in a fresh process gives the same predictions.
    model = keras.models.load_model(workdir / "model.keras")
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", model.predict_on_batch(images))
    script = (
        "import numpy as np, keras; "
        f"m = keras.models.load_model({str(workdir / 'model.keras')!r}); "
        f"np.testing.assert_array_equal(m.predict_on_batch(np.load({str(tmp_path / 'x.npy')!r})), "
        f"np.load({str(tmp_path / 'y.npy')!r})); print('ok')"
    )
    check = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert check.stdout.strip() == "ok", check.stderr[-2000:]

    # Same workdir, another learning rate: refused, nothing deleted.
    refused = train_run(workdir, *PAPER_RUN, "--learning_rate=0.5", check=False)
    assert refused.returncode != 0
    assert "learning_rate: 0.01 -> 0.5" in refused.stderr and "--overwrite" in refused.stderr
    assert (workdir / "model.keras").is_file() and (workdir / "checkpoints").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, precision",
    [
        (["--mixed_precision=bfloat16"], "bfloat16"),
        (["--mixed_precision=float16"], "float16"),
        (["--jit_compile", "--mixed_precision=bfloat16"], "bfloat16"),  # XLA
    ],
    ids=["bfloat16", "float16", "xla-bfloat16"],
)
def test_mixed_precision_computes_low_and_keeps_float32_weights(
    tmp_path, train_run, flags, precision
):
    workdir = tmp_path / "run"
    train_run(workdir, "--variant=A", "--epochs=2", *TINY_FLAGS, *flags)
    rows = [line.split(",") for line in (workdir / "metrics.csv").read_text().splitlines()[1:]]
    losses = [float(row[list(METRIC_COLUMNS).index("train_loss")]) for row in rows]
    # float16 skips the first steps while the dynamic loss scale comes down.
    assert all(np.isfinite(losses)) and losses[1] < losses[0]
    model = keras.models.load_model(workdir / "model.keras")
    assert model.get_layer("block1_conv1").compute_dtype == precision
    assert {w.dtype for w in model.weights} == {"float32"}
    probabilities = model.predict_on_batch(np.zeros((2, 32, 32, 3), "float32"))
    assert probabilities.dtype == np.float32  # the softmax stays float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # Dense evaluation runs the converted net (fc6 as a patch matmul) in the policy.
    evaluator = evaluate.ModelEvaluator(loading.load_model(workdir))
    assert evaluator.fcn.get_layer("fc6").compute_dtype == precision
    dense = evaluator.probabilities("dense", np.full((40, 48, 3), 128, np.uint8))
    assert dense.shape == (10,) and abs(float(dense.sum()) - 1.0) < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--variant=F"], "--variant"),
        (["--strategy=horovod"], "--strategy"),
        (["--cpu_devices=2", "--strategy=mirrored", "--batch_size=33"], "batch_size=33"),
        (["--dataset=no_such_dataset_xyz"], "no_such_dataset_xyz"),
    ],
)
def test_bad_flags_exit_with_one_clear_line(tmp_path, train_run, flags, message):
    result = train_run(tmp_path / "run", *flags, check=False, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if message in line]
    assert lines, result.stderr[-2000:]


@pytest.mark.slow
def test_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, train_run):
    workdir = tmp_path / "run"
    result = train_run(
        workdir,
        "--variant=A",
        "--epochs=1",
        *TINY_FLAGS,
        "--learning_rate=1e6",
        "--config.checkpoint_every_steps=1",
        check=False,
    )
    assert result.returncode != 0
    assert "became" in result.stderr and "new --workdir" in result.stderr
    assert not (workdir / "model.keras").exists()
    # Every checkpoint kept holds finite numbers: the weights after the last update
    # are checked before a save, not only the losses before it.
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    assert latest, result.stderr[-2000:]
    reader = tf.train.load_checkpoint(latest)
    for name, dtype in reader.get_variable_to_dtype_map().items():
        if dtype.is_floating:
            assert np.all(np.isfinite(reader.get_tensor(name))), name


# The same global batch on 1 or 2 replicas is the same sum, computed in another
# order: the weights agree to ~1e-8 after a step. ReLU and max-pooling are not
# smooth, so once a pre-activation or a pooling tie falls the other way the runs
# part (seen after ~10-13 steps on the digits); the equivalence runs are short
# (5 steps of 256), use no dropout (masks are drawn per replica), and turn off
# oneDNN, whose CPU kernels block by batch size and round half and full batches
# differently.
EXACT_CPU = dict(TF_ENABLE_ONEDNN_OPTS="0")


def _flags(*changes):
    """TINY_FLAGS with the ``--name=value`` flags in ``changes`` replacing those of the same name."""
    names = {flag.split("=")[0] for flag in changes}
    return [f for f in TINY_FLAGS if f.split("=")[0] not in names] + list(changes)


# A checkpoint after every step, all kept: the first one gives the run's own step 0.
EQUIVALENCE_FLAGS = [
    "--variant=A",
    "--epochs=1",
    *_flags("--batch_size=256", "--config.checkpoint_every_steps=1"),
    "--config.keep_checkpoints=10",
    "--learning_rate=0.01",
    "--deterministic",
    "--config.dropout=0",
]
REPLICAS_LINE = re.compile(r"^Training on (\d+) replicas? ", re.MULTILINE)


def _replicas(stdout):
    """The replica count bin/train announced in its first line."""
    counts = REPLICAS_LINE.findall(stdout)
    assert len(counts) == 1, stdout[-2000:]
    return int(counts[0])


def _named_weights(path):
    model = keras.models.load_model(path, compile=False)
    return {w.path: w.numpy() for w in model.weights}


def _step_zero_weights(workdir):
    """The weights a run started from, recovered from its own first checkpoint.

    After one step of SGD with momentum from zero velocity, the momentum slot holds the
    update (m = -lr g, w1 = w0 + m): w0 = w1 - m. The model and optimizer are built as
    the trainer builds them, from the run's recorded config, and given the checkpoint's
    values.
    """
    config = workdir_lib.read_config(workdir)
    first = workdir / "checkpoints" / "ckpt-1"
    assert first.with_suffix(".index").is_file(), sorted(os.listdir(workdir / "checkpoints"))
    model = network.build_model(config, config["num_classes"])
    logits_model = keras.Model(model.input, model.get_layer("fc8").output)
    optimizer = optimization.make_optimizer(config)
    optimizer.build(logits_model.trainable_variables)
    checkpoint = tf.train.Checkpoint(
        model_variables=list(model.variables), optimizer_variables=list(optimizer.variables)
    )
    checkpoint.read(str(first)).expect_partial()
    assert int(optimizer.iterations.numpy()) == 1
    return {
        v.path: v.numpy() - m.numpy()
        for v, m in zip(logits_model.trainable_variables, optimizer.momentums)
    }


def _assert_trained_and_equal(a_dir, b_dir, atol):
    """Runs ``a_dir`` and ``b_dir`` started from the same weights (their own step 0), moved
    away from them, and ended at the same weights."""
    a, b = _named_weights(a_dir / "model.keras"), _named_weights(b_dir / "model.keras")
    start, other_start = _step_zero_weights(a_dir), _step_zero_weights(b_dir)
    assert sorted(start) == sorted(other_start) and set(start) <= set(a)
    for name in start:
        np.testing.assert_allclose(start[name], other_start[name], atol=1e-6, err_msg=name)
    moved = max(float(np.abs(a[name] - start[name]).max()) for name in start)
    assert moved > 1e-3, "training did not change the weights: the comparison would be vacuous"
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=atol, rtol=0, err_msg=name)


@pytest.fixture(scope="module")
def one_replica_run(tmp_path_factory, train_run, subprocess_env):
    """``(workdir, result)``: bin/train with ``EQUIVALENCE_FLAGS`` on one device, one process."""
    workdir = tmp_path_factory.mktemp("equivalence") / "one"
    return workdir, train_run(workdir, *EQUIVALENCE_FLAGS, env=subprocess_env(**EXACT_CPU))


@pytest.mark.slow
def test_mirrored_over_two_devices_equals_one_device(
    tmp_path, train_run, subprocess_env, one_replica_run
):
    one_dir, one = one_replica_run
    two = train_run(
        tmp_path / "two",
        *EQUIVALENCE_FLAGS,
        "--cpu_devices=2",
        "--strategy=mirrored",
        "--devices=/cpu:0,/cpu:1",
        env=subprocess_env(**EXACT_CPU),
    )
    # The second run really was split over two replicas (a device list falling back to one
    # device would make the comparison vacuous).
    assert (_replicas(one.stdout), _replicas(two.stdout)) == (1, 2), two.stdout[-2000:]
    _assert_trained_and_equal(one_dir, tmp_path / "two", 1e-5)


@pytest.mark.slow
def test_two_workers_on_localhost_equal_one_process(
    tmp_path, tfds_dir, bin_command, subprocess_env, free_ports, one_replica_run
):
    common = EQUIVALENCE_FLAGS
    single_dir, single = one_replica_run
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workdir = tmp_path / "multi"
    procs = []
    for index in range(2):
        env = subprocess_env(
            **EXACT_CPU,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        procs.append(
            subprocess.Popen(
                bin_command(
                    "train",
                    f"--workdir={workdir}",
                    f"--data_dir={tfds_dir}",
                    "--strategy=multi_worker",
                    *common,
                ),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, out[-2000:] + err[-4000:]
    # The chief (worker 0) speaks for the run: one step of 2 replicas, one per worker.
    assert _replicas(single.stdout) == 1
    assert _replicas(outputs[0][0]) == 2, outputs[0][0][-2000:]
    chief = _weights(workdir / "model.keras")
    worker = _weights(workdir / "workers" / "worker1.keras")
    _assert_same_weights(chief, worker, 0)
    _assert_trained_and_equal(workdir, single_dir, 1e-5)


def _workers(bin_command, subprocess_env, tfds_dir, workdir, ports, *flags):
    """Starts ``bin/train`` as the two workers of a cluster on localhost."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = subprocess_env(
            **EXACT_CPU,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        command = bin_command(
            "train",
            f"--workdir={workdir}",
            f"--data_dir={tfds_dir}",
            "--strategy=multi_worker",
            *flags,
        )
        procs.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    return procs


@pytest.mark.slow
def test_sigterm_to_one_worker_saves_every_worker_at_one_step_and_they_resume(
    tmp_path, tfds_dir, bin_command, subprocess_env, free_ports, one_replica_run
):
    """Issue 20, under MultiWorkerMirroredStrategy: SIGTERM reaches one worker; TensorFlow's
    PreemptionCheckpointHandler makes both save at the same step and exit. Restarted, they
    resume there and end with the one-process run's weights."""
    workdir = tmp_path / "multi"
    procs = _workers(
        bin_command, subprocess_env, tfds_dir, workdir, free_ports(2), *EQUIVALENCE_FLAGS
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (workdir / "checkpoints" / "ckpt-1.index").exists():
        assert all(p.poll() is None for p in procs), procs[0].communicate()[1][-3000:]
        time.sleep(0.01)
    procs[1].send_signal(signal.SIGTERM)  # the non-chief: the chief learns it from its peer
    outputs = [p.communicate(timeout=300) for p in procs]
    steps = set()
    for p, (_, err) in zip(procs, outputs):
        stopped = re.search(r"stopped by SIGTERM at step (\d+)", err)
        assert p.returncode == 143 and stopped, (p.returncode, err[-3000:])
        steps.add(int(stopped.group(1)))
    (step,) = steps  # one step for both
    assert (workdir / "checkpoints" / f"ckpt-{step}.index").is_file()
    assert not (workdir / "model.keras").exists()

    procs = _workers(
        bin_command, subprocess_env, tfds_dir, workdir, free_ports(2), *EQUIVALENCE_FLAGS
    )
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, out[-2000:] + err[-3000:]
    assert f"checkpoints/ckpt-{step} at step {step}" in outputs[0][0], outputs[0][0][-2000:]
    _assert_trained_and_equal(workdir, one_replica_run[0], 1e-5)


@pytest.mark.slow
def test_a_worker_whose_peer_died_stops_with_one_line(
    tmp_path, tfds_dir, bin_command, subprocess_env, free_ports
):
    """Issue 20: the surviving worker of a dead peer printed a traceback."""
    workdir = tmp_path / "multi"
    flags = ["--variant=A", "--epochs=1", *TINY_FLAGS]
    procs = _workers(bin_command, subprocess_env, tfds_dir, workdir, free_ports(2), *flags)
    deadline = time.time() + 300
    while time.time() < deadline and not (workdir / "checkpoints" / "ckpt-5.index").exists():
        assert all(p.poll() is None for p in procs), procs[0].communicate()[1][-3000:]
        time.sleep(0.01)
    procs[1].kill()
    _, err = procs[0].communicate(timeout=300)
    procs[1].wait()
    assert procs[0].returncode == 1 and "Traceback" not in err, err[-3000:]
    assert re.search(r"^error: .*(aborted|unhealthy|unavailable)", err, re.M | re.I), err[-3000:]


@pytest.mark.slow
def test_every_worker_refuses_a_workdir_of_another_run(
    tmp_path, tfds_dir, bin_command, subprocess_env, free_ports
):
    workdir = tmp_path / "multi"
    workdir.mkdir()
    other = {**json.loads(config_lib.paper_recipe().to_json()), "learning_rate": 0.5}
    workdir_lib.write_config(workdir, other)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = []
    for index in range(2):
        env = subprocess_env(
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        )
        procs.append(
            subprocess.Popen(
                bin_command(
                    "train",
                    f"--workdir={workdir}",
                    f"--data_dir={tfds_dir}",
                    "--strategy=multi_worker",
                    "--variant=A",
                    *TINY_FLAGS,
                ),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:  # each exits with the reason, none waits for the other
        out, err = p.communicate(timeout=180)
        assert p.returncode == 1 and "holds a run with other settings" in err, err[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("batch_norm", [False, True], ids=["paper", "batch_norm"])
def test_sigkill_mid_epoch_then_resume_gives_the_same_weights(
    tmp_path, tfds_dir, digits, train_run, bin_command, subprocess_env, batch_norm, request
):
    """Killed mid-epoch, then run again: the same weights as an uninterrupted run, bit for
    bit. With batch norm (the digits recipe) that includes the moving statistics, which
    the checkpoint must hold as well as the trained weights."""
    if batch_norm:  # (one epoch keeps the added case short)
        epochs = 1
        common = [
            "--variant=A",
            "--epochs=1",
            *_flags("--config.batch_norm=true"),
            "--deterministic",
        ]
        whole_dir = tmp_path / "whole"
        train_run(whole_dir, *common)
    else:
        epochs, common = 2, PAPER_RUN
        whole_dir = request.getfixturevalue("paper_run")[0]

    workdir = tmp_path / "killed"
    cmd = bin_command("train", f"--workdir={workdir}", f"--data_dir={tfds_dir}", *common)
    proc = subprocess.Popen(
        cmd, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    steps_per_epoch = digits.num_examples(digits.train_split) // 32
    assert steps_per_epoch > 20
    # Kill once a mid-epoch checkpoint exists (checkpoints every 5 steps).
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if list((workdir / "checkpoints").glob("ckpt-1[05].index")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (workdir / "model.keras").exists()

    resumed = train_run(workdir, *common)
    assert resumed.stdout.strip().splitlines()[-1].startswith("final validation")
    # It continued from the mid-epoch checkpoint rather than starting over.
    resumed_at = re.search(r"Resumed from \S+ckpt-\d+ at step (\d+)", resumed.stdout)
    assert resumed_at, resumed.stdout[:2000]
    step = int(resumed_at.group(1))
    assert 0 < step < steps_per_epoch and step % 5 == 0, (step, steps_per_epoch)
    assert f"Epoch 1/{epochs}" in resumed.stdout.split(resumed_at.group(0), 1)[1]
    whole, killed = (
        _named_weights(whole_dir / "model.keras"),
        _named_weights(workdir / "model.keras"),
    )
    assert sorted(whole) == sorted(killed)
    for name in whole:  # kernels, biases and, with batch norm, the moving statistics
        np.testing.assert_array_equal(whole[name], killed[name], err_msg=name)
    statistics = [name for name in whole if "moving_" in name]
    if batch_norm:  # statistics that training moved, so that dropping them would show
        assert len(statistics) == 2 * 8  # mean and variance after each of the 8 convs
        assert all(
            np.abs(whole[n] - (0.0 if "mean" in n else 1.0)).max() > 1e-3 for n in statistics
        )
    else:
        assert statistics == []
    rows = (workdir / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(e + 1) for e in range(epochs)]


#: Runs a command as a terminal's foreground job runs it: SIGINT neither ignored nor blocked.
#: A child inherits both from its parent (a test worker, a background shell job), and Python
#: then raises no KeyboardInterrupt at Ctrl-C.
_AS_AT_A_TERMINAL = (
    "import os, signal, sys; signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)


def _start_and_signal(command, env, workdir, sig, after="ckpt-5.index"):
    """Starts ``command`` (as at a terminal), sends ``sig`` once
    ``workdir/checkpoints/<after>`` exists (training is under way), and returns the finished
    process's (returncode, stdout, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _AS_AT_A_TERMINAL, *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (workdir / "checkpoints" / after).exists():
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


@pytest.mark.slow
def test_sigterm_saves_at_the_current_step_and_the_rerun_ends_with_the_same_weights(
    tmp_path, tfds_dir, digits, train_run, bin_command, subprocess_env, paper_run
):
    """Issue 20: SIGTERM, which schedulers send before preempting, saved nothing (up to a
    checkpoint interval lost). Now it saves at the step reached, says so in one line and
    exits 143; the rerun resumes at exactly that step and ends bit-identical to a run that
    was never stopped."""
    workdir = tmp_path / "preempted"
    command = bin_command("train", f"--workdir={workdir}", f"--data_dir={tfds_dir}", *PAPER_RUN)
    code, out, err = _start_and_signal(command, subprocess_env(), workdir, signal.SIGTERM)
    stopped = re.search(r"stopped by SIGTERM at step (\d+)", err)
    assert code == 143 and stopped, (code, err[-3000:])
    assert "Traceback" not in err and not (workdir / "model.keras").exists()
    step = int(stopped.group(1))
    assert (workdir / "checkpoints" / f"ckpt-{step}.index").is_file()
    assert 5 <= step < digits.num_examples(digits.train_split) // 32  # mid-epoch 1

    resumed = train_run(workdir, *PAPER_RUN)
    assert f"checkpoints/ckpt-{step} at step {step}" in resumed.stdout, resumed.stdout[:2000]
    whole, preempted = (
        _named_weights(paper_run[0] / "model.keras"),
        _named_weights(workdir / "model.keras"),
    )
    assert sorted(whole) == sorted(preempted)
    for name in whole:
        np.testing.assert_array_equal(whole[name], preempted[name], err_msg=name)


@pytest.mark.slow
def test_a_finished_run_extended_by_raising_epochs_equals_the_longer_run(
    tmp_path, train_run, paper_run
):
    """Issue 20: raising --epochs of a finished run demanded --overwrite, which deletes it.
    Now the run continues from its last checkpoint with the schedule's state: one epoch,
    then two, ends where the two-epoch run ends. Lowering --epochs is refused."""
    workdir = tmp_path / "extended"
    one_epoch = [f for f in PAPER_RUN if f != "--epochs=2"] + ["--epochs=1"]
    train_run(workdir, *one_epoch)
    extended = train_run(workdir, *PAPER_RUN)
    assert re.search(r"Resumed from \S+ckpt-(\d+) at step \1\n", extended.stdout)
    assert "Epoch 2/2" in extended.stdout and "Epoch 1/2" not in extended.stdout
    whole, longer = (
        _named_weights(paper_run[0] / "model.keras"),
        _named_weights(workdir / "model.keras"),
    )
    for name in whole:
        np.testing.assert_array_equal(whole[name], longer[name], err_msg=name)
    rows = [
        [row.split(",")[:-1] for row in (path / "metrics.csv").read_text().splitlines()]
        for path in (workdir, paper_run[0])
    ]
    assert rows[0] == rows[1]  # every column but images_per_second
    assert workdir_lib.read_config(workdir)["epochs"] == 2
    lowered = train_run(workdir, *one_epoch, check=False)
    assert lowered.returncode == 1 and "epochs: 2 -> 1" in lowered.stderr, lowered.stderr[-2000:]


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_the_rerun_resumes(tmp_path, tfds_dir, bin_command, subprocess_env):
    workdir = tmp_path / "interrupted"
    command = bin_command("train", f"--workdir={workdir}", f"--data_dir={tfds_dir}", *PAPER_RUN)
    code, out, err = _start_and_signal(command, subprocess_env(), workdir, signal.SIGINT)
    assert code == 130 and "Traceback" not in err, err[-3000:]
    assert "error: interrupted; run the same command again to resume" in err


# --- Issue 10's acceptance folder ------------------------------------------------------

SKIPPED = re.compile(r"skipped a bad record .* \(\d+ so far\): (\S+)")


def _named(log):
    """Base names of the files a log says were skipped."""
    return {os.path.basename(path) for path in SKIPPED.findall(log)}


def test_an_epoch_on_a_folder_with_bombs_names_them_and_uses_gif_bmp_webp(
    tmp_path, bad_image_folder, capfd
):
    config = config_lib.paper_recipe()
    config.update(
        dict(
            dataset=str(bad_image_folder.root),
            variant="A",
            epochs=1,
            batch_size=4,
            crop_size=32,
            scale_min=32,
            scale_max=48,
            width_multiplier=0.0625,
            kernel_initializer="glorot",
            checkpoint_every_steps=100,
        )
    )
    random_states = _random_states()
    result = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert _random_states() == random_states  # the run's seeding is undone
    log = capfd.readouterr().err
    assert _named(log) == set(bad_image_folder.bad)  # every bad file, and only those
    # 13 files, 90% to train: 12 records of 4 a step; the held-out one is the BMP.
    assert result["epochs"] == 1 and 0 <= result["val_top1_error"] <= 1
    assert result["run_config"]["class_names"] == ["cat", "other"]
    assert len(result["run_config"]["mean_rgb"]) == 3
    recorded = workdir_lib.read_config(tmp_path / "run")
    assert recorded["dataset"] == str(bad_image_folder.root) and recorded["num_classes"] == 2
    assert (tmp_path / "run" / "model.keras").is_file()
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    loss = float(rows[1].split(",")[list(METRIC_COLUMNS).index("train_loss")])
    assert len(rows) == 2 and np.isfinite(loss) and loss > 0


# Runs a command as its child and reports the child's peak resident memory: in a fresh
# interpreter, RUSAGE_CHILDREN sees that child alone.
_PEAK_MEMORY = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
print(f"peak_rss_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", flush=True)
sys.exit(code)
"""


@pytest.mark.slow
def test_bin_train_on_the_full_size_folder_names_the_bad_files_within_4gb(
    tmp_path, make_bad_image_folder, bin_command, subprocess_env
):
    """Issue 10's acceptance: a 20000^2 JPEG, a 40000^2 PNG of 1.6 MB, a 10 x 100000 strip,
    400 full-canvas GIF frames of 2000^2 (4.8 GB decoded), a BMP, a WebP and a truncated
    JPEG among good JPEGs: bin/train trains an epoch, names every bad file, exits 0 and
    peaks under 4 GB."""
    from vgg_tf.data import images

    folder = make_bad_image_folder(tmp_path / "photos", full=True)
    declared = {
        name: images.declared_size((folder.root / c / name).read_bytes()).numpy().tolist()
        for name, c in folder.classes.items()
        if name in ("bomb.jpg", "bomb.png")
    }
    assert declared == {"bomb.jpg": [20000, 20000], "bomb.png": [40000, 40000]}
    assert (folder.root / "other" / "bomb.png").stat().st_size < 1_700_000
    command = bin_command(
        "train",
        "--variant",
        "A",
        f"--dataset={folder.root}",
        "--epochs=1",
        "--batch_size=4",
        "--config.crop_size=32",
        "--config.scale_min=32",
        "--config.scale_max=48",
        "--config.width_multiplier=0.0625",
        f"--workdir={tmp_path / 'run'}",
    )
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_MEMORY, *command],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-4000:]
    assert _named(result.stderr) == set(folder.bad)
    assert "final validation top-1 error" in result.stdout
    peak = int(re.search(r"peak_rss_kb=(\d+)", result.stdout).group(1)) * 1024
    print(f"bin/train on the acceptance folder: peak resident memory {peak / 2**20:.0f} MB")
    assert 100 * 2**20 < peak < 4 * 2**30


# --- Fine-tuning -------------------------------------------------------------


def test_init_from_another_class_count_copies_all_but_fc8(tmp_path, tiny_model, make_workdir):
    source = tiny_model(seed=1, classes=5)
    start = make_workdir(
        tmp_path / "five", model=source, num_classes=5, class_names=[str(d) for d in range(5)]
    )
    model = tiny_model(seed=2, classes=10)
    fresh_fc8 = [w.copy() for w in model.get_layer("fc8").get_weights()]
    copied, note = network.initialise_from(model, str(start))
    weighted = [layer.name for layer in model.layers if layer.weights]
    assert copied == [name for name in weighted if name != "fc8"]
    assert note == "fc8 is initialised afresh for 10 classes (the source has 5)"
    for name in copied:
        for ours, theirs in zip(
            model.get_layer(name).get_weights(), source.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(ours, theirs)
    for ours, fresh in zip(model.get_layer("fc8").get_weights(), fresh_fc8):
        np.testing.assert_array_equal(ours, fresh)
    # The same class count copies fc8 too.
    same = tiny_model(seed=3, classes=5)
    copied, note = network.initialise_from(same, str(start))
    assert "fc8" in copied and note == ""


@pytest.mark.parametrize(
    "freeze, trained",
    [
        ("none", None),
        ("convs", {"fc6", "fc7", "fc8"}),
        ("all_but_head", {"fc8"}),
    ],
)
def test_freeze_leaves_the_named_layers_out_of_training(tiny_model, freeze, trained):
    model = tiny_model(batch_norm=True)
    frozen = network.freeze_layers(model, freeze)
    weighted = {layer.name for layer in model.layers if layer.weights}
    if trained is None:
        assert frozen == [] and all(layer.trainable for layer in model.layers)
        return
    assert set(frozen) == weighted - trained
    owners = {v.path.split("/")[0] for v in model.trainable_variables}
    assert owners == trained
    with pytest.raises(ValueError, match="freeze 'fc'.*none, convs, all_but_head"):
        network.freeze_layers(tiny_model(), "fc")


@pytest.mark.slow
def test_fine_tuning_with_frozen_convs_trains_the_head_only(
    tmp_path, tiny_recipe, tiny_model, make_workdir
):
    """A run from a 5-class start on all 10 digits: the conv kernels stay bit-identical,
    fc8 is new, the FC layers move, and the start model's mean RGB and batch-norm epsilon
    (torch's, as an import records it) are kept, through a second --init_from as well."""
    source = tiny_model(seed=1, classes=5, batch_norm=True)
    start = make_workdir(
        tmp_path / "five",
        model=source,
        num_classes=5,
        batch_norm=True,
        batch_norm_epsilon=1e-5,
        mean_rgb=[10.0, 20.0, 30.0],
        class_names=[str(d) for d in range(5)],
    )
    config = tiny_recipe(
        batch_norm=True,
        batch_size=64,
        epochs=1,
        init_from=str(start),
        freeze="convs",
        checkpoint_every_steps=100,
    )
    result = train.train_and_evaluate(config, str(tmp_path / "ten"))
    assert result["run_config"]["mean_rgb"] == [10.0, 20.0, 30.0]
    tuned = keras.models.load_model(tmp_path / "ten" / "model.keras")
    for layer in source.layers:
        if not layer.weights:
            continue
        ours = tuned.get_layer(layer.name).get_weights()
        if layer.name.startswith("fc"):
            if layer.name != "fc8":  # fc8 has another shape: 10 classes
                assert any(np.any(a != b) for a, b in zip(ours, layer.get_weights())), layer.name
            continue
        for a, b in zip(ours, layer.get_weights()):  # kernels, biases, BN statistics
            np.testing.assert_array_equal(a, b, err_msg=layer.name)
    assert tuned.get_layer("fc8").units == 10
    assert result["run_config"]["batch_norm_epsilon"] == 1e-5
    assert {layer.epsilon for layer in tuned.layers if "_bn" in layer.name} == {1e-5}
    # A run started from that run builds its batch norm with the same epsilon.
    config.update(init_from=str(tmp_path / "ten"), freeze="all_but_head")
    again = train.train_and_evaluate(config, str(tmp_path / "again"))
    assert again["run_config"]["batch_norm_epsilon"] == 1e-5
    chained = keras.models.load_model(tmp_path / "again" / "model.keras")
    assert {layer.epsilon for layer in chained.layers if "_bn" in layer.name} == {1e-5}
