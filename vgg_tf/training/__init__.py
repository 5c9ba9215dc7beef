"""Training: the recipe, the loop, its steps, tasks, checkpoints, distribution and search.

Owns the recipe schema (:mod:`~vgg_tf.training.recipe`), the loop of §3.1
(:mod:`~vgg_tf.training.loop`) and its compiled steps, the net a run trains and where it
starts (:mod:`~vgg_tf.training.network`), the optimiser and its plateau schedule
(:mod:`~vgg_tf.training.optimization`), the tasks
(classification, Appendix A's box regression) and their metrics, checkpoints
that survive a kill, the tf.distribute strategies of §3.3, what a run prints and
leaves behind (:mod:`~vgg_tf.training.reporting`: progress, TensorBoard, metrics.csv),
the Keras callbacks a run takes (:mod:`~vgg_tf.training.callbacks`), and the
keras-tuner search (:mod:`~vgg_tf.training.tuning`, the ``tune`` extra).

May import: :mod:`vgg_tf.nets`, :mod:`vgg_tf.data`, :mod:`vgg_tf.weights`,
:mod:`vgg_tf.workdir`, :mod:`vgg_tf.tables`, :mod:`vgg_tf.progress`.
"""
