"""The built-in default: the 1,797 scikit-learn digits, sized for 2 CPU cores.

Upscaled from 8x8 to S in [32, 48] (jittered, as the paper's multi-scale
training) with 32x32 crops. Glorot initialisation, the paper's own
alternative to pre-training (§3.1): with N(0, 0.01) the signal vanishes through
the layers at this scale and A stays at chance. The deep nets (B-E, started
from a trained A with --init_from) train with a short warm-up.

    bin/train --variant A
    bin/train --variant E --init_from workdirs/digits_A
"""

from vgg_tf.config import paper_recipe


def get_config():
    config = paper_recipe()
    config.dataset = "digits"
    config.kernel_initializer = "glorot"
    config.crop_size = 32
    config.scale_min, config.scale_max = 32, 48
    config.flip = False  # a mirrored digit is another glyph
    config.batch_size = 64
    config.epochs = 12
    config.warmup_epochs = 1.0
    config.checkpoint_every_steps = 10
    return config
