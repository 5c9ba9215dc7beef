"""Runs every measurement in one process, prints the table, writes the JSON.

Order: the matmul peak first, the memory run and the oneDNN paths in their child
processes while this one is still small, then the model, pipeline, evaluation and
serving comparisons.
"""

from __future__ import annotations

import json
import os
import resource
import time

import tensorflow as tf
from absl import app, flags

from benchmarks import (
    evaluation,
    harness,
    machine,
    memory,
    models,
    onednn,
    pipeline,
    report,
    serving,
)
from vgg_tf.cli import quiet

SECTIONS = (
    "machine",
    "memory",
    "onednn",
    "inference",
    "training",
    "pipeline",
    "evaluation",
    "serving",
)

_QUICK = flags.DEFINE_bool(
    "quick",
    False,
    "Smoke test in under 3 minutes on 2 cores: smaller inputs, batches and "
    "repeats, a quarter-width net for evaluation and serving (same fields in the JSON).",
)
_OUTPUT = flags.DEFINE_string("output", None, "Write every figure as JSON to this file.")
_MIXED = flags.DEFINE_bool(
    "mixed_precision",
    False,
    "Build every model under Keras' mixed policy: float16 on a GPU, bfloat16 otherwise.",
)
_JIT = flags.DEFINE_bool(
    "jit_compile", False, "Compile the steps with XLA, on both sides of each comparison."
)
_SECTIONS = flags.DEFINE_list(
    "sections", list(SECTIONS), f"Measurements to run, of {', '.join(SECTIONS)} (default: all)."
)


def settings_from_flags() -> harness.Settings:
    precision = ""
    if _MIXED.value:
        precision = "float16" if tf.config.list_physical_devices("GPU") else "bfloat16"
    make = harness.quick if _QUICK.value else harness.full
    return make(mixed_precision=precision, jit_compile=_JIT.value)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads) and of its waited-for
    children (the memory measurement)."""
    return sum(
        getattr(resource.getrusage(who), field)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for field in ("ru_utime", "ru_stime")
    )


def run_all(settings: harness.Settings, sections=SECTIONS, verbose: bool = True) -> dict:
    """Every measurement of ``sections``; returns the results with environment and targets."""
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"Unknown section(s) {unknown}; expected some of {', '.join(SECTIONS)}.")
    start, load_start, cpu_start = time.perf_counter(), harness.load_average(), cpu_seconds()
    harness.set_precision(settings)
    harness.Progress.sections, harness.Progress.started = len(sections), 0
    results: dict = {}
    if "machine" in sections:
        results["machine"] = machine.run(settings, verbose)
    if "memory" in sections:
        results["memory"] = memory.run(settings, verbose)
    if "onednn" in sections:
        results["onednn"] = onednn.run(settings, verbose)
    if "inference" in sections:
        results["inference"] = models.inference(settings, verbose)
    if "training" in sections:
        results["training"] = models.training(settings, verbose)
    if "pipeline" in sections:
        results["pipeline"] = pipeline.run(settings, verbose)
    if {"evaluation", "serving"} & set(sections):
        trained = evaluation.trained_model(settings)
        if "evaluation" in sections:
            results["evaluation"] = evaluation.run(settings, trained, verbose)
        if "serving" in sections:
            results["serving"] = serving.run(settings, trained, verbose)
    results["environment"] = dict(
        harness.environment(settings),
        load_average_start=load_start,
        load_average_end=harness.load_average(),
        wall_seconds=time.perf_counter() - start,
        cpu_seconds=cpu_seconds() - cpu_start,
        sections=list(sections),
    )
    results["targets"] = report.targets(results)
    return results


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.absl_logging_to_warnings()
    results = run_all(settings_from_flags(), tuple(_SECTIONS.value))
    print("\n" + report.format_results(results), flush=True)
    if _OUTPUT.value:
        directory = os.path.dirname(os.path.abspath(_OUTPUT.value))
        os.makedirs(directory, exist_ok=True)
        with open(_OUTPUT.value, "w") as f:
            json.dump(results, f, indent=1)
        print(f"Wrote {_OUTPUT.value}")
