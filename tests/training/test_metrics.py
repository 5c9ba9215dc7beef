"""The one top-k rule (vgg_tf.training.metrics): a tie is a miss, a NaN is a miss; the trainer and
the evaluator count with it alike."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vgg_tf.evaluation import classification
from vgg_tf.training import loop as train
from vgg_tf.training import metrics


def _hits(labels, scores, ks=(1, 5)):
    return metrics.top_k_hits(labels, np.asarray(scores, np.float32), ks=ks).numpy().tolist()


def test_hits_are_counted_per_k():
    scores = [
        [0.1, 0.6, 0.3],  # label 1: first
        [0.5, 0.2, 0.3],  # label 2: second
        [0.5, 0.2, 0.3],
    ]  # label 1: third
    assert _hits([1, 2, 1], scores, ks=(1, 2, 3)) == [1.0, 2.0, 3.0]
    assert _hits(np.array([1, 2, 1], np.int64), scores, ks=(1,)) == [1.0]  # any int dtype
    assert metrics.top_k_hits([1], [[0.0, 1.0]]).dtype == tf.float32


def test_a_tie_is_a_miss():
    uniform = np.full((3, 10), 0.1)
    assert _hits([0, 4, 9], uniform, ks=(1, 5, 9)) == [0.0, 0.0, 0.0]
    assert _hits([0, 4, 9], uniform, ks=(10,)) == [3.0]  # the top 10 of 10 classes is all
    # Tied for first with one other class: a miss at k=1, a hit at k=2.
    tied = [[0.4, 0.4, 0.2]]
    assert _hits([0], tied, ks=(1, 2)) == [0.0, 1.0]
    assert _hits([1], tied, ks=(1, 2)) == [0.0, 1.0]
    # tf.math.in_top_k counts the same ties as hits: the rule is not that one.
    assert bool(tf.math.in_top_k([0], tf.constant(tied, tf.float32), 1)[0])
    assert bool(tf.math.in_top_k([0], tf.constant(uniform[:1], tf.float32), 1)[0])
    # A tie below the true class does not matter.
    assert _hits([0], [[0.6, 0.2, 0.2]], ks=(1,)) == [1.0]


def test_a_nan_or_infinite_score_is_a_miss():
    nan_elsewhere = [[0.9, np.nan, 0.05]]  # the true class is the highest finite score
    assert _hits([0], nan_elsewhere, ks=(1, 3)) == [0.0, 0.0]
    assert _hits([0], np.full((1, 4), np.nan), ks=(1, 4)) == [0.0, 0.0]
    assert _hits([0], [[np.inf, 0.0, 0.0]], ks=(1,)) == [0.0]
    # Only the rows with a NaN count as wrong.
    assert _hits([0, 0], [[0.9, 0.1, 0.0], [0.9, np.nan, 0.0]], ks=(1,)) == [1.0]


def test_ties_and_nan_count_as_errors():
    """The evaluator's tally applies the rule."""
    tally = classification._Tally()
    tally.add(np.full(10, 0.1), 3)  # uniform: no class is ranked first
    tally.add(np.full(10, np.nan), 3)  # a diverged model
    tally.add(np.array([0.05] * 6 + [0.1, 0.2, 0.3, 0.1]), 6)  # tied with class 9, behind two
    assert tally.errors() == (100.0, pytest.approx(200 / 3))  # only the last in the top 5
    right = classification._Tally()
    right.add(np.array([0.1, 0.7, 0.2]), 1)
    assert right.errors() == (0.0, None)  # 3 classes: no top-5 error


def _trainer(logits_model):
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build(logits_model.trainable_variables)
    return train.Trainer(
        tf.distribute.get_strategy(), logits_model, optimizer, global_batch=8, jit_compile=False
    )


def _uniform_logits_model(tiny_model):
    """A tiny VGG whose last layer is all zeros: every class gets the same logit."""
    model = tiny_model()
    fc8 = model.get_layer("fc8")
    fc8.set_weights([np.zeros_like(w) for w in fc8.get_weights()])
    return keras.Model(model.input, fc8.output)


def test_a_uniform_output_scores_no_hit_in_training_and_in_evaluation(tiny_model):
    logits_model = _uniform_logits_model(tiny_model)
    rng = np.random.default_rng(0)
    images = rng.normal(scale=50, size=(16, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, size=16).astype("int32")
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    logits = logits_model(images).numpy()
    assert np.all(logits == logits[:, :1])  # uniform indeed

    trainer = _trainer(logits_model)
    validation = trainer.evaluate(batches)
    assert validation["top1_error"] == 1.0 and validation["top5_error"] == 1.0
    assert validation["loss"] == pytest.approx(np.log(10), rel=1e-5)
    # The training step counts its batch before the update, with the same rule.
    trainer.train_steps(iter(batches.repeat()), 1)
    assert trainer.epoch_metrics()["top1_error"] == 1.0
    assert trainer.epoch_metrics()["top5_error"] == 1.0

    tally = classification._Tally()
    for row, label in zip(keras.ops.softmax(logits).numpy(), labels):
        tally.add(row, int(label))
    assert tally.errors() == (100.0, 100.0)


def test_trainer_and_evaluator_agree_on_every_example():
    """Scores with ties, NaNs and clear winners, through both counters."""
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(40, 10)).astype("float32")
    labels = rng.integers(0, 10, size=40).astype("int32")
    scores[:8] = 0.0  # uniform
    for row in range(8, 16):  # the true class tied with the best other class
        others = np.delete(scores[row], labels[row])
        scores[row, labels[row]] = others.max()
    scores[16:20, 3] = np.nan
    scores[np.arange(20, 28), labels[20:28]] = 5.0  # clear winners
    identity = keras.Sequential([keras.Input((10,)), keras.layers.Identity()])
    trainer = _trainer(identity)
    result = trainer.evaluate(tf.data.Dataset.from_tensor_slices((scores, labels)).batch(8))
    tally = classification._Tally()
    for row, label in zip(scores, labels):
        tally.add(row, int(label))
    top1, top5 = tally.errors()
    assert result["top1_error"] * 100 == pytest.approx(top1)
    assert result["top5_error"] * 100 == pytest.approx(top5)
    # Not a vacuous agreement: some hits, some misses, and ties that in_top_k would count.
    assert 0 < top1 < 100 and 0 < top5 < 100
    in_top_k = tf.math.in_top_k(labels, tf.constant(scores), 1).numpy().mean()
    assert (1 - in_top_k) * 100 < top1


def test_the_trainer_sums_its_epoch_by_name_and_starts_the_next_at_zero(tiny_model, tmp_path):
    logits_model = _uniform_logits_model(tiny_model)
    rng = np.random.default_rng(2)
    images = rng.normal(scale=50, size=(8, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, size=8).astype("int32")
    batches = tf.data.Dataset.from_tensors((images, labels))
    trainer = _trainer(logits_model)
    trainer.train_steps(iter(batches.repeat()), 1)
    first = trainer.epoch_totals()
    # The uniform scores of the first step: no hit, log(10) a crop.
    assert (first.examples, first.top1_hits, first.top5_hits) == (8.0, 0.0, 0.0)
    assert first.loss == pytest.approx(8 * np.log(10), rel=1e-5)
    trainer.train_steps(iter(batches.repeat()), 2)
    assert trainer.epoch_totals().examples == 24.0
    trainer.evaluate(batches)  # validation keeps its own sums
    assert trainer.epoch_totals().examples == 24.0

    # A checkpoint holds the totals: a run resumed mid-epoch reports the whole epoch.
    saved = tf.train.Checkpoint(**trainer.checkpointed).write(str(tmp_path / "totals"))
    resumed = _trainer(logits_model)
    tf.train.Checkpoint(**resumed.checkpointed).read(saved).assert_consumed()
    assert resumed.epoch_totals() == trainer.epoch_totals()

    trainer.reset_epoch_totals()
    assert trainer.epoch_totals() == (0.0, 0.0, 0.0, 0.0)
    trainer.train_steps(iter(batches.repeat()), 1)
    assert trainer.epoch_totals().examples == 8.0
