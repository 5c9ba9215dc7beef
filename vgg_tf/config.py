"""The paper's training recipe (§3.1) as a config, and how to resolve one.

Recipe files in ``configs/`` start from :func:`paper_recipe` and change the
fields that differ; every field can be overridden on the command line
(``--config.<field>=value``).
"""

from __future__ import annotations

import os
import pathlib

import ml_collections

#: Fields that describe where or how fast a run executes, not what it learns:
#: a workdir may be resumed with different values for these.
EXECUTION_FIELDS = ("strategy", "devices", "steps_per_execution", "jit_compile")


def paper_recipe() -> ml_collections.ConfigDict:
    """Training recipe of the paper (§3.1) for ImageNet at fixed S = 256.

    Example:
        >>> config = paper_recipe()
        >>> config.batch_size, config.learning_rate, config.weight_decay
        (256, 0.01, 0.0005)
    """
    c = ml_collections.ConfigDict()
    # Network (vgg_tf.VGG arguments).
    c.variant = "A"
    c.kernel_initializer = "paper"  # N(0, 0.01) weights, zero biases; or "glorot"
    c.init_from = ""  # workdir or .keras of a trained model to start from (§3.1)
    # Init of the layers init_from does not provide ("": kernel_initializer, as in the paper).
    c.new_layer_initializer = ""
    c.batch_norm = False
    c.dropout = 0.5
    c.width_multiplier = 1.0
    # Data.
    c.dataset = "imagenet2012"
    c.data_dir = ml_collections.FieldReference(None, field_type=str)
    c.manual_dir = ml_collections.FieldReference(None, field_type=str)
    c.crop_size = 224
    c.scale_min = 256  # S; scale_min < scale_max jitters S per image
    c.scale_max = 256
    c.mean_rgb = ml_collections.FieldReference(None, field_type=tuple)  # None: ImageNet's, or computed
    c.flip = True  # random horizontal flips
    c.color_shift_std = 0.1  # PCA lighting (Krizhevsky et al. 2012)
    c.cache = False
    # Optimisation.
    c.batch_size = 256  # global, split over replicas
    c.learning_rate = 0.01
    c.momentum = 0.9
    c.weight_decay = 5e-4  # Caffe meaning: the gradient gains 5e-4 * w
    c.epochs = 74
    c.warmup_epochs = 0.0  # linear warm-up (not in the paper; helps deep nets on small data)
    c.lr_drop_factor = 0.1
    c.lr_max_drops = 3
    c.lr_plateau_patience = 2  # epochs without validation improvement before a drop
    c.lr_plateau_min_delta = 1e-3  # improvement in validation top-1 accuracy that counts
    c.lr_plateau_start_epoch = 0  # first epoch the plateau scheduler watches
    # Execution.
    c.strategy = "default"
    c.devices = ""  # comma-separated, for strategy "mirrored"
    c.mixed_precision = ""  # "", "bfloat16" or "float16"
    c.jit_compile = False
    c.steps_per_execution = 1
    c.seed = 0
    c.deterministic = False
    c.checkpoint_every_steps = 1000
    c.keep_checkpoints = 3
    return c


def configs_dir() -> pathlib.Path:
    """The ``configs/`` folder: beside the package in a checkout, else under ``share/``."""
    here = pathlib.Path(__file__).resolve().parent.parent / "configs"
    if here.is_dir():
        return here
    import sys

    return pathlib.Path(sys.prefix) / "share" / "vgg_tf" / "configs"


def default_config_path() -> str:
    """Path of the default recipe (the built-in digits dataset)."""
    return os.fspath(configs_dir() / "digits.py")
