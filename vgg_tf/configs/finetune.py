"""Fine-tuning a trained or imported VGG on a folder of your own images.

Starts from a model: the published ImageNet weights by name (``imagenet-D``,
``imagenet-E``, ``imagenet-vgg16_bn``, ...; Keras' cache, or a download), a
training workdir, or a workdir of ``bin/import_weights``. Every layer is copied
but fc8 when the class count differs, which starts afresh. The rate is the
paper's fine-tuning rate (1e-3, §3.1), S is fixed at 256 and the model's own mean
RGB is kept (its convention: the run's net subtracts it). ``--config.freeze``
trains only the FC layers (``convs``) or only fc8 (``all_but_head``). The run's
config.json records what it started from (``started_from``: the file, its URL).

    bin/train --config=finetune --dataset=/data/photos --variant D \\
        --init_from=imagenet-D --workdir=workdirs/photos_D
"""

from vgg_tf.training.recipe import paper_recipe


def get_config():
    config = paper_recipe()
    config.recipe = "finetune"
    config.dataset = ""  # a folder of class subfolders, or a TFDS name: --dataset
    config.init_from_required = (
        "the published ImageNet weights (imagenet-<variant>) or a trained or imported model of "
        "the same variant"
    )
    config.learning_rate = 1e-3
    config.batch_size = 32
    config.epochs = 10
    config.lr_plateau_patience = 1
    config.checkpoint_every_steps = 200
    return config
