"""Evaluation: the tables of the paper's results, and the transfer features of Appendix B.

Owns top-1/top-5 error per protocol and fusion (:mod:`~vgg_tf.evaluation.classification`),
ILSVRC's localisation error (:mod:`~vgg_tf.evaluation.localisation`) and the
image descriptor with its linear SVM (:mod:`~vgg_tf.evaluation.features`).

May import: :mod:`vgg_tf.inference` and everything below it (training's tasks
and metrics, weights, nets, data, workdir); not serving or the command line.
"""
