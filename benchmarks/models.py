"""VGG-16 (D) inference and training: vgg_tf against ``keras.applications.VGG16``.

Both nets are built with random weights (``weights=None``: nothing is
downloaded) and fed the same synthetic batches, so only the model and the
step differ, not the input pipeline (measured on its own in
:mod:`benchmarks.pipeline`).

* Inference: ``predict_on_batch`` of both Keras models, batch 16 and 32 at 224 px.
* Training: vgg_tf's own step (:class:`vgg_tf.training.steps.Trainer`, the loop ``bin/train``
  runs, with the paper's weight decay and dropout 0.5, SGD momentum 0.9) against
  keras.applications compiled with the same SGD and trained with ``model.fit``
  (no weight decay, no dropout: the model as users get it).

Rates are read against the machine's matmul rate, timed as a third side between
the repeats (:func:`benchmarks.machine.matmul_call`), so that the bound is
measured under the same load: a forward pass costs 2 x MACs FLOPs, a training
step about 3 times that (forward, and the two products of the backward pass).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from benchmarks import harness, machine
from vgg_tf.nets import builder as vgg_models
from vgg_tf.training import network, optimization, steps
from vgg_tf.training import recipe as config_lib

#: A training step is about 3 forward passes of work (forward, grad wrt input, grad wrt weights).
TRAIN_COST_FACTOR = 3.0


def synthetic_batch(batch: int, size: int, seed: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
    """Random mean-subtracted-range images and labels of ImageNet's 1,000 classes, seeded."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(-128.0, 128.0, (batch, size, size, 3)).astype(np.float32)
    labels = rng.integers(0, 1000, batch).astype(np.int32)
    return tf.constant(images), tf.constant(labels)


def _rate(images: int, seconds: list[float]) -> float:
    return images / harness.median(seconds)


def _bound_fraction(
    images_per_second: float, gmacs: float, bound_gflops: float, factor=1.0
) -> float:
    return images_per_second * 2.0 * gmacs * factor / bound_gflops


def _bound_side(settings: harness.Settings):
    """The matmul the model repeats are interleaved with, in the models' compute dtype."""
    dtype = tf.as_dtype(settings.mixed_precision or "float32")
    return machine.matmul_call(2048 if settings.quick else machine.BOUND_N, dtype)


def _gflops(flops: float, seconds: list[float]) -> float:
    return flops / harness.median(seconds) / 1e9


def inference(settings: harness.Settings, verbose: bool = True) -> dict:
    """img/s of vgg_tf's VGG16 and keras.applications.VGG16, ``predict_on_batch``, per batch size."""
    size = settings.image_size
    ours = vgg_models.build_vgg("D", crop_size=size)
    theirs = keras.applications.VGG16(weights=None, input_shape=(size, size, 3))
    for model in (ours, theirs):
        model.compile(jit_compile=settings.jit_compile)
    gmacs = vgg_models.count_macs(ours) / 1e9
    matmul, flops = _bound_side(settings)
    calls = len(settings.inference_batches) * 3 * settings.inference_repeats
    progress = harness.Progress(
        f"VGG-16 inference, {size} px, batch {settings.inference_batches}: vgg_tf vs "
        "keras.applications (predict_on_batch)",
        calls,
        verbose,
    )
    # Trace and warm up on 1 and 2 images: Keras' predict function (reduce_retracing) is
    # traced again on the second shape with the batch dimension left open, and that one
    # graph then serves every batch size, as it would for a user's varying batches.
    for warm_up in (1, 2):
        for model in (ours, theirs):
            model.predict_on_batch(synthetic_batch(warm_up, size)[0])
    rows = []
    for batch in settings.inference_batches:
        images, _ = synthetic_batch(batch, size)
        times = harness.interleaved(
            {
                "vgg_tf": lambda x=images: ours.predict_on_batch(x),
                "keras": lambda x=images: theirs.predict_on_batch(x),
                "matmul": matmul,
            },
            settings.inference_repeats,
            progress,
        )
        ours_rate, theirs_rate = _rate(batch, times["vgg_tf"]), _rate(batch, times["keras"])
        bound = _gflops(flops, times["matmul"])
        rows.append(
            dict(
                batch=batch,
                vgg_tf_img_s=ours_rate,
                keras_img_s=theirs_rate,
                ratio=ours_rate / theirs_rate,
                matmul_gflops=bound,
                vgg_tf_bound_fraction=_bound_fraction(ours_rate, gmacs, bound),
                keras_bound_fraction=_bound_fraction(theirs_rate, gmacs, bound),
                vgg_tf_seconds=times["vgg_tf"],
                keras_seconds=times["keras"],
            )
        )
    progress.finish()
    return dict(
        image_size=size, gmacs_per_image=gmacs, repeats=settings.inference_repeats, batches=rows
    )


def vgg_tf_trainer(settings: harness.Settings, batch: int) -> steps.Trainer:
    """The step bin/train runs: the paper's recipe for D (weight decay 5e-4, dropout 0.5)."""
    config = config_lib.paper_recipe()
    config.variant = "D"
    config.crop_size = settings.image_size
    config.batch_size = batch
    config.mixed_precision = settings.mixed_precision
    config.jit_compile = settings.jit_compile
    model = network.build_model(config, 1000)
    logits_model = keras.Model(model.input, model.get_layer("fc8").output)
    optimizer = optimization.make_optimizer(config)
    optimizer.build(logits_model.trainable_variables)
    return steps.Trainer(
        tf.distribute.get_strategy(), logits_model, optimizer, batch, settings.jit_compile
    )


def _keras_fit_model(settings: harness.Settings) -> keras.Model:
    """keras.applications.VGG16 as a user trains it: compile with the same SGD, then fit."""
    size = settings.image_size
    model = keras.applications.VGG16(weights=None, input_shape=(size, size, 3))
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        jit_compile=settings.jit_compile,
    )
    return model


def training(settings: harness.Settings, verbose: bool = True) -> dict:
    """img/s of vgg_tf's training step and of keras.applications under ``model.fit``."""
    batch, size, n = settings.train_batch, settings.image_size, settings.train_steps
    data = tf.data.Dataset.from_tensors(synthetic_batch(batch, size, seed=1)).repeat()
    trainer = vgg_tf_trainer(settings, batch)
    theirs = _keras_fit_model(settings)
    gmacs = vgg_models.count_macs(trainer.model) / 1e9
    iterator = iter(data)

    def ours_steps():
        trainer.train_steps(iterator, n)
        return trainer.epoch_metrics()  # reads the totals: waits for the steps

    def theirs_fit():
        theirs.fit(data, steps_per_epoch=n, epochs=1, verbose=0, shuffle=False)

    progress = harness.Progress(
        f"VGG-16 training, {size} px, batch {batch}, {n} step(s) a repeat: vgg_tf's step "
        "vs keras.applications model.fit (SGD, momentum 0.9)",
        3 * settings.train_repeats,
        verbose,
    )
    matmul, flops = _bound_side(settings)
    trainer.train_steps(iterator, 1)  # trace and warm up both, one step each
    trainer.epoch_metrics()
    theirs.fit(data, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    times = harness.interleaved(
        {"vgg_tf": ours_steps, "keras": theirs_fit, "matmul": matmul},
        settings.train_repeats,
        progress,
    )
    progress.finish()
    ours_rate, theirs_rate = _rate(batch * n, times["vgg_tf"]), _rate(batch * n, times["keras"])
    bound = _gflops(flops, times["matmul"])
    return dict(
        image_size=size,
        batch=batch,
        steps_per_repeat=n,
        repeats=settings.train_repeats,
        gmacs_per_image=gmacs,
        vgg_tf_img_s=ours_rate,
        keras_img_s=theirs_rate,
        ratio=ours_rate / theirs_rate,
        matmul_gflops=bound,
        vgg_tf_bound_fraction=_bound_fraction(ours_rate, gmacs, bound, TRAIN_COST_FACTOR),
        keras_bound_fraction=_bound_fraction(theirs_rate, gmacs, bound, TRAIN_COST_FACTOR),
        vgg_tf_seconds=times["vgg_tf"],
        keras_seconds=times["keras"],
    )
