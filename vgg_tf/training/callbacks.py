"""Which Keras callbacks a training run takes (:func:`vgg_tf.training.loop.train_and_evaluate`).

The run calls them as ``keras.Model.fit`` does; those that drive or read
``model.optimizer`` are refused, since the run's model has none: the recipe's
plateau schedule (paper §3.1) sets the learning rate, and the run writes
TensorBoard's files itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

#: Keras callbacks that drive or read ``model.optimizer``, which the run's model has not:
#: the recipe's plateau schedule sets the learning rate, and the run writes TensorBoard's
#: files itself.
REFUSED_CALLBACKS = {
    keras.callbacks.TensorBoard: "the run writes TensorBoard's logs itself, in WORKDIR/logs",
    keras.callbacks.ReduceLROnPlateau: "the recipe's plateau schedule sets the learning rate "
    "(lr_drop_factor, lr_plateau_patience, ...)",
    keras.callbacks.LearningRateScheduler: "the recipe's schedule sets the learning rate "
    "(learning_rate, warmup_epochs, lr_drop_factor, ...)",
}


def check_callbacks(
    callbacks: Sequence[keras.callbacks.Callback] | None,
) -> list[keras.callbacks.Callback]:
    """The callbacks a run calls, as a list; refuses what is not a Keras callback, and those
    of :data:`REFUSED_CALLBACKS`.

    Raises:
        ValueError: Naming the callback's position and type, and why it is refused.

    Example:
        >>> check_callbacks([keras.callbacks.EarlyStopping("val_loss")])[0].monitor
        'val_loss'
        >>> check_callbacks([keras.callbacks.ReduceLROnPlateau()])
        Traceback (most recent call last):
        ...
        ValueError: callbacks[0] is a keras.callbacks.ReduceLROnPlateau, which a run does not take: ...
    """
    callbacks = list(callbacks or ())
    for index, callback in enumerate(callbacks):
        if not isinstance(callback, keras.callbacks.Callback):
            raise ValueError(
                f"callbacks[{index}] is a {type(callback).__name__}; expected a "
                "keras.callbacks.Callback."
            )
        for kind, instead in REFUSED_CALLBACKS.items():
            if isinstance(callback, kind):
                raise ValueError(
                    f"callbacks[{index}] is a keras.callbacks.{kind.__name__}, which a run does "
                    f"not take: {instead}."
                )
    return callbacks
