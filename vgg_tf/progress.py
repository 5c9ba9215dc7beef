"""Progress of a long loop over images, readable on a terminal and in a log file.

On a terminal, Keras' progress bar. Anywhere else (a log file, ``nohup``, a
cluster scheduler, CI), where the bar's ``\\r``, ``\\b`` and colour codes would
fill the log, one plain line at every tenth of the way and at the end::

    36/360 images (10%) - 4s - top1_err_dense 0.0833

Training shows its own steps (:mod:`vgg_tf.training.reporting`); this is the
loops of ``bin/evaluate``, ``bin/features`` and ``bin/predict``. It sits at the
bottom of the package and imports nothing of it.

Example:
    >>> import io
    >>> progress = Progress(20, stream=io.StringIO())
    >>> for done in range(1, 21):
    ...     progress.update(done)
    >>> progress.stream.getvalue().splitlines()[:2]
    ['2/20 images (10%) - 0s', '4/20 images (20%) - 0s']
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from typing import TextIO

#: A plain line is printed each time one more of this many parts of the total is done.
LINE_PARTS = 10


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (False for files, pipes, closed streams).

    Example:
        >>> import io
        >>> is_terminal(io.StringIO())
        False
    """
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """How far a loop over ``total`` items is: a bar on a terminal, else plain lines.

    Args:
        total: The number of items the loop will see.
        unit: What an item is, for the lines ("image" -> "36/360 images").
        stream: Where to write (default: standard output, as it is when the loop starts).
    """

    def __init__(self, total: int, unit: str = "image", stream: TextIO | None = None):
        self.total, self.unit = int(total), unit
        self.stream = sys.stdout if stream is None else stream
        self._start = time.monotonic()
        self._next_line, self._last_line = 1, -1
        self._bar = None
        if is_terminal(self.stream):
            import keras

            with contextlib.redirect_stdout(self.stream):
                self._bar = keras.utils.Progbar(self.total, unit_name=unit)

    def update(
        self, done: int, values: Sequence[tuple[str, float]] = (), final: bool = False
    ) -> None:
        """``done`` items are done; ``values`` (name, value) are shown as they are now.

        ``final``: the loop has ended (it may have seen fewer items than ``total``): the
        bar is closed, and a plain line is printed unless this count's was.
        """
        final = final or done >= self.total
        if self._bar is not None:
            with contextlib.redirect_stdout(self.stream):
                # Stateful: a running figure is shown as given, not averaged again.
                for name, _ in values:
                    self._bar.stateful_metrics.add(name)
                self._bar.update(done, list(values), finalize=final)
            return
        tenths = done * LINE_PARTS // max(self.total, 1)
        if done == self._last_line or (tenths < self._next_line and not final):
            return
        self._last_line = done
        self._next_line = tenths + 1
        shown = "".join(f" - {name} {value:.4f}" for name, value in values)
        percent = 100 * done // max(self.total, 1)
        elapsed = time.monotonic() - self._start
        print(
            f"{done}/{self.total} {self.unit}s ({percent}%) - {elapsed:.0f}s{shown}",
            file=self.stream,
            flush=True,
        )
