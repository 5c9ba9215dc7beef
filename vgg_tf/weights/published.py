"""The published ImageNet weight files: where they are, their checksums, Keras' cache.

``weights="imagenet"`` follows keras.applications: ``keras.utils.get_file``
with the published URL and checksum into Keras' cache (``$KERAS_HOME/models``,
default ``~/.keras/models``), so a file already there is used offline. D and E
come from keras.applications' files, A, B and the batch-norm nets from
torchvision's (which need PyTorch to read).

Example:
    >>> imagenet_weights_file("D").fname
    'vgg16_weights_tf_dim_ordering_tf_kernels.h5'
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import keras

from vgg_tf.nets import specs
from vgg_tf.weights.files import MEAN_RGB, torch_available, torch_missing_error

_KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_TORCHVISION = "https://download.pytorch.org/models/"


# --- The published ImageNet files ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """A published weight file: its cache name, URL and checksum.

    Attributes:
        fname: File name in Keras' cache (``~/.keras/models/<fname>``).
        url: Where it is published.
        file_hash: md5 that ``keras.utils.get_file`` verifies (keras.applications'),
            or None.
        sha256_prefix: The first hex digits of the sha256 (torchvision's file
            names end with them), or None.
        source_format: One of :data:`FORMATS`.
    """

    fname: str
    url: str
    file_hash: str | None
    sha256_prefix: str | None
    source_format: str


def _keras_file(name: str, md5: str) -> WeightsFile:
    folder = name.split("_")[0]
    return WeightsFile(
        name, f"{_KERAS_APPLICATIONS}{folder}/{name}", md5, None, "keras_applications"
    )


def _torchvision_file(name: str) -> WeightsFile:
    return WeightsFile(name, _TORCHVISION + name, None, name.rsplit("-", 1)[1][:-4], "torchvision")


#: ``(variant, batch_norm, include_top)`` -> the file ``weights="imagenet"`` reads.
#: D and E come from keras.applications (md5s from keras' own vgg16.py / vgg19.py),
#: A, B and every batch-norm net from torchvision (one file, with and without the top).
IMAGENET_FILES: dict[tuple[str, bool, bool], WeightsFile] = {
    ("D", False, True): _keras_file(
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5", "64373286793e3c8b2b4e3219cbf3544b"
    ),
    ("D", False, False): _keras_file(
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"
    ),
    ("E", False, True): _keras_file(
        "vgg19_weights_tf_dim_ordering_tf_kernels.h5", "cbe5617147190e668d6c5d5026f83318"
    ),
    ("E", False, False): _keras_file(
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "253f8cb515780f3b799900260a226db6"
    ),
}
for _variant, _bn, _name in (
    ("A", False, "vgg11-8a719046.pth"),
    ("B", False, "vgg13-19584684.pth"),
    ("A", True, "vgg11_bn-6002323d.pth"),
    ("B", True, "vgg13_bn-abd245e5.pth"),
    ("D", True, "vgg16_bn-6c64b313.pth"),
    ("E", True, "vgg19_bn-c79401a0.pth"),
):
    for _top in (True, False):
        IMAGENET_FILES[(_variant, _bn, _top)] = _torchvision_file(_name)


def imagenet_weights_file(
    variant: str, include_top: bool = True, batch_norm: bool = False
) -> WeightsFile:
    """The published file ``weights="imagenet"`` reads for this network.

    Raises:
        ValueError: No ImageNet weights are published for the network (A-LRN, C).
    """
    specs.get_spec(variant)  # an unknown name gets the list of valid ones
    try:
        return IMAGENET_FILES[(variant, bool(batch_norm), bool(include_top))]
    except KeyError:
        available = sorted({f"{v}{' (batch_norm)' if bn else ''}" for v, bn, _ in IMAGENET_FILES})
        raise ValueError(
            f"No ImageNet weights are published for net {variant}"
            f"{' with batch norm' if batch_norm else ''}; weights='imagenet' is available for "
            f"{', '.join(available)}."
        ) from None


def imagenet_mean_rgb(variant: str, batch_norm: bool = False) -> tuple[float, float, float]:
    """The mean RGB a ``weights="imagenet"`` model takes: subtract it from RGB in [0, 255].

    D and E (keras.applications' Caffe weights): :data:`vgg_tf.data.constants.IMAGENET_MEAN_RGB`; A, B and
    the batch-norm nets (torchvision's): :data:`TORCHVISION_MEAN_RGB`.

    Example:
        >>> imagenet_mean_rgb("E"), imagenet_mean_rgb("E", batch_norm=True)
        ((123.68, 116.779, 103.939), (123.675, 116.28, 103.53))
    """
    return MEAN_RGB[imagenet_weights_file(variant, True, batch_norm).source_format]


def _keras_cache_dir() -> str:
    # As keras.config at import, but read now: KERAS_HOME set later counts too.
    if os.environ.get("KERAS_HOME"):
        return os.environ["KERAS_HOME"]
    home = os.path.expanduser("~")
    return os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")


def imagenet_weights_path(variant: str, include_top: bool = True, batch_norm: bool = False) -> str:
    """The local path of the ImageNet file of a network, downloaded into Keras' cache if absent.

    As keras.applications: ``keras.utils.get_file`` with the published URL and
    checksum, into ``$KERAS_HOME/models`` (default ``~/.keras/models``), so a file
    already there is used offline.

    Raises:
        ValueError: No weights are published for the network, or the file is
            neither cached nor downloadable (the message names the file, the URL
            and where to put it).
        MissingDependencyError: The file is torchvision's and PyTorch is not
            installed (checked before any download).
    """
    file = imagenet_weights_file(variant, include_top, batch_norm)
    cache_dir = _keras_cache_dir()
    target = os.path.join(os.path.expanduser(cache_dir), "models", file.fname)
    if file.source_format == "torchvision" and not torch_available():
        net = (
            f"{specs.SPECS[variant].builder_name}{' with batch norm' if batch_norm else ''} "
            f"(net {variant})"
        )
        raise torch_missing_error(file.fname, net, file.url)
    try:
        path = keras.utils.get_file(
            file.fname,
            file.url,
            cache_subdir="models",
            file_hash=file.file_hash,
            cache_dir=cache_dir,
        )
    except Exception as error:  # get_file raises a bare Exception for a failed fetch.
        raise ValueError(
            f"weights='imagenet' for {specs.SPECS[variant].builder_name} (net {variant}) needs "
            f"{file.fname}, which is not in Keras' cache and could not be downloaded from "
            f"{file.url} ({error}). Download it where there is network and put it at {target} "
            "(Keras' cache: $KERAS_HOME/models, default ~/.keras/models), or pass the file's "
            "path to vgg_tf.import_weights or bin/import_weights."
        ) from error
    if file.sha256_prefix and not _sha256(path).startswith(file.sha256_prefix):
        raise ValueError(
            f"{path!r} is not the published {file.fname} (its sha256 does not "
            f"start with {file.sha256_prefix}): delete it and download {file.url} "
            "again."
        )
    return path


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
