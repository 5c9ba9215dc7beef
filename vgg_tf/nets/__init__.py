"""The networks: Table 1 as data, the one builder, the LRN layer, and the fully-convolutional net.

Owns the configurations A, A-LRN, B, C, D, E (:mod:`~vgg_tf.nets.specs`), the
Keras functional builder (:mod:`~vgg_tf.nets.builder`: architecture only, no
weights), the layers Keras lacks (:mod:`~vgg_tf.nets.layers`), the Dense ->
Conv2D conversion of §3.2 (:mod:`~vgg_tf.nets.fcn`) and the Table 1/2 figures
counted from the built nets (:mod:`~vgg_tf.nets.summary`).

May import: nothing of vgg_tf outside this folder.
"""
