"""What a run of train_and_evaluate reports and leaves behind (issue 22): plain progress
lines in a log file, the start line naming the devices, TensorBoard laid out as Keras lays
it out, Keras callbacks, and a run that fails before its first checkpoint leaving the
workdir as it found it.

One short run (3 epochs asked for, a callback stops it after 2) is shared by most tests."""

import contextlib
import csv
import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from vgg_tf import workdir as workdir_lib
from vgg_tf.training import loop
from vgg_tf.training.reporting import METRIC_COLUMNS

BATCH, EVERY, PER_CALL = 64, 10, 2
DEVICE_LINE = re.compile(
    r"^Training on 1 replica \(default strategy\): /job:localhost/replica:0/task:0/device:CPU:0$"
)
STEP_LINE = re.compile(
    r"^epoch (\d+)/3 step (\d+)/(\d+) \(global (\d+)\): loss \d+\.\d{4} - top1_err \d\.\d{4} "
    r"- top5_err \d\.\d{4} - img/s \d+\.\d - lr 0\.01$"
)


def _recipe(tiny_recipe, **changes):
    """The tiny net A of ``tiny_recipe``: a second or two per epoch."""
    settings = dict(
        batch_size=BATCH,
        epochs=3,
        mean_rgb=(47.6, 47.6, 47.6),  # not computed from the training set: quicker
        checkpoint_every_steps=1000,
        log_every_steps=EVERY,
        steps_per_execution=PER_CALL,
    )
    return tiny_recipe(**{**settings, **changes})


class Recorder(keras.callbacks.Callback):
    """Records every call as (method, index, logs) and whether the workdir has config.json;
    stops the run after ``stop_after`` epochs, raises KeyboardInterrupt at the train batch
    ``interrupt_at`` of the run, and with ``fix_head`` makes fc8 answer class 0 when the run ends."""

    def __init__(self, stop_after=None, interrupt_at=None, workdir=None, fix_head=False):
        super().__init__()
        self.calls, self.recorded = [], []
        self.stop_after, self.interrupt_at = stop_after, interrupt_at
        self.workdir, self.fix_head = workdir, fix_head

    def _record(self, method, index=None, logs=None):
        self.calls.append((method, index, dict(logs or {})))

    def on_train_begin(self, logs=None):
        self._record("train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._record("train_end", logs=logs)
        if self.fix_head:  # as EarlyStopping's restore_best_weights changes the weights here
            fc8 = self.model.get_layer("fc8")
            kernel, bias = fc8.get_weights()
            fc8.set_weights([np.zeros_like(kernel), np.eye(len(bias), 1)[:, 0] * 10])

    def on_epoch_begin(self, epoch, logs=None):
        self._record("epoch_begin", epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._record("batch_end", batch, logs)
        if self.workdir is not None:
            self.recorded.append(workdir_lib.read_config(self.workdir) is not None)
        if self.interrupt_at is not None and len(self.of("batch_end")) > self.interrupt_at:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs=None):
        self._record("epoch_end", epoch, logs)
        if self.stop_after is not None and epoch + 1 >= self.stop_after:
            self.model.stop_training = True

    def of(self, method):
        return [(index, logs) for name, index, logs in self.calls if name == method]


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory, tiny_recipe, digits):
    """A run with standard output going to a file (as ``bin/train > log.txt``), progress
    "auto", and a :class:`Recorder` that stops it after 2 of its 3 epochs."""
    workdir = tmp_path_factory.mktemp("reports") / "run"
    log_path = workdir.parent / "log.txt"
    recorder = Recorder(stop_after=2, workdir=workdir, fix_head=True)
    with open(log_path, "w") as log, contextlib.redirect_stdout(log):
        result = loop.train_and_evaluate(_recipe(tiny_recipe), str(workdir), callbacks=[recorder])
    steps_per_epoch = digits.num_examples(digits.train_split) // BATCH
    assert steps_per_epoch % PER_CALL == 0 and steps_per_epoch > EVERY  # (the counts below)
    return dict(
        workdir=workdir,
        log=log_path.read_text(),
        result=result,
        recorder=recorder,
        steps_per_epoch=steps_per_epoch,
    )


def test_a_log_file_gets_plain_lines_every_n_steps_and_the_device_line(reported_run):
    log, steps = reported_run["log"], reported_run["steps_per_epoch"]
    assert not {"\r", "\b", "\x1b"} & set(log), repr(log[:500])
    lines = log.splitlines()
    assert DEVICE_LINE.match(lines[0]), lines[0]
    step_lines = [STEP_LINE.match(line) for line in lines if line.startswith("epoch 1/3 step")]
    step_lines += [STEP_LINE.match(line) for line in lines if line.startswith("epoch 2/3 step")]
    assert all(step_lines), lines
    logged = [int(match.group(4)) for match in step_lines]
    # Every EVERY steps, and at each epoch's end.
    expected = sorted({s for s in range(1, 2 * steps + 1) if s % EVERY == 0} | {steps, 2 * steps})
    assert logged == expected
    assert {int(match.group(3)) for match in step_lines} == {steps}
    assert lines.count("Epoch 1/3") == 1 and lines.count("Epoch 2/3") == 1
    assert "Epoch 3/3" not in lines  # stopped by the callback
    assert any(
        re.match(r"^epoch 2: val top-1 error .*, loss \d\.\d{4}; train loss", line)
        for line in lines
    )


def _events(folder):
    """{tag: [(step, value), ...]} of the TensorBoard files in ``folder``."""
    tags = {}
    for path in sorted(tf.io.gfile.glob(str(folder / "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                tags.setdefault(value.tag, []).append((event.step, number))
    return tags


def test_tensorboard_has_keras_layout_validation_loss_and_the_loss_every_n_steps(reported_run):
    logs = reported_run["workdir"] / "logs"
    train, validation = _events(logs / "train"), _events(logs / "validation")
    metrics = ("loss", "top1_error", "top5_error")
    assert set(validation) == {f"epoch_{name}" for name in metrics}
    assert set(train) == {
        *(f"epoch_{name}" for name in metrics),
        "epoch_learning_rate",
        "epoch_images_per_second",
        *(f"batch_{name}" for name in metrics),
    }
    steps = reported_run["steps_per_epoch"]
    assert [step for step, _ in train["batch_loss"]] == list(range(EVERY, 2 * steps + 1, EVERY))
    for tags in (train, validation):
        assert [step for step, _ in tags["epoch_loss"]] == [1, 2]
    with open(reported_run["workdir"] / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(METRIC_COLUMNS) and len(rows) == 2
    for row, (_, val_loss), (_, train_loss) in zip(
        rows, validation["epoch_loss"], train["epoch_loss"]
    ):
        assert float(row["val_loss"]) == pytest.approx(val_loss, rel=1e-5)
        assert float(row["train_loss"]) == pytest.approx(train_loss, rel=1e-5)
    assert train["epoch_learning_rate"] == [(1, pytest.approx(0.01)), (2, pytest.approx(0.01))]


def test_callbacks_are_called_as_fit_calls_them_and_can_stop_the_run(reported_run):
    recorder, steps = reported_run["recorder"], reported_run["steps_per_epoch"]
    names = [name for name, _, _ in recorder.calls]
    assert names[0] == "train_begin" and names[-1] == "train_end"
    assert names.count("train_begin") == names.count("train_end") == 1
    assert [index for index, _ in recorder.of("epoch_begin")] == [0, 1]
    # Once per compiled call of PER_CALL steps, with the index of its last step in the epoch.
    batches = [index for index, _ in recorder.of("batch_end")]
    assert batches == 2 * list(range(PER_CALL - 1, steps, PER_CALL))
    assert all(
        set(logs) == {"loss", "top1_error", "top5_error"} for _, logs in recorder.of("batch_end")
    )
    ends = recorder.of("epoch_end")
    assert [index for index, _ in ends] == [0, 1]
    expected = {"loss", "top1_error", "top5_error", "val_loss", "val_top1_error", "val_top5_error"}
    assert all(set(logs) == expected | {"learning_rate"} for _, logs in ends)
    last = ends[-1][1]
    assert recorder.of("batch_end")[-1][1]["loss"] == pytest.approx(last["loss"])
    assert recorder.of("train_end")[0][1] == last
    rows = (reported_run["workdir"] / "metrics.csv").read_text().splitlines()
    assert float(rows[-1].split(",")[METRIC_COLUMNS.index("val_loss")]) == pytest.approx(
        last["val_loss"], rel=1e-5
    )
    # The result describes the model as the callbacks left it (fc8 gives the logit 10 to
    # class 0, 0 to the others), not the last epoch's validation.
    result = reported_run["result"]
    assert 0.5 < result["val_top1_error"] < 1
    hits = 1 - result["val_top1_error"]  # the examples of class 0
    assert result["val_loss"] == pytest.approx(math.log(math.exp(10) + 9) - 10 * hits)
    assert last["val_loss"] < 3 < result["val_loss"]
    # Stopped after epoch 2 of 3: said so, saved its model and that epoch's checkpoint.
    assert "A callback stopped the run after epoch 2 of 3." in reported_run["log"]
    workdir = reported_run["workdir"]
    assert (workdir / "model.keras").is_file()
    assert (workdir / "checkpoints" / f"ckpt-{2 * steps}.index").is_file()


def test_bad_progress_or_callback_is_refused_before_the_workdir_is_touched(tmp_path, tiny_recipe):
    config = _recipe(tiny_recipe)
    with pytest.raises(ValueError, match=r"progress='fancy'.*expected one of auto, bar, lines"):
        loop.train_and_evaluate(config, str(tmp_path / "run"), progress="fancy")
    with pytest.raises(ValueError, match=r"callbacks\[1\] is a str; expected a keras"):
        loop.train_and_evaluate(config, str(tmp_path / "run"), callbacks=[Recorder(), "stop"])
    board = keras.callbacks.TensorBoard(str(tmp_path / "tb"))
    with pytest.raises(ValueError, match=r"callbacks\[0\] is a keras.callbacks.TensorBoard.*logs"):
        loop.train_and_evaluate(config, str(tmp_path / "run"), callbacks=[board])
    assert not (tmp_path / "run").exists()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_the_workdir_as_found(
    tmp_path, tiny_recipe
):
    """Issue 22: a failed start left config.json behind, and the corrected rerun with
    another recipe needed --overwrite."""
    new = tmp_path / "runs" / "new"
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C after the first call of the steps
        loop.train_and_evaluate(
            _recipe(tiny_recipe), str(new), callbacks=[Recorder(interrupt_at=0)], progress="none"
        )
    assert not (tmp_path / "runs").exists()

    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("the user's")
    diverging = _recipe(tiny_recipe, learning_rate=1e10, steps_per_execution=5)
    with pytest.raises(loop.NonFiniteLossError, match="No checkpoint was written"):
        loop.train_and_evaluate(diverging, str(kept), progress="none")
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]
    # Another recipe in the same workdir is not refused as another run's: it trains (and is
    # interrupted in turn).
    with pytest.raises(KeyboardInterrupt):
        loop.train_and_evaluate(
            _recipe(tiny_recipe), str(kept), callbacks=[Recorder(interrupt_at=0)], progress="none"
        )
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]


def test_a_run_that_has_a_checkpoint_keeps_its_files_and_resumes(tmp_path, tiny_recipe, capsys):
    workdir = tmp_path / "run"
    config = _recipe(tiny_recipe, checkpoint_every_steps=PER_CALL)
    # The second call's checkpoint is written before its on_train_batch_end interrupts.
    with pytest.raises(KeyboardInterrupt):
        loop.train_and_evaluate(
            config, str(workdir), callbacks=[Recorder(interrupt_at=1)], progress="none"
        )
    assert workdir_lib.read_config(workdir)["checkpoint_every_steps"] == PER_CALL
    assert (workdir / "checkpoints" / f"ckpt-{2 * PER_CALL}.index").is_file()
    capsys.readouterr()
    with pytest.raises(KeyboardInterrupt):
        loop.train_and_evaluate(
            config, str(workdir), callbacks=[Recorder(interrupt_at=0)], progress="none"
        )
    assert re.search(
        rf"Resumed from \S+ckpt-{2 * PER_CALL} at step {2 * PER_CALL}\n", capsys.readouterr().out
    )
    assert (workdir / "checkpoints" / f"ckpt-{3 * PER_CALL}.index").is_file()
    assert workdir_lib.read_config(workdir) is not None


def test_config_json_is_written_with_the_first_checkpoint(reported_run):
    """So that a run killed before it (SIGKILL: nothing can clean up) leaves no record that
    would refuse the next run of another recipe."""
    calls = reported_run["steps_per_epoch"] // PER_CALL
    # The first checkpoint is the end of epoch 1 (checkpoint_every_steps is larger).
    assert reported_run["recorder"].recorded == [False] * calls + [True] * calls
