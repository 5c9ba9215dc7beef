"""The CPU path an entry point picks before TensorFlow is imported: oneDNN on where it is faster
for VGG, the user's TF_ENABLE_ONEDNN_OPTS always first, TensorFlow's default where nothing was
measured. (The line a command prints: tests/cli/test_cli.py.)"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from vgg_tf.cli import cpu_path

# Two x86 CPUs as /proc/cpuinfo shows them (abridged).
AVX2_EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
processor\t: 1
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
"""
AVX512_VNNI = "flags\t\t: fpu sse2 fma avx avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni\n"
AARCH64 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"


def _choose(cpuinfo, environ=None, system="Linux", machine="x86_64"):
    return cpu_path.choose(environ or {}, cpu_path.cpu_flags(cpuinfo), system, machine)


def test_avx2_without_avx512_turns_onednn_on():
    path = _choose(AVX2_EPYC)
    assert (path.onednn, path.setting, path.users) == (True, "1", False)
    assert not cpu_path.tensorflow_default(cpu_path.cpu_flags(AVX2_EPYC))  # TensorFlow: off
    line = cpu_path.startup_line(path)
    assert line.startswith("CPU: oneDNN on (") and "chosen as faster for VGG" in line
    assert "TF_ENABLE_ONEDNN_OPTS=0 turns it off" in line


def test_where_tensorflow_turns_it_on_the_choice_is_the_same_and_says_whose():
    path = _choose(AVX512_VNNI)
    assert (path.onednn, path.setting) == (True, "1")
    assert "TensorFlow's default with AVX-512 VNNI" in cpu_path.startup_line(path)


@pytest.mark.parametrize(
    "given, onednn",
    [("0", False), ("false", False), ("FALSE", False), ("1", True), ("true", True)],
)
def test_the_users_setting_wins(given, onednn):
    for cpuinfo in (AVX2_EPYC, AVX512_VNNI, AARCH64):
        path = _choose(cpuinfo, {"TF_ENABLE_ONEDNN_OPTS": given})
        assert (path.onednn, path.setting, path.users) == (onednn, None, True)
        assert cpu_path.startup_line(path) == (
            f"CPU: oneDNN {'on' if onednn else 'off'} (TF_ENABLE_ONEDNN_OPTS={given}, as set)"
        )


def test_a_setting_tensorflow_cannot_read_falls_back_to_its_default_and_says_so():
    path = _choose(AVX2_EPYC, {"TF_ENABLE_ONEDNN_OPTS": "yes"})
    assert (path.onednn, path.setting, path.users) == (False, None, True)  # TensorFlow's default
    assert "'yes' is not 0, 1, true or false" in cpu_path.startup_line(path)
    # An empty value is no setting: the entry point chooses.
    assert _choose(AVX2_EPYC, {"TF_ENABLE_ONEDNN_OPTS": " "}).setting == "1"


@pytest.mark.parametrize(
    "cpuinfo, system, machine",
    [
        (AARCH64, "Linux", "aarch64"),
        (None, "Darwin", "arm64"),
        (None, "Windows", "AMD64"),
        (None, "Linux", "x86_64"),  # /proc/cpuinfo unreadable
        ("", "", ""),
    ],
    ids=["linux_arm", "macos", "windows", "no_cpuinfo", "unknown"],
)
def test_elsewhere_tensorflow_decides(cpuinfo, system, machine):
    path = _choose(cpuinfo, system=system, machine=machine)
    assert (path.onednn, path.setting) == (None, None)
    line = cpu_path.startup_line(path)
    assert line.startswith("CPU: oneDNN left to TensorFlow (vgg_tf chooses on x86-64 Linux only")
    assert "TF_ENABLE_ONEDNN_OPTS=1 or =0 chooses" in line


def test_an_x86_cpu_without_avx2_keeps_tensorflows_default():
    path = _choose("flags\t\t: fpu sse2 sse4_2 avx\n")
    assert (path.onednn, path.setting) == (False, None)
    assert "TensorFlow's default: no AVX2" in cpu_path.startup_line(path)


def test_cpu_flags_and_vector_features():
    assert cpu_path.cpu_flags(AVX2_EPYC) == frozenset(
        AVX2_EPYC.splitlines()[3].split(":")[1].split()
    )
    assert cpu_path.cpu_flags(AARCH64) is None and cpu_path.cpu_flags(None) is None
    assert cpu_path.vector_features(cpu_path.cpu_flags(AVX2_EPYC)) == dict(
        avx2=True, avx512=False, avx512_vnni=False, avx512_bf16=False, avx_vnni=False, amx=False
    )
    amx = cpu_path.cpu_flags("flags : avx2 avx512f amx_tile amx_bf16\n")
    assert cpu_path.vector_features(amx)["amx"] and cpu_path.tensorflow_default(amx)
    assert set(cpu_path.vector_features(None).values()) == {None}


def test_apply_sets_the_variable_unless_the_user_did(monkeypatch):
    monkeypatch.setattr(cpu_path, "read_cpu_flags", lambda: cpu_path.cpu_flags(AVX2_EPYC))
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    environ = {"PATH": "/bin"}
    assert cpu_path.apply(environ).onednn is True
    assert environ == {"PATH": "/bin", "TF_ENABLE_ONEDNN_OPTS": "1"}
    users = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert cpu_path.apply(users).onednn is False and users == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    elsewhere: dict = {}
    assert cpu_path.apply(elsewhere).onednn is None and elsewhere == {}


@pytest.mark.slow
@pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() != "x86_64", reason="x86-64 Linux only"
)
def test_tensorflows_own_default_is_the_one_modelled_here():
    # TensorFlow announces "oneDNN custom operations are on" at import, at log level 0.
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"
    done = subprocess.run(
        [sys.executable, "-c", "import tensorflow"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    on = "oneDNN custom operations are on" in done.stderr
    assert on == cpu_path.tensorflow_default(cpu_path.read_cpu_flags()), done.stderr[-2000:]
