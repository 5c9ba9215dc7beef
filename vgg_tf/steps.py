"""The compiled steps of a run: a synchronous training step and an evaluation pass.

Each replica computes the cross-entropy of its slice of the global batch,
divided by the *global* batch size, and the optimizer sums the gradients over
replicas: the update equals one device's update on the whole batch (§3.3).
The step is written with ``strategy.run``, so it is the same code on one
device and on many (Keras 3 ``model.fit`` fails under
MultiWorkerMirroredStrategy, keras-team/keras#20585).

Example:
    >>> trainer = Trainer(strategy, logits_model, optimizer, 256, False)  # doctest: +SKIP
    >>> trainer.train_steps(iterator, 10)  # doctest: +SKIP
"""

from __future__ import annotations

import keras
import tensorflow as tf

from vgg_tf import metrics


def _counts(labels, logits, per_example_loss) -> tf.Tensor:
    """loss sum, top-1 hits, top-5 hits, examples: float32 [4]."""
    hits = metrics.top_k_hits(labels, logits, ks=(1, 5))
    count = tf.cast(tf.shape(labels)[0], tf.float32)
    return tf.concat([[tf.reduce_sum(per_example_loss)], hits, [count]], axis=0)


def _rates(totals) -> dict:
    loss, top1, top5, count = totals
    count = max(count, 1.0)
    return dict(loss=loss / count, top1_error=1 - top1 / count, top5_error=1 - top5 / count)


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

    @property
    def replicas(self) -> int:
        """Replicas each step runs on (synchronously)."""
        return self.strategy.num_replicas_in_sync

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
        return _counts(labels, logits, per_example)

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
            return _counts(labels, logits, loss)

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
        totals = self._evaluate(dataset).numpy()
        if totals[3] == 0:
            raise ValueError("The validation split yielded no example.")
        return _rates(totals)

    def _weights_are_finite_fn(self) -> tf.Tensor:
        variables = list(self.model.variables) + list(self.optimizer.variables)
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables
                              if tf.as_dtype(v.dtype).is_floating])

    def weights_are_finite(self) -> bool:
        """Whether every model and optimizer variable is finite (checked before a save)."""
        return bool(self._weights_are_finite().numpy())

    def epoch_metrics(self) -> dict:
        """Train loss and errors of the epoch so far."""
        return _rates(self.totals.numpy())
