"""Pretrained weights from the files users already have: keras.applications, torchvision, timm.

Three published layouts hold VGG weights trained on ImageNet; each is read
offline, checked, and converted to vgg_tf's layers and input convention (RGB
from which a mean RGB has been subtracted, the paper's §2.1):

* **keras.applications** ``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` and
  ``vgg19_...`` (and the ``_notop`` files): Keras 2's HDF5 layout (the file's
  ``layer_names`` attribute, a group per layer whose ``weight_names`` attribute
  lists kernel and bias in order). They are the authors' Caffe weights, taking
  BGR minus [103.939, 116.779, 123.68]: reversing the input-channel axis of
  ``block1_conv1``'s kernel makes them take RGB minus :data:`CAFFE_MEAN_RGB`,
  exactly. ``fc1``/``fc2``/``predictions`` are ``fc6``/``fc7``/``fc8``.
* **torchvision** state dicts (``vgg11-8a719046.pth`` ... ``vgg19_bn-c79401a0.pth``):
  ``features.N.weight`` ``(out, in, kh, kw)`` becomes Keras' ``(kh, kw, in,
  out)``; batch norm ``features.N.{weight, bias, running_mean, running_var}``
  becomes gamma, beta, moving mean and variance (torch's epsilon 1e-5, set on
  the Keras layers); ``classifier.0/3/6`` (Linear, ``(out, in)``) are fc6, fc7,
  fc8, and classifier.0's input is torch's ``(c, h, w)`` flatten of the 7x7
  map, reordered to Keras' ``(h, w, c)``. Reading a ``.pth`` needs PyTorch; the
  same weights come as timm's safetensors files, which need only numpy.
* **timm** ``model.safetensors`` of ``vgg11.tv_in1k`` ... ``vgg19_bn.tv_in1k``
  (torchvision's weights): ``features.*`` as torchvision; fc6 is
  ``pre_logits.fc1`` stored as a ``(4096, 512, 7, 7)`` conv, fc7
  ``pre_logits.fc2`` a ``(4096, 4096, 1, 1)`` conv, fc8 ``head.fc``.

torchvision feeds ``(x / 255 - mean) / std`` per RGB channel; vgg_tf feeds
``x - 255 * mean``, which is the same tensor times ``255 * std``. So dividing
``block1_conv1``'s kernel by ``255 * std`` per input channel gives exactly the
same network with mean RGB :data:`TORCHVISION_MEAN_RGB` (zero padding still
pads the mean pixel, as in torch).

The variant (A, B, D, E; C too for a file of vgg_tf's names), batch norm, the
presence of the top, the class count and the width (vgg_tf's
``width_multiplier``; 1 for the published files) are read from the file; a
``variant=`` argument checks them. Anything else gets an error naming the file
and what was expected.

The imported model takes RGB minus the mean of its source: read it from
:func:`read_weights` (``.mean_rgb``), :func:`imagenet_mean_rgb`, or the
``config.json`` that :func:`import_to_workdir` writes.

Example:
    >>> model = import_weights("vgg16_weights_tf_dim_ordering_tf_kernels.h5")  # doctest: +SKIP
    >>> imagenet_mean_rgb("D"), imagenet_mean_rgb("A")
    ((123.68, 116.779, 103.939), (123.675, 116.28, 103.53))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import struct
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from vgg_tf import models

#: Mean RGB of the Caffe weights in keras.applications' files (their BGR mean reversed).
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
#: torchvision's input normalisation: RGB in [0, 1], minus mean, over std.
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
#: The mean RGB of torchvision's and timm's weights in vgg_tf's convention (255 * mean).
TORCHVISION_MEAN_RGB = (123.675, 116.28, 103.53)
#: torch's BatchNorm2d epsilon (Keras' default is 1e-3); imported BN layers get it.
TORCH_BN_EPSILON = 1e-5
#: Where a file's weights come from, and the mean RGB the imported model takes.
FORMATS = ("keras_applications", "torchvision", "timm")
MEAN_RGB = {"keras_applications": CAFFE_MEAN_RGB, "torchvision": TORCHVISION_MEAN_RGB,
            "timm": TORCHVISION_MEAN_RGB}
#: The spatial side fc6 sees in every published file (a 224 crop after five poolings).
FC6_SIDE = 7

_KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_TORCHVISION = "https://download.pytorch.org/models/"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TORCH_NAMES = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}
_FC_ALIASES = {"fc1": "fc6", "fc2": "fc7", "predictions": "fc8",
               "fc6": "fc6", "fc7": "fc7", "fc8": "fc8"}
_TOP = ("fc6", "fc7", "fc8")


class MissingDependencyError(ImportError, ValueError):
    """A weight file needs a package that is not installed (PyTorch for ``.pth``).

    Both an ImportError and a ValueError, so that callers reporting bad inputs
    (``except ValueError``) report this one too.
    """


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
    return WeightsFile(name, f"{_KERAS_APPLICATIONS}{folder}/{name}", md5, None,
                       "keras_applications")


def _torchvision_file(name: str) -> WeightsFile:
    return WeightsFile(name, _TORCHVISION + name, None, name.rsplit("-", 1)[1][:-4], "torchvision")


#: ``(variant, batch_norm, include_top)`` -> the file ``weights="imagenet"`` reads.
#: D and E come from keras.applications (md5s from keras' own vgg16.py / vgg19.py),
#: A, B and every batch-norm net from torchvision (one file, with and without the top).
IMAGENET_FILES: dict[tuple[str, bool, bool], WeightsFile] = {
    ("D", False, True): _keras_file("vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                                    "64373286793e3c8b2b4e3219cbf3544b"),
    ("D", False, False): _keras_file("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                     "6d6bbae143d832006294945121d1f1fc"),
    ("E", False, True): _keras_file("vgg19_weights_tf_dim_ordering_tf_kernels.h5",
                                    "cbe5617147190e668d6c5d5026f83318"),
    ("E", False, False): _keras_file("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                     "253f8cb515780f3b799900260a226db6"),
}
for _variant, _bn, _name in (
    ("A", False, "vgg11-8a719046.pth"), ("B", False, "vgg13-19584684.pth"),
    ("A", True, "vgg11_bn-6002323d.pth"), ("B", True, "vgg13_bn-abd245e5.pth"),
    ("D", True, "vgg16_bn-6c64b313.pth"), ("E", True, "vgg19_bn-c79401a0.pth"),
):
    for _top in (True, False):
        IMAGENET_FILES[(_variant, _bn, _top)] = _torchvision_file(_name)


def parse_variant(name: str) -> tuple[str, bool | None]:
    """``(variant, batch_norm)`` from "D", "VGG16", "vgg16" or "vgg16_bn" (batch_norm None: unsaid).

    Example:
        >>> parse_variant("vgg16_bn"), parse_variant("VGG19"), parse_variant("A-LRN")
        (('D', True), ('E', None), ('A-LRN', None))
    """
    text = str(name).strip()
    batch_norm = None
    if text.lower().endswith("_bn"):
        text, batch_norm = text[:-3], True
    if text in models.SPECS:
        return text, batch_norm
    for variant, spec in models.SPECS.items():
        if text.lower() == spec.builder_name.lower():
            return variant, batch_norm
    names = ", ".join(f"{v} ({s.builder_name})" for v, s in models.SPECS.items())
    raise ValueError(f"Unknown VGG variant {name!r}; expected one of {names}, with '_bn' "
                     "for batch norm (vgg16_bn).")


def imagenet_weights_file(variant: str, include_top: bool = True,
                          batch_norm: bool = False) -> WeightsFile:
    """The published file ``weights="imagenet"`` reads for this network.

    Raises:
        ValueError: No ImageNet weights are published for the network (A-LRN, C).
    """
    models.get_spec(variant)  # an unknown name gets the list of valid ones
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

    D and E (keras.applications' Caffe weights): :data:`CAFFE_MEAN_RGB`; A, B and
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


def _timm_hint(name: str | None) -> str:
    timm = f"{name}.tv_in1k" if name else "vgg11.tv_in1k ... vgg19_bn.tv_in1k"
    return (f"timm's {timm} {'holds' if name else 'hold'} the same weights as safetensors, "
            f"which need no torch (https://huggingface.co/timm/"
            f"{name + '.tv_in1k' if name else '<name>'}, file model.safetensors): pass its path "
            "as weights= or to vgg_tf.import_weights / bin/import_weights")


def _torch_missing(path: str, net: str | None = None, url: str | None = None
                   ) -> MissingDependencyError:
    match = re.match(r"(vgg\d\d(?:_bn)?)", os.path.basename(path))
    what = (f"weights='imagenet' for {net} is torchvision's {url}, a PyTorch file" if url
            else f"{path!r} is a PyTorch file (a torchvision state dict)")
    return MissingDependencyError(
        f"{what}; reading it needs PyTorch, which is not installed. Either pip install torch "
        "(the CPU wheel is enough), or use "
        f"safetensors: {_timm_hint(match.group(1) if match else None)}, or convert the file "
        "once where torch is installed: python -c \"import torch, safetensors.torch as st; "
        f"st.save_file(torch.load('{os.path.basename(path)}'), 'vgg.safetensors')\"."
    )


def _torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def imagenet_weights_path(variant: str, include_top: bool = True,
                          batch_norm: bool = False) -> str:
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
    if file.source_format == "torchvision" and not _torch_available():
        net = (f"{models.SPECS[variant].builder_name}{' with batch norm' if batch_norm else ''} "
               f"(net {variant})")
        raise _torch_missing(file.fname, net, file.url)
    try:
        path = keras.utils.get_file(file.fname, file.url, cache_subdir="models",
                                    file_hash=file.file_hash, cache_dir=cache_dir)
    except Exception as error:  # get_file raises a bare Exception for a failed fetch.
        raise ValueError(
            f"weights='imagenet' for {models.SPECS[variant].builder_name} (net {variant}) needs "
            f"{file.fname}, which is not in Keras' cache and could not be downloaded from "
            f"{file.url} ({error}). Download it where there is network and put it at {target} "
            "(Keras' cache: $KERAS_HOME/models, default ~/.keras/models), or pass the file's "
            "path to vgg_tf.import_weights or bin/import_weights."
        ) from error
    if file.sha256_prefix and not _sha256(path).startswith(file.sha256_prefix):
        raise ValueError(f"{path!r} is not the published {file.fname} (its sha256 does not "
                         f"start with {file.sha256_prefix}): delete it and download {file.url} "
                         "again.")
    return path


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- Reading files -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImportedWeights:
    """A weight file's contents in vgg_tf's layer names, layout and input convention.

    Attributes:
        layers: ``{layer_name: [arrays]}`` as :func:`vgg_tf.models.load_layer_weights`
            takes it (Keras shapes; block1_conv1 already takes RGB minus ``mean_rgb``).
        variant: Network of the paper's Table 1.
        batch_norm: Whether the convolutions are followed by batch norm.
        include_top: Whether ``layers`` holds fc6, fc7 and fc8.
        classes: fc8's outputs (None without the top).
        width_multiplier: vgg_tf's width factor (1.0 for the published files).
        mean_rgb: The mean RGB the model takes.
        source_format: One of :data:`FORMATS`.
        source: The file read.
    """

    layers: dict[str, list[np.ndarray]]
    variant: str
    batch_norm: bool
    include_top: bool
    classes: int | None
    width_multiplier: float
    mean_rgb: tuple[float, float, float]
    source_format: str
    source: str

    @property
    def batch_norm_epsilon(self) -> float:
        """torch's 1e-5 for torchvision / timm files (no BN in keras.applications')."""
        return TORCH_BN_EPSILON

    @property
    def builder_name(self) -> str:
        """``vgg16``, ``vgg16_bn``, ...: a model name after torchvision's."""
        name = models.SPECS[self.variant].builder_name.lower()
        return f"{name}_bn" if self.batch_norm else name

    def build_model(self, include_top: bool | None = None, **options: Any) -> keras.Model:
        """A VGG model holding these weights (``options`` go to :func:`vgg_tf.models.VGG`)."""
        top = self.include_top if include_top is None else include_top
        if top and not self.include_top:
            raise ValueError(f"{self.source!r} has no fully-connected layers (fc6, fc7, fc8); "
                             "build with include_top=False.")
        options.setdefault("name", self.builder_name)
        model = models.VGG(
            self.variant, include_top=top, classes=self.classes or 1000,
            batch_norm=self.batch_norm,
            batch_norm_epsilon=self.batch_norm_epsilon if self.batch_norm else None,
            width_multiplier=self.width_multiplier, **options,
        )
        models.load_layer_weights(model, self.layers)
        return model


def file_format(path: str | os.PathLike) -> str | None:
    """"hdf5", "safetensors" or "torch" from a file's first bytes; None for anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    if head.startswith(_HDF5_MAGIC):
        return "hdf5"
    if len(head) > 8 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < size:
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch's zip or legacy pickle
        return "torch"
    return None


def _resolve_source(source: str | os.PathLike) -> str:
    path = os.fspath(source)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "model.safetensors")):
        path = os.path.join(path, "model.safetensors")  # a timm / Hugging Face snapshot
    if not os.path.isfile(path):
        raise ValueError(f"Cannot import weights from {path!r}: no such file; expected a "
                         "keras.applications .h5, a torchvision .pth or a timm .safetensors file.")
    return path


def read_weights(
    source: str | os.PathLike, variant: str | None = None, *, include_top: bool | None = None,
    batch_norm: bool | None = None,
) -> ImportedWeights:
    """Reads and converts a keras.applications, torchvision or timm VGG weight file.

    Args:
        source: The file (``.h5``, ``.pth``, ``.safetensors``; recognised by its
            content), or a directory holding ``model.safetensors``.
        variant: The network the file must hold ("D", "VGG16", "vgg16_bn");
            None infers it from the file.
        include_top: None: as the file; True: the file must hold fc6-fc8;
            False: the conv layers only.
        batch_norm: Whether the file must have batch norm (None: as the file).

    Raises:
        ValueError: The file is not one of these layouts, or does not hold the
            network asked for; the message names the file and what was expected.
        MissingDependencyError: A ``.pth`` file without PyTorch installed.
    """
    want_variant, want_bn = parse_variant(variant) if variant is not None else (None, None)
    want_bn = batch_norm if batch_norm is not None else want_bn
    path = _resolve_source(source)
    kind = file_format(path)
    if kind == "hdf5":
        convs, top, source_format = _read_keras_h5(path)
    elif kind in ("safetensors", "torch"):
        tensors = _read_safetensors(path) if kind == "safetensors" else _read_torch(path)
        convs, top, source_format = _convert_torch(tensors, path)
    else:
        raise ValueError(
            f"Cannot import weights from {path!r}: not a file of a known layout; expected "
            "keras.applications' Keras 2 HDF5 (.h5), a torchvision state dict (.pth) or a timm "
            "model.safetensors."
        )
    inferred, width = _infer_variant(convs, path)
    has_bn = convs[0][2] is not None
    if want_variant is not None and want_variant != inferred:
        spec = models.SPECS[inferred]
        raise ValueError(
            f"{path!r} holds net {inferred} ({spec.builder_name}, {len(convs)} conv layers), not "
            f"the requested {want_variant} ({models.SPECS[want_variant].builder_name})."
        )
    if want_bn is not None and want_bn != has_bn:
        raise ValueError(f"{path!r} holds a net {'with' if has_bn else 'without'} batch norm; "
                         f"batch_norm={want_bn} was requested.")
    layers = _name_convs(convs, inferred)
    if include_top is None:
        include_top = bool(top)
    if include_top:
        if not top:
            raise ValueError(f"{path!r} has no fully-connected layers (fc6, fc7, fc8: a 'notop' "
                             "file); import it with include_top=False.")
        layers.update(_check_top(top, convs[-1][0].shape[-1], width, path))
    classes = int(layers["fc8"][0].shape[1]) if include_top else None
    return ImportedWeights(layers, inferred, has_bn, include_top, classes, width,
                           MEAN_RGB[source_format], source_format, path)


def import_weights(
    source: str | os.PathLike, variant: str | None = None, *, include_top: bool | None = None,
    **options: Any,
) -> keras.Model:
    """A VGG model with the weights of a keras.applications, torchvision or timm file.

    The model takes RGB minus the file's mean RGB (vgg_tf's convention):
    :data:`CAFFE_MEAN_RGB` for keras.applications' files,
    :data:`TORCHVISION_MEAN_RGB` for torchvision's and timm's (``read_weights(
    source).mean_rgb`` says which). See :func:`read_weights` for the arguments;
    ``options`` go to :func:`vgg_tf.models.VGG` (``input_shape``, ``pooling``,
    ``classifier_activation``, ``data_format``, ``name``).

    Example:
        >>> model = import_weights("model.safetensors")  # timm's vgg16.tv_in1k  # doctest: +SKIP
        >>> model.name  # doctest: +SKIP
        'vgg16'
    """
    return read_weights(source, variant, include_top=include_top).build_model(**options)


def _decode(values) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _read_keras_h5(path: str):
    import h5py

    with h5py.File(path, "r") as f:
        root = f
        if "layer_names" not in f.attrs and "model_weights" in f:  # a Keras 2 full-model .h5
            root = f["model_weights"]
        if "layer_names" not in root.attrs:
            raise ValueError(
                f"{path!r} is an HDF5 file without Keras 2's 'layer_names' attribute; expected "
                "keras.applications' vgg16/vgg19 ..._tf_kernels(_notop).h5 (a Keras 3 "
                ".weights.h5 file loads with VGG(weights=...) into the same network)."
            )
        named = {}
        for name in _decode(root.attrs["layer_names"]):
            group = root[name]
            weight_names = _decode(group.attrs.get("weight_names", []))
            if weight_names:
                named[name] = [np.asarray(group[w], dtype=np.float32) for w in weight_names]
    convs, top, unknown = [], {}, []
    for name, arrays in named.items():
        match = re.fullmatch(r"block(\d+)_conv(\d+)", name)
        if match and len(arrays) == 2 and arrays[0].ndim == 4:
            convs.append(((int(match[1]), int(match[2])), arrays))
        elif name in _FC_ALIASES and len(arrays) == 2 and arrays[0].ndim == 2:
            top[_FC_ALIASES[name]] = arrays
        else:
            unknown.append(f"{name} {[a.shape for a in arrays]}")
    if unknown or not convs:
        raise ValueError(
            f"{path!r} is not a keras.applications VGG file: expected layers block<i>_conv<j> "
            f"(kernel, bias) and fc1, fc2, predictions; found {', '.join(unknown) or 'no convs'}."
        )
    ordered = [arrays for _, arrays in sorted(convs)]
    kernel = ordered[0][0]
    if kernel.shape[2] == 3:
        kernel = kernel[:, :, ::-1, :]  # BGR (Caffe) -> RGB input channels
    ordered[0] = [np.ascontiguousarray(kernel), ordered[0][1]]
    return [(k, b, None) for k, b in ordered], top, "keras_applications"


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise MissingDependencyError(f"Reading {path!r} needs the safetensors package: "
                                     "pip install safetensors.") from None
    try:
        return load_file(path)
    except Exception as error:  # safetensors raises its own error types.
        raise ValueError(f"Cannot read {path!r} as safetensors ({error}); expected a timm "
                         "model.safetensors of float32 tensors.") from error


def _read_torch(path: str) -> dict[str, np.ndarray]:
    if not _torch_available():
        raise _torch_missing(path)
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # training checkpoints wrap the state dict
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path!r} holds a {type(state).__name__}, not a state dict; expected "
                         "torchvision's VGG state dict (model.state_dict()).")
    return {k: v.detach().float().numpy() for k, v in state.items() if hasattr(v, "numpy")}


def _torch_conv(weight: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)))  # (o,i,kh,kw) -> (kh,kw,i,o)


def _convert_torch(tensors: Mapping[str, np.ndarray], path: str):
    tensors = {k.removeprefix("module."): np.asarray(v, dtype=np.float32)
               for k, v in tensors.items() if not k.endswith("num_batches_tracked")}
    features: dict[int, dict[str, np.ndarray]] = {}
    top_keys = {"classifier.0", "classifier.3", "classifier.6",
                "pre_logits.fc1", "pre_logits.fc2", "head.fc"}
    top_raw, unknown = {}, []
    for key, value in tensors.items():
        module, _, param = key.rpartition(".")
        match = re.fullmatch(r"features\.(\d+)", module)
        if match and param in ("weight", "bias", "running_mean", "running_var"):
            features.setdefault(int(match[1]), {})[param] = value
        elif module in top_keys and param in ("weight", "bias"):
            top_raw.setdefault(module, {})[param] = value
        else:
            unknown.append(key)
    if unknown or not features:
        found = ", ".join(sorted(unknown)[:8]) + (" ..." if len(unknown) > 8 else "")
        raise ValueError(
            f"{path!r} is not a torchvision/timm VGG state dict: expected keys features.<n>."
            "{weight,bias,running_mean,running_var}, classifier.{0,3,6}.* (torchvision) or "
            f"pre_logits.fc{{1,2}}.*, head.fc.* (timm); found {found or 'no features'}."
        )
    convs, index = [], sorted(features)
    conv_indices = [i for i in index if features[i].get("weight", np.zeros(0)).ndim == 4]
    bn_indices = [i for i in index if "running_mean" in features[i]]
    if bn_indices and len(bn_indices) != len(conv_indices):
        raise ValueError(f"{path!r} has {len(conv_indices)} conv layers but {len(bn_indices)} "
                         "batch-norm layers; expected one after every conv (vgg*_bn) or none.")
    for n, i in enumerate(conv_indices):
        conv = features[i]
        if "bias" not in conv:
            raise ValueError(f"{path!r}: features.{i} has no bias; expected torchvision's convs.")
        bn = None
        if bn_indices:
            stats = features[bn_indices[n]]
            missing = {"weight", "bias", "running_mean", "running_var"} - set(stats)
            if missing:
                raise ValueError(f"{path!r}: features.{bn_indices[n]} lacks {sorted(missing)}.")
            bn = [stats["weight"], stats["bias"], stats["running_mean"], stats["running_var"]]
        convs.append([_torch_conv(conv["weight"]), conv["bias"], bn])
    _check_torch_indices(conv_indices, bn_indices, path)
    kernel = convs[0][0]
    if kernel.shape[2] == 3:  # fold (x/255 - mean)/std into the first conv
        convs[0][0] = kernel / (255.0 * np.asarray(TORCHVISION_STD, np.float32))[:, None]
    timm = any(m.startswith(("pre_logits", "head")) for m in top_raw)
    top = _torch_top(top_raw, convs[-1][0].shape[-1], path)
    return [tuple(c) for c in convs], top, "timm" if timm else "torchvision"


def _check_torch_indices(conv_indices: list[int], bn_indices: list[int], path: str) -> None:
    """features.N indices as torchvision's make_layers numbers them: conv[, bn], relu, pools."""
    step = 3 if bn_indices else 2
    for variant in ("A", "B", "D", "E"):
        expected_conv, expected_bn, i = [], [], 0
        for block in models.SPECS[variant].blocks:
            for _ in block:
                expected_conv.append(i)
                if bn_indices:
                    expected_bn.append(i + 1)
                i += step
            i += 1  # max-pool
        if len(expected_conv) == len(conv_indices):
            if expected_conv != conv_indices or expected_bn != bn_indices:
                raise ValueError(
                    f"{path!r}: features.N indices do not follow torchvision's layout of "
                    f"{models.SPECS[variant].builder_name}{'_bn' if bn_indices else ''}: convs at "
                    f"{conv_indices}, expected {expected_conv}"
                    f"{f' (batch norm at {expected_bn})' if bn_indices else ''}."
                )
            return


def _torch_top(raw: Mapping[str, Mapping[str, np.ndarray]], channels: int, path: str) -> dict:
    names = {"classifier.0": "fc6", "classifier.3": "fc7", "classifier.6": "fc8",
             "pre_logits.fc1": "fc6", "pre_logits.fc2": "fc7", "head.fc": "fc8"}
    top = {}
    for module, params in raw.items():
        if set(params) != {"weight", "bias"}:
            raise ValueError(f"{path!r}: {module} needs weight and bias; found {sorted(params)}.")
        weight, name = params["weight"], names[module]
        if name == "fc6":
            if weight.ndim == 2:  # torchvision: (out, c*h*w) flattened in (c, h, w) order
                if weight.shape[1] != channels * FC6_SIDE**2:
                    raise ValueError(
                        f"{path!r}: {module}.weight is {weight.shape}; expected (out, "
                        f"{channels * FC6_SIDE**2}) = {channels} channels x {FC6_SIDE}x{FC6_SIDE}."
                    )
                weight = weight.reshape(weight.shape[0], channels, FC6_SIDE, FC6_SIDE)
            if weight.shape[1:] != (channels, FC6_SIDE, FC6_SIDE):
                raise ValueError(f"{path!r}: {module}.weight is {weight.shape}; expected (out, "
                                 f"{channels}, {FC6_SIDE}, {FC6_SIDE}).")
            kernel = _fc6_kernel(weight)
        else:
            if weight.ndim == 4 and weight.shape[2:] == (1, 1):  # timm's 1x1 conv fc7
                weight = weight[:, :, 0, 0]
            if weight.ndim != 2:
                raise ValueError(f"{path!r}: {module}.weight is {weight.shape}; expected a "
                                 "(out, in) matrix.")
            kernel = weight.T
        top[name] = [np.ascontiguousarray(kernel), params["bias"]]
    return top


def _fc6_kernel(weight: np.ndarray) -> np.ndarray:
    """(out, c, h, w) -> (h, w, c, out) -> Keras' (h*w*c, out) flatten order.

    In slices of outputs: one strided copy of fc6's 400 MB is several times slower.
    """
    out, c, h, w = weight.shape
    kernel = np.empty((h, w, c, out), np.float32)
    for start in range(0, out, 256):
        kernel[..., start:start + 256] = np.transpose(weight[start:start + 256], (2, 3, 1, 0))
    return kernel.reshape(h * w * c, out)


def _infer_variant(convs, path: str) -> tuple[str, float]:
    """The Table 1 network whose conv kernel sizes and widths the file's convs have."""
    kernels = [tuple(k.shape) for k, _, _ in convs]
    found = ", ".join(f"{kh}x{kw} {i}->{o}" for kh, kw, i, o in kernels)
    for variant in ("A", "B", "C", "D", "E"):
        spec = [(size, filters) for block in models.SPECS[variant].blocks
                for size, filters in block]
        if [s for s, _ in spec] != [k[0] for k in kernels] or any(k[0] != k[1] for k in kernels):
            continue
        width = kernels[0][3] / spec[0][1]
        channels = kernels[0][2]
        for (kh, kw, cin, cout), (_, filters), (_, bias, bn) in zip(kernels, spec, convs):
            if cout != max(1, round(filters * width)) or cin != channels:
                raise ValueError(f"{path!r} has convs {found}: not "
                                 f"{models.SPECS[variant].builder_name}'s widths (64, 128, 256, "
                                 "512 or one multiple of them).")
            if bias.shape != (cout,) or (bn is not None and any(b.shape != (cout,) for b in bn)):
                raise ValueError(f"{path!r}: a bias or batch-norm vector of the {cin}->{cout} "
                                 "conv has the wrong length.")
            channels = cout
        if kernels[0][2] != 3:
            raise ValueError(f"{path!r}: the first conv takes {kernels[0][2]} channels; "
                             "expected 3 (RGB).")
        return variant, width
    layouts = ", ".join(
        f"{s.builder_name} ({v}, {sum(len(b) for b in s.blocks)} convs)"
        for v, s in models.SPECS.items() if v != "A-LRN"
    )
    raise ValueError(f"{path!r} has {len(kernels)} conv layers ({found}); expected the layout "
                     f"of one of {layouts}.")


def _name_convs(convs, variant: str) -> dict[str, list[np.ndarray]]:
    layers, it = {}, iter(convs)
    for b, block in enumerate(models.SPECS[variant].blocks, start=1):
        for c in range(1, len(block) + 1):
            kernel, bias, bn = next(it)
            layers[f"block{b}_conv{c}"] = [kernel, bias]
            if bn is not None:
                layers[f"block{b}_conv{c}_bn"] = list(bn)
    return layers


def _check_top(top: Mapping, channels: int, width: float, path: str) -> dict:
    missing = [n for n in _TOP if n not in top]
    if missing:
        raise ValueError(f"{path!r} has {', '.join(sorted(top))} but not {', '.join(missing)}; "
                         "expected all three fully-connected layers (or include_top=False).")
    units = max(1, round(models.FC_UNITS * width))
    (k6, b6), (k7, b7), (k8, b8) = (top[n] for n in _TOP)
    expected = {"fc6": (channels * FC6_SIDE**2, units), "fc7": (units, units)}
    for name, (kernel, bias) in (("fc6", (k6, b6)), ("fc7", (k7, b7)), ("fc8", (k8, b8))):
        shape = expected.get(name, (units, kernel.shape[1]))
        if kernel.shape != shape or bias.shape != (shape[1],):
            raise ValueError(f"{path!r}: {name} has kernel {kernel.shape} and bias {bias.shape}; "
                             f"expected kernel {shape} (fc6 sees a {FC6_SIDE}x{FC6_SIDE}x"
                             f"{channels} map: a 224 crop).")
    return {name: list(top[name]) for name in _TOP}


# --- Workdirs ------------------------------------------------------------------


def imported_config(imported: ImportedWeights, weights_url: str | None = None) -> dict:
    """The ``config.json`` of an imported model: the paper's recipe for it at S = 256.

    A full recipe (:func:`vgg_tf.config.paper_recipe`) with the network, crop
    224, ``scale_min = scale_max = 256`` (so the test scales are 256 and
    {224, 256, 288}), flips, the source's mean RGB, the classes (ImageNet's names
    for 1,000), where the weights came from (``weights_source``,
    ``weights_format``, ``weights_url``), and for batch norm the epsilon its
    statistics assume (``batch_norm_epsilon``, torch's 1e-5: a net built to
    fine-tune from it should use the same).
    """
    from vgg_tf import config as config_lib
    from vgg_tf import labels

    config = config_lib.paper_recipe()
    config.recipe = f"imported from {imported.source_format}"
    config.variant = imported.variant
    config.batch_norm = imported.batch_norm
    config.width_multiplier = imported.width_multiplier
    config.crop_size = 32 * FC6_SIDE
    config.scale_min = config.scale_max = 256
    config.flip = True
    config.mean_rgb = tuple(imported.mean_rgb)
    result = json.loads(config.to_json())
    classes = imported.classes
    result.update(
        num_classes=classes,
        class_names=list(labels.imagenet_class_names())
        if classes == labels.NUM_IMAGENET_CLASSES else None,
        weights_source=os.path.abspath(imported.source),
        weights_format=imported.source_format,
        weights_url=weights_url,
        batch_norm_epsilon=imported.batch_norm_epsilon if imported.batch_norm else None,
    )
    return result


def import_to_workdir(
    source: str | os.PathLike, workdir: str | os.PathLike, variant: str | None = None, *,
    overwrite: bool = False,
):
    """Writes a workdir (``model.keras``, ``config.json``) from a weight file, like a trained run.

    ``bin/evaluate``, ``bin/export``, ``bin/predict`` and ``--init_from`` take the
    result as they take a training run. ``source`` is a file as for
    :func:`read_weights`, or ``"imagenet"`` (with ``variant``; "vgg16_bn" for
    batch norm) for the file ``weights="imagenet"`` uses.

    Raises:
        ValueError: The file is not importable or has no classifier (a notop
            file), or ``workdir`` holds a run and ``overwrite`` is False.

    Returns:
        The :class:`vgg_tf.workdir.TrainedModel` written.
    """
    from vgg_tf import workdir as workdir_lib

    workdir = os.fspath(workdir)
    url = None
    if os.fspath(source) == "imagenet":
        if variant is None:
            raise ValueError("Importing 'imagenet' needs a variant (D, vgg16, vgg16_bn, ...).")
        name, batch_norm = parse_variant(variant)
        file = imagenet_weights_file(name, True, bool(batch_norm))
        source, url = imagenet_weights_path(name, True, bool(batch_norm)), file.url
    imported = read_weights(source, variant)
    if not imported.include_top:
        raise ValueError(f"{imported.source!r} has no fully-connected layers (a 'notop' file): "
                         "a workdir holds a classifier; import the file with the top.")
    recorded = workdir_lib.read_config(workdir)
    if recorded is not None or os.path.exists(os.path.join(workdir, workdir_lib.MODEL_FILE)):
        if not overwrite:
            raise ValueError(f"{workdir!r} already holds a run; pass --overwrite to replace it, "
                             "or choose another directory.")
        workdir_lib.clear_run(workdir)
    os.makedirs(workdir, exist_ok=True)
    model = imported.build_model(data_format="channels_last")
    config = imported_config(imported, url)
    workdir_lib.save_model(model, os.path.join(workdir, workdir_lib.MODEL_FILE))
    workdir_lib.write_config(workdir, config)
    directory = os.path.basename(os.path.abspath(workdir))
    return workdir_lib.TrainedModel(model, config, os.path.join(workdir, workdir_lib.MODEL_FILE),
                                    f"{imported.variant} ({directory})")


def imagenet_trained_model(variant: str, *, batch_norm: bool | None = None):
    """The ImageNet classifier of ``variant`` as a :class:`vgg_tf.workdir.TrainedModel`.

    ``weights="imagenet"`` (Keras' cache, or a download) with the config of an
    imported workdir (:func:`imported_config`): mean RGB, crop 224, test scales
    256 / {224, 256, 288}, the 1,000 class names. ``variant`` is "D", "VGG16",
    "vgg16" or "vgg16_bn".

    Example:
        >>> trained = imagenet_trained_model("D")  # doctest: +SKIP
        >>> trained.mean_rgb, trained.multi_scales()  # doctest: +SKIP
        ((123.68, 116.779, 103.939), (224, 256, 288))
    """
    from vgg_tf import workdir as workdir_lib

    name, parsed_bn = parse_variant(variant)
    bn = bool(parsed_bn if batch_norm is None else batch_norm)
    file = imagenet_weights_file(name, True, bn)
    path = imagenet_weights_path(name, True, bn)
    imported = read_weights(path, name, include_top=True, batch_norm=bn)
    model = imported.build_model(data_format="channels_last")
    return workdir_lib.TrainedModel(model, imported_config(imported, file.url), path,
                                    f"{name} (imagenet)")
