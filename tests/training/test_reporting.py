import csv
import io
import math

import pytest
import tensorflow as tf

from vgg_tf.training.reporting import (
    METRIC_COLUMNS,
    EpochProgress,
    RunLog,
    device_line,
    final_lines,
    progress_mode,
)


def _row(epoch, error):
    return dict(
        epoch=epoch,
        lr=0.01,
        train_loss=2.0 / epoch,
        train_top1_error=error,
        train_top5_error=error / 3,
        val_loss=2.5 / epoch,
        val_top1_error=error + 0.05,
        val_top5_error=error / 2,
        images_per_second=123.4,
    )


def test_one_row_per_epoch_and_a_repeated_epoch_replaces_its_row(tmp_path):
    log = RunLog(str(tmp_path))
    log.write_epoch(_row(1, 0.5))
    log.write_epoch(_row(2, 0.3))
    log.write_epoch(_row(2, 0.25))  # a resumed run redoes epoch 2
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(METRIC_COLUMNS)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["train_top1_error"]) == pytest.approx(0.25)
    png = (tmp_path / "learning_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    for split in ("train", "validation"):
        assert list((tmp_path / "logs" / split).glob("events.out.tfevents.*")), split
    assert log.rows()[0]["val_top1_error"] == pytest.approx(0.55)


def test_a_metrics_csv_without_val_loss_is_continued(tmp_path):
    """A run resumed from a metrics.csv written before val_loss was recorded."""
    old = {k: v for k, v in _row(1, 0.5).items() if k != "val_loss"}
    (tmp_path / "metrics.csv").write_text(
        ",".join(old) + "\n" + ",".join(str(v) for v in old.values()) + "\n"
    )
    log = RunLog(str(tmp_path))
    log.write_epoch(_row(2, 0.3))
    rows = log.rows()
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert math.isnan(rows[0]["val_loss"]) and rows[1]["val_loss"] == pytest.approx(1.25)
    log.close()


class _Stream(io.StringIO):
    def __init__(self, terminal):
        super().__init__()
        self.terminal = terminal

    def isatty(self):
        return self.terminal


def test_auto_progress_is_a_bar_on_a_terminal_only_and_a_bad_mode_is_named():
    assert progress_mode("auto", _Stream(True)) == "bar"
    assert progress_mode("auto", _Stream(False)) == "lines"
    assert progress_mode("auto", object()) == "lines"  # no isatty at all
    assert progress_mode("none", _Stream(True)) == "none"
    with pytest.raises(ValueError, match=r"progress='plain'.*auto, bar, lines, none"):
        progress_mode("plain")


def _show(mode, capsys, steps=25, every=10):
    """What an epoch of ``steps`` steps, in calls of 4 steps, prints in ``mode``."""
    progress = EpochProgress(mode, 2, 3, steps, {"top1_error": "top1_err"}, every)
    done = steps  # epoch 2: the global step starts at one epoch
    while done < 2 * steps:
        chunk = min(4, 2 * steps - done)
        progress.update(done, chunk, {"loss": 1.5, "top1_error": 0.25}, 0.01, 4 * chunk, 0.1)
        done += chunk
    return capsys.readouterr().out


def test_lines_are_plain_every_n_steps_where_the_bar_redraws(capsys):
    lines = _show("lines", capsys).splitlines()
    # Calls of 4 steps from global step 25: a line at the call that reaches 30, 40 and 50
    # (the epoch's end), with the images per second since the line before.
    assert lines == [
        "Epoch 2/3",
        "epoch 2/3 step 8/25 (global 33): loss 1.5000 - top1_err 0.2500 - img/s 160.0 - lr 0.01",
        "epoch 2/3 step 16/25 (global 41): loss 1.5000 - top1_err 0.2500 - img/s 160.0 - lr 0.01",
        "epoch 2/3 step 25/25 (global 50): loss 1.5000 - top1_err 0.2500 - img/s 120.0 - lr 0.01",
    ]
    bar = _show("bar", capsys)
    assert bar.startswith("Epoch 2/3\n") and "top1_err" in bar and "\x1b[" in bar
    assert _show("none", capsys) == ""


def test_the_device_line_names_strategy_replicas_devices_and_a_missing_gpu(monkeypatch):
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0"])
    assert device_line(mirrored) == (
        "Training on 1 replica (MirroredStrategy): /job:localhost/replica:0/task:0/device:CPU:0"
    )
    default = tf.distribute.get_strategy()
    assert device_line(default) == (
        "Training on 1 replica (default strategy): /job:localhost/replica:0/task:0/device:CPU:0"
    )
    monkeypatch.setattr(tf.sysconfig, "get_build_info", lambda: {"is_cuda_build": True})
    assert device_line(default).endswith(
        "CPU:0 (this TensorFlow is built for CUDA GPUs but finds none: check the driver)"
    )


def test_the_run_log_writes_through_tf_io_gfile(tmp_path):
    """metrics.csv, the curves and TensorBoard on TensorFlow's in-memory filesystem, as on
    gs:// or s3://."""
    root = f"ram://{tmp_path.name}/run"
    log = RunLog(root)
    log.write_steps(10, {"loss": 2.5})
    log.write_epoch(_row(1, 0.5))
    log.write_epoch(_row(2, 0.3))
    log.close()
    assert [int(r["epoch"]) for r in RunLog(root).rows()] == [1, 2]
    with tf.io.gfile.GFile(f"{root}/learning_curves.png", "rb") as f:
        assert f.read(4) == b"\x89PNG"
    for split in ("train", "validation"):
        assert tf.io.gfile.glob(f"{root}/logs/{split}/events.out.tfevents.*"), split


def test_final_lines_leave_out_top5_error_for_five_classes_or_fewer():
    rates = {"test_top1_error": 0.5, "val_top1_error": 0.25}
    assert final_lines({"task": "classification", **rates}) == (
        "final test top-1 error 50.00%\nfinal validation top-1 error 25.00%"
    )
    five = {"test_top5_error": 0.125, "val_top5_error": 0.0}
    assert final_lines({"task": "classification", **rates, **five}).splitlines() == [
        "final test top-1 error 50.00%, top-5 error 12.50%",
        "final validation top-1 error 25.00%, top-5 error 0.00%",
    ]
