"""The data: where images come from, every operation on an image, and the tf.data streams.

Owns the sources (TFDS, folders, the built-in datasets of :mod:`~vgg_tf.data.builtin`),
every image operation once (:mod:`~vgg_tf.data.images`: sniff, header size,
limits, decode, fused crop-decode), the training and evaluation streams of §3.1
(:mod:`~vgg_tf.data.pipeline`), pixel statistics and ImageNet's constants, and
boxes with their records (Appendix A).

May import: :mod:`vgg_tf.workdir` only (nothing of the nets, weights or above).
"""
