"""The six networks side by side: the paper's Table 1/2 figures next to what is counted here.

Which column is whose:

* ``weight layers`` -- Table 1's depth (11, 11, 13, 16, 16, 19), counted from the
  built model;
* ``Table 2 (M)`` -- the paper's parameter counts, in millions as Table 2 gives
  them (for 1000 classes at 224 x 224; shown only for those settings);
* ``parameters`` -- the exact count of the built model, computed here;
* ``GMACs`` -- multiply-accumulates of one forward pass at ``image_size``,
  computed here from the layer shapes. The paper gives no FLOP or MAC counts.

Example:
    >>> rows = summary_rows(image_size=32, classes=10)
    >>> [row["weight_layers"] for row in rows]
    [11, 11, 13, 16, 16, 19]
"""

from __future__ import annotations

import keras

from vgg_tf import tables
from vgg_tf.nets import builder
from vgg_tf.nets.specs import SPECS, VARIANTS

#: Table 2 of the paper: parameters in millions (1000 classes, 224 x 224 input).
PAPER_PARAMS_MILLIONS = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}


def summary_rows(image_size: int = 224, classes: int = 1000) -> list[dict]:
    """Weight layers, parameters and GMACs of every variant at ``image_size``.

    ``paper_params_millions`` is Table 2's figure when ``image_size`` is 224 and
    ``classes`` 1000 (the paper's setting), else None.

    Example:
        >>> rows = summary_rows(image_size=224)  # doctest: +SKIP
        >>> rows[4]["params"], rows[4]["paper_params_millions"]  # doctest: +SKIP
        (138357544, 138)
    """
    paper_setting = image_size == 224 and classes == 1000
    rows = []
    for variant in VARIANTS:
        model = builder.build_vgg(variant, classes=classes, crop_size=image_size)
        rows.append(
            dict(
                variant=variant,
                builder=SPECS[variant].builder_name,
                weight_layers=builder.count_weight_layers(model),
                paper_params_millions=PAPER_PARAMS_MILLIONS.get(variant) if paper_setting else None,
                params=model.count_params(),
                gmacs=builder.count_macs(model) / 1e9,
            )
        )
        del model
        keras.backend.clear_session()
    return rows


def format_table(rows: list[dict]) -> str:
    """Formats :func:`summary_rows` as a fixed-width text table (:func:`vgg_tf.tables.format_table`).

    Example:
        >>> row = dict(variant="D", builder="VGG16", weight_layers=16,
        ...            paper_params_millions=138, params=138_357_544, gmacs=15.47)
        >>> print(format_table([row]))
        net  builder  weight layers  Table 2 (M)   parameters  GMACs
        D    VGG16               16          138  138,357,544  15.47
    """
    header = ("net", "builder", "weight layers", "Table 2 (M)", "parameters", "GMACs")
    cells = [
        (
            r["variant"],
            r["builder"],
            r["weight_layers"],
            "-" if r.get("paper_params_millions") is None else r["paper_params_millions"],
            f"{r['params']:,}",
            f"{r['gmacs']:.2f}",
        )
        for r in rows
    ]
    return tables.format_table(header, cells, align="<<>>>>")
