"""The command line as a user meets it: a quiet first screen, --config by name or path,
clear one-line errors for what is missing, and a library import that stays lazy."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vgg_tf.cli import cpu_path, quiet  # importing them (or vgg_tf.cli) changes nothing

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--config.width_multiplier=0.0625"]
# TensorFlow's start-up lines and the third-party deprecation notices a first run used to open with.
NOISE = (
    "oneDNN custom operations",
    "absl::InitializeLog",
    "cpu_feature_guard",
    "CounterV2",
    "deprecat",
)


def _env(**extra: str) -> dict:
    """The environment of a user who set nothing (no TF_CPP_MIN_LOG_LEVEL of the tests')."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")
    }
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _train(tmp_path: Path, *flags: str, **env: str) -> subprocess.CompletedProcess:
    return _run(
        # --config (if given) comes before the --config.<field> overrides, as ml_collections wants.
        [str(ROOT / "bin" / "train"), *flags, "--epochs=1", *TINY, f"--workdir={tmp_path / 'wd'}"],
        cwd=tmp_path,
        **env,
    )


# --- a quiet first run -----------------------------------------------------------------


@pytest.mark.slow
def test_first_run_shows_progress_and_results_without_tensorflow_noise(tmp_path):
    result = _train(tmp_path, "--variant=A", f"--config.data_dir={tmp_path / 'tfds'}")
    assert result.returncode == 0, result.stderr[-3000:]
    screen = result.stdout + result.stderr
    for noise in NOISE:
        assert noise not in screen, f"{noise!r} on the first screen:\n{screen[:3000]}"
    # Its first line names the CPU path (and only that line does).
    line = cpu_path.startup_line(cpu_path.choose_here(_env()))
    assert result.stderr.splitlines()[0] == line and screen.count("CPU: ") == 1, screen[:3000]
    assert "Epoch 1/1" in screen and "top1_err" in screen  # the progress bar
    assert "epoch 1: val top-1 error" in screen
    assert f"workdir: {tmp_path / 'wd'}" in result.stdout
    assert "final validation top-1 error" in result.stdout


def _write_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    good = (root / "cat" / "0.png").read_bytes()
    (root / "cat" / "truncated.png").write_bytes(good[: len(good) // 3])
    return root


@pytest.mark.slow
def test_skipped_record_lines_still_reach_the_terminal(tmp_path):
    # They are tf.print-ed to stderr from inside tf.data, after the quiet import.
    folder = _write_folder(tmp_path / "photos")
    result = _train(tmp_path, "--variant=A", f"--dataset={folder}", "--batch_size=8")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped a bad record" in result.stderr and "truncated.png" in result.stderr
    for noise in NOISE:
        assert noise not in result.stderr


#: bin/train flags that import TensorFlow, then refuse to start (imagenet_s384 needs --init_from).
_REFUSED_START = ("--config=imagenet_s384", "--variant=A")


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, env",
    [(["--verbosity=0"], {}), ([], {"TF_CPP_MIN_LOG_LEVEL": "0", "TF_ENABLE_ONEDNN_OPTS": "0"})],
    ids=["verbosity_flag", "users_own_level_and_onednn_off"],
)
def test_tensorflow_logs_shown_when_asked_for(tmp_path, args, env):
    # A start that imports TensorFlow, then stops on the recipe (--help imports none).
    result = _run([str(ROOT / "bin" / "train"), *args, *_REFUSED_START], cwd=tmp_path, **env)
    assert "error: Recipe 'imagenet_s384' fine-tunes" in result.stderr, result.stderr[-3000:]
    assert "oneDNN custom operations" in result.stderr or "cpu_feature_guard" in result.stderr
    # The start-up line names the path, and TensorFlow's own log (it says when oneDNN is on)
    # agrees: the user's TF_ENABLE_ONEDNN_OPTS=0 turns it off, nothing set gets the choice.
    path = cpu_path.choose_here(_env(**env))
    assert result.stderr.splitlines()[0] == cpu_path.startup_line(path), result.stderr[:2000]
    if "TF_ENABLE_ONEDNN_OPTS" in env:
        assert result.stderr.startswith("CPU: oneDNN off (TF_ENABLE_ONEDNN_OPTS=0, as set)")
    if path.onednn is not None:
        assert ("oneDNN custom operations are on" in result.stderr) == path.onednn


@pytest.mark.slow
def test_users_quiet_level_also_hides_the_import_lines(tmp_path):
    # TensorFlow ignores TF_CPP_MIN_LOG_LEVEL at import; the entry points honour it.
    result = _run(
        [str(ROOT / "bin" / "train"), *_REFUSED_START], cwd=tmp_path, TF_CPP_MIN_LOG_LEVEL="2"
    )
    assert "error: Recipe 'imagenet_s384' fine-tunes" in result.stderr, result.stderr[-3000:]
    assert "oneDNN" not in result.stderr and "absl::InitializeLog" not in result.stderr
    result = _run([str(ROOT / "bin" / "train"), "--helpshort"], cwd=tmp_path)
    assert "bin/train: trains a VGG network" in result.stdout, result.stderr[-3000:]
    # --helpshort lists the command's own flags, wherever in vgg_tf.cli they are defined.
    for flag in ("--variant:", "--config:", "--workdir:", "--cpu_devices:"):
        assert flag in result.stdout, result.stdout


def test_requested_verbosity_reads_absl_spellings():
    assert quiet.requested_verbosity(["bin/train", "--variant", "A"]) is None
    assert quiet.requested_verbosity(["bin/train", "--verbosity=0"]) == 0
    assert quiet.requested_verbosity(["bin/train", "--verbosity", "-1"]) == -1
    assert quiet.requested_verbosity(["bin/train", "-v=1"]) == 1
    assert quiet.requested_verbosity(["bin/train", "--verbosity=error"]) == -2
    assert quiet.requested_verbosity(["bin/train", "--", "--verbosity=0"]) is None
    assert quiet.requested_verbosity(["bin/train", "--variant=v"]) is None


def test_cpp_level_follows_the_user_then_verbosity_then_the_default():
    assert quiet.cpp_min_log_level(None, {}) == quiet.DEFAULT_CPP_MIN_LOG_LEVEL == 1
    assert quiet.cpp_min_log_level(0, {}) == 0
    assert quiet.cpp_min_log_level(1, {}) == 0
    assert quiet.cpp_min_log_level(-1, {}) == 1
    assert quiet.cpp_min_log_level(-3, {}) == 3
    assert quiet.cpp_min_log_level(0, {"TF_CPP_MIN_LOG_LEVEL": "3"}) == 3
    assert quiet.cpp_min_log_level(None, {"TF_CPP_MIN_LOG_LEVEL": "0"}) == 0


@pytest.mark.slow
def test_silenced_stderr_is_replayed_when_the_block_fails(tmp_path):
    script = textwrap.dedent(
        """
        import os
        from vgg_tf.cli.quiet import stderr_fd_silenced
        with stderr_fd_silenced():
            os.write(2, b"dropped\\n")
        try:
            with stderr_fd_silenced():
                os.write(2, b"why it failed\\n")
                raise ImportError("boom")
        except ImportError:
            os.write(2, b"after\\n")
        """
    )
    result = _run(["-c", script], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "why it failed\nafter\n"


# --- --config: a packaged recipe's name or a file's path ------------------------------


@pytest.mark.slow
def test_config_by_packaged_name_reaches_the_recipe(tmp_path):
    # imagenet_s384 fine-tunes: without --init_from it refuses, naming itself.
    result = _train(tmp_path, "--config=imagenet_s384", "--variant=A")
    assert result.returncode == 1
    assert "error: Recipe 'imagenet_s384' fine-tunes" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_config_by_path_with_overrides(tmp_path):
    recipe = tmp_path / "my_recipe.py"
    recipe.write_text(
        textwrap.dedent(
            """
        from vgg_tf.configs import digits


        def get_config():
            config = digits.get_config()
            config.recipe = "my_recipe"
            config.init_from_required = "a run of my own"
            return config
        """
        )
    )
    # The override given on the command line reaches the file's recipe.
    result = _train(tmp_path, f"--config={recipe}", "--config.learning_rate=0.125")
    assert result.returncode == 1
    assert (
        "Recipe 'my_recipe' fine-tunes (learning_rate=0.125) from a run of my own" in result.stderr
    )


@pytest.mark.slow
def test_unknown_recipe_names_the_packaged_ones(tmp_path):
    result = _train(tmp_path, "--config=imagenet_s999")
    assert result.returncode != 0
    assert "imagenet_s999" in result.stderr and "imagenet_jitter" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, line",
    [
        (
            ["--config=broken.py"],
            "recipe 'broken.py' does not load: SyntaxError: invalid syntax (broken.py, line 1)",
        ),
        (
            ["--config.learning_rat=0.1"],
            "error: --config.learning_rat: recipe 'digits' has no field 'learning_rat'; did you "
            "mean learning_rate?",
        ),
        (
            ["--config=imagenet_s256", "--config.epochs.max=3"],
            "error: --config.epochs.max: epochs of recipe 'imagenet_s256' is a value,",
        ),
        (["--workdir=notes.txt/run"], "error: [Errno 20] Not a directory: 'notes.txt/run'"),
    ],
    ids=["recipe-syntax-error", "unknown-field", "field-of-a-value", "unwritable-workdir"],
)
def test_a_broken_recipe_or_unwritable_workdir_is_one_line(tmp_path, flags, line):
    """Issue 20: a recipe with a syntax error, an unknown --config field and a workdir that
    cannot be written gave tracebacks."""
    (tmp_path / "broken.py").write_text("def get_config(:\n    pass\n")
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    result = _run([str(ROOT / "bin" / "train"), *flags, *TINY], cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert line in result.stderr, result.stderr[-3000:]


# --- what is missing: keras-tuner, TensorFlow ------------------------------------------


@pytest.mark.slow
def test_tune_without_keras_tuner_says_which_extra(tmp_path):
    script = (
        "import runpy, sys; sys.modules['keras_tuner'] = None; "
        f"sys.argv = ['bin/tune']; runpy.run_path({str(ROOT / 'bin' / 'tune')!r}, run_name='__main__')"
    )
    result = _run(["-c", script], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: bin/tune needs keras-tuner, which vgg_tf installs with its tune extra: "
        "pip install 'vgg_tf[tune]'"
    ]


@pytest.mark.slow
def test_import_without_tensorflow_names_the_extras(tmp_path):
    script = "import sys; sys.modules['tensorflow'] = None; import vgg_tf"
    result = _run(["-c", script], cwd=tmp_path)
    assert result.returncode == 1
    assert "pip install 'vgg_tf[cpu]'" in result.stderr and "'vgg_tf[gpu]'" in result.stderr


@pytest.mark.slow
def test_import_is_lazy_and_public_names_load_on_use(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        import vgg_tf
        assert "tensorflow" not in sys.modules, "import vgg_tf imported TensorFlow"
        assert "VGG16" in dir(vgg_tf) and "VGG16" in vgg_tf.__all__
        from vgg_tf import VGG16
        from vgg_tf import to_fully_convolutional
        assert vgg_tf.VGG16 is VGG16 and vgg_tf.weights.applications.VGG16 is VGG16
        assert all(hasattr(vgg_tf, name) for name in vgg_tf.__all__)
        try:
            vgg_tf.no_such_name
        except AttributeError as error:
            assert "no_such_name" in str(error)
        else:
            raise AssertionError("no AttributeError")
        print("ok")
        """
    )
    result = _run(["-c", script], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"
