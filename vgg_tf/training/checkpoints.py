"""Checkpoints that survive a kill, for one process or a worker set.

``tf.train.CheckpointManager`` writes each checkpoint's data and index under
temporary names and renames them into place, then rewrites the ``checkpoint``
state file atomically: a process killed while saving leaves the previous
checkpoint as the latest one, never a half-written one.
"""

from __future__ import annotations

import os
import shutil

import tensorflow as tf

from vgg_tf.training import distribute


class RunCheckpoint:
    """Saves and restores everything a run needs to continue exactly.

    In a worker set every worker takes part in each save (it is a collective
    operation); only the chief's copy is kept, in ``WORKDIR/checkpoints``.

    Args:
        workdir: The run's directory.
        strategy: The distribution strategy of the run.
        keep: Number of checkpoints kept.
        **trackables: What to save (model variables, optimizer, counters...).

    Example:
        >>> ckpt = RunCheckpoint("/tmp/run", tf.distribute.get_strategy(), step=step)  # doctest: +SKIP
        >>> ckpt.restore_latest()  # doctest: +SKIP
    """

    def __init__(self, workdir: str, strategy: tf.distribute.Strategy, keep: int, **trackables):
        self.directory = os.path.join(workdir, "checkpoints")
        self._chief = distribute.is_chief(strategy)
        write_dir = self.directory
        if not self._chief:
            write_dir = os.path.join(workdir, f".worker{distribute.task_id(strategy)}_checkpoints")
        self.checkpoint = tf.train.Checkpoint(**trackables)
        self._write_dir = write_dir
        self._manager = tf.train.CheckpointManager(self.checkpoint, write_dir, max_to_keep=keep)

    def restore_latest(self) -> str | None:
        """Restores the chief's latest checkpoint; returns its path, or None if there is none."""
        latest = tf.train.latest_checkpoint(self.directory)
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        return latest

    def save(self, step: int) -> None:
        """Writes checkpoint number ``step`` (all workers must call this together)."""
        self._manager.save(checkpoint_number=step)
        if not self._chief:
            shutil.rmtree(self._write_dir, ignore_errors=True)
