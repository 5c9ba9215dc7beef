"""Checkpoints that survive a kill, lost files, damaged files and preemption.

``tf.train.CheckpointManager`` writes each checkpoint's data and index under
temporary names and renames them into place, then rewrites the ``checkpoint``
state file atomically: a process killed while saving leaves the previous
checkpoint as the latest one, never a half-written one.

The manager alone restores only what its state file names: a deleted state
file or index (a partial copy, rsync, an object store) would start the run
over and overwrite the older checkpoints. :meth:`RunCheckpoint.restore_latest`
reads the folder instead: it restores the newest checkpoint that reads, names
each newer one it skipped and why, and refuses when checkpoints exist but none
reads. The state file is then rewritten to list the checkpoints kept, so the
manager deletes an old checkpoint only after a newer one is written.

:class:`Preemption` answers SIGTERM, which schedulers send before they preempt
a job: the run saves a checkpoint at the step it has reached and stops
(:class:`Preempted`). Under MultiWorkerMirroredStrategy a signal reaches one
worker only; TensorFlow's ``PreemptionCheckpointHandler`` makes every worker
save at the same step.

Example:
    >>> step = tf.Variable(0, dtype=tf.int64)
    >>> ckpt = RunCheckpoint("/tmp/example_run", tf.distribute.get_strategy(), 3, step=step)
    >>> ckpt.save(5)
    >>> ckpt.restore_latest().step
    5
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator

import tensorflow as tf

from vgg_tf.training import distribute
from vgg_tf.workdir import temporary_tag

#: TensorFlow's state file, naming the checkpoints a manager keeps.
STATE_FILE = "checkpoint"
#: The exit status of a command stopped by SIGTERM once its checkpoint is saved (128 + 15,
#: as if killed by the signal): a scheduler requeues the job, and the rerun resumes there.
PREEMPTED_EXIT_CODE = 143
_NUMBERED = re.compile(r"^ckpt-(\d+)(?:\.index|\.data-\d{5}-of-\d{5})$")


class Preempted(Exception):
    """The run stopped on SIGTERM after saving a checkpoint at the step it had reached."""


@dataclasses.dataclass(frozen=True)
class Restored:
    """What :meth:`RunCheckpoint.restore_latest` restored.

    Attributes:
        path: The checkpoint's prefix (``WORKDIR/checkpoints/ckpt-N``).
        step: Its number, the run's step.
        skipped: ``(path, reason)`` of each newer checkpoint that did not read.
    """

    path: str
    step: int
    skipped: tuple[tuple[str, str], ...] = ()


def error_line(error: BaseException) -> str:
    """The first line of ``error``'s message, without TensorFlow's op decorations.

    Example:
        >>> error_line(OSError(28, "No space left on device"))
        '[Errno 28] No space left on device'
    """
    text = error.message if isinstance(error, tf.errors.OpError) else str(error)
    # A graph's error opens with "Graph execution error:" and where the op was defined
    # (indented source lines): the reason is the first line after them.
    lines = [
        line
        for line in text.strip().splitlines()
        if line.strip()
        and not line[0].isspace()
        and not line.startswith(
            ("Graph execution error", "Detected at node", "Detected unsupported")
        )
    ] or [type(error).__name__]
    line = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", lines[0])
    return re.sub(r"\s*\[Op:.*$", "", line).strip().rstrip(":")


class RunCheckpoint:
    """Saves and restores everything a run needs to continue exactly.

    In a worker set every worker takes part in each save (it is a collective
    operation); only the chief's copy is kept, in ``WORKDIR/checkpoints``.
    Made by the chief, it removes what a process that died while saving left
    behind (``ckpt-N_temp/`` folders; a worker's own temporary copy).

    Args:
        workdir: The run's directory.
        strategy: The distribution strategy of the run.
        keep: Number of checkpoints kept.
        **trackables: What to save (model variables, optimizer, counters...).

    Example:
        >>> ckpt = RunCheckpoint("/tmp/run", tf.distribute.get_strategy(), 3, step=step)  # doctest: +SKIP
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
        self._keep = keep
        #: The step of the last checkpoint written or restored (None: none yet).
        self.saved_step: int | None = None
        if self._chief:
            self._remove_temporary_folders()
        elif tf.io.gfile.exists(write_dir):
            tf.io.gfile.rmtree(write_dir)
        self._manager = tf.train.CheckpointManager(self.checkpoint, write_dir, max_to_keep=keep)

    def _listing(self) -> list[str]:
        if not tf.io.gfile.isdir(self.directory):
            return []
        return [name.rstrip("/") for name in tf.io.gfile.listdir(self.directory)]

    def _remove_temporary_folders(self) -> None:
        """Removes ``ckpt-N_temp/``: a save that failed (a full disk) or was killed."""
        for name in self._listing():
            if name.startswith("ckpt-") and name.endswith("_temp"):
                tf.io.gfile.rmtree(os.path.join(self.directory, name))

    def _numbers(self) -> tuple[dict[int, str], set[int]]:
        """Checkpoint number -> prefix for every checkpoint on disk or in the state file,
        and the numbers the state file names."""
        numbers = {}
        for name in self._listing():
            match = _NUMBERED.match(name)
            if match:
                numbers[int(match.group(1))] = os.path.join(self.directory, f"ckpt-{match[1]}")
        named = set()
        state = (
            tf.train.get_checkpoint_state(self.directory)
            if tf.io.gfile.exists(os.path.join(self.directory, STATE_FILE))
            else None
        )
        for path in state.all_model_checkpoint_paths if state else ():
            match = re.search(r"ckpt-(\d+)$", path)
            if match:
                named.add(int(match.group(1)))
                numbers.setdefault(int(match.group(1)), os.path.join(self.directory, match[0]))
        return numbers, named

    def restore_latest(self) -> Restored | None:
        """Restores the newest checkpoint that reads; None when there is no checkpoint at all.

        Newer checkpoints that do not read (index or data missing, truncated,
        damaged) are skipped and named in :attr:`Restored.skipped`. The chief then
        records the checkpoints kept in the state file, so that none of them is
        deleted before a newer one is written.

        Raises:
            ValueError: Checkpoints exist but none reads (one line naming each and why).
        """
        numbers, named = self._numbers()
        skipped = []
        for number in sorted(numbers, reverse=True):
            path = numbers[number]
            if not tf.io.gfile.exists(path + ".index"):
                lost = not tf.io.gfile.glob(path + ".data-*")
                why = "its .index file is missing"
                if lost and number in named:
                    why = "named in the state file, but its files are missing"
                skipped.append((path, why))
                continue
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            # TensorFlow reports damage as an OpError (DataLossError: "Checksum does not
            # match"), an IndexError ("Read less bytes than requested"), a ValueError or an
            # AssertionError, depending on the part of the file that is damaged.
            except Exception as error:  # noqa: BLE001
                skipped.append((path, error_line(error)))
                continue
            if self._chief:
                self._record_state(number, [n for n in numbers if n < number])
            self.saved_step = number
            return Restored(path, number, tuple(skipped))
        if skipped:
            reasons = "; ".join(f"{os.path.basename(p)}: {why}" for p, why in skipped)
            raise ValueError(
                f"No checkpoint in {self.directory} reads ({reasons}); the run does not start "
                "over by itself: restore the files, or pass --overwrite to start over (it "
                "deletes this run)."
            )
        return None

    def _record_state(self, latest: int, older: list[int]) -> None:
        """Rewrites the state file: ``latest`` and the readable-looking older checkpoints."""
        kept = [n for n in sorted(older) if tf.io.gfile.exists(self._prefix(n) + ".index")]
        kept = kept[-(self._keep - 1) :] if self._keep > 1 else []
        numbers = [*kept, latest]
        times = [tf.io.gfile.stat(self._prefix(n) + ".index").mtime_nsec / 1e9 for n in numbers]
        # The manager deletes only checkpoints newer than last_preserved_timestamp.
        lines = [f'model_checkpoint_path: "ckpt-{latest}"']
        lines += [f'all_model_checkpoint_paths: "ckpt-{n}"' for n in numbers]
        lines += [f"all_model_checkpoint_timestamps: {t!r}" for t in times]
        lines.append(f"last_preserved_timestamp: {min(times) - 1.0!r}")
        path = os.path.join(self.directory, STATE_FILE)
        tmp = f"{path}.{temporary_tag()}"
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        tf.io.gfile.rename(tmp, path, overwrite=True)
        self._manager = tf.train.CheckpointManager(
            self.checkpoint, self._write_dir, max_to_keep=self._keep
        )

    def _prefix(self, number: int) -> str:
        return os.path.join(self.directory, f"ckpt-{number}")

    def save(self, step: int) -> None:
        """Writes checkpoint number ``step`` (all workers must call this together).

        A save that fails (a full disk) leaves the checkpoints before it, and
        no temporary folder.
        """
        try:
            self._manager.save(checkpoint_number=step)
        except BaseException:
            if self._chief:
                self._remove_temporary_folders()
            raise
        finally:
            if not self._chief and tf.io.gfile.exists(self._write_dir):
                tf.io.gfile.rmtree(self._write_dir)
        self.saved_step = step


class Preemption:
    """SIGTERM noticed between steps and answered with a checkpoint at the current step.

    Inside :meth:`watching`, SIGTERM only sets a flag (a single process), or
    goes to TensorFlow's ``PreemptionCheckpointHandler`` (MultiWorkerMirroredStrategy,
    whose workers agree on the step at which all of them save). The loop calls
    :meth:`check` before each call of the compiled steps: a flag check, nothing
    per step. Outside the block SIGTERM keeps its usual meaning.

    Args:
        strategy: The run's strategy.
        save: Saves the run's checkpoint at its current step and returns that step.
        scratch_dir: A folder of this process for the handler's bookkeeping,
            removed when the block ends (a worker's handler makes one).

    Example:
        >>> preemption = Preemption(tf.distribute.get_strategy(), lambda: 0, "/tmp/scratch")
        >>> with preemption.watching():
        ...     preemption.check()  # raises Preempted after a SIGTERM
    """

    def __init__(self, strategy: tf.distribute.Strategy, save: Callable[[], int], scratch_dir: str):
        self._strategy = strategy
        self._save = save
        self._scratch_dir = scratch_dir
        self._requested = threading.Event()
        self._handler = None
        self._saved_step: int | None = None

    @property
    def _multi_worker(self) -> bool:
        resolver = getattr(self._strategy, "cluster_resolver", None)
        return resolver is not None and bool(resolver.cluster_spec().as_dict())

    @contextlib.contextmanager
    def watching(self) -> Iterator[Preemption]:
        """Installs the SIGTERM handling for the block (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.getsignal(signal.SIGTERM)
        try:
            if self._multi_worker:
                self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
                    self._strategy.cluster_resolver,
                    # The run's own checkpoint is saved by save_fn; the handler's (its step
                    # counter) is never written.
                    tf.train.Checkpoint(),
                    checkpoint_dir=os.path.join(self._scratch_dir, "handler"),
                    termination_config=tf.distribute.experimental.TerminationConfig(
                        save_fn=self._save_for_handler, exit_fn=self._stop
                    ),
                )
            else:
                signal.signal(signal.SIGTERM, lambda signum, frame: self._requested.set())
            yield self
        finally:
            signal.signal(signal.SIGTERM, previous)
            if tf.io.gfile.exists(self._scratch_dir):
                tf.io.gfile.rmtree(self._scratch_dir)

    def _save_for_handler(self) -> None:
        self._saved_step = self._save()

    def _stop(self) -> None:
        raise Preempted(
            f"stopped by SIGTERM at step {self._saved_step}: its checkpoint is saved; run the "
            "same command again to resume there."
        )

    def check(self) -> None:
        """Saves at the current step and raises :class:`Preempted` if a stop was asked for."""
        if self._handler is not None:
            self._handler.save_checkpoint_if_preempted()
            return
        if self._requested.is_set():
            self._saved_step = self._save()
            self._stop()
