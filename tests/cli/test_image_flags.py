"""The localiser's flags reach the localiser: --merge and --merge_threshold, checked when made."""

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_a_bad_merge_threshold_is_one_line_naming_it(run_bin, tmp_path, command):
    result = run_bin(
        command,
        "--task=localisation",
        f"--model={tmp_path / 'no_run'}",
        f"--classifier={tmp_path / 'no_classifier'}",
        f"--export_dir={tmp_path / 'export'}" if command == "export" else "--protocol=dense",
        "--merge=iou",
        "--merge_threshold=1.5",
        check=False,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "merge_threshold=1.5 is not accepted with merge='iou'" in errors[0]
    assert "Traceback" not in result.stderr
