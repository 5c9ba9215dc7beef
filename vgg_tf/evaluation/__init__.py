"""Evaluation: the tables of the paper's results, and the transfer features of Appendix B.

Owns top-1/top-5 error per protocol and fusion (:mod:`~vgg_tf.evaluation.classification`),
ILSVRC's localisation error (:mod:`~vgg_tf.evaluation.localisation`), the
image descriptor of Appendix B (:mod:`~vgg_tf.evaluation.features`), its one-vs-rest
linear SVMs (:mod:`~vgg_tf.evaluation.linear_svm`) and measures (VOC's mean AP,
Caltech's mean class recall: :mod:`~vgg_tf.evaluation.measures`), and the split an
evaluation reads (:mod:`~vgg_tf.evaluation.datasets`).

May import: :mod:`vgg_tf.inference` and everything below it (training's tasks
and metrics, weights, nets, data, workdir, progress); not serving or the command line.
"""
