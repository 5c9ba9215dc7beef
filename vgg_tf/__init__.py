"""vgg_tf: the VGG paper (Simonyan & Zisserman, arXiv 1409.1556) in TensorFlow / Keras 3.

The public names load on first use (PEP 562), so ``import vgg_tf`` alone does
not import TensorFlow: the command-line entry points (``vgg_tf.cli``) quiet
TensorFlow's start-up logging before anything imports it. When Keras is already
imported, ``import vgg_tf`` also imports ``vgg_tf.nets.layers`` at once, which
registers the A-LRN layer for ``keras.models.load_model``; ``import
vgg_tf.nets.layers`` does so in any order.

Example:
    >>> import vgg_tf
    >>> model = vgg_tf.VGG16(classes=10, crop_size=32)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

if importlib.util.find_spec("tensorflow") is None:
    raise ImportError(
        "vgg_tf needs TensorFlow, which comes from an extra: pip install 'vgg_tf[cpu]' "
        "(CPU only) or pip install 'vgg_tf[gpu]' (NVIDIA GPUs)."
    )

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "FeatureExtractor": "vgg_tf.evaluation.features",
    "LocalResponseNormalization": "vgg_tf.nets.layers",
    "Localiser": "vgg_tf.inference.localiser",
    "NET_A_TRANSFER_LAYERS": "vgg_tf.nets.specs",
    "PatchMatmulConv2D": "vgg_tf.nets.layers",
    "SPECS": "vgg_tf.nets.specs",
    "VARIANTS": "vgg_tf.nets.specs",
    "VGG": "vgg_tf.weights.applications",
    "VGG11": "vgg_tf.weights.applications",
    "VGG11_LRN": "vgg_tf.weights.applications",
    "VGG13": "vgg_tf.weights.applications",
    "VGG16": "vgg_tf.weights.applications",
    "VGG16_C": "vgg_tf.weights.applications",
    "VGG19": "vgg_tf.weights.applications",
    "count_macs": "vgg_tf.nets.builder",
    "crop_size_of": "vgg_tf.nets.builder",
    "decode_predictions": "vgg_tf.weights.labels",
    "evaluate_localisation": "vgg_tf.evaluation.localisation",
    "export_localisation": "vgg_tf.serving.localisation",
    "export_saved_model": "vgg_tf.serving.export",
    "extract_features": "vgg_tf.evaluation.features",
    "imagenet_class_names": "vgg_tf.weights.labels",
    "import_weights": "vgg_tf.weights.importing",
    "init_from_net_a": "vgg_tf.weights.transfer",
    "load_model": "vgg_tf.weights.loading",
    "preprocess_input": "vgg_tf.weights.applications",
    "read_weights": "vgg_tf.weights.files",
    "to_fully_convolutional": "vgg_tf.nets.fcn",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Imports a public name (or a submodule, ``vgg_tf.nets.builder``) on first access."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if "keras" in sys.modules:
    # TensorFlow is loaded already: registering the LRN layer costs nothing, and
    # `import keras; import vgg_tf; keras.models.load_model(a_lrn)` keeps working.
    importlib.import_module("vgg_tf.nets.layers")
