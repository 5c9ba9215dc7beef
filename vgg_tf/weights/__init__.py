"""Weights: the files users have, the published sets, and loading a model to run.

Owns the readers of keras.applications, torchvision and timm files
(:mod:`~vgg_tf.weights.files`), the published files and Keras' cache
(:mod:`~vgg_tf.weights.published`), the keras.applications-style builders with
``weights=`` (:mod:`~vgg_tf.weights.applications`), copying weights by layer
name and net A's transfer (:mod:`~vgg_tf.weights.transfer`), each weight set's
input convention (:mod:`~vgg_tf.weights.conventions`), a workdir from imported
weights (:mod:`~vgg_tf.weights.importing`), a model with its training facts
(:mod:`~vgg_tf.weights.trained`), the one model loader for every command
(:mod:`~vgg_tf.weights.loading`) and ImageNet's class names
(:mod:`~vgg_tf.weights.labels`).

May import: :mod:`vgg_tf.nets`, :mod:`vgg_tf.data`, :mod:`vgg_tf.workdir`.
"""
