"""Training-pipeline throughput: fused crop-decode vs naive decode-resize-crop.

Writes scikit-image's photographs (400-700 px, ImageNet-like) as JPEGs, replicated
to a few hundred files in class folders, and times ``train_dataset`` on them at
S = 256, S = 512 and S jittered in [256, 512] (§3.1), both paths side by side.

Usage:
    python benchmarks/pipeline_throughput.py [--files 320] [--images 960] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from PIL import Image
from skimage import data

from vgg_tf import input_pipeline, sources

SCALES = ((256, 256), (512, 512), (256, 512))


def photos() -> list[np.ndarray]:
    """scikit-image's colour photographs of ImageNet-like size: 400-700 px a side."""
    return [
        data.astronaut(),  # 512 x 512
        data.coffee(),  # 400 x 600
        data.rocket(),  # 427 x 640
        data.immunohistochemistry(),  # 512 x 512
        data.stereo_motorcycle()[0][:, 20:720],  # 500 x 700
    ]


def write_photos(root: str, num_files: int) -> None:
    """JPEGs of real photos in 4 class folders; replicas differ in JPEG quality (86-93)."""
    images = photos()
    for i in range(num_files):
        folder = os.path.join(root, f"class{i % 4}")
        os.makedirs(folder, exist_ok=True)
        quality = 86 + (i // len(images)) % 8
        Image.fromarray(images[i % len(images)]).save(
            os.path.join(folder, f"{i:04d}.jpg"), quality=quality
        )


def measure(source, scales, fused: bool, images: int, batch_size: int) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process), after warm-up.

    The machine may be shared: CPU seconds (all threads of this process) give the
    per-core rate whatever else runs, wall seconds what this run actually got.
    """
    ds = input_pipeline.train_dataset(
        source, batch_size=batch_size, scale_min=scales[0], scale_max=scales[1],
        seed=0, fused_decode=fused,
    )
    it = iter(ds)
    for _ in range(2):
        next(it)
    steps = images // batch_size
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        next(it)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return steps * batch_size / wall, steps * batch_size / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=320)
    parser.add_argument("--images", type=int, default=960, help="timed images per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (best kept)")
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as root:
        write_photos(root, args.files)
        source = sources.get_source(root)
        sizes = [Image.open(p).size for p in source.files["train"][0]]
        print(
            f"{args.files} JPEG files ({min(map(min, sizes))}-{max(map(max, sizes))} px), "
            f"{cores} cores, crop 224, batch {args.batch_size}, best of {args.repeats} x "
            f"{args.images} images, TF {tf.__version__}, load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"{'S':>10} | {'naive img/s':>11} {'fused img/s':>11} {'ratio':>6} | "
            f"{'per core (img per CPU-s)':>24} {'ratio':>6} | {'fused img/s/core (wall)':>22}"
        )
        figures = {}
        for scales in SCALES:
            best = {False: (0.0, 0.0), True: (0.0, 0.0)}
            for _ in range(args.repeats):  # alternate, so both paths see the same load
                for fused in (False, True):
                    wall, cpu = measure(source, scales, fused, args.images, args.batch_size)
                    best[fused] = (max(best[fused][0], wall), max(best[fused][1], cpu))
            (naive_wall, naive_cpu), (fused_wall, fused_cpu) = best[False], best[True]
            figures[scales] = (fused_wall / naive_wall, fused_wall / cores)
            label = f"{scales[0]}" if scales[0] == scales[1] else f"[{scales[0]},{scales[1]}]"
            print(
                f"{label:>10} | {naive_wall:11.1f} {fused_wall:11.1f} {fused_wall / naive_wall:5.2f}x | "
                f"naive {naive_cpu:6.1f} fused {fused_cpu:6.1f} {fused_cpu / naive_cpu:5.2f}x | "
                f"{fused_wall / cores:22.1f}"
            )
        jitter_ratio, per_core = figures[(256, 512)]
        print(
            f"targets at S in [256, 512]: fused >= 1.5x naive ({jitter_ratio:.2f}x: "
            f"{'met' if jitter_ratio >= 1.5 else 'MISSED'}), >= 300 img/s per core "
            f"({per_core:.0f}: {'met' if per_core >= 300 else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
