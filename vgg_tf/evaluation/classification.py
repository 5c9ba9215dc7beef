"""Top-1 and top-5 error of the paper's test protocols on a split (§4, Tables 3-6).

``bin/evaluate`` runs :func:`evaluate`: each model through
:class:`vgg_tf.inference.protocol.ModelEvaluator` under each protocol, the
fusion of several models (Table 6), the error table, and per-image predictions
and heatmaps when asked.

Example:
    >>> rows = evaluate(["workdirs/digits_A"], ["dense"], dataset="digits")  # doctest: +SKIP
    >>> print(format_table(rows))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import keras
import numpy as np

from vgg_tf import tables
from vgg_tf.data import images as images_lib
from vgg_tf.data import sources
from vgg_tf.inference import heatmaps
from vgg_tf.inference.protocol import ModelEvaluator, check_protocols
from vgg_tf.training import metrics
from vgg_tf.weights.loading import load_model
from vgg_tf.workdir import write_json


class _Tally:
    def __init__(self):
        self.count = self.top1 = self.top5 = 0

    def add(self, probs: np.ndarray, label: int) -> None:
        top1, top5 = metrics.top_k_hits([label], np.asarray(probs)[None]).numpy()
        self.count += 1
        self.top1 += int(top1)
        self.top5 += int(top5)

    def errors(self) -> tuple[float, float]:
        if not self.count:
            return float("nan"), float("nan")
        return 100.0 * (1 - self.top1 / self.count), 100.0 * (1 - self.top5 / self.count)


def evaluate_images(
    evaluators: Sequence[ModelEvaluator],
    examples: Iterable[tuple[Any, int]],
    protocols: Sequence[str],
    *,
    num_examples: int | None = None,
    heatmap_dir: str | None = None,
    heatmap_count: int = 8,
    predictions_output: str | None = None,
    verbose: int = 1,
) -> list[dict]:
    """Evaluates models on ``(uint8 RGB image (H, W, 3), label)`` examples.

    Args:
        evaluators: One per model; several also give fusion rows.
        examples: ``(image, label)`` or ``(image, label, filename)``: decoded
            uint8 RGB ``(H, W, 3)`` images, integer labels.
        protocols: Names from :data:`PROTOCOLS`.
        num_examples: Length of ``examples`` for the progress bar, if known.
        heatmap_dir: Write heatmaps of the first images there, ``model<i>_<index>.png``:
            the image with the dense score map of its top class under the first
            protocol overlaid (:func:`vgg_tf.inference.heatmaps.write_heatmap`).
        heatmap_count: How many images get heatmaps.
        predictions_output: Write every image's posteriors there as JSON
            lines: ``{"index", "label", "filename", "probabilities": [{"model",
            <protocol>: [...]}, ...]}``
            (one entry per model, in order).
        verbose: 0 silent, 1 progress bar.

    Returns:
        One row per model and protocol (and a ``fusion`` row per protocol when
        there are several models): ``model``, ``protocol``, ``scales``,
        ``top1_error``, ``top5_error`` (percent) and ``num_examples``.

    Example:
        >>> rows = evaluate_images([ModelEvaluator(trained)], [(image, 3)], ["dense"])  # doctest: +SKIP
        >>> print(format_table(rows))  # doctest: +SKIP
    """
    protocols = check_protocols(protocols)
    for ev in evaluators:  # fail before the loop on a bad single-scale request
        for p in protocols:
            ev.scales_for(p)
    tallies = {(i, p): _Tally() for i in range(len(evaluators)) for p in protocols}
    fusion = {p: _Tally() for p in protocols} if len(evaluators) > 1 else {}
    progress = keras.utils.Progbar(num_examples, unit_name="image") if verbose else None
    seen = 0
    if predictions_output:
        os.makedirs(os.path.dirname(os.path.abspath(predictions_output)), exist_ok=True)
    with contextlib.ExitStack() as stack:
        predictions = (
            stack.enter_context(open(predictions_output, "w")) if predictions_output else None
        )
        for example in examples:
            image, label = example[0], int(example[1])
            filename = example[2] if len(example) > 2 else None
            _evaluate_one(
                evaluators,
                image,
                label,
                filename,
                protocols,
                seen,
                tallies,
                fusion,
                heatmap_dir,
                heatmap_count,
                predictions,
            )
            seen += 1
            if progress is not None:
                top1 = tallies[0, protocols[0]].errors()[0]
                progress.update(seen, values=[(f"top1_err_{protocols[0]}", top1)], finalize=False)
    if progress is not None:
        progress.update(seen, finalize=True)
    rows = []
    for i, ev in enumerate(evaluators):
        for p in protocols:
            top1, top5 = tallies[i, p].errors()
            rows.append(
                dict(
                    model=ev.trained.name,
                    path=ev.trained.path,
                    protocol=p,
                    scales=list(ev.scales_for(p)),
                    top1_error=top1,
                    top5_error=top5,
                    num_examples=seen,
                )
            )
    for p, tally in fusion.items():
        top1, top5 = tally.errors()
        rows.append(
            dict(
                model="fusion (" + ", ".join(ev.trained.name for ev in evaluators) + ")",
                path=None,
                protocol=p,
                scales=None,
                top1_error=top1,
                top5_error=top5,
                num_examples=seen,
            )
        )
    return rows


def _evaluate_one(
    evaluators,
    image,
    label,
    filename,
    protocols,
    index,
    tallies,
    fusion,
    heatmap_dir,
    heatmap_count,
    predictions,
) -> None:
    per_model = []
    for i, ev in enumerate(evaluators):
        cache: dict = {}
        per_model.append({p: ev.probabilities(p, image, cache) for p in protocols})
        for p in protocols:
            tallies[i, p].add(per_model[-1][p], label)
        if heatmap_dir and index < heatmap_count:
            predicted = int(np.argmax(per_model[-1][protocols[0]]))
            path = os.path.join(heatmap_dir, f"model{i}_{index:04d}.png")
            heatmaps.write_heatmap(ev, image, predicted, path)
    for p in fusion:
        fusion[p].add(np.mean([probs[p] for probs in per_model], axis=0), label)
    if predictions is not None:
        record = [
            dict(model=ev.trained.name, **{p: probs[p].tolist() for p in protocols})
            for ev, probs in zip(evaluators, per_model)
        ]
        line = {"index": index, "label": label, "filename": filename, "probabilities": record}
        predictions.write(json.dumps(line) + "\n")


def format_table(rows: Sequence[dict]) -> str:
    """A plain-text table in the manner of the paper's Tables 3-6.

    Example:
        >>> print(format_table([dict(model="D", protocol="dense", scales=[256, 384, 512],
        ...                          top1_error=24.8, top5_error=7.5)]))
        ConvNet  protocol  test scale Q  top-1 err (%)  top-5 err (%)
        -------------------------------------------------------------
        D        dense     256,384,512           24.80           7.50
    """
    header = ("ConvNet", "protocol", "test scale Q", "top-1 err (%)", "top-5 err (%)")
    cells = [
        (
            r["model"],
            r["protocol"],
            ",".join(map(str, r["scales"])) if r["scales"] else "-",
            f"{r['top1_error']:.2f}",
            f"{r['top5_error']:.2f}",
        )
        for r in rows
    ]
    return tables.format_table(header, cells, align="<<<>>", rule=True)


def _source_examples(
    source,
    split: str,
    max_examples: int | None,
    max_pixels: int | None,
    max_aspect_ratio: float | None,
):
    """Decoded ``(image, label, filename)`` of a split; bad records skipped, counted and named."""
    decoded = sources.decoded_images(
        source,
        split,
        max_examples=max_examples,
        max_pixels=max_pixels,
        max_aspect_ratio=max_aspect_ratio,
    )
    for image, label, filename in decoded.as_numpy_iterator():
        yield image, int(label), filename.decode("utf-8", "replace")


def evaluate(
    models: str | Sequence[str],
    dataset: str,
    protocols: str | Sequence[str] = "dense",
    *,
    scales: Sequence[int] | None = None,
    split: str | None = None,
    data_dir: str | None = None,
    max_examples: int | None = None,
    output: str | None = None,
    heatmap_dir: str | None = None,
    heatmap_count: int = 8,
    predictions_output: str | None = None,
    max_pixels: int | None = images_lib.DEFAULT_MAX_PIXELS,
    max_aspect_ratio: float | None = images_lib.DEFAULT_MAX_ASPECT_RATIO,
    verbose: int = 1,
) -> list[dict]:
    """Evaluates trained models on a dataset with the paper's protocols (``bin/evaluate``).

    Prints the table (when ``verbose``) and writes it as JSON to ``output``.

    Args:
        models: Workdirs or ``.keras`` files, a list or a comma-separated string.
        dataset: A TFDS name, "digits", or a folder of class subfolders.
        protocols: Names from :data:`PROTOCOLS` (list or comma-separated).
        scales: Test scales overriding every model's training config.
        split: Split to evaluate; defaults to the source's test split (``"test"``
            where the dataset has a labelled one, else its validation split, as for
            ImageNet).
        data_dir: TFDS data directory.
        max_examples: Evaluate only the first n examples.
        output: Path of a JSON file to write the rows to.
        heatmap_dir: Write score-map heatmaps of the first images there.
        heatmap_count: How many images get heatmaps.
        predictions_output: Write every image's posteriors there (JSON lines).
        max_pixels: Decompression-bomb limit on declared image pixels (images
            over it are skipped, counted and named).
        max_aspect_ratio: Limit on longer side / shorter side (likewise).
        verbose: 0 silent, 1 progress bar and table.

    Returns:
        The rows of the table (see :func:`evaluate_images`).

    Example:
        >>> rows = evaluate("workdirs/digits_d", "digits", "dense,multicrop")  # doctest: +SKIP
    """
    images_lib.check_image_limits(max_pixels, max_aspect_ratio)
    paths = [m for m in models.split(",") if m] if isinstance(models, str) else list(models)
    if not paths:
        raise ValueError("No model given; expected one or more workdirs or .keras files.")
    protocols = check_protocols(protocols)
    evaluators = [ModelEvaluator(load_model(p), scales) for p in paths]
    source = sources.get_source(dataset, data_dir=data_dir)
    split = split or source.test_split
    total = source.num_examples(split)
    if max_examples is not None:
        total = min(total, max_examples)
    for ev in evaluators:
        if ev.trained.num_classes != source.num_classes:
            raise ValueError(
                f"Model {ev.trained.path!r} has {ev.trained.num_classes} classes but dataset "
                f"{dataset!r} has {source.num_classes}; expected the same."
            )
    rows = evaluate_images(
        evaluators,
        _source_examples(source, split, max_examples, max_pixels, max_aspect_ratio),
        protocols,
        num_examples=total,
        heatmap_dir=heatmap_dir,
        heatmap_count=heatmap_count,
        predictions_output=predictions_output,
        verbose=verbose,
    )
    if verbose:
        print(f"\n{dataset} ({split}, {rows[0]['num_examples']} images)\n{format_table(rows)}")
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        write_json(output, {"dataset": dataset, "split": split, "rows": rows})
    return rows
