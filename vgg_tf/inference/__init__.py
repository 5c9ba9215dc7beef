"""Inference: the paper's test protocol and the localiser, for evaluation and serving alike.

Owns dense evaluation, multi-crop, scales and flips (§3.2,
:mod:`~vgg_tf.inference.protocol`) and Appendix A's dense localisation with
greedy merging (:mod:`~vgg_tf.inference.localiser`): the in-graph functions
that ``bin/evaluate``, ``bin/predict`` and the exported SavedModels share, so
they give the same answers.

May import: :mod:`vgg_tf.nets`, :mod:`vgg_tf.data`, :mod:`vgg_tf.weights`,
:mod:`vgg_tf.workdir` (not training: a model to run comes from its workdir).
"""
