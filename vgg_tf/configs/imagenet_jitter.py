"""ImageNet, S jittered per image in [256, 512], fine-tuned from the S = 384 model (paper §3.1).

    bin/train --config=imagenet_jitter --variant E --init_from=workdirs/s384_E \\
        --workdir=workdirs/jitter_E
"""

from vgg_tf.training.recipe import paper_recipe


def get_config():
    config = paper_recipe()
    config.recipe = "imagenet_jitter"
    config.scale_min, config.scale_max = 256, 512
    config.learning_rate = 1e-3
    config.init_from_required = "the S = 384 run of the same net (recipe imagenet_s384)"
    return config
