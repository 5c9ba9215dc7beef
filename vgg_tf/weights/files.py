"""Reading the VGG weight files of keras.applications, torchvision and timm.

The file layouts and their conversion to vgg_tf's layers are described in
:mod:`vgg_tf.weights.importing`, which is what users call; each file's input
convention (channel order, pixel range, mean, std) is its source's
(:mod:`vgg_tf.weights.conventions`) and is folded into the first convolution
here. This module reads one file (:func:`read_weights`) into
:class:`ImportedWeights`.

Example:
    >>> parse_variant("vgg16_bn")
    ('D', True)
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
from collections.abc import Mapping

import numpy as np

from vgg_tf.nets import specs
from vgg_tf.weights.conventions import InputConvention, convention_for

#: torch's BatchNorm2d epsilon (Keras' default is 1e-3); imported BN layers get it.
TORCH_BN_EPSILON = 1e-5
#: The spatial side fc6 sees in every published file (a 224 crop after five poolings).
FC6_SIDE = 7

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TORCH_NAMES = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}
_FC_ALIASES = {
    "fc1": "fc6",
    "fc2": "fc7",
    "predictions": "fc8",
    "fc6": "fc6",
    "fc7": "fc7",
    "fc8": "fc8",
}
_TOP = ("fc6", "fc7", "fc8")


class MissingDependencyError(ImportError, ValueError):
    """A weight file needs a package that is not installed (PyTorch for ``.pth``).

    Both an ImportError and a ValueError, so that callers reporting bad inputs
    (``except ValueError``) report this one too.
    """


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
    if text in specs.SPECS:
        return text, batch_norm
    for variant, spec in specs.SPECS.items():
        if text.lower() == spec.builder_name.lower():
            return variant, batch_norm
    names = ", ".join(f"{v} ({s.builder_name})" for v, s in specs.SPECS.items())
    raise ValueError(
        f"Unknown VGG variant {name!r}; expected one of {names}, with '_bn' "
        "for batch norm (vgg16_bn)."
    )


def _timm_hint(name: str | None) -> str:
    timm = f"{name}.tv_in1k" if name else "vgg11.tv_in1k ... vgg19_bn.tv_in1k"
    return (
        f"timm's {timm} {'holds' if name else 'hold'} the same weights as safetensors, "
        f"which need no torch (https://huggingface.co/timm/"
        f"{name + '.tv_in1k' if name else '<name>'}, file model.safetensors; "
        "VGG(weights='tv_in1k') fetches it into Keras' cache): pass its path "
        "as weights= or to vgg_tf.import_weights / bin/import_weights"
    )


def torch_missing_error(path: str) -> MissingDependencyError:
    """The error for a PyTorch file without PyTorch: what the file is, and three ways out."""
    match = re.match(r"(vgg\d\d(?:_bn)?)", os.path.basename(path))
    return MissingDependencyError(
        f"{path!r} is a PyTorch file (a torchvision state dict); reading it needs PyTorch, "
        "which is not installed. Either pip install torch (the CPU wheel is enough), or use "
        f"safetensors: {_timm_hint(match.group(1) if match else None)}, or convert the file "
        'once where torch is installed: python -c "import torch, safetensors.torch as st; '
        f"st.save_file(torch.load('{os.path.basename(path)}'), 'vgg.safetensors')\"."
    )


def torch_available() -> bool:
    """Whether PyTorch is installed (torchvision's ``.pth`` files need it to be read)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


# --- Reading files -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImportedWeights:
    """A weight file's contents in vgg_tf's layer names, layout and input convention.

    Attributes:
        layers: ``{layer_name: [arrays]}`` as :func:`vgg_tf.weights.transfer.load_layer_weights`
            takes it (Keras shapes; block1_conv1 already takes RGB minus ``mean_rgb``).
        variant: Network of the paper's Table 1.
        batch_norm: Whether the convolutions are followed by batch norm.
        include_top: Whether ``layers`` holds fc6, fc7 and fc8.
        classes: fc8's outputs (None without the top).
        width_multiplier: vgg_tf's width factor (1.0 for the published files).
        convention: How the source fed the weights (channel order, mean, std, crop, classes).
        source: The file read.
    """

    layers: dict[str, list[np.ndarray]]
    variant: str
    batch_norm: bool
    include_top: bool
    classes: int | None
    width_multiplier: float
    convention: InputConvention
    source: str

    @property
    def mean_rgb(self) -> tuple[float, float, float]:
        """The mean RGB the imported model takes subtracted from RGB in [0, 255]."""
        return self.convention.mean_rgb

    @property
    def source_format(self) -> str:
        """Where the weights come from: "keras_applications", "torchvision" or "timm"."""
        return self.convention.name

    @property
    def batch_norm_epsilon(self) -> float:
        """torch's 1e-5 for torchvision / timm files (no BN in keras.applications')."""
        return TORCH_BN_EPSILON

    @property
    def builder_name(self) -> str:
        """``vgg16``, ``vgg16_bn``, ...: a model name after torchvision's."""
        name = specs.SPECS[self.variant].builder_name.lower()
        return f"{name}_bn" if self.batch_norm else name


def file_format(path: str | os.PathLike) -> str | None:
    """ "hdf5", "safetensors" or "torch" from a file's first bytes; None for anything else."""
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
        raise ValueError(
            f"Cannot import weights from {path!r}: no such file; expected a "
            "keras.applications .h5, a torchvision .pth or a timm .safetensors file."
        )
    return path


def read_weights(
    source: str | os.PathLike,
    variant: str | None = None,
    *,
    include_top: bool | None = None,
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
    convention = convention_for(source_format)
    first_kernel, first_bias, first_bn = convs[0]
    convs[0] = (convention.fold_into_first_conv(first_kernel), first_bias, first_bn)
    has_bn = convs[0][2] is not None
    if want_variant is not None and want_variant != inferred:
        spec = specs.SPECS[inferred]
        raise ValueError(
            f"{path!r} holds net {inferred} ({spec.builder_name}, {len(convs)} conv layers), not "
            f"the requested {want_variant} ({specs.SPECS[want_variant].builder_name})."
        )
    if want_bn is not None and want_bn != has_bn:
        raise ValueError(
            f"{path!r} holds a net {'with' if has_bn else 'without'} batch norm; "
            f"batch_norm={want_bn} was requested."
        )
    layers = _name_convs(convs, inferred)
    if include_top is None:
        include_top = bool(top)
    if include_top:
        if not top:
            raise ValueError(
                f"{path!r} has no fully-connected layers (fc6, fc7, fc8: a 'notop' "
                "file); import it with include_top=False."
            )
        layers.update(_check_top(top, convs[-1][0].shape[-1], width, path))
    classes = int(layers["fc8"][0].shape[1]) if include_top else None
    return ImportedWeights(
        layers,
        inferred,
        has_bn,
        include_top,
        classes,
        width,
        convention,
        path,
    )


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
    # The first kernel stays in Caffe's BGR order: read_weights applies the convention.
    ordered = [arrays for _, arrays in sorted(convs)]
    return [(k, b, None) for k, b in ordered], top, "keras_applications"


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise MissingDependencyError(
            f"Reading {path!r} needs the safetensors package: pip install safetensors."
        ) from None
    try:
        return load_file(path)
    except Exception as error:  # safetensors raises its own error types.
        raise ValueError(
            f"Cannot read {path!r} as safetensors ({error}); expected a timm "
            "model.safetensors of float32 tensors."
        ) from error


def _read_torch(path: str) -> dict[str, np.ndarray]:
    if not torch_available():
        raise torch_missing_error(path)
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # training checkpoints wrap the state dict
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise ValueError(
            f"{path!r} holds a {type(state).__name__}, not a state dict; expected "
            "torchvision's VGG state dict (model.state_dict())."
        )
    return {k: v.detach().float().numpy() for k, v in state.items() if hasattr(v, "numpy")}


def _torch_conv(weight: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)))  # (o,i,kh,kw) -> (kh,kw,i,o)


def _convert_torch(tensors: Mapping[str, np.ndarray], path: str):
    tensors = {
        k.removeprefix("module."): np.asarray(v, dtype=np.float32)
        for k, v in tensors.items()
        if not k.endswith("num_batches_tracked")
    }
    features: dict[int, dict[str, np.ndarray]] = {}
    top_keys = {
        "classifier.0",
        "classifier.3",
        "classifier.6",
        "pre_logits.fc1",
        "pre_logits.fc2",
        "head.fc",
    }
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
        raise ValueError(
            f"{path!r} has {len(conv_indices)} conv layers but {len(bn_indices)} "
            "batch-norm layers; expected one after every conv (vgg*_bn) or none."
        )
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
    # The first kernel still takes (x/255 - mean)/std: read_weights applies the convention.
    timm = any(m.startswith(("pre_logits", "head")) for m in top_raw)
    top = _torch_top(top_raw, convs[-1][0].shape[-1], path)
    return [tuple(c) for c in convs], top, "timm" if timm else "torchvision"


def _check_torch_indices(conv_indices: list[int], bn_indices: list[int], path: str) -> None:
    """features.N indices as torchvision's make_layers numbers them: conv[, bn], relu, pools."""
    step = 3 if bn_indices else 2
    for variant in ("A", "B", "D", "E"):
        expected_conv, expected_bn, i = [], [], 0
        for block in specs.SPECS[variant].blocks:
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
                    f"{specs.SPECS[variant].builder_name}{'_bn' if bn_indices else ''}: convs at "
                    f"{conv_indices}, expected {expected_conv}"
                    f"{f' (batch norm at {expected_bn})' if bn_indices else ''}."
                )
            return


def _torch_top(raw: Mapping[str, Mapping[str, np.ndarray]], channels: int, path: str) -> dict:
    names = {
        "classifier.0": "fc6",
        "classifier.3": "fc7",
        "classifier.6": "fc8",
        "pre_logits.fc1": "fc6",
        "pre_logits.fc2": "fc7",
        "head.fc": "fc8",
    }
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
                raise ValueError(
                    f"{path!r}: {module}.weight is {weight.shape}; expected (out, "
                    f"{channels}, {FC6_SIDE}, {FC6_SIDE})."
                )
            kernel = _fc6_kernel(weight)
        else:
            if weight.ndim == 4 and weight.shape[2:] == (1, 1):  # timm's 1x1 conv fc7
                weight = weight[:, :, 0, 0]
            if weight.ndim != 2:
                raise ValueError(
                    f"{path!r}: {module}.weight is {weight.shape}; expected a (out, in) matrix."
                )
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
        kernel[..., start : start + 256] = np.transpose(weight[start : start + 256], (2, 3, 1, 0))
    return kernel.reshape(h * w * c, out)


def _infer_variant(convs, path: str) -> tuple[str, float]:
    """The Table 1 network whose conv kernel sizes and widths the file's convs have."""
    kernels = [tuple(k.shape) for k, _, _ in convs]
    found = ", ".join(f"{kh}x{kw} {i}->{o}" for kh, kw, i, o in kernels)
    for variant in ("A", "B", "C", "D", "E"):
        spec = [(size, filters) for block in specs.SPECS[variant].blocks for size, filters in block]
        if [s for s, _ in spec] != [k[0] for k in kernels] or any(k[0] != k[1] for k in kernels):
            continue
        width = kernels[0][3] / spec[0][1]
        channels = kernels[0][2]
        for (_, _, cin, cout), (_, filters), (_, bias, bn) in zip(kernels, spec, convs):
            if cout != max(1, round(filters * width)) or cin != channels:
                raise ValueError(
                    f"{path!r} has convs {found}: not "
                    f"{specs.SPECS[variant].builder_name}'s widths (64, 128, 256, "
                    "512 or one multiple of them)."
                )
            if bias.shape != (cout,) or (bn is not None and any(b.shape != (cout,) for b in bn)):
                raise ValueError(
                    f"{path!r}: a bias or batch-norm vector of the {cin}->{cout} "
                    "conv has the wrong length."
                )
            channels = cout
        if kernels[0][2] != 3:
            raise ValueError(
                f"{path!r}: the first conv takes {kernels[0][2]} channels; expected 3 (RGB)."
            )
        return variant, width
    layouts = ", ".join(
        f"{s.builder_name} ({v}, {sum(len(b) for b in s.blocks)} convs)"
        for v, s in specs.SPECS.items()
        if v != "A-LRN"
    )
    raise ValueError(
        f"{path!r} has {len(kernels)} conv layers ({found}); expected the layout "
        f"of one of {layouts}."
    )


def _name_convs(convs, variant: str) -> dict[str, list[np.ndarray]]:
    layers, it = {}, iter(convs)
    for b, block in enumerate(specs.SPECS[variant].blocks, start=1):
        for c in range(1, len(block) + 1):
            kernel, bias, bn = next(it)
            layers[f"block{b}_conv{c}"] = [kernel, bias]
            if bn is not None:
                layers[f"block{b}_conv{c}_bn"] = list(bn)
    return layers


def _check_top(top: Mapping, channels: int, width: float, path: str) -> dict:
    missing = [n for n in _TOP if n not in top]
    if missing:
        raise ValueError(
            f"{path!r} has {', '.join(sorted(top))} but not {', '.join(missing)}; "
            "expected all three fully-connected layers (or include_top=False)."
        )
    units = max(1, round(specs.FC_UNITS * width))
    (k6, b6), (k7, b7), (k8, b8) = (top[n] for n in _TOP)
    expected = {"fc6": (channels * FC6_SIDE**2, units), "fc7": (units, units)}
    for name, (kernel, bias) in (("fc6", (k6, b6)), ("fc7", (k7, b7)), ("fc8", (k8, b8))):
        shape = expected.get(name, (units, kernel.shape[1]))
        if kernel.shape != shape or bias.shape != (shape[1],):
            raise ValueError(
                f"{path!r}: {name} has kernel {kernel.shape} and bias {bias.shape}; "
                f"expected kernel {shape} (fc6 sees a {FC6_SIDE}x{FC6_SIDE}x"
                f"{channels} map: a 224 crop)."
            )
    return {name: list(top[name]) for name in _TOP}


# --- Workdirs ------------------------------------------------------------------
