"""What a run shows and leaves behind: metrics.csv, learning curves, TensorBoard.

Only the chief process writes these files.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import tensorflow as tf

from vgg_tf.workdir import atomic_path

METRIC_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_top1_error",
    "train_top5_error",
    "val_top1_error",
    "val_top5_error",
    "images_per_second",
)


class RunLog:
    """Appends one row per epoch to ``metrics.csv`` and TensorBoard, redraws the curves.

    Args:
        workdir: The run's directory.

    Example:
        >>> log = RunLog("/tmp/run")  # doctest: +SKIP
        >>> log.write_epoch({"epoch": 1, "lr": 0.01, "train_loss": 2.3, ...})  # doctest: +SKIP
    """

    def __init__(self, workdir: str):
        self.csv_path = os.path.join(workdir, "metrics.csv")
        self.png_path = os.path.join(workdir, "learning_curves.png")
        self._writer = tf.summary.create_file_writer(os.path.join(workdir, "logs"))

    def rows(self) -> list[dict]:
        """Rows written so far (a resumed run continues the same file)."""
        if not os.path.exists(self.csv_path):
            return []
        with open(self.csv_path, newline="") as f:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def write_epoch(self, row: dict) -> None:
        """Records one epoch's metrics: the columns are ``row``'s keys, in order
        (:data:`METRIC_COLUMNS` for a classifier; a localisation run logs its own)."""
        columns = list(row)
        # A run resumed after a kill may repeat an epoch whose row was already written.
        rows = [r for r in self.rows() if int(r["epoch"]) < int(row["epoch"])] + [row]
        with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for r in rows:
                writer.writerow({k: _format(r[k]) for k in columns})
        with self._writer.as_default(step=int(row["epoch"])):
            for key in columns[1:]:
                tf.summary.scalar(key, row[key])
        self._writer.flush()
        plot_learning_curves(rows, self.png_path)


def _format(value) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) > 0.5 else f"{value:.6g}"


def plot_learning_curves(rows: list[dict], path: str) -> None:
    """Draws loss, the error rates (top-1/top-5, or localisation) and learning rate per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.array([r["epoch"] for r in rows])
    fig, (ax_loss, ax_err, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.6))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    ax_loss.set(title="loss", xlabel="epoch")
    errors = [key[len("val_") :] for key in rows[-1] if key.startswith("val_") and "error" in key]
    for split, style in (("train", "--"), ("val", "-")):
        for name in errors:
            ax_err.plot(
                epochs,
                [100 * r[f"{split}_{name}"] for r in rows],
                style,
                marker="o",
                label=f"{split} {name.replace('_error', '').replace('top', 'top-')}",
            )
    ax_err.set(title="error (%)", xlabel="epoch")
    ax_err.legend()
    ax_lr.semilogy(epochs, [r["lr"] for r in rows], "o-")
    ax_lr.set(title="learning rate", xlabel="epoch")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
