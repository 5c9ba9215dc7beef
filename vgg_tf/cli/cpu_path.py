"""TensorFlow's CPU path, oneDNN on or off, chosen before TensorFlow is imported.

TensorFlow 2.21 reads ``TF_ENABLE_ONEDNN_OPTS`` once, when it is imported. Left
unset, it turns its oneDNN kernels on, on Linux, only for CPUs with AVX-512 VNNI,
AVX-512 BF16, AVX-VNNI or AMX (:func:`tensorflow_default`); a 2-core AMD EPYC
with AVX2 and no AVX-512 then trains VGG at a third of the speed it reaches with
them on. The entry points therefore decide (:func:`choose`, pure: the
environment and the CPU's flags in, the decision out):

* the user's own ``TF_ENABLE_ONEDNN_OPTS`` always wins;
* on x86-64 Linux with AVX2, oneDNN on: faster for VGG training and evaluation
  on both CPUs measured (BUILD.md, "The CPU path"; ``python -m benchmarks
  --sections onednn`` measures it on any other);
* elsewhere (no AVX2, another architecture or OS, no ``/proc/cpuinfo``):
  nothing is set, TensorFlow's default applies, and the line says so.

:func:`startup_line` is the one line a command prints about it.

Example:
    >>> flags = cpu_flags("flags\\t\\t: fpu sse2 avx avx2 fma")
    >>> path = choose({}, flags, system="Linux", machine="x86_64")
    >>> path.onednn, path.setting
    (True, '1')
    >>> startup_line(path)
    'CPU: oneDNN on (AVX2, no AVX-512 VNNI/BF16 or AMX: chosen as faster for VGG; \
TF_ENABLE_ONEDNN_OPTS=0 turns it off)'
"""

from __future__ import annotations

import dataclasses
import os
import platform
from collections.abc import Mapping

#: The variable TensorFlow reads at import.
VARIABLE = "TF_ENABLE_ONEDNN_OPTS"

#: /proc/cpuinfo flags for which TensorFlow 2.21 turns oneDNN on by default on Linux
#: (``DefaultOneDnnPolicy`` in tensorflow/core/util/port.cc), with their usual names.
TENSORFLOW_ONEDNN_FLAGS = {
    "avx512_vnni": "AVX-512 VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "avx_vnni": "AVX-VNNI",
    "amx_tile": "AMX",
    "amx_int8": "AMX",
    "amx_bf16": "AMX",
}

_ON, _OFF = ("1", "true"), ("0", "false")


@dataclasses.dataclass(frozen=True)
class CpuPath:
    """The decision: which path runs, what to set, and why.

    Attributes:
        onednn: True or False when the path is known, None when TensorFlow decides
            on a CPU this module cannot read.
        setting: the value to give ``TF_ENABLE_ONEDNN_OPTS``, or None to leave it alone.
        reason: a few words for the start-up line.
        users: True when the user's own ``TF_ENABLE_ONEDNN_OPTS`` decided.
    """

    onednn: bool | None
    setting: str | None
    reason: str
    users: bool = False


def cpu_flags(cpuinfo: str | None) -> frozenset[str] | None:
    """The feature flags of the first CPU in ``/proc/cpuinfo`` text (x86: the ``flags``
    line), or None when there is none (no text, another architecture).

    Example:
        >>> sorted(cpu_flags("processor\\t: 0\\nflags\\t\\t: avx2 fma\\n"))
        ['avx2', 'fma']
        >>> cpu_flags("Features\\t: fp asimd") is None
        True
    """
    for line in (cpuinfo or "").splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip() == "flags":
            return frozenset(value.split())
    return None


def read_cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """:func:`cpu_flags` of this machine; None where ``path`` cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return cpu_flags(f.read())
    except OSError:
        return None


def tensorflow_default(flags: frozenset[str]) -> bool:
    """Whether TensorFlow 2.21 turns oneDNN on by itself on an x86-64 Linux CPU with ``flags``.

    Example:
        >>> tensorflow_default(frozenset({"avx2", "avx512f"})), tensorflow_default(
        ...     frozenset({"avx512f", "avx512_vnni"}))
        (False, True)
    """
    return any(flag in flags for flag in TENSORFLOW_ONEDNN_FLAGS)


def vector_features(flags: frozenset[str] | None) -> dict[str, bool | None]:
    """The CPU's vector features that decide the path: AVX2, AVX-512 (F), the AVX-512 VNNI and
    BF16 extensions, AVX-VNNI, AMX; all None when the flags are unknown.

    Example:
        >>> vector_features(frozenset({"avx2", "fma"}))["avx512"]
        False
    """
    names = dict(
        avx2=("avx2",),
        avx512=("avx512f",),
        avx512_vnni=("avx512_vnni",),
        avx512_bf16=("avx512_bf16",),
        avx_vnni=("avx_vnni",),
        amx=("amx_tile", "amx_int8", "amx_bf16"),
    )
    return {
        key: None if flags is None else any(flag in flags for flag in wanted)
        for key, wanted in names.items()
    }


def choose(
    environ: Mapping[str, str],
    flags: frozenset[str] | None,
    system: str,
    machine: str,
) -> CpuPath:
    """The CPU path of a process started with ``environ`` on this CPU (nothing is changed).

    Args:
        environ: the environment (the user's ``TF_ENABLE_ONEDNN_OPTS``, if any, wins).
        flags: the CPU's ``/proc/cpuinfo`` flags (:func:`read_cpu_flags`), None if unknown.
        system: ``platform.system()``, e.g. ``"Linux"``.
        machine: ``platform.machine()``, e.g. ``"x86_64"``.

    Example:
        >>> choose({"TF_ENABLE_ONEDNN_OPTS": "0"}, frozenset({"avx2"}), "Linux", "x86_64")
        CpuPath(onednn=False, setting=None, reason='TF_ENABLE_ONEDNN_OPTS=0, as set', users=True)
        >>> choose({}, None, "Darwin", "arm64").setting is None
        True
    """
    x86_linux = system == "Linux" and machine.lower() in ("x86_64", "amd64") and flags is not None
    default = tensorflow_default(flags) if x86_linux else None
    given = environ.get(VARIABLE, "").strip()
    if given:
        if given.lower() in _ON + _OFF:
            on = given.lower() in _ON
            return CpuPath(on, None, f"{VARIABLE}={given}, as set", users=True)
        return CpuPath(
            default,
            None,
            f"{VARIABLE}={given!r} is not 0, 1, true or false: TensorFlow's default applies",
            users=True,
        )
    if not x86_linux:
        where = f"{system or 'unknown OS'} {machine or 'unknown CPU'}".strip()
        if flags is None and system == "Linux" and machine.lower() in ("x86_64", "amd64"):
            where = "a CPU without flags in /proc/cpuinfo"
        return CpuPath(None, None, f"vgg_tf chooses on x86-64 Linux only, not on {where}")
    if "avx2" not in flags:
        return CpuPath(default, None, "TensorFlow's default: no AVX2, a CPU not measured for VGG")
    if default:
        feature = next(TENSORFLOW_ONEDNN_FLAGS[f] for f in TENSORFLOW_ONEDNN_FLAGS if f in flags)
        return CpuPath(True, "1", f"TensorFlow's default with {feature}")
    return CpuPath(True, "1", "AVX2, no AVX-512 VNNI/BF16 or AMX: chosen as faster for VGG")


def startup_line(path: CpuPath) -> str:
    """The one line a command prints about its CPU path.

    Example:
        >>> startup_line(CpuPath(False, None, "TF_ENABLE_ONEDNN_OPTS=0, as set", users=True))
        'CPU: oneDNN off (TF_ENABLE_ONEDNN_OPTS=0, as set)'
    """
    if path.onednn is None:
        state = "oneDNN left to TensorFlow"
        hint = f"{VARIABLE}=1 or =0 chooses"
    else:
        state = f"oneDNN {'on' if path.onednn else 'off'}"
        hint = f"{VARIABLE}={'0 turns it off' if path.onednn else '1 turns it on'}"
    return (
        f"CPU: {state} ({path.reason})" if path.users else f"CPU: {state} ({path.reason}; {hint})"
    )


def choose_here(environ: Mapping[str, str]) -> CpuPath:
    """:func:`choose` for this machine's CPU and OS (nothing is changed).

    Example:
        >>> choose_here({"TF_ENABLE_ONEDNN_OPTS": "0"}).onednn
        False
    """
    return choose(environ, read_cpu_flags(), platform.system(), platform.machine())


def apply(environ: dict | None = None) -> CpuPath:
    """Chooses the path for this machine and sets ``TF_ENABLE_ONEDNN_OPTS`` accordingly.

    Call it before TensorFlow is imported (the entry points do): TensorFlow reads the
    variable once, at import. The setting also reaches the processes this one starts.
    """
    environ = os.environ if environ is None else environ
    path = choose_here(environ)
    if path.setting is not None:
        environ[VARIABLE] = path.setting
    return path
