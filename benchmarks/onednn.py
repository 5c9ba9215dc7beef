"""TensorFlow's two CPU paths side by side: oneDNN off, on, and what a command runs by default.

TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, at import, so each path runs in a
child process of its own (``python -m benchmarks.onednn``), started once for the
section:

* ``default``: the variable unset, the child started as every command starts
  (:func:`vgg_tf.cli.entry.prepare_tensorflow`: :mod:`vgg_tf.cli.cpu_path` chooses),
  the path a user who set nothing gets;
* ``off``: ``TF_ENABLE_ONEDNN_OPTS=0``; ``on``: ``TF_ENABLE_ONEDNN_OPTS=1``.

The parent asks the children in turn for one timed repeat (default, off, on,
default, off, on, ...), so the three are timed under the same load, as
:func:`benchmarks.harness.interleaved` does within one process; each side
reports the median of its repeats. The workloads, each built and warmed up in
every child before its repeats and dropped after them:

* training: ``bin/train --variant A``'s step (the digits recipe: net A with batch
  normalisation, 32 px crops, batch 32, SGD with momentum and weight decay;
  :class:`vgg_tf.training.steps.Trainer`) on a fixed batch, so that the input
  pipeline (the same on both paths) is left out;
* inference: VGG-16 (D) ``predict_on_batch`` at the run's image size and first batch size;
* evaluation: the dense protocol (image and flip, :class:`vgg_tf.inference.protocol.ModelEvaluator`)
  on the 512 x 512 photograph at the smallest test scale, with the run's evaluation net.

Each child also says which path it took (:func:`benchmarks.machine.onednn_observed`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from vgg_tf.cli import cpu_path  # imports no TensorFlow: the children choose their path first
from vgg_tf.training import network, optimization

if TYPE_CHECKING:  # harness imports TensorFlow, which a child may import only after its choice
    from benchmarks.harness import Progress, Settings

#: A workload in a child: its timed call, the images one call handles, and what it is.
Workload = tuple[Callable[[], object], int, str]

#: The sides: name -> TF_ENABLE_ONEDNN_OPTS (None: unset, the commands' own choice).
SIDES = {"default": None, "off": "0", "on": "1"}
WORKLOADS = ("training", "inference", "evaluation")


# --- in the child ------------------------------------------------------------------------


def training_workload(settings: Settings) -> Workload:
    """bin/train --variant A's compiled step: a call runs ``onednn_train_steps`` steps."""
    import keras
    import numpy as np
    import tensorflow as tf

    from vgg_tf.configs import digits
    from vgg_tf.training import steps

    config = digits.get_config()
    config.variant = "A"
    config.mixed_precision = settings.mixed_precision
    config.jit_compile = settings.jit_compile
    batch, size, n = config.batch_size, config.crop_size, settings.onednn_train_steps
    model = network.build_model(config, 10)
    logits_model = keras.Model(model.input, model.get_layer("fc8").output)
    optimizer = optimization.make_optimizer(config)
    optimizer.build(logits_model.trainable_variables)
    trainer = steps.Trainer(
        tf.distribute.get_strategy(), logits_model, optimizer, batch, settings.jit_compile
    )
    rng = np.random.default_rng(1)
    images = rng.uniform(-128.0, 128.0, (batch, size, size, 3)).astype(np.float32)
    labels = rng.integers(0, 10, batch).astype(np.int32)
    iterator = iter(tf.data.Dataset.from_tensors((images, labels)).repeat())

    def call():
        trainer.train_steps(iterator, n)
        trainer.epoch_metrics()  # reads the totals: waits for the steps

    call()  # trace, warm up
    return call, batch * n, f"net A, digits recipe, {size} px, batch {batch}, {n} steps a call"


def inference_workload(settings: Settings) -> Workload:
    """VGG-16 (D) ``predict_on_batch`` of one batch."""
    import numpy as np

    from vgg_tf.nets import builder

    size, batch = settings.image_size, settings.inference_batches[0]
    model = builder.build_vgg("D", crop_size=size)
    model.compile(jit_compile=settings.jit_compile)
    images = np.random.default_rng(0).uniform(-128, 128, (batch, size, size, 3)).astype("float32")
    for warm_up in (1, 2):  # Keras' predict function, traced with an open batch dimension
        model.predict_on_batch(images[:warm_up])

    def call():
        model.predict_on_batch(images)

    return call, batch, f"VGG-16 (D), {size} px, batch {batch}, predict_on_batch"


def evaluation_workload(settings: Settings) -> Workload:
    """Dense evaluation (image + flip) of the 512 x 512 photograph at the smallest test scale."""
    from benchmarks import evaluation
    from vgg_tf.data import images as images_lib
    from vgg_tf.inference import protocol

    q = min(settings.eval_scales)
    trained = evaluation.trained_model(dataclasses.replace(settings, eval_scales=(q,)))
    evaluator = protocol.ModelEvaluator(trained, scales=[q])
    image = images_lib.decode_rgb(evaluation.photo_jpeg())

    def call():
        evaluator.probabilities("dense", image)

    call()  # trace
    return call, 1, f"D x{settings.eval_width:g}, dense, Q = {q}, one 512x512 photograph"


def serve(settings: Settings, replies) -> None:
    """Answers the parent's requests, one JSON line each, until stdin closes."""
    import gc

    import keras

    from benchmarks import harness, machine

    harness.set_precision(settings)
    builders = dict(
        training=training_workload, inference=inference_workload, evaluation=evaluation_workload
    )
    built: dict = {}
    for line in sys.stdin:
        request = json.loads(line)
        op, workload = request["op"], request.get("workload")
        if op == "probe":
            reply = dict(
                onednn=machine.onednn_observed(), variable=os.environ.get(cpu_path.VARIABLE)
            )
        elif op == "setup":
            call, images, description = builders[workload](settings)
            built[workload] = call
            reply = dict(images=images, description=description)
        elif op == "time":
            start = time.perf_counter()
            built[workload]()
            reply = dict(seconds=time.perf_counter() - start)
        elif op == "drop":
            built.pop(workload, None)
            keras.backend.clear_session()
            gc.collect()
            reply = {}
        else:
            raise ValueError(f"Unknown request {request!r}")
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


# --- in the parent -----------------------------------------------------------------------


class Child:
    """One side's process: requests in on stdin, one JSON reply a line on stdout."""

    def __init__(self, side: str, settings: Settings):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {k: v for k, v in os.environ.items() if k != cpu_path.VARIABLE}
        if SIDES[side] is not None:
            env[cpu_path.VARIABLE] = SIDES[side]
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.side = side
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (the child's stderr; close())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.onednn", json.dumps(dataclasses.asdict(settings))],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    def send(self, op: str, workload: str | None = None) -> None:
        self.process.stdin.write(json.dumps(dict(op=op, workload=workload)) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.log.seek(0)
            raise RuntimeError(
                f"The oneDNN measurement's {self.side!r} child stopped "
                f"(exit {self.process.returncode}):\n{self.log.read()[-4000:]}"
            )
        return json.loads(line)

    def ask(self, op: str, workload: str | None = None) -> dict:
        self.send(op, workload)
        return self.receive()

    def close(self) -> None:
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def settings_from_json(text: str) -> Settings:
    """The run's :class:`benchmarks.harness.Settings` from ``dataclasses.asdict``'s JSON."""
    from benchmarks import harness

    fields = json.loads(text)
    return harness.Settings(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    )


def measure(children: dict[str, Child], workload: str, repeats: int, progress: Progress) -> dict:
    """One workload on every side: set up (in parallel), ``repeats`` interleaved calls, dropped."""
    for child in children.values():
        child.send("setup", workload)
    setups = {side: child.receive() for side, child in children.items()}
    seconds: dict[str, list[float]] = {side: [] for side in children}
    for _ in range(repeats):
        for side, child in children.items():
            seconds[side].append(child.ask("time", workload)["seconds"])
            progress.advance()
    for child in children.values():
        child.ask("drop", workload)
    from benchmarks import harness

    images = setups["default"]["images"]
    rates = {side: images / harness.median(times) for side, times in seconds.items()}
    faster = max(rates["on"], rates["off"])
    return dict(
        description=setups["default"]["description"],
        images_per_call=images,
        repeats=repeats,
        **{f"{side}_img_s": rate for side, rate in rates.items()},
        on_over_off=rates["on"] / rates["off"],
        default_over_faster=rates["default"] / faster,
        **{f"{side}_seconds": times for side, times in seconds.items()},
    )


def run(settings: Settings, verbose: bool = True) -> dict:
    """Training, inference and evaluation on the default, off and on paths, interleaved."""
    from benchmarks import harness

    repeats = settings.onednn_repeats
    progress = harness.Progress(
        "TensorFlow's CPU paths: oneDNN off, on, and the commands' default (child processes; "
        f"training, inference, evaluation, {repeats} interleaved repeats)",
        len(WORKLOADS) * len(SIDES) * repeats,
        verbose,
    )
    children = {side: Child(side, settings) for side in SIDES}
    try:
        paths = {side: child.ask("probe") for side, child in children.items()}
        results = {w: measure(children, w, repeats, progress) for w in WORKLOADS}
    finally:
        for child in children.values():
            child.close()
    progress.finish()
    unset = {k: v for k, v in os.environ.items() if k != cpu_path.VARIABLE}
    choice = cpu_path.choose_here(unset)  # what a command started with nothing set chooses
    return dict(
        sides={
            side: dict(
                variable=SIDES[side],  # as started (None: unset)
                running_with=paths[side]["variable"],  # after the child's own choice
                onednn=paths[side]["onednn"],
            )
            for side in SIDES
        },
        default_choice=dict(onednn=choice.onednn, line=cpu_path.startup_line(choice)),
        **results,
    )


if __name__ == "__main__":
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever else writes to stdout goes to the log, not into the replies
    sys.stdout = sys.stderr
    from vgg_tf.cli.entry import prepare_tensorflow

    prepare_tensorflow([sys.argv[0]])
    serve(settings_from_json(sys.argv[1]), replies)
