"""The optimiser of §3.1: SGD with momentum, the learning rate divided by 10 on plateaus.

Example:
    >>> optimizer = make_optimizer(config_lib.paper_recipe())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


def make_optimizer(config: Any) -> keras.optimizers.Optimizer:
    """The paper's SGD with momentum (§3.1); weight decay is in the model's L2 terms.

    Keras' own ``weight_decay=`` is decoupled from the gradient and is not the
    paper's: it is never set here (see :func:`vgg_tf.nets.builder.VGG`). Under
    float16 the optimizer scales the loss (``LossScaleOptimizer``).

    Example:
        >>> make_optimizer(config_lib.paper_recipe()).momentum
        0.9
    """
    optimizer = keras.optimizers.SGD(
        learning_rate=config["learning_rate"], momentum=config["momentum"]
    )
    if config["mixed_precision"] == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


class PlateauSchedule(tf.Module):
    """The learning rate: divided by 10 when validation accuracy stops improving (§3.1).

    ``rate(step)`` also ramps the rate up linearly over ``warmup_steps`` (not in
    the paper). State lives in variables so that it is checkpointed with the run.
    """

    def __init__(
        self,
        learning_rate: float,
        factor: float,
        patience: int,
        min_delta: float,
        max_drops: int,
        start_epoch: int = 0,
        warmup_steps: int = 0,
    ):
        super().__init__(name="plateau_schedule")
        self.learning_rate = tf.Variable(learning_rate, trainable=False, dtype=tf.float64)
        self.best = tf.Variable(-1.0, trainable=False, dtype=tf.float64)
        self.wait = tf.Variable(0, trainable=False, dtype=tf.int64)
        self.drops = tf.Variable(0, trainable=False, dtype=tf.int64)
        self._factor, self._patience = factor, patience
        self._min_delta, self._max_drops = min_delta, max_drops
        self._start_epoch = start_epoch
        self._warmup_steps = warmup_steps

    def rate(self, step: int) -> float:
        """The learning rate of global step ``step`` (0-based)."""
        warm = min(1.0, (step + 1) / self._warmup_steps) if self._warmup_steps else 1.0
        return float(self.learning_rate.numpy()) * warm

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
