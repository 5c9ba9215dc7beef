"""What a run shows and leaves behind: progress, metrics.csv, learning curves, TensorBoard.

Only the chief process shows and writes these, and every file goes through
``tf.io.gfile``, so a workdir on ``gs://``, ``s3://`` or ``ram://`` works as a local one.

**What the run prints** (:func:`progress_mode`, :class:`EpochProgress`): one line at the
start naming the strategy, the replicas and their devices (:func:`device_line`); per
epoch ``Epoch k/N``, then either Keras' progress bar (``"bar"``, for a terminal: it
redraws itself with ``\\r``, ``\\b`` and colour codes) or plain lines (``"lines"``, for
a log file: one every ``log_every_steps`` steps and one at the epoch's last step, no
control character), or nothing (``"none"``); and, in every mode, the epoch's line
(``epoch 1: val top-1 error ...``). ``"auto"`` is ``"bar"`` on a terminal, else
``"lines"``.

**TensorBoard**, laid out as ``keras.callbacks.TensorBoard`` lays out a ``fit``, so
that TensorBoard draws train and validation in one chart per tag:

* ``logs/train``: ``epoch_loss`` and ``epoch_<m>`` (the epoch's), ``epoch_learning_rate``
  and ``epoch_images_per_second``, at the epoch's number (1, 2, ...: metrics.csv's);
  ``batch_loss`` and ``batch_<m>`` every ``log_every_steps`` steps, at the global step.
* ``logs/validation``: ``epoch_loss`` and ``epoch_<m>`` of the validation after each epoch.

``<m>`` is each of the task's metrics (``top1_error``, ``top5_error``; a localisation
net's ``error``, ``mean_iou``). As with Keras' ``update_freq``, a ``batch_*`` value is
the epoch's running mean up to that step.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from vgg_tf.training.recipe import PROGRESS_MODES
from vgg_tf.training.tasks import Localisation
from vgg_tf.workdir import atomic_path

METRIC_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_top1_error",
    "train_top5_error",
    "val_loss",
    "val_top1_error",
    "val_top5_error",
    "images_per_second",
)
#: TensorBoard's tag (without ``epoch_``) of a metrics.csv column that is neither
#: ``train_*`` nor ``val_*``.
_TRAIN_ONLY_TAGS = {"lr": "learning_rate", "images_per_second": "images_per_second"}


# --- What the run prints ------------------------------------------------------------------


def progress_mode(progress: str, stream=None) -> str:
    """The display a run uses: ``progress``, with ``"auto"`` resolved.

    ``"auto"`` is ``"bar"`` when ``stream`` (standard output by default) is a
    terminal, else ``"lines"`` (a log file, a pipe, a scheduler's capture).

    Raises:
        ValueError: ``progress`` is not one of :data:`PROGRESS_MODES`.

    Example:
        >>> progress_mode("auto", io.StringIO())
        'lines'
        >>> progress_mode("none")
        'none'
    """
    if progress not in PROGRESS_MODES:
        raise ValueError(
            f"progress={progress!r} is not a display; expected one of {', '.join(PROGRESS_MODES)}."
        )
    if progress != "auto":
        return progress
    stream = sys.stdout if stream is None else stream
    try:
        terminal = bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        terminal = False
    return "bar" if terminal else "lines"


_STRATEGY_NAMES = (
    # MultiWorkerMirroredStrategy's class is named CollectiveAllReduceStrategy.
    (tf.distribute.MultiWorkerMirroredStrategy, "MultiWorkerMirroredStrategy"),
    (tf.distribute.MirroredStrategy, "MirroredStrategy"),
    (tf.distribute.TPUStrategy, "TPUStrategy"),
    (tf.distribute.OneDeviceStrategy, "OneDeviceStrategy"),
)


def device_line(strategy: tf.distribute.Strategy) -> str:
    """The line a run starts with: the strategy, its replicas and this process's devices.

    A TensorFlow built for CUDA that finds no GPU says so in the same line, so that a
    broken GPU install never trains on the CPU without a word.

    Example:
        >>> device_line(tf.distribute.get_strategy())  # doctest: +SKIP
        'Training on 1 replica (default strategy): /job:localhost/replica:0/task:0/device:CPU:0'
    """
    replicas = strategy.num_replicas_in_sync
    name = next(
        (label for kind, label in _STRATEGY_NAMES if isinstance(strategy, kind)),
        "default strategy" if type(strategy).__name__.startswith("_Default") else None,
    )
    name = name or type(strategy).__name__
    if name == "default strategy":  # it lists no devices: where its ops run is the answer
        with strategy.scope():
            devices = [tf.zeros(()).device]
    else:
        devices = list(strategy.extended.worker_devices)
    counted = f"{replicas} replica" if replicas == 1 else f"{replicas} replicas in sync"
    whose = "" if len(devices) == replicas else ", this worker's"
    line = f"Training on {counted} ({name}){whose}: {', '.join(devices)}"
    cuda_build = bool(tf.sysconfig.get_build_info().get("is_cuda_build"))
    if cuda_build and not tf.config.list_physical_devices("GPU"):
        line += " (this TensorFlow is built for CUDA GPUs but finds none: check the driver)"
    return line


def crosses(step_before: int, step_after: int, every: int) -> bool:
    """Whether the steps ``step_before + 1`` to ``step_after`` include a multiple of ``every``.

    Example:
        >>> crosses(8, 10, 10), crosses(10, 12, 10)
        (True, False)
    """
    return step_before // every < step_after // every


class EpochProgress:
    """What one epoch shows while it trains (the chief), in one :func:`progress_mode`.

    ``"bar"`` and ``"lines"`` start with ``Epoch k/N``. ``"bar"`` is
    ``keras.utils.Progbar`` (it writes ``\\r``, ``\\b`` and colour codes even when
    standard output is a file); ``"lines"`` prints, every ``every`` steps and at the
    epoch's last step, one plain line::

        epoch 1/2 step 10/25 (global 10): loss 2.2871 - top1_err 0.8875 - img/s 812.4 - lr 0.01

    with the epoch's running loss and metrics, the images per second since the last
    line, and the learning rate; ``"none"`` prints nothing.

    Args:
        mode: ``"bar"``, ``"lines"`` or ``"none"`` (see :func:`progress_mode`).
        epoch: This epoch's number, from 1.
        epochs: The run's number of epochs.
        steps_per_epoch: Steps in an epoch.
        metrics: The task's metric names and their short names (``top1_error`` ->
            ``top1_err``).
        every: Steps between two lines (``log_every_steps``).

    Example:
        >>> progress = EpochProgress("lines", 1, 2, 20, {"top1_error": "top1_err"}, 10)
        Epoch 1/2
        >>> progress.update(0, 10, {"loss": 2.0, "top1_error": 0.5}, 0.01, 320, 0.5)
        epoch 1/2 step 10/20 (global 10): loss 2.0000 - top1_err 0.5000 - img/s 640.0 - lr 0.01
    """

    def __init__(
        self,
        mode: str,
        epoch: int,
        epochs: int,
        steps_per_epoch: int,
        metrics: Mapping[str, str],
        every: int,
    ):
        if mode not in PROGRESS_MODES[1:]:
            raise ValueError(f"mode={mode!r}; expected one of {', '.join(PROGRESS_MODES[1:])}.")
        self.mode, self.epoch, self.epochs = mode, epoch, epochs
        self.steps_per_epoch, self.metrics, self.every = steps_per_epoch, dict(metrics), every
        self._bar = None
        self._images, self._seconds = 0, 0.0
        if mode == "none":
            return
        print(f"Epoch {epoch}/{epochs}", flush=True)
        if mode == "bar":
            import keras

            self._bar = keras.utils.Progbar(
                steps_per_epoch,
                unit_name="step",
                stateful_metrics=["loss", *self.metrics.values(), "img/s", "lr"],
            )

    def update(
        self,
        step_before: int,
        chunk: int,
        rates: Mapping[str, float],
        lr: float,
        images: int,
        seconds: float,
    ) -> None:
        """After one call of the compiled steps.

        Args:
            step_before: The global step before the call.
            chunk: Steps the call ran.
            rates: The epoch's running ``loss`` and metrics.
            lr: The learning rate of the call.
            images: Images the call trained on.
            seconds: Wall seconds of the call.
        """
        step_after = step_before + chunk
        offset = step_after - (self.epoch - 1) * self.steps_per_epoch
        self._images, self._seconds = self._images + images, self._seconds + seconds
        values = [
            ("loss", rates["loss"]),
            *((short, rates[name]) for name, short in self.metrics.items()),
        ]
        if self._bar is not None:
            self._bar.update(offset, [*values, ("img/s", images / max(seconds, 1e-9)), ("lr", lr)])
            return
        if self.mode != "lines":
            return
        if not (crosses(step_before, step_after, self.every) or offset >= self.steps_per_epoch):
            return
        speed = self._images / max(self._seconds, 1e-9)
        self._images, self._seconds = 0, 0.0
        shown = " - ".join(f"{name} {value:.4f}" for name, value in values)
        print(
            f"epoch {self.epoch}/{self.epochs} step {offset}/{self.steps_per_epoch} "
            f"(global {step_after}): {shown} - img/s {speed:.1f} - lr {lr:.4g}",
            flush=True,
        )


# --- What the run leaves behind -----------------------------------------------------------


class RunLog:
    """Appends one row per epoch to ``metrics.csv`` and TensorBoard, redraws the curves.

    TensorBoard's files are opened at the first write (a run that writes nothing leaves
    no ``logs/``); :meth:`close` closes them.

    Args:
        workdir: The run's directory (a local path or a ``tf.io.gfile`` URL).

    Example:
        >>> log = RunLog("/tmp/run")  # doctest: +SKIP
        >>> log.write_steps(100, {"loss": 2.1, "top1_error": 0.8})  # doctest: +SKIP
        >>> log.write_epoch({"epoch": 1, "lr": 0.01, "train_loss": 2.3, ...})  # doctest: +SKIP
        >>> log.close()  # doctest: +SKIP
    """

    def __init__(self, workdir: str):
        self.csv_path = os.path.join(workdir, "metrics.csv")
        self.png_path = os.path.join(workdir, "learning_curves.png")
        self.logs_dir = os.path.join(workdir, "logs")
        self._writers: dict[str, tf.summary.SummaryWriter] = {}

    def _writer(self, split: str) -> tf.summary.SummaryWriter:
        """The TensorBoard writer of ``logs/<split>`` ("train" or "validation")."""
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(os.path.join(self.logs_dir, split))
        return self._writers[split]

    def close(self) -> None:
        """Flushes and closes the TensorBoard files (a later write opens new ones)."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def rows(self) -> list[dict]:
        """Rows written so far (a resumed run continues the same file).

        A column that a row's run did not write yet (``val_loss`` before it was
        recorded) reads as NaN.
        """
        if not tf.io.gfile.exists(self.csv_path):
            return []
        with tf.io.gfile.GFile(self.csv_path, "r") as f:
            text = f.read()
        return [
            {k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(text))
        ]

    def write_steps(self, step: int, rates: Mapping[str, float]) -> None:
        """Writes ``batch_<name>`` of each of ``rates`` (the epoch's running loss and
        metrics) to ``logs/train`` at the global ``step``."""
        with self._writer("train").as_default(step=int(step)):
            for name, value in rates.items():
                tf.summary.scalar(f"batch_{name}", float(value))
        self._writer("train").flush()

    def write_epoch(self, row: dict) -> None:
        """Records one epoch's metrics: the columns are ``row``'s keys, in order
        (:data:`METRIC_COLUMNS` for a classifier; a localisation run logs its own)."""
        columns = list(row)
        # A run resumed after a kill may repeat an epoch whose row was already written.
        rows = [r for r in self.rows() if int(r["epoch"]) < int(row["epoch"])] + [row]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _format(r.get(k, math.nan)) for k in columns})
        with atomic_path(self.csv_path) as tmp, tf.io.gfile.GFile(tmp, "w") as f:
            f.write(text.getvalue())
        for split, tags in _epoch_tags(row).items():
            with self._writer(split).as_default(step=int(row["epoch"])):
                for tag, value in tags.items():
                    tf.summary.scalar(tag, float(value))
            self._writer(split).flush()
        plot_learning_curves(rows, self.png_path)


def _epoch_tags(row: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """A metrics.csv row as TensorBoard's tags per folder (``train_loss`` -> train's
    ``epoch_loss``, ``val_loss`` -> validation's ``epoch_loss``, ``lr`` -> train's
    ``epoch_learning_rate``)."""
    tags: dict[str, dict[str, float]] = {"train": {}, "validation": {}}
    for key, value in row.items():
        if key.startswith("train_"):
            tags["train"][f"epoch_{key[len('train_') :]}"] = value
        elif key.startswith("val_"):
            tags["validation"][f"epoch_{key[len('val_') :]}"] = value
        elif key in _TRAIN_ONLY_TAGS:
            tags["train"][f"epoch_{_TRAIN_ONLY_TAGS[key]}"] = value
    return tags


def _format(value) -> str:
    value = float(value)
    if math.isnan(value):
        return ""
    return str(int(value)) if value.is_integer() and abs(value) > 0.5 else f"{value:.6g}"


def plot_learning_curves(rows: list[dict], path: str) -> None:
    """Draws loss, the error rates (top-1/top-5, or localisation) and learning rate per epoch.

    ``path`` may be a ``tf.io.gfile`` URL: the PNG is drawn in memory, then written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.array([r["epoch"] for r in rows])
    fig, (ax_loss, ax_err, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.6))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    if any("val_loss" in r for r in rows):
        ax_loss.plot(epochs, [r.get("val_loss", math.nan) for r in rows], "o-", label="val")
        ax_loss.legend()
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
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=90)
    plt.close(fig)
    with atomic_path(path) as tmp, tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(image.getvalue())


def final_lines(result: dict) -> str:
    """What ``bin/train`` prints last: test error, then (the last line) validation error."""
    if result.get("task") == "localisation":
        rates = {
            split: {name: result[f"{split}_{name}"] for name in Localisation.metrics}
            for split in ("test", "val")
        }
        return (
            f"final test {Localisation.describe(rates['test'])}\n"
            f"final validation {Localisation.describe(rates['val'])}"
        )
    lines = []
    for split, name in (("test", "test"), ("val", "validation")):
        top5 = result.get(f"{split}_top5_error")  # none for 5 classes or fewer
        lines.append(
            f"final {name} top-1 error {result[f'{split}_top1_error']:.2%}"
            + (f", top-5 error {top5:.2%}" if top5 is not None else "")
        )
    return "\n".join(lines)
