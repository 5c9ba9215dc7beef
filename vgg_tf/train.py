"""The training loop: the paper's recipe (§3.1) under any tf.distribute strategy (§3.3).

One custom loop serves every strategy (one device, MirroredStrategy,
MultiWorkerMirroredStrategy, TPUStrategy): Keras 3 ``model.fit`` fails under
MultiWorkerMirroredStrategy (keras-team/keras#20585), and a step written with
``strategy.run`` is the same code on one device and on many.

Each replica computes the cross-entropy of its slice of the global batch,
divided by the *global* batch size, and the optimizer sums the gradients over
replicas: the update equals one device's update on the whole batch.

Example:
    >>> from vgg_tf import config as config_lib, train  # doctest: +SKIP
    >>> cfg = config_lib.paper_recipe()  # doctest: +SKIP
    >>> train.train_and_evaluate(cfg, "workdirs/run")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from typing import Any

import keras
import ml_collections
import tensorflow as tf

from vgg_tf import config as config_lib
from vgg_tf import distribute, input_pipeline, models
from vgg_tf.checkpoints import RunCheckpoint
from vgg_tf.reporting import RunLog

MIXED_PRECISION = ("", "bfloat16", "float16")
INITS = models.KERNEL_INITIALIZERS
#: Files of a run that ``overwrite=True`` removes (nothing else in the workdir is touched).
RUN_FILES = ("config.json", "metrics.csv", "learning_curves.png", "model.keras")
RUN_DIRS = ("checkpoints", "logs", "workers")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming the first bad field and what is accepted."""
    models.get_spec(config.variant)
    for field in ("kernel_initializer", "new_layer_initializer"):
        if config[field] not in INITS and not (field == "new_layer_initializer" and not config[field]):
            raise ValueError(
                f"Unknown {field} {config[field]!r}; expected one of {', '.join(INITS)}."
            )
    if config.strategy not in distribute.STRATEGIES:
        raise ValueError(
            f"Unknown strategy {config.strategy!r}; expected one of "
            f"{', '.join(distribute.STRATEGIES)}."
        )
    if config.mixed_precision not in MIXED_PRECISION:
        raise ValueError(
            f"Unknown mixed_precision {config.mixed_precision!r}; expected '', 'bfloat16' or "
            "'float16'."
        )
    for field in ("batch_size", "epochs", "steps_per_execution", "checkpoint_every_steps",
                  "keep_checkpoints", "crop_size"):
        if int(config[field]) < 1:
            raise ValueError(f"{field}={config[field]!r} is not accepted; expected >= 1.")
    if not config.learning_rate > 0:
        raise ValueError(
            f"learning_rate={config.learning_rate!r} is not accepted; expected > 0."
        )
    if not config.warmup_epochs >= 0:
        raise ValueError(
            f"warmup_epochs={config.warmup_epochs!r} is not accepted; expected >= 0."
        )
    if not config.scale_min <= config.scale_max:
        raise ValueError(
            f"scale_min={config.scale_min} > scale_max={config.scale_max}; expected "
            "scale_min <= scale_max."
        )
    if config.scale_min < config.crop_size:
        raise ValueError(
            f"scale_min={config.scale_min} is smaller than crop_size={config.crop_size}; "
            "expected S >= crop size."
        )


def single_scale(config: Any) -> int:
    """The test scale Q of a model trained at ``config`` (paper §4.1): S or (Smin + Smax) / 2."""
    return (int(config["scale_min"]) + int(config["scale_max"])) // 2


# --- Workdir ---------------------------------------------------------------


def _comparable(config_dict: dict) -> dict:
    skip = set(config_lib.EXECUTION_FIELDS) | {"mean_rgb", "num_classes", "class_names"}
    return {k: v for k, v in config_dict.items() if k not in skip}


def prepare_workdir(workdir: str, config: ml_collections.ConfigDict, overwrite: bool) -> dict | None:
    """Checks that ``workdir`` is empty or belongs to this config; returns its recorded config.

    With ``overwrite`` the run files of a previous run are removed first.
    """
    path = os.path.join(workdir, "config.json")
    if overwrite:
        for name in RUN_FILES:
            if os.path.exists(os.path.join(workdir, name)):
                os.remove(os.path.join(workdir, name))
        for name in RUN_DIRS:
            shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        recorded = json.load(f)
    current = json.loads(config.to_json())
    # A field the recipe no longer has (e.g. the removed eval_every_epochs) changes nothing.
    old = {k: v for k, v in _comparable(recorded).items() if k in current}
    new = _comparable(current)
    if config.mean_rgb is not None:
        old["mean_rgb"], new["mean_rgb"] = recorded.get("mean_rgb"), list(config.mean_rgb)
    if old != new:
        diffs = [
            f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
            for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)
        ]
        raise ValueError(
            f"workdir {workdir!r} belongs to a run with a different config ({'; '.join(diffs)}); "
            "pass --overwrite to start over there, or choose another --workdir."
        )
    return recorded


def _check_init_source_is_elsewhere(init_from: str, workdir: str) -> None:
    """Refuses a run that would start from a model in its own workdir.

    The new run's files would replace the source (and --overwrite would delete it).
    """
    if not init_from:
        return
    source, run = os.path.realpath(init_from), os.path.realpath(workdir)
    if source == run or source.startswith(run + os.sep):
        raise ValueError(
            f"--init_from {init_from!r} is inside this run's workdir {workdir!r}; expected "
            "the model of another run: pass --workdir with a new directory for this run."
        )


def _write_json(path: str, payload: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _save_model(model: keras.Model, path: str) -> None:
    tmp = path[: -len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


# --- Model and optimizer ---------------------------------------------------


def build_model(config: Any, num_classes: int) -> keras.Model:
    """Builds the network of ``config`` with its top for ``num_classes`` classes.

    A run started from another model (``init_from``) initialises the layers
    that model does not provide with ``new_layer_initializer`` when set.
    """
    initializer = config["kernel_initializer"]
    if config.get("init_from") and config.get("new_layer_initializer"):
        initializer = config["new_layer_initializer"]
    return models.VGG(
        config["variant"],
        classes=num_classes,
        crop_size=int(config["crop_size"]),
        dropout=float(config["dropout"]),
        weight_decay=float(config["weight_decay"]),
        kernel_initializer=initializer,
        batch_norm=bool(config["batch_norm"]),
        width_multiplier=float(config["width_multiplier"]),
    )


def initialise_from(model: keras.Model, source: str) -> list[str]:
    """Starts ``model`` from a trained model (a workdir or .keras file).

    The same network (e.g. the S=256 model for the S=384 recipe) gives all its
    layers; net A given to a deeper net gives the paper's seven (§3.1).
    """
    weights = models.read_layer_weights(source)
    own = [layer.name for layer in model.layers if layer.weights]
    if all(name in weights for name in own):
        return models.load_layer_weights(model, weights)
    return models.init_from_net_a(model, source)


class PlateauSchedule(tf.Module):
    """Divides the learning rate by 10 when validation accuracy stops improving (§3.1).

    State lives in variables so that it is checkpointed with the run.
    """

    def __init__(self, learning_rate: float, factor: float, patience: int, min_delta: float,
                 max_drops: int, start_epoch: int = 0):
        super().__init__(name="plateau_schedule")
        self.learning_rate = tf.Variable(learning_rate, trainable=False, dtype=tf.float64)
        self.best = tf.Variable(-1.0, trainable=False, dtype=tf.float64)
        self.wait = tf.Variable(0, trainable=False, dtype=tf.int64)
        self.drops = tf.Variable(0, trainable=False, dtype=tf.int64)
        self._factor, self._patience = factor, patience
        self._min_delta, self._max_drops = min_delta, max_drops
        self._start_epoch = start_epoch

    def update(self, val_accuracy: float, epoch: int) -> bool:
        """Records the validation accuracy of ``epoch`` (1-based); returns whether the rate dropped.

        Epochs before ``start_epoch`` are not watched: a deep net may sit near
        chance for a few epochs before it starts to learn.
        """
        if epoch < self._start_epoch:
            return False
        if val_accuracy > float(self.best.numpy()) + self._min_delta:
            self.best.assign(val_accuracy)
            self.wait.assign(0)
            return False
        self.wait.assign_add(1)
        if int(self.wait.numpy()) >= self._patience and int(self.drops.numpy()) < self._max_drops:
            self.learning_rate.assign(self.learning_rate * self._factor)
            self.drops.assign_add(1)
            self.wait.assign(0)
            return True
        return False


# --- Steps -----------------------------------------------------------------


def _top_k_counts(labels, logits):
    k5 = min(5, logits.shape[-1])
    top1 = tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, 1), tf.float32))
    top5 = tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, k5), tf.float32))
    return top1, top5


class Trainer:
    """The compiled train and evaluation steps of one run."""

    def __init__(self, strategy, logits_model, optimizer, global_batch: int, jit_compile: bool):
        self.strategy = strategy
        self.model = logits_model
        self.optimizer = optimizer
        self.global_batch = global_batch
        # loss sum, top-1 correct, top-5 correct, examples: the running epoch totals.
        self.totals = tf.Variable(tf.zeros(4, tf.float64), trainable=False, name="epoch_totals")
        self._jit_compile = jit_compile
        self._train_chunk = tf.function(self._train_chunk_fn)
        self._evaluate = tf.function(self._evaluate_fn)
        self._weights_are_finite = tf.function(self._weights_are_finite_fn)

    def _replica_step(self, images, labels):
        labels = tf.cast(labels, tf.int32)
        with tf.GradientTape() as tape:
            logits = tf.cast(self.model(images, training=True), tf.float32)
            per_example = keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True
            )
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = (
                self.optimizer.scale_loss(loss) if hasattr(self.optimizer, "scale_loss") else loss
            )
        grads = tape.gradient(scaled, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        top1, top5 = _top_k_counts(labels, logits)
        count = tf.cast(tf.shape(labels)[0], tf.float32)
        return tf.stack([tf.reduce_sum(per_example), top1, top5, count])

    def _train_chunk_fn(self, iterator, num_steps):
        step = self._replica_step
        if self._jit_compile:
            step = tf.function(step, jit_compile=True)
        for _ in tf.range(num_steps):
            per_replica = self.strategy.run(step, args=next(iterator))
            sums = self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            self.totals.assign_add(tf.cast(sums, tf.float64))

    def train_steps(self, iterator, num_steps: int) -> None:
        """Runs ``num_steps`` synchronous steps in one call (steps_per_execution)."""
        self._train_chunk(iterator, tf.constant(num_steps, tf.int64))

    def _replica_eval(self, images, labels):
        labels = tf.cast(labels, tf.int32)

        def counts():
            logits = tf.cast(self.model(images, training=False), tf.float32)
            loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            top1, top5 = _top_k_counts(labels, logits)
            return tf.stack([tf.reduce_sum(loss), top1, top5, tf.cast(tf.shape(labels)[0], tf.float32)])

        # A replica may get an empty final batch, which Conv2D rejects on CPU.
        return tf.cond(tf.shape(labels)[0] > 0, counts, lambda: tf.zeros(4))

    def _evaluate_fn(self, dataset):
        totals = tf.zeros(4, tf.float64)
        for images, labels in dataset:
            per_replica = self.strategy.run(self._replica_eval, args=(images, labels))
            totals += tf.cast(
                self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None), tf.float64
            )
        return totals

    def evaluate(self, dataset) -> dict:
        """Loss and top-1/top-5 error over a (distributed) evaluation dataset."""
        loss, top1, top5, count = self._evaluate(dataset).numpy()
        if count == 0:
            raise ValueError("The validation split yielded no example.")
        return dict(loss=loss / count, top1_error=1 - top1 / count, top5_error=1 - top5 / count)

    def _weights_are_finite_fn(self) -> tf.Tensor:
        variables = list(self.model.variables) + list(self.optimizer.variables)
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables
                              if tf.as_dtype(v.dtype).is_floating])

    def weights_are_finite(self) -> bool:
        """Whether every model and optimizer variable is finite (checked before a save)."""
        return bool(self._weights_are_finite().numpy())

    def epoch_metrics(self) -> dict:
        """Train loss and errors of the epoch so far."""
        loss, top1, top5, count = self.totals.numpy()
        count = max(count, 1.0)
        return dict(loss=loss / count, top1_error=1 - top1 / count, top5_error=1 - top5 / count)


# --- The run ---------------------------------------------------------------


def _resolve_mean_rgb(config, source, recorded: dict | None) -> tuple[float, float, float]:
    if config.mean_rgb is not None:
        return tuple(float(v) for v in config.mean_rgb)
    if recorded and recorded.get("mean_rgb"):
        return tuple(recorded["mean_rgb"])
    if source.name.startswith("imagenet"):
        return tuple(input_pipeline.IMAGENET_MEAN_RGB)
    return tuple(float(v) for v in input_pipeline.compute_mean_rgb(source))


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + epoch) % (2**31 - 1)


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    overwrite: bool = False,
    strategy: tf.distribute.Strategy | None = None,
) -> dict:
    """Trains ``config`` in ``workdir``, resuming from its last checkpoint if any.

    Args:
        config: A recipe (see :func:`vgg_tf.config.paper_recipe`).
        workdir: Directory of the run (config.json, checkpoints, logs,
            metrics.csv, learning_curves.png, model.keras).
        overwrite: Start over in a workdir that holds another run.
        strategy: A strategy to use instead of ``config.strategy``.

    Returns:
        The final metrics: ``val_top1_error``, ``val_top5_error``, ``val_loss``,
        ``test_top1_error``, ``test_top5_error`` (the test split, or validation
        where the dataset has none), ``epochs`` and ``run_config``.

    Raises:
        ValueError: A bad config field, or a workdir of another run.
        NonFiniteLossError: The loss diverged (the last good checkpoint stays).
    """
    validate_config(config)
    _check_init_source_is_elsewhere(config.init_from, workdir)
    if strategy is None:
        devices = [d for d in config.devices.split(",") if d] or None
        strategy = distribute.make_strategy(config.strategy, devices)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(
            f"batch_size={config.batch_size} is not divisible by the {replicas} replicas; "
            f"expected a multiple of {replicas}."
        )
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(f"mixed_{config.mixed_precision}")

    chief = distribute.is_chief(strategy)
    os.makedirs(workdir, exist_ok=True)
    if chief:
        recorded = prepare_workdir(workdir, config, overwrite)
    else:
        recorded = None
        if not overwrite:  # refuse with the chief, rather than wait for it in a collective
            prepare_workdir(workdir, config, overwrite=False)
    source = input_pipeline.get_source(
        config.dataset, data_dir=config.data_dir, manual_dir=config.manual_dir
    )
    mean_rgb = _resolve_mean_rgb(config, source, recorded)
    run_config = {
        **json.loads(config.to_json()),
        "mean_rgb": list(mean_rgb),
        "num_classes": source.num_classes,
        "class_names": list(source.class_names) if source.class_names else None,
    }
    if chief:
        _write_json(os.path.join(workdir, "config.json"), run_config)

    num_train = source.num_examples(source.train_split)
    steps_per_epoch = num_train // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"batch_size={config.batch_size} is larger than the {num_train} training examples of "
            f"{config.dataset!r}; expected at most {num_train}."
        )
    total_steps = steps_per_epoch * config.epochs

    # Seeded here, after the data source: preparing a TFDS dataset draws random numbers.
    keras.utils.set_random_seed(int(config.seed))
    with strategy.scope():
        model = build_model(config, source.num_classes)
        if config.init_from:
            copied = initialise_from(model, config.init_from)
            if chief:
                print(f"Initialised {', '.join(copied)} from {config.init_from}")
        logits_model = keras.Model(model.input, model.get_layer("fc8").output)
        optimizer = keras.optimizers.SGD(
            learning_rate=config.learning_rate, momentum=config.momentum
        )
        if config.mixed_precision == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(logits_model.trainable_variables)
        trainer = Trainer(
            strategy, logits_model, optimizer, config.batch_size, bool(config.jit_compile)
        )
    schedule = PlateauSchedule(
        config.learning_rate,
        config.lr_drop_factor,
        config.lr_plateau_patience,
        config.lr_plateau_min_delta,
        config.lr_max_drops,
        config.lr_plateau_start_epoch,
    )
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = RunCheckpoint(
        workdir,
        strategy,
        config.keep_checkpoints,
        # Keras 3 models hand tf.train.Checkpoint only the optimizer-tracked
        # variables; listing them all keeps dropout seeds and BN statistics.
        model_variables=list(model.variables),
        optimizer_variables=list(optimizer.variables),
        schedule=schedule,
        totals=trainer.totals,
        step=step,
    )
    retry = (
        f"The last good checkpoint stays in {checkpoint.directory}. To retry with a lower "
        "--learning_rate or a warm-up, start a new --workdir (or pass --overwrite, which "
        "deletes this run)."
    )

    def save_checkpoint() -> None:
        # The losses checked so far came before the last update: check the weights too.
        if not trainer.weights_are_finite():
            raise NonFiniteLossError(
                f"The weights became non-finite by step {int(step.numpy())}; the run stops "
                f"without saving them. {retry}"
            )
        checkpoint.save(int(step.numpy()))

    restored = checkpoint.restore_latest()
    if restored and chief:
        print(f"Resumed from {restored} at step {int(step.numpy())}")

    run_log = RunLog(workdir) if chief else None
    eval_q = single_scale(config)
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)

    def validation(split=source.eval_split):
        dataset = strategy.distribute_datasets_from_function(
            lambda ctx: input_pipeline.eval_dataset(
                source,
                split=split,
                batch_size=ctx.get_per_replica_batch_size(config.batch_size),
                image_size=eval_q,
                crop_size=config.crop_size,
                mode="center",
                mean_rgb=mean_rgb,
                input_context=ctx,
            )
        )
        return trainer.evaluate(dataset)

    val = None
    while int(step.numpy()) < total_steps:
        epoch, offset = divmod(int(step.numpy()), steps_per_epoch)
        seed = _epoch_seed(config.seed, epoch)

        def train_input(ctx, seed=seed, offset=offset):
            per_replica = ctx.get_per_replica_batch_size(config.batch_size)
            return input_pipeline.train_dataset(
                source,
                batch_size=per_replica,
                crop_size=config.crop_size,
                scale_min=config.scale_min,
                scale_max=config.scale_max,
                mean_rgb=mean_rgb,
                color_shift_std=config.color_shift_std,
                flip=config.flip,
                seed=seed,
                deterministic=config.deterministic,
                skip_examples=offset * config.batch_size,
                cache=config.cache,
                input_context=ctx,
            )

        iterator = iter(strategy.distribute_datasets_from_function(train_input))
        progbar = (
            keras.utils.Progbar(
                steps_per_epoch,
                stateful_metrics=["loss", "top1_err", "top5_err", "img/s", "lr"],
                unit_name="step",
            )
            if chief
            else None
        )
        if progbar:
            print(f"Epoch {epoch + 1}/{config.epochs}")
        epoch_images, epoch_seconds = 0, 0.0
        while offset < steps_per_epoch:
            global_step = int(step.numpy())
            chunk = min(config.steps_per_execution, steps_per_epoch - offset)
            to_checkpoint = config.checkpoint_every_steps - global_step % config.checkpoint_every_steps
            chunk = min(chunk, to_checkpoint)
            warm = min(1.0, (global_step + 1) / warmup_steps) if warmup_steps else 1.0
            lr = float(schedule.learning_rate.numpy()) * warm
            optimizer.learning_rate.assign(lr)
            start = time.perf_counter()
            trainer.train_steps(iterator, chunk)
            metrics = trainer.epoch_metrics()
            seconds = time.perf_counter() - start
            if not math.isfinite(metrics["loss"]):
                raise NonFiniteLossError(
                    f"The training loss became {metrics['loss']} at step {global_step + chunk} "
                    f"(epoch {epoch + 1}); the run stops. {retry}"
                )
            step.assign_add(chunk)
            offset += chunk
            if global_step > 0 or offset > chunk:  # the first call includes tracing
                epoch_images += chunk * config.batch_size
                epoch_seconds += seconds
            if progbar:
                progbar.update(
                    offset,
                    [
                        ("loss", metrics["loss"]),
                        ("top1_err", metrics["top1_error"]),
                        ("top5_err", metrics["top5_error"]),
                        ("img/s", chunk * config.batch_size / max(seconds, 1e-9)),
                        ("lr", lr),
                    ],
                )
            # A checkpoint at an epoch's end is written after the epoch's bookkeeping below.
            if int(step.numpy()) % config.checkpoint_every_steps == 0 and offset < steps_per_epoch:
                save_checkpoint()

        train_metrics = trainer.epoch_metrics()
        val = validation()
        dropped = schedule.update(1.0 - val["top1_error"], epoch + 1)
        trainer.totals.assign(tf.zeros(4, tf.float64))
        images_per_second = epoch_images / epoch_seconds if epoch_seconds else 0.0
        row = {
            "epoch": epoch + 1,
            "lr": float(optimizer.learning_rate.numpy()),
            "train_loss": train_metrics["loss"],
            "train_top1_error": train_metrics["top1_error"],
            "train_top5_error": train_metrics["top5_error"],
            "val_top1_error": val["top1_error"],
            "val_top5_error": val["top5_error"],
            "images_per_second": images_per_second,
        }
        if chief:
            run_log.write_epoch(row)
            print(
                f"epoch {epoch + 1}: val top-1 error {val['top1_error']:.2%}, top-5 error "
                f"{val['top5_error']:.2%}" + (" (learning rate divided by 10)" if dropped else ""),
                flush=True,
            )
        save_checkpoint()

    if val is None:  # the run had already finished: report it again
        val = validation()
    test = validation(source.test_split) if source.test_split != source.eval_split else val
    if chief:
        _save_model(model, os.path.join(workdir, "model.keras"))
    else:
        os.makedirs(os.path.join(workdir, "workers"), exist_ok=True)
        _save_model(
            model, os.path.join(workdir, "workers", f"worker{distribute.task_id(strategy)}.keras")
        )
    return {
        "val_top1_error": float(val["top1_error"]),
        "val_top5_error": float(val["top5_error"]),
        "val_loss": float(val["loss"]),
        "test_top1_error": float(test["top1_error"]),
        "test_top5_error": float(test["top5_error"]),
        "epochs": int(config.epochs),
        "run_config": run_config,
    }


def final_lines(result: dict) -> str:
    """What ``bin/train`` prints last: test error, then (the last line) validation error."""
    return (
        f"final test top-1 error {result['test_top1_error']:.2%}, "
        f"top-5 error {result['test_top5_error']:.2%}\n"
        f"final validation top-1 error {result['val_top1_error']:.2%}, "
        f"top-5 error {result['val_top5_error']:.2%}"
    )
