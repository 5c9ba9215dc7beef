"""bin/import_weights: a workdir from published VGG weights, taken like a trained run.

    bin/import_weights vgg16_weights_tf_dim_ordering_tf_kernels.h5 --workdir workdirs/imagenet_D
    bin/import_weights model.safetensors --workdir workdirs/vgg11_bn --variant vgg11_bn   # timm
    bin/import_weights vgg13-19584684.pth --workdir workdirs/imagenet_B                  # needs torch
    bin/import_weights imagenet --variant E --workdir workdirs/imagenet_E   # Keras' cache or download

SOURCE is a keras.applications .h5 (Keras 2 layout, Caffe weights), a torchvision
.pth state dict, a timm model.safetensors (or its directory), or ``imagenet``
(the file ``VGG(weights="imagenet")`` reads). The variant, batch norm and class
count are read from the file; ``--variant`` checks them. The workdir gets
``model.keras`` and ``config.json`` (the source's mean RGB, crop 224, S = 256, so
test scales 256 and 224/256/288, the 1,000 class names), so that bin/evaluate,
bin/export, bin/predict and ``bin/train --init_from`` take it. Its ``model.keras``
takes RGB pixels in [0, 255] and subtracts the source's mean itself, as a trained
run's does: ``keras.models.load_model`` alone classifies photos with it.

The published weights need no import step: ``--model imagenet-D`` and
``--init_from imagenet-D`` take them by name.
"""

from __future__ import annotations

import sys

from absl import app, flags

from vgg_tf.cli.entry import run_app

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory to write.", required=True)
_VARIANT = flags.DEFINE_string(
    "variant",
    None,
    "Network the file must hold: A, B, D, E (or vgg11 ... vgg19, '_bn' for "
    "batch norm); needed with SOURCE=imagenet.",
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a run already in the workdir.")


def main(argv):
    if len(argv) != 2:
        raise app.UsageError(
            "Expected one SOURCE (a weight file, or 'imagenet'); got "
            f"{len(argv) - 1}: bin/import_weights SOURCE --workdir DIR"
        )
    from vgg_tf.weights import importing as weights

    try:
        trained = weights.import_to_workdir(
            argv[1], _WORKDIR.value, _VARIANT.value, overwrite=_OVERWRITE.value
        )
    except (ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    config = trained.config
    spec = f"{config['variant']}{' with batch norm' if config['batch_norm'] else ''}"
    print(f"workdir: {_WORKDIR.value}")
    print(
        f"imported net {spec} from {config['weights_format']} file {config['weights_source']}: "
        f"{trained.model.count_params():,} parameters, {trained.num_classes} classes"
    )
    print(
        f"mean RGB {tuple(config['mean_rgb'])}; crop {trained.crop_size}; test scales "
        f"{trained.single_scale()[0]} (single), {'/'.join(map(str, trained.multi_scales()))} "
        "(multi)"
    )


def run():
    """Console entry point (``vgg-import-weights``)."""
    run_app(main, __doc__)
