"""Training-pipeline throughput: fused crop-decode vs naive decode-resize-crop.

Writes scikit-image's photographs (400-700 px, ImageNet-like) as JPEGs, replicated
to a few hundred files in class folders, and times ``train_dataset`` on them at
S = 256, S = 512 and S jittered in [256, 512] (§3.1), both paths side by side
(alternating, median of the repeats), crop 224, batch 32.

Per wall second is what the run got; per CPU second of this process (all its
threads) is the per-core rate, whatever else the machine runs.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
from PIL import Image
from skimage import data

from benchmarks import harness
from vgg_tf.data import pipeline as input_pipeline
from vgg_tf.data import sources

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
    stream = input_pipeline.TrainStream(
        batch_size=batch_size, scale_min=scales[0], scale_max=scales[1], seed=0, fused_decode=fused
    )
    ds = input_pipeline.train_dataset(source, stream)
    it = iter(ds)
    for _ in range(2):
        next(it)
    steps = images // batch_size
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        next(it)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return steps * batch_size / wall, steps * batch_size / cpu


def _label(scales) -> str:
    return f"{scales[0]}" if scales[0] == scales[1] else f"[{scales[0]},{scales[1]}]"


def run(settings: harness.Settings, verbose: bool = True, batch_size: int = 32) -> dict:
    """Fused and naive img/s (wall and per CPU second) at each S, and their ratios."""
    calls = len(SCALES) * 2 * settings.pipeline_repeats
    images = settings.pipeline_images
    progress = harness.Progress(
        f"input pipeline: fused vs naive decode, {settings.pipeline_files} JPEGs, "
        f"{images} images a repeat, batch {batch_size}",
        calls,
        verbose,
    )
    rows = []
    with tempfile.TemporaryDirectory() as root:
        write_photos(root, settings.pipeline_files)
        source = sources.get_source(root)
        sizes = [Image.open(p).size for p in source.files["train"][0]]
        for scales in SCALES:
            figures = {False: [], True: []}
            for _ in range(settings.pipeline_repeats):  # alternate: both paths see the same load
                for fused in (False, True):
                    figures[fused].append(measure(source, scales, fused, images, batch_size))
                    progress.advance()
            naive_wall = harness.median([w for w, _ in figures[False]])
            fused_wall = harness.median([w for w, _ in figures[True]])
            naive_cpu = harness.median([c for _, c in figures[False]])
            fused_cpu = harness.median([c for _, c in figures[True]])
            rows.append(
                dict(
                    scale=_label(scales),
                    scale_min=scales[0],
                    scale_max=scales[1],
                    naive_img_s=naive_wall,
                    fused_img_s=fused_wall,
                    ratio=fused_wall / naive_wall,
                    naive_img_per_cpu_s=naive_cpu,
                    fused_img_per_cpu_s=fused_cpu,
                    cpu_ratio=fused_cpu / naive_cpu,
                )
            )
    progress.finish()
    return dict(
        files=settings.pipeline_files,
        images_per_repeat=images,
        repeats=settings.pipeline_repeats,
        batch=batch_size,
        crop=224,
        min_side=min(map(min, sizes)),
        max_side=max(map(max, sizes)),
        scales=rows,
    )
