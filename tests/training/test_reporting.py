import csv

import pytest

from vgg_tf.training.reporting import METRIC_COLUMNS, RunLog


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
