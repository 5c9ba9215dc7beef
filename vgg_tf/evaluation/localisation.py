"""The localisation error of Appendix A (``bin/evaluate --task localisation``).

ILSVRC's criterion: an image is localised when one of the predicted (class,
box) pairs has the right class and overlaps a ground-truth box of that class
by IoU > 0.5. The protocols:

- ``center_gt`` (Appendix A's first protocol, for comparing nets, Table 8):
  the central crop at the net's training scale, and the box it predicts for
  the ground-truth class, so that classification errors do not count. The
  table adds the crop itself as a box (``whole crop``), the baseline a net
  has to beat.
- ``dense_gt``: the dense protocol's merged box (:mod:`vgg_tf.inference.localiser`) for
  the ground-truth class: what dense application and merging add over the
  central crop, classification still left out.
- ``dense`` (the final protocol, Table 9): the classifier's top-5 classes, each
  with its merged box; the ILSVRC top-5 localisation error. Several nets
  given together are fused (their boxes pooled before merging).

Example:
    >>> rows = evaluate_localisation(["workdirs/loc_scr"], DatasetSplit("digits_on_canvas"),
    ...                              ["center_gt", "dense"],
    ...                              classifier="workdirs/digits_A")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from vgg_tf import tables
from vgg_tf.data import boxes as boxes_lib
from vgg_tf.data import sources
from vgg_tf.data.images import DEFAULT_LIMITS, ImageLimits
from vgg_tf.data.pipeline import EvalStream, eval_dataset
from vgg_tf.evaluation.datasets import DatasetSplit
from vgg_tf.inference.localiser import PAPER_OPTIONS, Localiser, LocaliserOptions, box_head
from vgg_tf.inference.models import load_models
from vgg_tf.inference.protocol import check_protocols
from vgg_tf.progress import Progress
from vgg_tf.training import tasks
from vgg_tf.weights.loading import load_model
from vgg_tf.weights.trained import TrainedModel
from vgg_tf.workdir import write_json

PROTOCOLS = ("center_gt", "dense_gt", "dense")
#: The central crop (Table 8) and the classifier's top-5 with merged boxes (Table 9).
DEFAULT_PROTOCOLS = ("center_gt", "dense")
_BATCH = 32


def center_crop_errors(
    trained: TrainedModel,
    source: sources.Source,
    split: str,
    *,
    max_examples: int | None = None,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> tuple[float, float, int]:
    """Appendix A's first protocol: ``(error, whole-crop baseline error, images)``.

    The net's box for the true class in the central crop at its training scale;
    an error when it overlaps no ground-truth box by IoU > 0.5.
    """
    task = tasks.Localisation(box_head(trained), source.num_classes)
    (scale,) = trained.single_scale()
    take = max_examples is not None and "[" in split
    if max_examples is not None and not take:  # a slice read whole (TFDS caches small splits)
        split = f"{split}[:{max_examples}]"
    stream = EvalStream(
        batch_size=_BATCH,
        image_size=scale,
        crop_size=trained.crop_size,
        mean_rgb=trained.mean_to_subtract,
        max_pixels=limits.max_pixels,
        max_aspect_ratio=limits.max_aspect_ratio,
        with_boxes=True,
    )
    data = eval_dataset(source, stream, split=split)
    if take:
        data = data.unbatch().take(max_examples).batch(_BATCH)
    whole_crop = tf.constant([0.5, 0.5, 1.0, 1.0] * (task.outputs // 4))
    predict = tf.function(lambda images: tf.cast(trained.model(images, training=False), tf.float32))
    hits = np.zeros(2)
    count = 0
    for images, targets in data:
        outputs = predict(images)
        baseline = tf.broadcast_to(whole_crop, tf.shape(outputs))
        for i, guess in enumerate((outputs, baseline)):
            hits[i] += float(
                tf.reduce_sum(tf.cast(task.best_overlaps(targets, guess) > 0.5, tf.float32))
            )
        count += int(images.shape[0])
    if count == 0:
        raise ValueError(f"Split {split!r} of {source.name!r} yielded no example.")
    error, baseline_error = 1.0 - hits / count
    return float(error), float(baseline_error), count


def dense_errors(
    localiser: Localiser, examples, protocols: Sequence[str], total: int, verbose: int = 1
) -> tuple[dict[str, float], int]:
    """The dense protocols' errors over ``(image, (label, boxes), name)`` examples."""
    wanted = [p for p in protocols if p in ("dense", "dense_gt")]
    misses = dict.fromkeys(wanted, 0)
    progbar = Progress(total) if verbose else None
    count = 0
    for image, (label, truth), _ in examples:
        image = tf.cast(image, tf.float32)
        if "dense" in misses:
            found = localiser.localise(image)
            misses["dense"] += not bool(
                boxes_lib.localisation_hits(found["classes"], found["boxes"], label, truth)
            )
        if "dense_gt" in misses:
            box = localiser.localise_classes(image, tf.reshape(tf.cast(label, tf.int32), [1]))
            misses["dense_gt"] += not bool(boxes_lib.localisation_hits([label], box, label, truth))
        count += 1
        if progbar:
            progbar.update(count)
    if progbar:
        progbar.update(count, final=True)
    if count == 0:
        raise ValueError("The split yielded no example.")
    return {p: m / count for p, m in misses.items()}, count


def format_table(rows: Sequence[dict]) -> str:
    """The localisation error table, one row per protocol, net(s) and scales.

    Example:
        >>> print(format_table([dict(protocol="dense", model="D (scr)", scales=[256],
        ...                          error=0.253, counted=50000)]))
        protocol  net(s)   Q     error  counted
        ---------------------------------------
        dense     D (scr)  256  25.30%    50000
    """
    header = ("protocol", "net(s)", "Q", "error", "counted")
    cells = [
        (
            r["protocol"],
            r["model"],
            ",".join(map(str, r["scales"])),
            f"{r['error']:.2%}",
            r["counted"],
        )
        for r in rows
    ]
    return tables.format_table(header, cells, align="<<<>>", rule=True)


def evaluate_localisation(
    models: Sequence[str],
    data: DatasetSplit,
    protocols: Sequence[str] = DEFAULT_PROTOCOLS,
    *,
    classifier: str | None = None,
    scales: Sequence[int] | None = None,
    options: LocaliserOptions = PAPER_OPTIONS,
    output: str | None = None,
    verbose: int = 1,
) -> list[dict]:
    """Localisation error of trained localisation nets (Tables 8-9 of the paper).

    Args:
        models: Localisation workdirs (``bin/train --task localisation``); each
            gets its rows, and several are also fused.
        data: The images: a dataset with boxes (``digits_on_canvas``,
            ``voc/2007``, ...), its test split by default.
        protocols: Names from :data:`PROTOCOLS`.
        classifier: The classifier workdir whose scores rank and weight the dense
            boxes (needed by ``dense`` and ``dense_gt``).
        scales: Test scales of the dense protocols, each alone and (several) all
            together (default: each net's S).
        options: How the dense protocols lay out, see and merge their windows
            (default: the paper's protocol; :class:`LocaliserOptions`).
        output: Write the rows as JSON there.
        verbose: 0 silent, 1 progress bars and the table.

    Returns:
        Rows ``{"protocol", "model", "scales", "error", "counted"}`` (the dense
        protocols' rows also name their ``offsets`` and ``windows``).

    Example:
        >>> evaluate_localisation(["workdirs/loc_scr"], DatasetSplit("digits_on_canvas"),
        ...                       ["center_gt"])  # doctest: +SKIP
    """
    protocols = check_protocols(protocols, PROTOCOLS)
    dense = [p for p in protocols if p != "center_gt"]
    if dense and not classifier:
        raise ValueError(
            f"Protocols {dense} rank boxes with a classifier's scores; pass "
            "--classifier=WORKDIR (a classification run on the same classes)."
        )
    nets = load_models(models, "localisation net")
    for net in nets:
        box_head(net)
    source = data.source()
    split = data.split_of(source)
    rows = []
    if "center_gt" in protocols:
        rows += _center_rows(nets, data, source, split)
    if dense:
        localisers = _localisers(nets, load_model(classifier), scales, options)
        rows += _dense_rows(localisers, dense, data, source, split, verbose)
    if verbose:
        shifts = (
            f", {options.offsets}x{options.offsets} input offsets" if options.offsets > 1 else ""
        )
        shifts += ", each window cropped" if options.windows == "crops" else ""
        ranked = f"; dense: top-5 classes of {classifier}{shifts}" if dense else ""
        print(
            f"\n{data.dataset} ({split}): localisation error (IoU > 0.5{ranked})\n"
            f"{format_table(rows)}"
        )
    if output:
        write_json(output, {"dataset": data.dataset, "split": split, "rows": rows})
    return rows


def _center_rows(nets, data: DatasetSplit, source, split: str) -> list[dict]:
    """``center_gt``'s row per net, then the whole crop's baseline row."""
    rows = []
    for net in nets:
        error, baseline, counted = center_crop_errors(
            net, source, split, max_examples=data.max_examples, limits=data.limits
        )
        rows.append(
            dict(
                protocol="center_gt",
                model=net.name,
                scales=list(net.single_scale()),
                error=error,
                counted=counted,
            )
        )
    rows.append(
        dict(
            protocol="center_gt",
            model="whole crop (baseline)",
            scales=list(nets[0].single_scale()),
            error=baseline,
            counted=counted,
        )
    )
    return rows


def _localisers(nets, classifier, scales, options: LocaliserOptions):
    """``(name, Localiser)`` of each net alone, then of all fused (several), each at each
    scale alone, then at all of them together (as Table 9 of the paper); made one by one."""
    groups = [[net] for net in nets] + ([nets] if len(nets) > 1 else [])
    scale_sets = (
        [None]
        if not scales
        else ([(q,) for q in scales] + ([tuple(scales)] if len(scales) > 1 else []))
    )
    for group in groups:
        name = group[0].name if len(group) == 1 else f"fusion of {len(group)}"
        for qs in scale_sets:
            yield name, Localiser(group, classifier, qs, options=options)


def _dense_rows(localisers, dense, data: DatasetSplit, source, split: str, verbose) -> list[dict]:
    """The dense protocols' rows, one per protocol and localiser."""
    total = data.count(source, split)
    rows = []
    for name, localiser in localisers:
        examples = data.decoded(source, split, with_boxes=True).as_numpy_iterator()
        errors, counted = dense_errors(localiser, examples, dense, total, verbose)
        rows += [
            dict(
                protocol=p,
                model=name,
                scales=list(localiser.scales),
                error=errors[p],
                counted=counted,
                offsets=localiser.options.offsets,
                windows=localiser.options.windows,
            )
            for p in dense
        ]
    return rows
