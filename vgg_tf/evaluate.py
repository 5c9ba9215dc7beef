"""The paper's test protocol (§3.2, §4): dense, multi-crop, multi-scale, fusion.

Protocols (the ``--protocol`` names of ``bin/evaluate``):

* ``single``    dense evaluation at one test scale Q (the paper's Table 3).
* ``dense``     dense evaluation at three scales (Table 4).
* ``multicrop`` a 5x5 grid of crop-size crops x 2 flips per scale (Table 5).
* ``combined``  the average of the dense and multi-crop softmax (Table 5).

Several models give an extra ``fusion`` row per protocol: the average softmax
of the models (Table 6), each model at its own scales.

Dense evaluation, as §3.2 words it: the image is rescaled so that its shorter
side is Q, the training-set mean RGB is subtracted, the fully-convolutional net
(:func:`vgg_tf.fcn.to_fully_convolutional`) runs on the whole image, and its
class score map (logits) is spatially averaged to "a fixed-size vector of class
scores for the image". The soft-max posteriors of the image and of its
horizontal flip are averaged, then those of the scales. A score map of one
location gives exactly the classifier's output. Multi-crop evaluation averages
the posteriors of its crops.

The in-graph functions here (:func:`dense_score_map`, :func:`dense_probabilities`)
and the image decoding of :mod:`vgg_tf.images` are also what the exported
SavedModel runs (:mod:`vgg_tf.export`), so the served probabilities equal
``bin/evaluate``'s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from vgg_tf import images as images_lib
from vgg_tf import metrics, sources
from vgg_tf.fcn import to_fully_convolutional
from vgg_tf.workdir import TrainedModel, load_trained_model, write_json

PROTOCOLS = ("single", "dense", "multicrop", "combined")
GRID = 5  # §3.2: a 5x5 regular grid of crops per scale


def check_scales(scales: Sequence[int], crop_size: int) -> tuple[int, ...]:
    """Validates explicit test scales (each Q >= the training crop)."""
    scales = tuple(int(q) for q in scales)
    if not scales:
        raise ValueError("No test scales given; expected at least one Q.")
    small = [q for q in scales if q < crop_size]
    if small:
        raise ValueError(
            f"Test scale(s) {small} are smaller than the training crop {crop_size}; "
            f"expected Q >= {crop_size}."
        )
    return scales


# --- In-graph evaluation (shared with the exported SavedModel) ------------


def preprocess(batch: tf.Tensor, q: int, mean_rgb: Sequence[float]) -> tf.Tensor:
    """Rescales images to shorter side Q and subtracts the mean: the test-time input (§3.2).

    The training pipeline's rescaling (bilinear), so test images look like training ones.

    Example:
        >>> preprocess(tf.zeros([1, 40, 60, 3]), 32, (1.0, 2.0, 3.0)).shape
        TensorShape([1, 32, 48, 3])
    """
    return images_lib.rescale_shorter_side(tf.cast(batch, tf.float32), q) - tf.constant(
        mean_rgb, tf.float32
    )


def dense_score_map(
    fcn: keras.Model, images: tf.Tensor, q: int, mean_rgb: Sequence[float]
) -> tf.Tensor:
    """Per-location class posteriors ``(N, h, w, classes)`` of images rescaled to Q.

    Args:
        fcn: A fully-convolutional net returning logits (``head="logits"``).
        images: ``(N, H, W, 3)`` RGB in [0, 255] (not mean-subtracted).
        q: Test scale, the shorter side after rescaling.
        mean_rgb: The training-set mean RGB to subtract.
    """
    return tf.nn.softmax(tf.cast(fcn(preprocess(images, q, mean_rgb)), tf.float32), axis=-1)


def dense_probabilities(
    fcn: keras.Model,
    images: tf.Tensor,
    scales: Sequence[int],
    mean_rgb: Sequence[float],
    flip: bool = True,
) -> tf.Tensor:
    """Dense evaluation (§3.2) of a batch of same-size images: ``(N, classes)``.

    For each Q: rescale, subtract the mean, run the FCN on the image and its
    horizontal flip, average each class score map (logits) over its locations,
    take the softmax, average the two flips' posteriors; then average over the
    scales. ``flip=False`` (for a model trained without flips, such as the
    digits recipe) skips the flipped copy.

    Example:
        >>> fcn = to_fully_convolutional(model, head="logits")  # doctest: +SKIP
        >>> dense_probabilities(fcn, images, (224, 256, 288), (123.68, 116.78, 103.94))  # doctest: +SKIP
    """
    n = tf.shape(images)[0]
    views = tf.concat([images, tf.reverse(images, axis=[2])], axis=0) if flip else images
    per_scale = []
    for q in scales:
        logits = tf.cast(fcn(preprocess(views, q, mean_rgb)), tf.float32)
        probs = tf.nn.softmax(tf.reduce_mean(logits, axis=[1, 2]), axis=-1)
        per_scale.append((probs[:n] + probs[n:]) / 2.0 if flip else probs)
    return tf.add_n(per_scale) / float(len(per_scale))


def crop_offsets(height: tf.Tensor, width: tf.Tensor, crop_size: int, grid: int = GRID) -> tf.Tensor:
    """Top-left corners ``(grid*grid, 2)`` of a regular grid of crops, row-major.

    The first and last rows/columns touch the image borders, so the four
    corner crops are included; the others are evenly spaced in between.

    Example:
        >>> crop_offsets(64, 96, 32, grid=3).numpy().tolist()
        [[0, 0], [0, 32], [0, 64], [16, 0], [16, 32], [16, 64], [32, 0], [32, 32], [32, 64]]
    """
    ys = tf.cast(tf.round(tf.linspace(0.0, tf.cast(height - crop_size, tf.float32), grid)), tf.int32)
    xs = tf.cast(tf.round(tf.linspace(0.0, tf.cast(width - crop_size, tf.float32), grid)), tf.int32)
    yy, xx = tf.meshgrid(ys, xs, indexing="ij")
    return tf.reshape(tf.stack([yy, xx], axis=-1), [grid * grid, 2])


def multicrop_crops(
    image: tf.Tensor, crop_size: int, grid: int = GRID, flip: bool = True
) -> tf.Tensor:
    """The ``2 * grid**2`` crops of multi-crop evaluation of one ``(H, W, 3)`` image.

    Returns ``(2 * grid**2, crop, crop, 3)``: the grid crops in row-major order,
    then their horizontal flips in the same order (§3.2: 5x5 x 2 = 50 per scale);
    ``grid**2`` crops without the flips when ``flip`` is False.
    """
    shape = tf.shape(image)
    offsets = crop_offsets(shape[0], shape[1], crop_size, grid)
    crops = tf.stack(
        [
            tf.slice(image, tf.stack([offsets[i, 0], offsets[i, 1], 0]), [crop_size, crop_size, 3])
            for i in range(grid * grid)
        ]
    )
    return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0) if flip else crops


def multicrop_probabilities(
    fcn: keras.Model,
    image: tf.Tensor,
    scales: Sequence[int],
    mean_rgb: Sequence[float],
    crop_size: int,
    grid: int = GRID,
    flip: bool = True,
) -> tf.Tensor:
    """Multi-crop evaluation (§3.2) of one ``(H, W, 3)`` RGB image: ``(classes,)``.

    At each Q, the softmax of the ``2 * grid**2`` crops (each seen with the
    classifier's zero padding, unlike dense evaluation) is averaged; then the
    scales are averaged.
    """
    per_scale = []
    for q in scales:
        crops = multicrop_crops(preprocess(image[None], q, mean_rgb)[0], crop_size, grid, flip)
        logits = tf.cast(fcn(crops), tf.float32)[:, 0, 0]
        per_scale.append(tf.reduce_mean(tf.nn.softmax(logits, axis=-1), axis=0))
    return tf.add_n(per_scale) / float(len(per_scale))


# --- Evaluating models on a dataset -----------------------------------------


class ModelEvaluator:
    """Runs the protocols of one trained model on single images.

    Args:
        trained: The model and its training config.
        scales: Test scales overriding the config's (all protocols use them;
            ``single`` then needs exactly one).

    Example:
        >>> ev = ModelEvaluator(load_trained_model("workdirs/digits_a"))  # doctest: +SKIP
        >>> ev.probabilities("dense", image).shape  # doctest: +SKIP
        (10,)
    """

    def __init__(self, trained: TrainedModel, scales: Sequence[int] | None = None):
        trained.check_rgb()
        trained.check_classifier()
        self.trained = trained
        self.fcn = to_fully_convolutional(trained.model, head="logits")
        crop = trained.crop_size
        if scales:
            self.multi = check_scales(scales, crop)
            self.single = self.multi
        else:
            self.multi = trained.multi_scales()
            self.single = trained.single_scale()
        mean, flip = trained.mean_rgb, trained.flip
        spec = [tf.TensorSpec([None, None, 3], tf.float32)]
        fcn = self.fcn
        self._dense = {
            qs: tf.function(
                lambda img, qs=qs: dense_probabilities(fcn, img[None], qs, mean, flip)[0],
                input_signature=spec,
            )
            for qs in {self.single, self.multi}
        }
        self._multicrop = tf.function(
            lambda img: multicrop_probabilities(fcn, img, self.multi, mean, crop, flip=flip),
            input_signature=spec,
        )
        self._score_map = tf.function(
            lambda img: dense_score_map(fcn, img[None], self.single[0], mean)[0], input_signature=spec
        )

    def scales_for(self, protocol: str) -> tuple[int, ...]:
        """The test scales a protocol uses."""
        if protocol == "single":
            if len(self.single) != 1:
                raise ValueError(
                    f"Protocol 'single' needs exactly one test scale; got {list(self.single)}."
                )
            return self.single
        return self.multi

    def probabilities(self, protocol: str, image: tf.Tensor, cache: dict | None = None) -> np.ndarray:
        """Class posteriors of one decoded RGB image under ``protocol``.

        Args:
            protocol: One of :data:`PROTOCOLS`.
            image: ``(H, W, 3)`` RGB, any numeric dtype, values in [0, 255].
            cache: Optional dict reused across protocols of the same image
                (``combined`` reuses ``dense`` and ``multicrop``).
        """
        cache = {} if cache is None else cache
        if protocol in cache:
            return cache[protocol]
        image = tf.cast(image, tf.float32)
        if protocol in ("single", "dense"):
            result = self._dense[self.scales_for(protocol)](image).numpy()
        elif protocol == "multicrop":
            result = self._multicrop(image).numpy()
        elif protocol == "combined":
            result = (self.probabilities("dense", image, cache)
                      + self.probabilities("multicrop", image, cache)) / 2.0
        else:
            raise ValueError(f"Unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}.")
        cache[protocol] = result
        return result

    def score_map(self, image: tf.Tensor) -> np.ndarray:
        """Per-location posteriors ``(h, w, classes)`` at the first single scale."""
        return self._score_map(tf.cast(image, tf.float32)).numpy()


def check_protocols(protocols: str | Sequence[str]) -> tuple[str, ...]:
    """Parses ``"dense,multicrop"`` or a list into validated protocol names."""
    if isinstance(protocols, str):
        protocols = [p for p in protocols.split(",") if p.strip()]
    protocols = tuple(p.strip() for p in protocols)
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad or not protocols:
        raise ValueError(f"Unknown protocol {bad or protocols!r}; expected one or more of "
                         f"{', '.join(PROTOCOLS)}.")
    return tuple(dict.fromkeys(protocols))


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
        heatmap_dir: Write score-map heatmaps of the first images there.
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
    predictions = open(predictions_output, "w") if predictions_output else None
    try:
        for example in examples:
            image, label = example[0], int(example[1])
            filename = example[2] if len(example) > 2 else None
            _evaluate_one(evaluators, image, label, filename, protocols, seen, tallies, fusion,
                          heatmap_dir, heatmap_count, predictions)
            seen += 1
            if progress is not None:
                top1 = tallies[0, protocols[0]].errors()[0]
                progress.update(seen, values=[(f"top1_err_{protocols[0]}", top1)], finalize=False)
    finally:
        if predictions is not None:
            predictions.close()
    if progress is not None:
        progress.update(seen, finalize=True)
    rows = []
    for i, ev in enumerate(evaluators):
        for p in protocols:
            top1, top5 = tallies[i, p].errors()
            rows.append(dict(model=ev.trained.name, path=ev.trained.path, protocol=p,
                             scales=list(ev.scales_for(p)), top1_error=top1, top5_error=top5,
                             num_examples=seen))
    for p, tally in fusion.items():
        top1, top5 = tally.errors()
        rows.append(dict(model="fusion (" + ", ".join(ev.trained.name for ev in evaluators) + ")",
                         path=None, protocol=p, scales=None, top1_error=top1, top5_error=top5,
                         num_examples=seen))
    return rows


def _evaluate_one(evaluators, image, label, filename, protocols, index, tallies, fusion, heatmap_dir,
                  heatmap_count, predictions) -> None:
    per_model = []
    for i, ev in enumerate(evaluators):
        cache: dict = {}
        per_model.append({p: ev.probabilities(p, image, cache) for p in protocols})
        for p in protocols:
            tallies[i, p].add(per_model[-1][p], label)
        if heatmap_dir and index < heatmap_count:
            save_heatmap(ev, image, label, os.path.join(heatmap_dir, f"model{i}_{index:04d}.png"))
    for p in fusion:
        fusion[p].add(np.mean([probs[p] for probs in per_model], axis=0), label)
    if predictions is not None:
        record = [dict(model=ev.trained.name, **{p: probs[p].tolist() for p in protocols})
                  for ev, probs in zip(evaluators, per_model)]
        line = {"index": index, "label": label, "filename": filename, "probabilities": record}
        predictions.write(json.dumps(line) + "\n")


def save_heatmap(evaluator: ModelEvaluator, image: Any, label: int, path: str) -> None:
    """Writes a PNG: the image beside the dense score map of its predicted class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    score_map = evaluator.score_map(image)
    predicted = int(np.argmax(score_map.mean(axis=(0, 1))))
    names = evaluator.trained.class_names
    name = (lambda c: names[c] if names and c < len(names) else str(c))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
    axes[0].imshow(np.asarray(image).astype("uint8"))
    axes[0].set_title(f"label: {name(label)}")
    shown = axes[1].imshow(score_map[..., predicted], vmin=0, vmax=1, cmap="viridis")
    axes[1].set_title(f"P({name(predicted)}) at Q={evaluator.single[0]}")
    fig.colorbar(shown, ax=axes[1])
    for ax in axes:
        ax.axis("off")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def format_table(rows: Sequence[dict]) -> str:
    """A plain-text table in the manner of the paper's Tables 3-6."""
    header = ("ConvNet", "protocol", "test scale Q", "top-1 err (%)", "top-5 err (%)")
    lines = [
        (r["model"], r["protocol"], ",".join(map(str, r["scales"])) if r["scales"] else "-",
         f"{r['top1_error']:.2f}", f"{r['top5_error']:.2f}")
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([fmt.format(*header), rule] + [fmt.format(*line) for line in lines])


def _source_examples(source, split: str, max_examples: int | None, max_pixels: int | None,
                     max_aspect_ratio: float | None):
    """Decoded ``(image, label, filename)`` of a split; bad records skipped, counted and named."""
    decoded = sources.decoded_images(source, split, max_examples=max_examples,
                                     max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)
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
    evaluators = [ModelEvaluator(load_trained_model(p), scales) for p in paths]
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
