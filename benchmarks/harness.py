"""What every measurement shares: the run's settings, interleaved timing, progress, the machine.

Side-by-side figures are measured *interleaved*: repeat 1 of side A, repeat 1
of side B, repeat 2 of A, ... so that a burst of load from another process hits
both sides alike; each side reports the median of its repeats. The ratio of
the medians is the figure to read on a shared machine; absolute rates move
with the load (recorded as the 1-minute load average).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and repeats of one run: :func:`full` or :func:`quick`."""

    quick: bool
    # models.py: VGG-16 (D) against keras.applications.VGG16
    image_size: int  # input side of inference and training (224 in the paper)
    inference_batches: tuple[int, ...]
    inference_repeats: int
    train_batch: int
    train_steps: int  # steps per timed repeat
    train_repeats: int
    # pipeline.py
    pipeline_files: int
    pipeline_images: int  # timed images per repeat
    pipeline_repeats: int
    # evaluation.py, serving.py: the dense net on a 512 x 512 photograph
    eval_width: float  # width multiplier of the evaluated net (1: the paper's D)
    eval_scales: tuple[int, ...]
    eval_repeats: int
    serving_calls: int
    # memory.py
    memory_batch: int
    memory_image_size: int
    memory_steps: int
    # onednn.py: the CPU paths side by side (inference and evaluation sized as above)
    onednn_train_steps: int  # steps of bin/train --variant A's step per timed call
    onednn_repeats: int
    # run-wide
    mixed_precision: str = ""  # "", "float16" or "bfloat16"
    jit_compile: bool = False


def full(**overrides) -> Settings:
    """The settings of issue 13: 224 px, batch 16 and 32 inference, batch 16 training.

    Sized to about 9 CPU-minutes (under 15 minutes on 2 busy cores): 3 interleaved
    repeats for each model comparison (one training step each), one timed pass of
    each evaluation protocol (multi-crop costs 150 forward passes per image; its
    cost is also counted in GMACs), 5 serving calls a side (median; the p99 of so
    few calls is about their maximum, reported too).
    """
    return Settings(
        quick=False,
        image_size=224,
        inference_batches=(16, 32),
        inference_repeats=3,
        train_batch=16,
        train_steps=1,
        train_repeats=3,
        pipeline_files=320,
        pipeline_images=480,
        pipeline_repeats=3,
        eval_width=1.0,
        eval_scales=(256, 384, 512),
        eval_repeats=1,
        serving_calls=5,
        memory_batch=16,
        memory_image_size=224,
        memory_steps=2,
        onednn_train_steps=8,
        onednn_repeats=3,
        **overrides,
    )


def quick(**overrides) -> Settings:
    """A smoke test of every measurement in under 3 minutes on 2 cores: small inputs,
    small batches, a quarter-width net for evaluation and serving, few repeats."""
    return Settings(
        quick=True,
        image_size=96,
        inference_batches=(4, 8),
        inference_repeats=2,
        train_batch=4,
        train_steps=1,
        train_repeats=2,
        pipeline_files=40,
        pipeline_images=160,
        pipeline_repeats=1,
        eval_width=0.25,
        eval_scales=(256,),
        eval_repeats=1,
        serving_calls=5,
        memory_batch=4,
        memory_image_size=96,
        memory_steps=2,
        onednn_train_steps=2,
        onednn_repeats=2,
        **overrides,
    )


def median(values) -> float:
    return float(statistics.median(values))


def interleaved(
    sides: dict[str, Callable[[], object]], repeats: int, progress: Progress | None = None
) -> dict[str, list[float]]:
    """Wall seconds of each side's calls, alternating the sides ``repeats`` times.

    Each callable must finish its work before returning (``.numpy()``, a Python
    value): TensorFlow runs eagerly-dispatched ops asynchronously otherwise.
    """
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, call in sides.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
            if progress:
                progress.advance()
    return times


class Progress:
    """A Keras progress bar over one section's timed calls, under a numbered title line."""

    #: Sections in the run, and the number of the last one started.
    sections = 0
    started = 0

    def __init__(self, title: str, calls: int, verbose: bool = True):
        self.verbose = verbose
        self.done = 0
        self.bar = None
        Progress.started += 1
        if verbose:
            number = f"[{Progress.started}/{Progress.sections}] " if Progress.sections else ""
            print(f"\n{number}{title}", flush=True)
            self.bar = keras.utils.Progbar(max(calls, 1), unit_name="call")

    def advance(self) -> None:
        self.done += 1
        if self.bar:
            self.bar.update(min(self.done, self.bar.target))

    def finish(self) -> None:
        if self.bar and self.done < self.bar.target:
            self.bar.update(self.bar.target, finalize=True)


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> float:
    """The 1-minute load average (0 where the OS has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def environment(settings: Settings) -> dict:
    """The machine and software a run measured."""
    gpus = tf.config.list_physical_devices("GPU")
    return dict(
        cpu_count=cpu_count(),
        cpu=_cpu_name(),
        gpus=[d.name for d in gpus],
        platform=platform.platform(),
        python=platform.python_version(),
        tensorflow=tf.__version__,
        keras=keras.__version__,
        numpy=np.__version__,
        quick=settings.quick,
        mixed_precision=settings.mixed_precision or "float32",
        jit_compile=settings.jit_compile,
    )


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def set_precision(settings: Settings) -> None:
    """Keras' global dtype policy for every model the run builds (both sides alike)."""
    policy = f"mixed_{settings.mixed_precision}" if settings.mixed_precision else "float32"
    keras.mixed_precision.set_global_policy(policy)
