"""The machine's matmul peak: the physical bound every model figure is read against.

A VGG net is almost entirely convolutions, which oneDNN (or cuDNN) runs as
matrix multiplications: the rate of one large square matmul is the most a
forward or backward pass can reach on this machine. 2 n^3 FLOPs per product;
the best of the repeats is the peak, the median what a busy machine gives.
The model comparisons also time this matmul between their own repeats
(:data:`BOUND_N`), so that the bound they are read against was measured under
the same load as they were.

The section also records the CPU's vector features (AVX2, AVX-512 and its VNNI
and BF16 extensions, AVX-VNNI, AMX: what TensorFlow's and vgg_tf's choice of the
oneDNN path rest on, :mod:`vgg_tf.cli.cpu_path`), whether this run's convolutions
go through oneDNN, and what a command started with nothing set would choose.
"""

from __future__ import annotations

import os

import tensorflow as tf

from benchmarks import harness
from vgg_tf.cli import cpu_path, quiet

#: Side of the matmul timed between the model repeats (137 GFLOP: about 0.5 s at 250 GFLOP/s).
BOUND_N = 4096


def matmul_call(n: int, dtype=tf.float32):
    """A warmed-up call of one ``n x n`` matmul (it waits for the result), and its FLOPs."""
    a = tf.random.stateless_normal([n, n], seed=[1, 2], dtype=dtype)
    b = tf.random.stateless_normal([n, n], seed=[3, 4], dtype=dtype)
    product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    product().numpy()  # trace, warm up the kernels
    return (lambda: product().numpy()), 2.0 * n**3


def matmul_gflops(n: int, repeats: int, dtype=tf.float32, progress=None) -> dict:
    """GFLOP/s of an ``n x n`` by ``n x n`` matmul: best and median over ``repeats``."""
    call, flops = matmul_call(n, dtype)
    times = harness.interleaved({"matmul": call}, repeats, progress)["matmul"]
    return dict(
        n=n,
        dtype=tf.as_dtype(dtype).name,
        repeats=repeats,
        peak_gflops=flops / min(times) / 1e9,
        median_gflops=flops / harness.median(times) / 1e9,
    )


def onednn_observed() -> bool:
    """Whether this process's CPU convolutions run through oneDNN.

    TensorFlow's own CPU Conv2D refuses NCHW (channels-first) input and oneDNN's runs
    it, so one small channels-first convolution tells which path TensorFlow took (the
    refusal's C++ warning is kept off the terminal).
    """
    with tf.device("/CPU:0"), quiet.stderr_fd_silenced():
        try:
            image, kernel = tf.zeros([1, 3, 8, 8]), tf.zeros([3, 3, 3, 4])
            tf.nn.conv2d(image, kernel, strides=1, padding="SAME", data_format="NCHW").numpy()
        except tf.errors.UnimplementedError:  # "only supports the NHWC tensor format on the CPU"
            return False
    return True


def cpu_facts() -> dict:
    """The CPU's vector features, this run's oneDNN path (observed) and its variable, and the
    path a command started with nothing set chooses (its start-up line)."""
    unset = {k: v for k, v in os.environ.items() if k != cpu_path.VARIABLE}
    choice = cpu_path.choose_here(unset)
    return dict(
        features=cpu_path.vector_features(cpu_path.read_cpu_flags()),
        onednn=onednn_observed(),
        variable=os.environ.get(cpu_path.VARIABLE),
        default_onednn=choice.onednn,
        default_line=cpu_path.startup_line(choice),
    )


def run(settings: harness.Settings, verbose: bool = True) -> dict:
    """fp32 matmul peak; also the mixed-precision compute dtype's when one is set; the CPU's
    vector features and oneDNN path (:func:`cpu_facts`)."""
    n, repeats = (2048, 3) if settings.quick else (4096, 5)
    dtypes = [tf.float32] + (
        [tf.as_dtype(settings.mixed_precision)] if settings.mixed_precision else []
    )
    progress = harness.Progress(f"matmul peak ({n} x {n})", repeats * len(dtypes), verbose)
    result = matmul_gflops(n, repeats, tf.float32, progress)
    if settings.mixed_precision:
        result["mixed"] = matmul_gflops(n, repeats, dtypes[1], progress)
    progress.finish()
    result["cpu"] = cpu_facts()
    return result
