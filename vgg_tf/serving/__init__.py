"""Serving: SavedModels for TensorFlow Serving, and answering image files.

Owns the classifier's export (:mod:`~vgg_tf.serving.export`: a batch-safe
``serving_default`` that answers a bad image in its own row, a strict one, any
``tf.io.gfile`` path), the localisation export (:mod:`~vgg_tf.serving.localisation`),
the warm-up requests TensorFlow Serving replays at load time, written into every
export (:mod:`~vgg_tf.serving.warmup`), and ``bin/predict``'s answers, heatmaps and
boxes (:mod:`~vgg_tf.serving.predict`).

May import: :mod:`vgg_tf.inference` and everything below it; not evaluation or
the command line.
"""
