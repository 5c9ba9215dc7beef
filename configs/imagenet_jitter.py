"""ImageNet, S jittered per image in [256, 512], fine-tuned from the S = 384 model (paper §3.1).

    bin/train --config=configs/imagenet_jitter.py --variant E --init_from=workdirs/s384_E \\
        --workdir=workdirs/jitter_E
"""

from vgg_tf.config import paper_recipe


def get_config():
    config = paper_recipe()
    config.scale_min, config.scale_max = 256, 512
    config.learning_rate = 1e-3
    return config
