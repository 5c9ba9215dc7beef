"""Top-1 and top-5 error of the paper's test protocols on a split (§4, Tables 3-6).

``bin/evaluate`` runs :func:`evaluate`: each model through
:class:`vgg_tf.inference.protocol.ModelEvaluator` under each protocol, the
fusion of several models (Table 6), the error table, and per-image predictions
and heatmaps when asked (:class:`ImageOutputs`).

Example:
    >>> rows = evaluate(["workdirs/digits_A"], DatasetSplit("digits"), ["dense"])  # doctest: +SKIP
    >>> print(format_table(rows))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from vgg_tf import tables
from vgg_tf.evaluation.datasets import DatasetSplit
from vgg_tf.inference import heatmaps
from vgg_tf.inference.models import load_models
from vgg_tf.inference.protocol import ModelEvaluator, check_protocols
from vgg_tf.progress import Progress
from vgg_tf.training import metrics
from vgg_tf.workdir import write_json

#: Dense evaluation at three scales, the paper's best single-model protocol (Table 4).
DEFAULT_PROTOCOLS = ("dense",)


@dataclasses.dataclass(frozen=True)
class ImageOutputs:
    """Files written per image while evaluating (none by default).

    Attributes:
        predictions: Write every image's posteriors there as JSON lines:
            ``{"index", "label", "filename", "probabilities": [{"model",
            <protocol>: [...]}, ...]}`` (one entry per model, in order).
        heatmap_dir: Write heatmaps of the first images there,
            ``model<i>_<index>.png``: the image with the dense score map of its
            top class under the first protocol overlaid, as ``bin/predict``
            draws them (:func:`vgg_tf.inference.heatmaps.write_heatmap`).
        heatmap_count: How many images get heatmaps.

    Raises:
        ValueError: A negative ``heatmap_count``.

    Example:
        >>> ImageOutputs(heatmap_dir="maps").heatmap_count
        8
    """

    predictions: str | None = None
    heatmap_dir: str | None = None
    heatmap_count: int = 8

    def __post_init__(self):
        if not isinstance(self.heatmap_count, int) or self.heatmap_count < 0:
            raise ValueError(
                f"heatmap_count={self.heatmap_count!r} is not accepted; expected an integer >= 0."
            )


#: No file per image: the table alone.
NO_IMAGE_OUTPUTS = ImageOutputs()


class _Tally:
    def __init__(self):
        self.count = self.top1 = self.top5 = 0
        self.num_classes = 0

    def add(self, probs: np.ndarray, label: int) -> None:
        top1, top5 = metrics.top_k_hits([label], np.asarray(probs)[None]).numpy()
        self.count += 1
        self.top1 += int(top1)
        self.top5 += int(top5)
        self.num_classes = len(probs)

    def errors(self) -> tuple[float, float | None]:
        """Top-1 and top-5 error in percent; top-5 is None for 5 classes or fewer."""
        if not self.count:
            return float("nan"), float("nan")
        top5 = 100.0 * (1 - self.top5 / self.count)
        return 100.0 * (1 - self.top1 / self.count), (
            top5 if metrics.has_top5_error(self.num_classes) else None
        )


class _Scoreboard:
    """A tally per model and protocol, and per protocol of the models' fusion."""

    def __init__(self, evaluators: Sequence[ModelEvaluator], protocols: Sequence[str]):
        self.evaluators, self.protocols = evaluators, protocols
        self.tallies = {(i, p): _Tally() for i in range(len(evaluators)) for p in protocols}
        self.fusion = {p: _Tally() for p in protocols} if len(evaluators) > 1 else {}

    def add(self, per_model: Sequence[dict[str, np.ndarray]], label: int) -> None:
        for i, probabilities in enumerate(per_model):
            for p in self.protocols:
                self.tallies[i, p].add(probabilities[p], label)
        for p, tally in self.fusion.items():
            tally.add(np.mean([probabilities[p] for probabilities in per_model], axis=0), label)

    def rows(self, seen: int) -> list[dict]:
        rows = []
        for i, ev in enumerate(self.evaluators):
            for p in self.protocols:
                top1, top5 = self.tallies[i, p].errors()
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
        for p, tally in self.fusion.items():
            top1, top5 = tally.errors()
            rows.append(
                dict(
                    model="fusion (" + ", ".join(ev.trained.name for ev in self.evaluators) + ")",
                    path=None,
                    protocol=p,
                    scales=None,
                    top1_error=top1,
                    top5_error=top5,
                    num_examples=seen,
                )
            )
        return rows


def _posteriors(ev: ModelEvaluator, protocols: Sequence[str], image) -> dict[str, np.ndarray]:
    """The image's posteriors under each protocol (``combined`` reuses the others)."""
    cache: dict = {}
    return {p: ev.probabilities(p, image, cache) for p in protocols}


def evaluate_images(
    evaluators: Sequence[ModelEvaluator],
    examples: Iterable[tuple[Any, int]],
    protocols: Sequence[str],
    *,
    num_examples: int | None = None,
    image_outputs: ImageOutputs = NO_IMAGE_OUTPUTS,
    verbose: int = 1,
) -> list[dict]:
    """Evaluates models on ``(uint8 RGB image (H, W, 3), label)`` examples.

    Args:
        evaluators: One per model; several also give fusion rows.
        examples: ``(image, label)`` or ``(image, label, filename)``: decoded
            uint8 RGB ``(H, W, 3)`` images, integer labels.
        protocols: Names from :data:`vgg_tf.inference.protocol.PROTOCOLS`.
        num_examples: Length of ``examples`` for the progress bar, if known.
        image_outputs: The predictions file and heatmaps to write, if any.
        verbose: 0 silent, 1 progress bar.

    Returns:
        One row per model and protocol (and a ``fusion`` row per protocol when
        there are several models): ``model``, ``protocol``, ``scales``,
        ``top1_error``, ``top5_error`` (percent; None for 5 classes or fewer, where
        every label is among the top 5) and ``num_examples``.

    Example:
        >>> rows = evaluate_images([ModelEvaluator(trained)], [(image, 3)], ["dense"])  # doctest: +SKIP
        >>> print(format_table(rows))  # doctest: +SKIP
    """
    protocols = check_protocols(protocols)
    for ev in evaluators:  # fail before the loop on a bad single-scale request
        for p in protocols:
            ev.scales_for(p)
    board = _Scoreboard(evaluators, protocols)
    progress = Progress(num_examples) if verbose else None
    seen = 0
    outputs = image_outputs
    if outputs.predictions:  # local, or gs://, s3://, ... (tf.io.gfile)
        tf.io.gfile.makedirs(os.path.dirname(outputs.predictions) or ".")
    with contextlib.ExitStack() as stack:
        predictions = (
            stack.enter_context(tf.io.gfile.GFile(outputs.predictions, "w"))
            if outputs.predictions
            else None
        )
        for index, example in enumerate(examples):
            image, label = example[0], int(example[1])
            per_model = [_posteriors(ev, protocols, image) for ev in evaluators]
            board.add(per_model, label)
            if outputs.heatmap_dir and index < outputs.heatmap_count:
                for i, (ev, probabilities) in enumerate(zip(evaluators, per_model)):
                    top = int(np.argmax(probabilities[protocols[0]]))
                    path = os.path.join(outputs.heatmap_dir, f"model{i}_{index:04d}.png")
                    heatmaps.write_heatmap(ev, image, top, path)
            if predictions is not None:
                filename = example[2] if len(example) > 2 else None
                record = [
                    dict(model=ev.trained.name, **{p: probs[p].tolist() for p in protocols})
                    for ev, probs in zip(evaluators, per_model)
                ]
                line = {"index": index, "label": label, "filename": filename}
                predictions.write(json.dumps({**line, "probabilities": record}) + "\n")
            seen = index + 1
            if progress is not None:
                top1 = board.tallies[0, protocols[0]].errors()[0]
                progress.update(seen, [(f"top1_err_{protocols[0]}", top1)])
    if progress is not None:
        progress.update(seen, final=True)
    return board.rows(seen)


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
            "-" if r["top5_error"] is None else f"{r['top5_error']:.2f}",
        )
        for r in rows
    ]
    return tables.format_table(header, cells, align="<<<>>", rule=True)


def evaluate(
    models: Sequence[str],
    data: DatasetSplit,
    protocols: Sequence[str] = DEFAULT_PROTOCOLS,
    *,
    scales: Sequence[int] | None = None,
    image_outputs: ImageOutputs = NO_IMAGE_OUTPUTS,
    output: str | None = None,
    verbose: int = 1,
) -> list[dict]:
    """Evaluates trained models on a dataset with the paper's protocols (``bin/evaluate``).

    Prints the table (when ``verbose``) and writes it as JSON to ``output``.

    Args:
        models: Workdirs, ``.keras`` files or published names such as ``imagenet-D``
            (:func:`vgg_tf.weights.loading.load_model`); several are also fused.
        data: The images: a dataset's split (by default its test split, else its
            validation split, as for ImageNet), the first n, within the limits.
        protocols: Names from :data:`vgg_tf.inference.protocol.PROTOCOLS`.
        scales: Test scales overriding every model's training config.
        image_outputs: The predictions file and heatmaps to write, if any.
        output: Path of a JSON file to write the rows to.
        verbose: 0 silent, 1 progress bar and table.

    Returns:
        The rows of the table (see :func:`evaluate_images`).

    Example:
        >>> evaluate(["workdirs/digits_D"], DatasetSplit("digits", max_examples=100),
        ...          ["dense", "multicrop"])  # doctest: +SKIP
    """
    protocols = check_protocols(protocols)
    evaluators = [ModelEvaluator(trained, scales) for trained in load_models(models)]
    source = data.source()
    split = data.split_of(source)
    for ev in evaluators:
        if ev.trained.num_classes != source.num_classes:
            raise ValueError(
                f"Model {ev.trained.path!r} has {ev.trained.num_classes} classes but dataset "
                f"{data.dataset!r} has {source.num_classes}; expected the same."
            )
    examples = (
        (image, int(label), filename.decode("utf-8", "replace"))
        for image, label, filename in data.decoded(source, split).as_numpy_iterator()
    )
    rows = evaluate_images(
        evaluators,
        examples,
        protocols,
        num_examples=data.count(source, split),
        image_outputs=image_outputs,
        verbose=verbose,
    )
    if verbose:
        print(f"\n{data.dataset} ({split}, {rows[0]['num_examples']} images)\n{format_table(rows)}")
    if output:  # its folder is made; local, or gs://, s3://, ... (tf.io.gfile)
        write_json(output, {"dataset": data.dataset, "split": split, "rows": rows})
    return rows
