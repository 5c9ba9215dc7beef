"""ImageNet, fixed training scale S = 256 (paper §3.1, Table 3 rows 'S=256').

bin/train --config=imagenet_s256 --variant A --config.manual_dir=/data/imagenet
"""

from vgg_tf.training.recipe import paper_recipe


def get_config():
    return paper_recipe()
