"""The compiled steps of a run: a synchronous training step and an evaluation pass.

Each replica computes the task's loss (:mod:`vgg_tf.training.tasks`: cross-entropy, or
the localisation net's Euclidean loss) of its slice of the global batch,
divided by the *global* batch size, and the optimizer sums the gradients over
replicas: the update equals one device's update on the whole batch (§3.3).
The step is written with ``strategy.run``, so it is the same code on one
device and on many (Keras 3 ``model.fit`` fails under
MultiWorkerMirroredStrategy, keras-team/keras#20585).

The trainer owns the running totals of the epoch (the task's ``Totals``): the steps
add to them, :meth:`Trainer.epoch_metrics` reads them and
:meth:`Trainer.reset_epoch_totals` starts the next epoch.

Example:
    >>> trainer = Trainer(strategy, logits_model, optimizer, 256, False)  # doctest: +SKIP
    >>> trainer.train_steps(iterator, 10)  # doctest: +SKIP
    >>> trainer.epoch_metrics()["top1_error"]  # doctest: +SKIP
    0.87
    >>> trainer.reset_epoch_totals()  # doctest: +SKIP
"""

from __future__ import annotations

import tensorflow as tf

from vgg_tf.training import tasks


class Trainer:
    """The compiled train and evaluation steps of one run.

    ``logits_model`` gives the last layer's raw outputs (logits, or box
    coordinates); ``task`` (classification by default) turns them into the loss
    and the epoch's counts.
    """

    def __init__(
        self,
        strategy,
        logits_model,
        optimizer,
        global_batch: int,
        jit_compile: bool,
        task: tasks.Classification | tasks.Localisation | None = None,
    ):
        self.strategy = strategy
        self.model = logits_model
        self.optimizer = optimizer
        self.global_batch = global_batch
        self.task = task or tasks.Classification(int(logits_model.output_shape[-1]))
        # The epoch's running totals, one float64 variable in the order of the task's
        # Totals: one update per step, and checkpointed (see checkpointed).
        self._totals = tf.Variable(
            tf.zeros(self._num_totals, tf.float64), trainable=False, name="epoch_totals"
        )
        self._jit_compile = jit_compile
        self._train_chunk = tf.function(self._train_chunk_fn)
        self._evaluate = tf.function(self._evaluate_fn)
        self._weights_are_finite = tf.function(self._weights_are_finite_fn)

    @property
    def replicas(self) -> int:
        """Replicas each step runs on (synchronously)."""
        return self.strategy.num_replicas_in_sync

    @property
    def _num_totals(self) -> int:
        return len(self.task.Totals._fields)

    @property
    def checkpointed(self) -> dict[str, tf.Variable]:
        """The trainer's state a checkpoint keeps: the epoch's totals, so that a run
        resumed mid-epoch reports the whole epoch."""
        return {"totals": self._totals}

    def reset_epoch_totals(self) -> None:
        """Starts the next epoch's totals at zero."""
        self._totals.assign(tf.zeros_like(self._totals))

    def epoch_totals(self) -> tasks.ClassificationTotals | tasks.LocalisationTotals:
        """The epoch's totals so far, named by the task."""
        return self.task.Totals(*(float(value) for value in self._totals.numpy()))

    def epoch_metrics(self) -> dict:
        """Train loss and errors of the epoch so far."""
        return self.task.rates(self.epoch_totals())

    def _replica_step(self, images, targets):
        with tf.GradientTape() as tape:
            outputs = tf.cast(self.model(images, training=True), tf.float32)
            per_example = self.task.loss(targets, outputs)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = (
                self.optimizer.scale_loss(loss) if hasattr(self.optimizer, "scale_loss") else loss
            )
        grads = tape.gradient(scaled, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        return self.task.counts(targets, outputs, per_example)

    def _train_chunk_fn(self, iterator, num_steps):
        step = self._replica_step
        if self._jit_compile:
            step = tf.function(step, jit_compile=True)
        for _ in tf.range(num_steps):
            per_replica = self.strategy.run(step, args=next(iterator))
            sums = self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            self._totals.assign_add(tf.cast(sums, tf.float64))

    def train_steps(self, iterator, num_steps: int) -> None:
        """Runs ``num_steps`` synchronous steps in one call (steps_per_execution)."""
        self._train_chunk(iterator, tf.constant(num_steps, tf.int64))

    def _replica_eval(self, images, targets):
        def counts():
            outputs = tf.cast(self.model(images, training=False), tf.float32)
            return self.task.counts(targets, outputs, self.task.loss(targets, outputs))

        # A replica may get an empty final batch, which Conv2D rejects on CPU.
        return tf.cond(tf.shape(images)[0] > 0, counts, lambda: tf.zeros(self._num_totals))

    def _evaluate_fn(self, dataset):
        totals = tf.zeros(self._num_totals, tf.float64)
        for images, targets in dataset:
            per_replica = self.strategy.run(self._replica_eval, args=(images, targets))
            totals += tf.cast(
                self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None), tf.float64
            )
        return totals

    def evaluate(self, dataset) -> dict:
        """The task's rates (loss, top-1/top-5 error, ...) over a (distributed) dataset."""
        totals = self.task.Totals(*(float(value) for value in self._evaluate(dataset).numpy()))
        if totals.examples == 0:
            raise ValueError("The validation split yielded no example.")
        return self.task.rates(totals)

    def _weights_are_finite_fn(self) -> tf.Tensor:
        variables = list(self.model.variables) + list(self.optimizer.variables)
        return tf.reduce_all(
            [
                tf.reduce_all(tf.math.is_finite(v))
                for v in variables
                if tf.as_dtype(v.dtype).is_floating
            ]
        )

    def weights_are_finite(self) -> bool:
        """Whether every model and optimizer variable is finite (checked before a save)."""
        return bool(self._weights_are_finite().numpy())
