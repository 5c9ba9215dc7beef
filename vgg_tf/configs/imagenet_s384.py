"""ImageNet, fixed S = 384, initialised from the S = 256 model with lr 1e-3 (paper §3.1).

    bin/train --config=imagenet_s384 --variant D --init_from=workdirs/s256_D \\
        --workdir=workdirs/s384_D
"""

from vgg_tf.training.recipe import paper_recipe


def get_config():
    config = paper_recipe()
    config.recipe = "imagenet_s384"
    config.scale_min = config.scale_max = 384
    config.learning_rate = 1e-3
    config.init_from_required = "the S = 256 run of the same net (recipe imagenet_s256)"
    return config
