"""The machine's matmul peak: the physical bound every model figure is read against.

A VGG net is almost entirely convolutions, which oneDNN (or cuDNN) runs as
matrix multiplications: the rate of one large square matmul is the most a
forward or backward pass can reach on this machine. 2 n^3 FLOPs per product;
the best of the repeats is the peak, the median what a busy machine gives.
The model comparisons also time this matmul between their own repeats
(:data:`BOUND_N`), so that the bound they are read against was measured under
the same load as they were.
"""

from __future__ import annotations

import tensorflow as tf

from benchmarks import harness

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


def run(settings: harness.Settings, verbose: bool = True) -> dict:
    """fp32 matmul peak; also the mixed-precision compute dtype's when one is set."""
    n, repeats = (2048, 3) if settings.quick else (4096, 5)
    dtypes = [tf.float32] + (
        [tf.as_dtype(settings.mixed_precision)] if settings.mixed_precision else []
    )
    progress = harness.Progress(f"matmul peak ({n} x {n})", repeats * len(dtypes), verbose)
    result = matmul_gflops(n, repeats, tf.float32, progress)
    if settings.mixed_precision:
        result["mixed"] = matmul_gflops(n, repeats, dtypes[1], progress)
    progress.finish()
    return result
