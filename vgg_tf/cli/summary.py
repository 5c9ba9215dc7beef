"""The six networks side by side: the paper's Table 1/2 figures next to what is counted here.

Which column is whose:

* ``weight layers`` -- Table 1's depth (11, 11, 13, 16, 16, 19), counted from the
  built model;
* ``Table 2 (M)`` -- the paper's parameter counts, in millions as Table 2 gives
  them (for 1000 classes at 224 x 224; shown only for those settings);
* ``parameters`` -- the exact count of the built model, computed here;
* ``GMACs`` -- multiply-accumulates of one forward pass at ``image_size``,
  computed here from the layer shapes. The paper gives no FLOP or MAC counts.

Usage:
    vgg-summary [--image_size 224] [--classes 1000]
    python -m vgg_tf.cli summary [--image_size 224] [--classes 1000]
"""

from __future__ import annotations

from absl import flags

from vgg_tf.cli.entry import run_app

_NOTE = (
    "weight layers: the paper's Table 1 (counted here from the built models).\n"
    "Table 2 (M): the paper's parameter counts, in millions (shown for 1000 classes at 224 x 224).\n"
    "parameters, GMACs: computed here from the built models; GMACs are the multiply-accumulates\n"
    "of one forward pass at {size} x {size} (the paper gives no MAC or FLOP counts)."
)


_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Input side (a multiple of 32).")
_CLASSES = flags.DEFINE_integer("classes", 1000, "Number of classes of the top layer.")


def _main(argv):
    del argv
    from vgg_tf.nets.summary import format_table, summary_rows  # Keras: not for --help

    print(format_table(summary_rows(_IMAGE_SIZE.value, _CLASSES.value)))
    print()
    print(_NOTE.format(size=_IMAGE_SIZE.value))


def run():
    """Runs the command (``vgg-summary``, ``python -m vgg_tf.cli summary``)."""
    run_app(_main, __doc__)
