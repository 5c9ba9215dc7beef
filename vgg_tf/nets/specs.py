"""Table 1 of the VGG paper as data: the six configurations, one row each.

Each row of :data:`SPECS` lists, per block, the kernel size and filter count
of every convolution; :func:`vgg_tf.nets.builder.VGG` turns a row into a model, and
the weight importers read files against the same table.

Example:
    >>> SPECS["D"].num_weight_layers, SPECS["D"].builder_name
    (16, 'VGG16')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class VariantSpec:
    """One column of the paper's Table 1.

    Attributes:
        blocks: Per block, a tuple of ``(kernel_size, filters)`` per convolution.
        lrn: Whether a local response normalisation follows the first conv.
        builder_name: Name of the named builder (``VGG16`` ...), for messages.
    """

    blocks: tuple[tuple[tuple[int, int], ...], ...]
    lrn: bool = False
    builder_name: str = ""

    @property
    def num_weight_layers(self) -> int:
        """Conv layers plus the three fully-connected layers."""
        return sum(len(block) for block in self.blocks) + 3


def _block(*filters: int, kernel: int = 3) -> tuple[tuple[int, int], ...]:
    return tuple((kernel, f) for f in filters)


_A_BLOCKS = (_block(64), _block(128), _block(256, 256), _block(512, 512), _block(512, 512))
_B_BLOCKS = (_block(64, 64), _block(128, 128))

SPECS: Mapping[str, VariantSpec] = {
    "A": VariantSpec(_A_BLOCKS, builder_name="VGG11"),
    "A-LRN": VariantSpec(_A_BLOCKS, lrn=True, builder_name="VGG11_LRN"),
    "B": VariantSpec(
        _B_BLOCKS + (_block(256, 256), _block(512, 512), _block(512, 512)), builder_name="VGG13"
    ),
    # C is B with a 1x1 convolution added at the end of blocks 3, 4 and 5.
    "C": VariantSpec(
        _B_BLOCKS + tuple(_block(f, f) + _block(f, kernel=1) for f in (256, 512, 512)),
        builder_name="VGG16_C",
    ),
    "D": VariantSpec(
        _B_BLOCKS + (_block(256, 256, 256), _block(512, 512, 512), _block(512, 512, 512)),
        builder_name="VGG16",
    ),
    "E": VariantSpec(
        _B_BLOCKS
        + (_block(256, 256, 256, 256), _block(512, 512, 512, 512), _block(512, 512, 512, 512)),
        builder_name="VGG19",
    ),
}

VARIANTS: tuple[str, ...] = tuple(SPECS)

#: Layers a deeper net takes from a trained net A (paper §3.1: "the first four
#: convolutional layers and the last three fully-connected layers"). These
#: names have the same shapes in every configuration.
NET_A_TRANSFER_LAYERS: tuple[str, ...] = (
    "block1_conv1",
    "block2_conv1",
    "block3_conv1",
    "block3_conv2",
    "fc6",
    "fc7",
    "fc8",
)

FC_UNITS = 4096

#: How a net's random layers may be initialised (:func:`vgg_tf.nets.builder.build_vgg`): the
#: paper's N(0, 0.01), Glorot & Bengio's (§3.1) or He et al.'s.
KERNEL_INITIALIZERS: tuple[str, ...] = ("paper", "glorot", "he")


def get_spec(variant: str) -> VariantSpec:
    """Returns the spec of ``variant`` or raises a ValueError listing the valid names."""
    try:
        return SPECS[variant]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown VGG variant {variant!r}; expected one of {', '.join(VARIANTS)}."
        ) from None
