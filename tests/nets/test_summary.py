"""vgg-summary (python -m vgg_tf.cli summary): the paper's columns apart from the ones computed here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vgg_tf.nets import summary

# Exact counts of the built nets at 224 px, 1000 classes (tests/test_models.py checks them).
COUNTED = {
    "A": 132_863_336,
    "A-LRN": 132_863_336,
    "B": 133_047_848,
    "C": 133_638_952,
    "D": 138_357_544,
    "E": 143_667_240,
}


def test_table_2_figures_are_the_counts_rounded_to_millions():
    assert {v: round(n / 1e6) for v, n in COUNTED.items()} == summary.PAPER_PARAMS_MILLIONS


def test_table_marks_the_paper_column_and_leaves_it_empty_off_the_papers_setting():
    rows = [
        dict(
            variant="D",
            builder="VGG16",
            weight_layers=16,
            paper_params_millions=138,
            params=COUNTED["D"],
            gmacs=15.47,
        ),
        dict(
            variant="E",
            builder="VGG19",
            weight_layers=19,
            paper_params_millions=None,
            params=38_947_914,
            gmacs=0.42,
        ),
    ]
    header, d, e = summary.format_table(rows).splitlines()
    assert header.split()[:4] == ["net", "builder", "weight", "layers"]
    assert "Table 2 (M)" in header and "parameters" in header and "GMACs" in header
    assert d.split() == ["D", "VGG16", "16", "138", "138,357,544", "15.47"]
    assert e.split() == ["E", "VGG19", "19", "-", "38,947,914", "0.42"]


@pytest.mark.slow
def test_command_prints_the_table_and_says_whose_columns_they_are(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "vgg_tf.cli", "summary", "--image_size=32", "--classes=10"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].split()[0] == "net" and len(lines) >= 7
    assert [line.split()[0] for line in lines[1:7]] == ["A", "A-LRN", "B", "C", "D", "E"]
    assert all(line.split()[3] == "-" for line in lines[1:7])  # not the paper's setting
    assert "the paper gives no MAC or FLOP counts" in result.stdout
    # TensorFlow's start-up log lines are hidden (the command's own CPU line may stay).
    assert "oneDNN custom operations" not in result.stderr
    assert "absl::InitializeLog" not in result.stderr
