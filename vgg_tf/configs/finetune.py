"""Fine-tuning a trained or imported VGG on a folder of your own images.

Starts from a model (a training workdir, or an ImageNet model written by
``bin/import_weights``): every layer is copied but fc8 when the class count
differs, which starts afresh. The rate is the paper's fine-tuning rate (1e-3,
§3.1), S is fixed at 256 and the model's own mean RGB is kept. ``--config.freeze``
trains only the FC layers (``convs``) or only fc8 (``all_but_head``).

    bin/import_weights vgg16_weights_tf_dim_ordering_tf_kernels.h5 --workdir workdirs/imagenet_D
    bin/train --config=finetune --dataset=/data/photos --variant D \\
        --init_from=workdirs/imagenet_D --workdir=workdirs/photos_D
"""

from vgg_tf.training.recipe import paper_recipe


def get_config():
    config = paper_recipe()
    config.recipe = "finetune"
    config.dataset = ""  # a folder of class subfolders, or a TFDS name: --dataset
    config.init_from_required = "a trained or imported model of the same variant"
    config.learning_rate = 1e-3
    config.batch_size = 32
    config.epochs = 10
    config.lr_plateau_patience = 1
    config.checkpoint_every_steps = 200
    return config
