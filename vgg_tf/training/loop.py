"""The training loop: the paper's recipe (§3.1) under any tf.distribute strategy (§3.3).

One custom loop serves every strategy (one device, MirroredStrategy,
MultiWorkerMirroredStrategy, TPUStrategy): Keras 3 ``model.fit`` fails under
MultiWorkerMirroredStrategy (keras-team/keras#20585), and a step written with
``strategy.run`` is the same code on one device and on many.

Each replica computes the cross-entropy of its slice of the global batch,
divided by the *global* batch size, and the optimizer sums the gradients over
replicas: the update equals one device's update on the whole batch.

:func:`train_and_evaluate` reads as the run does: :func:`global_settings` (the
process-wide settings the recipe asks for, put back when the run ends), the
workdir held for the whole run (:func:`vgg_tf.workdir.exclusive`; a refused run
leaves it as it was), :func:`set_up` (strategy, workdir, data),
:func:`create_state` (model, optimizer, schedule, the newest checkpoint that
reads, the caller's Keras callbacks), then per epoch :func:`train_epoch`,
:func:`validate` and :func:`end_epoch` while SIGTERM is answered with a checkpoint
(:class:`vgg_tf.training.checkpoints.Preemption`), and :func:`finish`.
:func:`record_run` writes config.json with the run's first checkpoint (at once for a
resumed run): until a run has a checkpoint, a failure of any kind (an error in a
step, a non-finite loss, Ctrl-C) puts the workdir back as it was found.

What the run prints, and its TensorBoard layout: :mod:`vgg_tf.training.reporting`.

Example:
    >>> from vgg_tf.training import loop, recipe  # doctest: +SKIP
    >>> config = recipe.paper_recipe()  # doctest: +SKIP
    >>> loop.train_and_evaluate(config, "workdirs/run")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Iterator, Sequence

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from vgg_tf import workdir as workdir_lib
from vgg_tf.data import pipeline as input_pipeline
from vgg_tf.data import pixel_statistics, sources
from vgg_tf.data.constants import IMAGENET_MEAN_RGB
from vgg_tf.data.images import ImageLimits
from vgg_tf.training import callbacks as callbacks_lib
from vgg_tf.training import distribute, network, optimization, reporting, tasks
from vgg_tf.training import recipe as config_lib
from vgg_tf.training.checkpoints import Preemption, RunCheckpoint
from vgg_tf.training.reporting import EpochProgress, RunLog
from vgg_tf.training.steps import Trainer
from vgg_tf.weights import loading


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


# --- Model, optimizer, schedule --------------------------------------------


# --- The run ---------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """What a run is set up with: the recipe resolved against its data and workdir."""

    config: ml_collections.ConfigDict
    workdir: str
    strategy: tf.distribute.Strategy
    chief: bool
    source: sources.Source
    run_config: dict
    steps_per_epoch: int
    test_scale: int
    task: tasks.Classification | tasks.Localisation
    #: The streams the run trains and validates on (pixel values: the net subtracts the mean).
    train_stream: input_pipeline.TrainStream
    eval_stream: input_pipeline.EvalStream
    #: What the chief prints while an epoch trains: "bar", "lines" or "none"
    #: (:func:`vgg_tf.training.reporting.progress_mode`).
    progress: str = "lines"

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * int(self.config.epochs)

    def say(self, message: str) -> None:
        """Prints ``message`` on the chief only."""
        if self.chief:
            print(message, flush=True)


@dataclasses.dataclass
class State:
    """What a run changes as it trains (all of it in the checkpoint), and whom it tells."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    trainer: Trainer
    schedule: optimization.PlateauSchedule
    step: tf.Variable
    checkpoint: RunCheckpoint
    #: metrics.csv, the curves and TensorBoard (the chief; None on other workers).
    run_log: RunLog | None
    #: The caller's Keras callbacks, given ``model`` (every worker calls its own).
    callbacks: keras.callbacks.CallbackList


def _mean_rgb(config, source: sources.Source, recorded: dict | None) -> tuple[float, ...]:
    """The recipe's mean RGB, else this run's recorded one, else that of the model it
    starts from (its weights expect that input), else ImageNet's or the training set's."""
    if config.mean_rgb is not None:
        return tuple(float(v) for v in config.mean_rgb)
    if recorded and recorded.get("mean_rgb"):
        return tuple(recorded["mean_rgb"])
    start = network.start_config(config)
    if start.get("mean_rgb"):
        return tuple(float(v) for v in start["mean_rgb"])
    if source.name.startswith("imagenet"):
        return IMAGENET_MEAN_RGB
    limits = ImageLimits.from_settings(config.max_pixels, config.max_aspect_ratio)
    mean = pixel_statistics.compute_mean_rgb(source, **dataclasses.asdict(limits))
    return tuple(float(v) for v in mean)


@contextlib.contextmanager
def global_settings(config: ml_collections.ConfigDict) -> Iterator[None]:
    """The process-wide settings of a run of ``config``, put back when it ends.

    Inside, Keras' global dtype policy is ``config.mixed_precision``'s, and
    ``config.deterministic`` turns on TensorFlow's op determinism; the run seeds
    Python's, NumPy's, TensorFlow's and Keras' random numbers (:func:`create_state`).
    On the way out, returning or raising, Keras' dtype policy and Python's and
    NumPy's random states are those from before. TensorFlow (2.21) has no public
    call that turns op determinism off or reads its global seed: a deterministic
    run leaves op determinism on, and TensorFlow's and Keras' seeds as the run set them.

    Example:
        >>> config = config_lib.paper_recipe()
        >>> config.mixed_precision = "bfloat16"
        >>> with global_settings(config):
        ...     print(keras.mixed_precision.global_policy().name)
        mixed_bfloat16
        >>> keras.mixed_precision.global_policy().name
        'float32'
    """
    policy = keras.mixed_precision.global_policy()
    python_random, numpy_random = random.getstate(), np.random.get_state()
    try:
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        if config.mixed_precision:
            keras.mixed_precision.set_global_policy(f"mixed_{config.mixed_precision}")
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)
        random.setstate(python_random)
        np.random.set_state(numpy_random)


def set_up(config, workdir: str, overwrite: bool, strategy=None, progress: str = "lines") -> Run:
    """Checks the workdir against the recipe and resolves the recipe's data.

    Nothing is written: the chief records the run (:func:`record_run`) with its
    first checkpoint, and ``overwrite`` removes the previous run's files only
    after every check has passed. ``progress``: "bar", "lines" or "none".
    """
    workdir_lib.check_outside(config.init_from, workdir)
    strategy = strategy or distribute.strategy_for(config)
    distribute.check_batch_sizes([config.batch_size], strategy)
    chief = distribute.is_chief(strategy)
    recorded = None
    if not overwrite:  # every worker refuses another run's workdir, rather than wait for the chief
        recorded = workdir_lib.read_config(workdir)
        free = config_lib.fields_free_on_resume(config, recorded)
        workdir_lib.prepare(workdir, config, ignore=free)
    source = sources.get_source(
        config.dataset, data_dir=config.data_dir, manual_dir=config.manual_dir
    )
    if config.task == "localisation" and source.box_reader is None:
        source.raw_records(source.train_split, with_boxes=True)  # raises, naming the dataset
    if config.task == "classification" and source.num_classes < 2:
        names = ", ".join(source.class_names or ())
        raise ValueError(
            f"Dataset {config.dataset!r} has {source.num_classes} class ({names}); expected at "
            "least 2 classes for a classifier (a folder dataset: one subfolder per class)."
        )
    mean_rgb = _mean_rgb(config, source, recorded)
    run_config = {
        **json.loads(config.to_json()),
        "mean_rgb": list(mean_rgb),
        "num_classes": source.num_classes,
        "class_names": list(source.class_names) if source.class_names else None,
        "started_from": loading.origin_of(config.init_from) if config.init_from else None,
        # The epsilon the batch-norm statistics of the model it starts from assume (torch's
        # 1e-5 for an import): recorded, so every later --init_from of this run builds with it.
        "batch_norm_epsilon": network.start_config(config).get("batch_norm_epsilon")
        if config.batch_norm
        else None,
    }
    num_train = source.num_examples(source.train_split)
    if num_train < config.batch_size:
        raise ValueError(
            f"batch_size={config.batch_size} is larger than the {num_train} training examples of "
            f"{config.dataset!r}; expected at most {num_train}."
        )
    test_scale = workdir_lib.single_test_scale(run_config)
    if overwrite and chief:
        workdir_lib.clear_run(workdir)
    return Run(
        config=config,
        workdir=workdir,
        strategy=strategy,
        chief=chief,
        source=source,
        run_config=run_config,
        steps_per_epoch=num_train // config.batch_size,
        test_scale=test_scale,
        task=tasks.task_for(config, source.num_classes),
        # The net subtracts the run's mean RGB itself (build_model): the streams do not.
        train_stream=input_pipeline.TrainStream.from_recipe(config, mean_rgb=None),
        eval_stream=input_pipeline.EvalStream.from_recipe(config, test_scale, mean_rgb=None),
        progress=progress,
    )


def create_state(run: Run, callbacks: Sequence[keras.callbacks.Callback] = ()) -> State:
    """Builds the model (from ``init_from`` if given), optimizer, schedule and checkpoint,
    restores the newest checkpoint that reads, and hands ``callbacks`` the model."""
    config = run.config
    # Seeded here, after the data source: preparing a TFDS dataset draws random numbers.
    keras.utils.set_random_seed(int(config.seed))
    with run.strategy.scope():
        model = network.build_model(config, run.source.num_classes, run.run_config["mean_rgb"])
        if config.init_from:
            copied, note = network.initialise_from(
                model, config.init_from, fresh_head=run.task.uses_boxes
            )
            listed = ", ".join(copied) if len(copied) <= 8 else f"{copied[0]} ... {copied[-1]}"
            run.say(
                f"Initialised {len(copied)} layers ({listed}) from {config.init_from}"
                + (f"; {note}" if note else "")
            )
        frozen = network.freeze_layers(model, config.freeze)
        if frozen:
            run.say(f"Frozen ({config.freeze}): {len(frozen)} layers, {frozen[0]} to {frozen[-1]}")
        logits_model = keras.Model(model.input, model.get_layer("fc8").output)
        optimizer = optimization.make_optimizer(config)
        optimizer.build(logits_model.trainable_variables)
        trainer = Trainer(
            run.strategy,
            logits_model,
            optimizer,
            config.batch_size,
            bool(config.jit_compile),
            run.task,
        )
    schedule = optimization.PlateauSchedule(
        config.learning_rate,
        config.lr_drop_factor,
        config.lr_plateau_patience,
        config.lr_plateau_min_delta,
        config.lr_max_drops,
        config.lr_plateau_start_epoch,
        warmup_steps=int(config.warmup_epochs * run.steps_per_epoch),
    )
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = RunCheckpoint(
        run.workdir,
        run.strategy,
        config.keep_checkpoints,
        # Keras 3 models hand tf.train.Checkpoint only the optimizer-tracked
        # variables; listing them all keeps dropout seeds and BN statistics.
        model_variables=list(model.variables),
        optimizer_variables=list(optimizer.variables),
        schedule=schedule,
        step=step,
        **trainer.checkpointed,
    )
    restored = checkpoint.restore_latest()  # refuses when checkpoints exist but none reads
    if restored:
        for path, reason in restored.skipped:
            run.say(f"Skipped {path}, which does not read: {reason}")
        run.say(f"Resumed from {restored.path} at step {int(step.numpy())}")
    return State(
        model,
        optimizer,
        trainer,
        schedule,
        step,
        checkpoint,
        RunLog(run.workdir) if run.chief else None,
        keras.callbacks.CallbackList(
            list(callbacks),
            model=model,
            verbose=0,
            epochs=int(config.epochs),
            steps=run.steps_per_epoch,
        ),
    )


def has_checkpoint(state: State) -> bool:
    """Whether the run has a checkpoint: one it resumed from, or one it wrote."""
    return state.checkpoint.saved_step is not None


def record_run(run: Run) -> None:
    """Writes the run's config.json (the chief): at the start of a resumed run, and just
    before a new run's first checkpoint (:func:`save_checkpoint`)."""
    if run.chief:
        workdir_lib.write_config(run.workdir, run.run_config)


def _retry_hint(state: State) -> str:
    if not has_checkpoint(state):
        return (
            "No checkpoint was written, and the workdir is left as it was found: retry there "
            "with a lower --learning_rate or a warm-up."
        )
    return (
        f"The last good checkpoint stays in {state.checkpoint.directory}. To retry with a lower "
        "--learning_rate or a warm-up, start a new --workdir (or pass --overwrite, which "
        "deletes this run)."
    )


def save_checkpoint(run: Run, state: State, once: bool = False) -> int:
    """Checkpoints the run, refusing to save non-finite weights; returns the step saved.

    The first checkpoint of a new run records the run (:func:`record_run`) first.
    ``once``: not again when the last checkpoint written or restored is of this step.
    """
    step = int(state.step.numpy())
    if once and state.checkpoint.saved_step == step:
        return step
    # The losses checked so far came before the last update: check the weights too.
    if not state.trainer.weights_are_finite():
        raise NonFiniteLossError(
            f"The weights became non-finite by step {int(state.step.numpy())}; the run stops "
            f"without saving them. {_retry_hint(state)}"
        )
    if not has_checkpoint(state):
        record_run(run)
    state.checkpoint.save(step)
    return step


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + epoch) % (2**31 - 1)


def _train_input(run: Run, epoch: int, offset: int):
    """The distributed training stream of ``epoch``, ``offset`` steps in (a resumed epoch)."""
    stream = dataclasses.replace(run.train_stream, seed=_epoch_seed(run.config.seed, epoch))
    skip = offset * stream.batch_size
    return iter(
        run.strategy.distribute_datasets_from_function(
            lambda ctx: input_pipeline.train_dataset(
                run.source, stream, skip_examples=skip, input_context=ctx
            )
        )
    )


def _rates(task: tasks.Classification | tasks.Localisation, rates: dict) -> dict:
    """The loss and the task's metrics of ``rates``, as Keras names them in a callback's logs."""
    return {"loss": rates["loss"], **{name: rates[name] for name in task.metrics}}


def train_epoch(run: Run, state: State, preemption: Preemption | None = None) -> tuple[dict, float]:
    """Trains from the current step to the end of its epoch.

    ``preemption`` is checked before each call of the compiled steps: after a
    SIGTERM the run saves a checkpoint at the step it has reached and stops.
    The chief shows the epoch's progress (``run.progress``) and writes the running
    loss to TensorBoard every ``log_every_steps`` steps; the callbacks hear of every
    call (``on_train_batch_end`` with the index, in the epoch, of its last step).

    Returns:
        The epoch's train metrics and its throughput in images per second.

    Raises:
        vgg_tf.training.checkpoints.Preempted: SIGTERM arrived (the checkpoint is saved).
    """
    config = run.config
    epoch, offset = divmod(int(state.step.numpy()), run.steps_per_epoch)
    iterator = _train_input(run, epoch, offset)
    progress = None
    if run.chief:
        progress = EpochProgress(
            run.progress,
            epoch + 1,
            int(config.epochs),
            run.steps_per_epoch,
            run.task.metrics,
            int(config.log_every_steps),
        )
    state.callbacks.on_epoch_begin(epoch)
    images, seconds = 0, 0.0
    while offset < run.steps_per_epoch:
        if preemption is not None:
            preemption.check()
        global_step = int(state.step.numpy())
        to_checkpoint = config.checkpoint_every_steps - global_step % config.checkpoint_every_steps
        chunk = min(config.steps_per_execution, run.steps_per_epoch - offset, to_checkpoint)
        lr = state.schedule.rate(global_step)
        state.optimizer.learning_rate.assign(lr)
        state.callbacks.on_train_batch_begin(offset)
        start = time.perf_counter()
        state.trainer.train_steps(iterator, chunk)
        so_far = state.trainer.epoch_metrics()
        elapsed = time.perf_counter() - start
        if not math.isfinite(so_far["loss"]):
            raise NonFiniteLossError(
                f"The training loss became {so_far['loss']} at step {global_step + chunk} "
                f"(epoch {epoch + 1}); the run stops. {_retry_hint(state)}"
            )
        state.step.assign_add(chunk)
        offset += chunk
        if global_step > 0 or offset > chunk:  # the first call includes tracing
            images, seconds = images + chunk * config.batch_size, seconds + elapsed
        if progress:
            progress.update(global_step, chunk, so_far, lr, chunk * config.batch_size, elapsed)
        logs = _rates(run.task, so_far)
        if state.run_log and reporting.crosses(
            global_step, global_step + chunk, config.log_every_steps
        ):
            state.run_log.write_steps(global_step + chunk, logs)
        # A checkpoint at an epoch's end is written after the epoch's bookkeeping.
        if (
            int(state.step.numpy()) % config.checkpoint_every_steps == 0
            and offset < run.steps_per_epoch
        ):
            save_checkpoint(run, state)
        state.callbacks.on_train_batch_end(offset - 1, logs)
    return state.trainer.epoch_metrics(), images / seconds if seconds else 0.0


def validate(run: Run, state: State, split: str | None = None) -> dict:
    """Loss and error rates of the centre crops at the test scale Q (§4.1).

    For a localisation net: its box for the true class (Appendix A's first protocol).
    """
    dataset = run.strategy.distribute_datasets_from_function(
        lambda ctx: input_pipeline.eval_dataset(
            run.source,
            run.eval_stream,
            split=split or run.source.eval_split,
            input_context=ctx,
        )
    )
    return state.trainer.evaluate(dataset)


def end_epoch(run: Run, state: State, train: dict, images_per_second: float, val: dict) -> dict:
    """The plateau schedule's step, the epoch's log row and line, and the checkpoint.

    Returns:
        The epoch's logs as ``keras.Model.fit`` gives them to ``on_epoch_end``: ``loss``
        and the task's metrics, ``val_loss`` and ``val_<metric>``, and ``learning_rate``.
    """
    epoch = int(state.step.numpy()) // run.steps_per_epoch
    lr = float(state.optimizer.learning_rate.numpy())
    dropped = state.schedule.update(run.task.accuracy(val), epoch)
    state.trainer.reset_epoch_totals()
    train, val = _rates(run.task, train), _rates(run.task, val)
    if state.run_log:
        state.run_log.write_epoch(
            {
                "epoch": epoch,
                "lr": lr,
                **{f"train_{name}": value for name, value in train.items()},
                **{f"val_{name}": value for name, value in val.items()},
                "images_per_second": images_per_second,
            }
        )
    run.say(
        f"epoch {epoch}: val {run.task.describe(val)}, loss {val['loss']:.4f}; "
        f"train loss {train['loss']:.4f}, {images_per_second:.1f} img/s"
        + ("; learning rate divided by 10" if dropped else "")
    )
    save_checkpoint(run, state)
    return {
        **train,
        **{f"val_{name}": value for name, value in val.items()},
        "learning_rate": lr,
    }


def finish(run: Run, state: State, val: dict | None) -> dict:
    """Tests the final model, saves it, and returns the run's result."""
    val = val or validate(run, state)  # a finished run resumed: report it again
    source = run.source
    test = (
        validate(run, state, source.test_split) if source.test_split != source.eval_split else val
    )
    if run.chief:
        workdir_lib.save_model(state.model, os.path.join(run.workdir, workdir_lib.MODEL_FILE))
    else:
        tf.io.gfile.makedirs(os.path.join(run.workdir, "workers"))
        name = f"worker{distribute.task_id(run.strategy)}.keras"
        workdir_lib.save_model(state.model, os.path.join(run.workdir, "workers", name))
    return {
        **{f"val_{name}": float(val[name]) for name in run.task.metrics},
        "val_loss": float(val["loss"]),
        **{f"test_{name}": float(test[name]) for name in run.task.metrics},
        "task": run.task.name,
        "epochs": int(run.config.epochs),
        "replicas": int(run.strategy.num_replicas_in_sync),
        "run_config": run.run_config,
    }


def _train(run: Run, state: State) -> dict | None:
    """The epochs, from the current step to the last or to a callback's stop; returns the
    last validation (None when no epoch was left to train, or callbacks may have changed
    the weights since)."""
    val, logs = None, None
    state.model.stop_training = False
    state.callbacks.on_train_begin()
    preemption = Preemption(
        run.strategy,
        lambda: save_checkpoint(run, state, once=True),
        os.path.join(run.workdir, f".worker{distribute.task_id(run.strategy)}_preemption"),
    )
    with preemption.watching():
        while int(state.step.numpy()) < run.total_steps:
            train, images_per_second = train_epoch(run, state, preemption)
            val = validate(run, state)
            logs = end_epoch(run, state, train, images_per_second, val)
            epoch = int(state.step.numpy()) // run.steps_per_epoch
            state.callbacks.on_epoch_end(epoch - 1, logs)
            if state.model.stop_training and epoch < int(run.config.epochs):
                run.say(f"A callback stopped the run after epoch {epoch} of {run.config.epochs}.")
                break
    state.callbacks.on_train_end(logs)
    # A callback may have changed the weights (EarlyStopping's restore_best_weights): the
    # result then validates the model as it is saved.
    return None if state.callbacks.callbacks else val


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    overwrite: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    progress: str = "auto",
) -> dict:
    """Trains ``config`` in ``workdir``, resuming from its last checkpoint if any.

    The chief starts with one line naming the strategy, the replicas and their devices
    (:func:`vgg_tf.training.reporting.device_line`).

    Args:
        config: A recipe (see :func:`vgg_tf.training.recipe.paper_recipe`).
        workdir: Directory of the run (config.json, checkpoints, logs/train and
            logs/validation for TensorBoard, metrics.csv, learning_curves.png, model.keras).
        overwrite: Start over in a workdir that holds another run.
        strategy: A strategy to use instead of ``config.strategy``.
        callbacks: Keras callbacks, called as ``keras.Model.fit`` calls them and on every
            worker, as ``fit`` does (a callback that writes files should write on the chief
            only): ``on_train_begin``/``end``, ``on_epoch_begin``/``end`` (epochs from 0;
            ``on_epoch_end``'s logs hold ``loss``, the task's metrics, their ``val_``
            versions and ``learning_rate``), ``on_train_batch_begin``/``end`` once per
            call of the compiled steps (``config.steps_per_execution`` steps at most, the
            index of its last step in the epoch; logs: the epoch's running ``loss`` and
            metrics). Their model is the run's classifier (softmax output). A callback
            that sets ``model.stop_training`` (``keras.callbacks.EarlyStopping``) ends the
            run after that epoch: its checkpoint and model.keras are written, and running
            again continues towards ``config.epochs``. With callbacks, the result validates
            the model as they leave it (``restore_best_weights``). Callbacks that drive the
            optimizer (``ReduceLROnPlateau``, ``LearningRateScheduler``: the recipe's
            schedule does) or read it (``keras.callbacks.TensorBoard``: the run writes
            ``logs/`` itself) are refused.
        progress: What the chief prints while an epoch trains: ``"bar"`` (Keras'
            progress bar), ``"lines"`` (a plain line every ``config.log_every_steps``
            steps, no control character), ``"none"``, or ``"auto"``: ``"bar"`` on a
            terminal, else ``"lines"``. Every mode prints the start line and each
            epoch's line.

    Returns:
        The final metrics: ``val_top1_error``, ``val_top5_error``, ``val_loss``,
        ``test_top1_error``, ``test_top5_error`` (the test split, or validation
        where the dataset has none; no top-5 error for 5 classes or fewer),
        ``task``, ``epochs``, ``replicas`` and
        ``run_config``; a localisation run has ``val_error``, ``val_mean_iou``,
        ``test_error`` and ``test_mean_iou`` in place of the top-k errors.

    Raises:
        ValueError: A bad config field, ``progress`` or callback, a workdir of another
            run, or checkpoints none of which reads. A refused run, and any run that
            fails before it has a checkpoint, leaves the workdir as it found it.
        vgg_tf.workdir.WorkdirBusyError: Another process is running in ``workdir``
            (it is held for the whole run).
        NonFiniteLossError: The loss diverged (the last good checkpoint stays).
        vgg_tf.training.checkpoints.Preempted: SIGTERM arrived; the run saved a
            checkpoint at the step it had reached (rerun to resume there).

    Example:
        >>> stop = keras.callbacks.EarlyStopping("val_loss", patience=2)  # doctest: +SKIP
        >>> train_and_evaluate(config, "workdirs/run", callbacks=[stop])  # doctest: +SKIP
    """
    config_lib.validate_config(config)
    mode = reporting.progress_mode(progress)
    callbacks = callbacks_lib.check_callbacks(callbacks)
    with global_settings(config):
        strategy = strategy or distribute.strategy_for(config)
        chief = distribute.is_chief(strategy)
        # The workers of a set share the chief's workdir: the chief holds it for them.
        before = workdir_lib.Snapshot.take(workdir)
        with (
            workdir_lib.exclusive(workdir, "a training run") if chief else contextlib.nullcontext()
        ):
            state = None
            try:
                run = set_up(config, workdir, overwrite, strategy, progress=mode)
                run.say(reporting.device_line(run.strategy))
                state = create_state(run, callbacks)
                if has_checkpoint(state):  # resumed: the record's free fields follow the recipe
                    record_run(run)
                if chief:  # what a killed process of this host was writing (config.json, ...)
                    workdir_lib.remove_dead_temporaries(workdir)
                val = _train(run, state)
                return finish(run, state, val)
            except BaseException:
                if state is not None and state.run_log:
                    state.run_log.close()
                # Until the run has a checkpoint, a failure leaves the workdir as it was found.
                if chief and (state is None or not has_checkpoint(state)):
                    before.put_back()
                raise
            finally:
                if state is not None and state.run_log:
                    state.run_log.close()
