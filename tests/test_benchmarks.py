"""``python -m benchmarks``: it runs, prints the table and writes every figure; no timing is
asserted (the figures depend on the machine and its load)."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from vgg_tf.cli import cpu_path

ROOT = Path(__file__).resolve().parents[1]

#: The figures of issues 13 and 24 the JSON must hold, as paths into it ("*": every list item).
REQUIRED = (
    "machine.peak_gflops",
    "machine.median_gflops",
    "inference.gmacs_per_image",
    "inference.batches.*.vgg_tf_img_s",
    "inference.batches.*.keras_img_s",
    "inference.batches.*.ratio",
    "inference.batches.*.vgg_tf_bound_fraction",
    "inference.batches.*.keras_bound_fraction",
    "training.vgg_tf_img_s",
    "training.keras_img_s",
    "training.ratio",
    "training.vgg_tf_bound_fraction",
    "training.keras_bound_fraction",
    "pipeline.scales.*.naive_img_s",
    "pipeline.scales.*.fused_img_s",
    "pipeline.scales.*.ratio",
    "pipeline.scales.*.naive_img_per_cpu_s",
    "pipeline.scales.*.fused_img_per_cpu_s",
    "evaluation.dense_gmacs",
    "evaluation.multicrop_gmacs",
    "evaluation.mac_ratio",
    "evaluation.dense_s",
    "evaluation.multicrop_s",
    "evaluation.wall_ratio",
    "serving.serving.median_ms",
    "serving.serving.p99_ms",
    "serving.serving.max_ms",
    "serving.bare_forward.median_ms",
    "serving.bare_forward.p99_ms",
    "serving.bare_forward.max_ms",
    "serving.ratio",
    "serving.export_s",
    "memory.baseline_mib",
    "memory.peak_mib",
    "memory.growth_mib",
    "memory.estimate.weights_mib",
    "memory.estimate.activations_mib",
    "memory.estimate.total_mib",
    "memory.growth_over_estimate",
    *(
        f"onednn.{workload}.{figure}"
        for workload in ("training", "inference", "evaluation")
        for figure in (
            "default_img_s",
            "off_img_s",
            "on_img_s",
            "on_over_off",
            "default_over_faster",
        )
    ),
    "environment.cpu_count",
    "environment.wall_seconds",
    "environment.cpu_seconds",
)


def _values(tree, path: str) -> list:
    nodes = [tree]
    for key in path.split("."):
        if key == "*":
            nodes = [item for node in nodes for item in node]
        else:
            nodes = [node[key] for node in nodes]
    return nodes


def _numbers(tree):
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _numbers(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _numbers(value)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield tree


@pytest.mark.slow
def test_quick_run_writes_every_figure(tmp_path):
    output = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(output.read_text())
    for path in REQUIRED:
        values = _values(results, path)
        assert values, path
        for value in values:
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (
                path,
                value,
            )
    for section in (
        "machine",
        "memory",
        "onednn",
        "inference",
        "training",
        "pipeline",
        "evaluation",
        "serving",
    ):
        for value in _numbers(results[section]):
            assert math.isfinite(value) and value > 0, (section, value)
    assert len(results["inference"]["batches"]) == 2
    assert [row["scale"] for row in results["pipeline"]["scales"]] == ["256", "512", "[256,512]"]
    assert results["environment"]["load_average_start"] >= 0
    assert results["environment"]["quick"] is True
    assert [t["name"] for t in results["targets"]] == [name for name, _, _ in report.TARGETS]
    assert all(isinstance(t["met"], bool) for t in results["targets"])
    # The table, quietly: no TensorFlow start-up lines.
    for target in results["targets"]:
        assert target["name"] in done.stdout
    assert "| batch" in done.stdout and "serving_default" in done.stdout
    assert "run time:" in done.stdout and "CPU-min" in done.stdout  # wall and CPU time
    assert "oneDNN custom operations" not in done.stdout + done.stderr
    assert "absl::InitializeLog" not in done.stdout + done.stderr
    # The CPU: its vector features, and the paths the oneDNN section's children took.
    cpu, sides = results["machine"]["cpu"], results["onednn"]["sides"]
    assert set(cpu["features"]) >= {"avx2", "avx512", "amx"}
    assert done.stderr.startswith("CPU: oneDNN"), done.stderr[:500]  # the start-up line
    assert cpu["default_line"] in done.stdout and "| training: net A" in done.stdout
    assert [sides[side]["variable"] for side in ("default", "off", "on")] == [None, "0", "1"]
    here = cpu_path.choose_here(env)  # the run's own path: the test's setting, if any, wins
    if here.onednn is not None:
        assert cpu["onednn"] == here.onednn
    if cpu["default_onednn"] is not None:
        assert sides["default"]["onednn"] == cpu["default_onednn"]
    if platform.system() == "Linux" and platform.machine() == "x86_64":  # TensorFlow has oneDNN
        assert (sides["off"]["onednn"], sides["on"]["onednn"]) == (False, True)


def _judged(
    training=1.3, inference=(1.01, 0.9), pipeline=2.1, serving=1.1, default_path=0.95
) -> dict:
    return dict(
        onednn=dict(training=dict(default_over_faster=default_path)),
        training=dict(ratio=training),
        inference=dict(
            batches=[
                dict(ratio=inference[0], vgg_tf_bound_fraction=inference[1]),
                dict(ratio=inference[0] + 0.1, vgg_tf_bound_fraction=0.99),
            ]
        ),
        pipeline=dict(
            scales=[
                dict(scale_min=256, scale_max=256, ratio=9.0),
                dict(scale_min=256, scale_max=512, ratio=pipeline),
            ]
        ),
        serving=dict(ratio=serving),
    )


def test_targets_met_and_not_met():
    met = report.targets(_judged())
    assert [t["met"] for t in met] == [True] * 6
    assert [t["value"] for t in met] == [1.3, 1.01, 0.9, 2.1, 1.1, 0.95]
    missed = report.targets(
        _judged(training=1.1, inference=(0.99, 0.8), pipeline=1.6, serving=1.3, default_path=0.8)
    )
    assert [t["met"] for t in missed] == [False] * 6


def test_targets_of_sections_not_run_are_unjudged():
    partial = report.targets({"serving": dict(ratio=1.5)})
    assert [t["met"] for t in partial] == [None, None, None, None, False, None]
