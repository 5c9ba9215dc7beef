"""The published ImageNet weight files: where they are, their checksums, Keras' cache.

Two weight sets are published for the paper's networks, each file with the
input convention of its source (:mod:`vgg_tf.weights.conventions`):

* ``"imagenet"``, keras.applications' choice for D and E (the authors' Caffe
  weights, ``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` ...), and for A, B
  and the batch-norm nets, which keras.applications does not publish,
  torchvision's weights as timm publishes them (below);
* ``"tv_in1k"``, timm's name for torchvision's ImageNet weights: one
  ``model.safetensors`` per net on the Hugging Face hub
  (``https://huggingface.co/timm/<name>.tv_in1k``), for A, B, D, E with and
  without batch norm. safetensors needs no PyTorch.

Fetching follows keras.applications: ``keras.utils.get_file`` with the
published URL and checksum into Keras' cache (``$KERAS_HOME/models``, default
``~/.keras/models``), so a file already there is used offline.

Example:
    >>> imagenet_weights_file("D").fname
    'vgg16_weights_tf_dim_ordering_tf_kernels.h5'
    >>> imagenet_weights_file("A", batch_norm=True).fname
    'vgg11_bn.tv_in1k.safetensors'
"""

from __future__ import annotations

import dataclasses
import os

import keras

from vgg_tf.nets import specs
from vgg_tf.weights.conventions import InputConvention, convention_for

_KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_HUGGING_FACE = "https://huggingface.co/timm/"

#: The weight sets ``weights=`` accepts by name.
WEIGHT_SETS = ("imagenet", "tv_in1k")


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """A published weight file: its cache name, URL, checksum and input convention.

    Attributes:
        fname: File name in Keras' cache (``~/.keras/models/<fname>``).
        url: Where it is published.
        file_hash: The md5 or sha256 that ``keras.utils.get_file`` verifies, or
            None where none is recorded (the file is then taken unverified).
        source_format: "keras_applications" or "timm"
            (:data:`vgg_tf.weights.conventions.CONVENTIONS`).
    """

    fname: str
    url: str
    file_hash: str | None
    source_format: str

    @property
    def convention(self) -> InputConvention:
        """How the file's first convolution wants its pixels."""
        return convention_for(self.source_format)

    @property
    def cache_path(self) -> str:
        """Where Keras' cache keeps the file (``$KERAS_HOME/models/<fname>``), present or not."""
        return os.path.join(os.path.expanduser(_keras_cache_dir()), "models", self.fname)


def _keras_file(name: str, md5: str) -> WeightsFile:
    folder = name.split("_")[0]
    return WeightsFile(name, f"{_KERAS_APPLICATIONS}{folder}/{name}", md5, "keras_applications")


def _timm_file(name: str, sha256: str | None = None) -> WeightsFile:
    repo = f"{name}.tv_in1k"
    return WeightsFile(
        f"{repo}.safetensors",
        f"{_HUGGING_FACE}{repo}/resolve/main/model.safetensors",
        sha256,
        "timm",
    )


#: ``(variant, include_top)`` -> keras.applications' file (md5s from keras' vgg16.py / vgg19.py).
KERAS_APPLICATIONS_FILES: dict[tuple[str, bool], WeightsFile] = {
    ("D", True): _keras_file(
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5", "64373286793e3c8b2b4e3219cbf3544b"
    ),
    ("D", False): _keras_file(
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"
    ),
    ("E", True): _keras_file(
        "vgg19_weights_tf_dim_ordering_tf_kernels.h5", "cbe5617147190e668d6c5d5026f83318"
    ),
    ("E", False): _keras_file(
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "253f8cb515780f3b799900260a226db6"
    ),
}

#: ``(variant, batch_norm)`` -> timm's ``model.safetensors`` (one file, with and without the
#: top). Checksums: the sha256 of the hub's vgg16.tv_in1k and vgg11.tv_in1k files as other
#: projects pin them (vgg16's in two of them); the other six are not recorded here, so
#: those files are taken unverified.
TIMM_FILES: dict[tuple[str, bool], WeightsFile] = {
    ("A", False): _timm_file(
        "vgg11", "682c023808812148d4e60c76d80ad83dbeaf5d50eb1a952a0b836895003151e5"
    ),
    ("B", False): _timm_file("vgg13"),
    ("D", False): _timm_file(
        "vgg16", "57b026918159a6bf9faf8405c3a551903768e7138989d9c6224a14227203fad8"
    ),
    ("E", False): _timm_file("vgg19"),
    ("A", True): _timm_file("vgg11_bn"),
    ("B", True): _timm_file("vgg13_bn"),
    ("D", True): _timm_file("vgg16_bn"),
    ("E", True): _timm_file("vgg19_bn"),
}


def _available() -> str:
    nets = sorted({f"{v}{' (batch_norm)' if bn else ''}" for v, bn in TIMM_FILES})
    return ", ".join(nets)


def imagenet_weights_file(
    variant: str, include_top: bool = True, batch_norm: bool = False, weight_set: str = "imagenet"
) -> WeightsFile:
    """The published file ``weights=weight_set`` reads for this network.

    Args:
        variant: A network of Table 1 ("A" ... "E").
        include_top: Whether the fully-connected layers are wanted (keras.applications
            publishes D and E without them too; timm's files always hold them).
        batch_norm: The batch-norm version of the net.
        weight_set: "imagenet" (keras.applications' files for D and E, timm's for
            the others) or "tv_in1k" (timm's for all).

    Raises:
        ValueError: An unknown weight set, or none published for the network (A-LRN, C).

    Example:
        >>> imagenet_weights_file("D", weight_set="tv_in1k").url
        'https://huggingface.co/timm/vgg16.tv_in1k/resolve/main/model.safetensors'
    """
    specs.get_spec(variant)  # an unknown name gets the list of valid ones
    if weight_set not in WEIGHT_SETS:
        raise ValueError(
            f"Unknown weight set {weight_set!r}; expected one of {', '.join(WEIGHT_SETS)}."
        )
    keras_key, key = (variant, bool(include_top)), (variant, bool(batch_norm))
    if weight_set == "imagenet" and not batch_norm and keras_key in KERAS_APPLICATIONS_FILES:
        return KERAS_APPLICATIONS_FILES[keras_key]
    if key not in TIMM_FILES:
        raise ValueError(
            f"No ImageNet weights are published for net {variant}"
            f"{' with batch norm' if batch_norm else ''}; weights={weight_set!r} is available "
            f"for {_available()}."
        )
    return TIMM_FILES[key]


def imagenet_mean_rgb(
    variant: str, batch_norm: bool = False, weight_set: str = "imagenet"
) -> tuple[float, float, float]:
    """The mean RGB a ``weights="imagenet"`` model takes: subtract it from RGB in [0, 255].

    D and E (keras.applications' Caffe weights): :data:`vgg_tf.data.constants.IMAGENET_MEAN_RGB`;
    A, B and the batch-norm nets, and every ``"tv_in1k"`` net (torchvision's):
    255 x torchvision's mean.

    Example:
        >>> imagenet_mean_rgb("E"), imagenet_mean_rgb("E", batch_norm=True)
        ((123.68, 116.779, 103.939), (123.675, 116.28, 103.53))
    """
    return imagenet_weights_file(variant, True, batch_norm, weight_set).convention.mean_rgb


def _keras_cache_dir() -> str:
    # As keras.config at import, but read now: KERAS_HOME set later counts too.
    if os.environ.get("KERAS_HOME"):
        return os.environ["KERAS_HOME"]
    home = os.path.expanduser("~")
    return os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")


def imagenet_weights_path(
    variant: str, include_top: bool = True, batch_norm: bool = False, weight_set: str = "imagenet"
) -> str:
    """The local path of the published file of a network, downloaded into Keras' cache if absent.

    As keras.applications: ``keras.utils.get_file`` with the published URL and
    checksum, into ``$KERAS_HOME/models`` (default ``~/.keras/models``), so a file
    already there is used offline.

    Raises:
        ValueError: No weights are published for the network, or the file is
            neither cached nor downloadable (the message names the file, the URL
            and where to put it).
    """
    file = imagenet_weights_file(variant, include_top, batch_norm, weight_set)
    cache_dir, target = _keras_cache_dir(), file.cache_path
    try:
        return keras.utils.get_file(
            file.fname,
            file.url,
            cache_subdir="models",
            file_hash=file.file_hash,
            cache_dir=cache_dir,
        )
    except Exception as error:  # get_file raises a bare Exception for a failed fetch.
        net = f"{specs.SPECS[variant].builder_name}{' with batch norm' if batch_norm else ''}"
        raise ValueError(
            f"weights={weight_set!r} for {net} (net {variant}) needs {file.fname}, which is not "
            f"in Keras' cache and could not be downloaded from {file.url} ({error}). Download it "
            f"where there is network and put it at {target} (Keras' cache: $KERAS_HOME/models, "
            "default ~/.keras/models), or pass the file's path to vgg_tf.import_weights or "
            "bin/import_weights."
        ) from error
