"""Peak resident memory of a short training run of D, against what it has to hold.

The run happens in a child process (``python -m benchmarks.memory``), so that the
models the other measurements build do not count: the child reads its own
high-water mark (``VmHWM`` in ``/proc/self/status``; ``getrusage`` where there is
no /proc) after a few steps of vgg_tf's training step (the paper's recipe: SGD
with momentum, weight decay, dropout), and its resident memory before the model
was built (TensorFlow's runtime, the batch).

The estimate is weights + gradients + momentum (3 x parameters x 4 bytes) +
activations (every layer's output for the batch, kept for the backward pass).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

_MIB = 2**20


def resident_mib() -> dict:
    """(current, peak) resident memory of this process in MiB."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return dict(
            rss=int(fields["VmRSS"].split()[0]) / 1024, peak=int(fields["VmHWM"].split()[0]) / 1024
        )
    except (OSError, KeyError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = peak / _MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS
        return dict(rss=peak, peak=peak)


def estimate(model, batch: int, bytes_per_activation: int = 4) -> dict:
    """Bytes (in MiB) the training run must hold: weights, gradients, momentum, activations."""
    import numpy as np

    params = int(model.count_params())
    elements = sum(int(np.prod(layer.output.shape[1:])) for layer in model.layers)
    weights = params * 4 / _MIB
    activations = batch * elements * bytes_per_activation / _MIB
    return dict(
        params=params,
        weights_mib=weights,
        gradients_mib=weights,
        momentum_mib=weights,
        activations_mib=activations,
        total_mib=3 * weights + activations,
    )


def measure_here(
    batch: int, image_size: int, steps: int, mixed_precision: str, jit_compile: bool
) -> dict:
    """In this process: trains D for ``steps`` steps and reports memory (call in a fresh process)."""
    import tensorflow as tf

    from benchmarks import harness, models

    settings = dataclasses.replace(
        harness.full(),
        image_size=image_size,
        mixed_precision=mixed_precision,
        jit_compile=jit_compile,
    )
    harness.set_precision(settings)
    iterator = iter(
        tf.data.Dataset.from_tensors(models.synthetic_batch(batch, image_size)).repeat()
    )
    next(iterator)
    before = resident_mib()["rss"]
    trainer = models.vgg_tf_trainer(settings, batch)
    built = resident_mib()
    trainer.train_steps(iterator, steps)
    trainer.epoch_metrics()
    after = resident_mib()
    compute_bytes = 2 if mixed_precision else 4
    return dict(
        batch=batch,
        image_size=image_size,
        steps=steps,
        baseline_mib=before,
        built_rss_mib=built["rss"],
        built_peak_mib=built["peak"],
        peak_mib=after["peak"],
        final_rss_mib=after["rss"],
        growth_mib=after["peak"] - before,
        estimate=estimate(trainer.model, batch, compute_bytes),
    )


def run(settings, verbose: bool = True) -> dict:
    """Runs :func:`measure_here` in a child process; the estimate next to the measured growth."""
    from benchmarks import harness

    progress = harness.Progress(
        f"memory: peak RSS of training D, batch {settings.memory_batch}, "
        f"{settings.memory_image_size} px, {settings.memory_steps} steps (child process)",
        1,
        verbose,
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        json.dumps(
            dict(
                batch=settings.memory_batch,
                image_size=settings.memory_image_size,
                steps=settings.memory_steps,
                mixed_precision=settings.mixed_precision,
                jit_compile=settings.jit_compile,
            )
        ),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"The memory measurement failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    progress.advance()
    progress.finish()
    result["growth_over_estimate"] = result["growth_mib"] / result["estimate"]["total_mib"]
    return result


if __name__ == "__main__":
    from vgg_tf.cli import quiet

    quiet.quiet_tensorflow()
    print(json.dumps(measure_here(**json.loads(sys.argv[1]))))
