"""bin/evaluate and bin/features read, without --dataset, the dataset the models were trained
on (vgg_tf.evaluation.datasets.trained_on), and refuse models of different datasets."""

from __future__ import annotations

import pytest


@pytest.mark.slow
@pytest.mark.parametrize(
    "command, flags",
    [
        ("evaluate", ["--protocol=single"]),
        ("evaluate", ["--task=localisation", "--protocol=center_gt"]),
        ("features", ["--output=features.npz"]),
    ],
    ids=["evaluate", "evaluate-localisation", "features"],
)
def test_commands_read_the_dataset_the_model_trained_on(
    tmp_path, make_workdir, run_bin, command, flags
):
    photos = tmp_path / "photos_it_trained_on"  # no such folder: the run stops there
    run = make_workdir(tmp_path / "run", model=False, dataset=str(photos))
    result = run_bin(command, f"--model={run}", *flags, check=False, cwd=tmp_path)
    assert f"dataset: {photos} (what {run} trained on)" in result.stderr, result.stderr[-3000:]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]


@pytest.mark.slow
def test_evaluate_refuses_models_of_different_datasets(tmp_path, make_workdir, run_bin):
    first = make_workdir(tmp_path / "a", model=False, dataset="digits")
    second = make_workdir(tmp_path / "b", model=False, dataset="digits_on_canvas")
    result = run_bin("evaluate", f"--model={first},{second}", check=False, cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: The models were trained on different datasets ({first}: digits, {second}: "
        "digits_on_canvas); pass --dataset to name the one to evaluate on."
    )
