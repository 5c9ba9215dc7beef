"""Serving: SavedModels for TensorFlow Serving, and answering image files.

Owns the classifier's export (:mod:`~vgg_tf.serving.export`), the localisation
export (:mod:`~vgg_tf.serving.localisation`) and ``bin/predict``'s answers,
heatmaps and boxes (:mod:`~vgg_tf.serving.predict`).

May import: :mod:`vgg_tf.inference` and everything below it; not evaluation or
the command line.
"""
