"""Localisation (Appendix A) of natural images at S = 256, from a classifier of the same scale.

The paper's localisation ConvNet is net D with its last layer predicting a box
(SCR: 4 numbers; PCR: 4 per class), trained with a Euclidean loss at a fixed
S of 256 or 384, starting from the classifier trained at the same scale (all
layers but the last), at learning rate 1e-3. Its final entry is PCR with every
layer fine-tuned (Table 8: PCR beat SCR, and fine-tuning all layers beat the
FC layers alone), which this recipe is: ``head = "pcr"``, ``freeze = "none"``.
``--head scr`` gives SCR.

The dataset needs boxes: ``voc/2007`` by default (an image's class is that of
its largest object; :mod:`vgg_tf.data.box_records`), or ``caltech_birds2011``;
the paper's is ILSVRC's localisation set (``imagenet2012`` with its
localisation files, BUILD.md "Localisation").

    bin/train --config localisation_s256 --init_from workdirs/voc_D_s256
    bin/train --config localisation_s256 --config.scale_min=384 --config.scale_max=384 ...
"""

from vgg_tf.training.recipe import paper_recipe


def get_config():
    config = paper_recipe()
    config.recipe = "localisation_s256"
    config.task = "localisation"
    config.head = "pcr"  # the paper's final entry (Table 8)
    config.variant = "D"
    config.dataset = "voc/2007"
    config.init_from_required = "a classifier trained at S = 256 on the same classes"
    config.learning_rate = 1e-3  # Appendix A
    config.epochs = 30
    return config
