"""The command line: bin/train, bin/evaluate, bin/export, bin/tune (and the ``vgg-*`` scripts).

Importing this package imports TensorFlow quietly (see :mod:`vgg_tf.cli.quiet`):
its start-up INFO lines and third-party deprecation notices stay out of the
terminal unless ``--verbosity`` or the user's own ``TF_CPP_MIN_LOG_LEVEL`` asks
for them. The library (``import vgg_tf``) never does this.
"""

import sys

from absl import app, flags

from vgg_tf.cli import quiet as _quiet

_quiet.quiet_tensorflow()


def run_app(main, doc: str | None) -> None:
    """``absl.app.run(main)`` with ``doc`` as the usage text of ``--help`` (absl prints the
    ``__main__`` module's docstring: a console script's wrapper has none)."""
    sys.modules["__main__"].__doc__ = doc
    # absl's --helpshort lists the key flags of the script (sys.argv[0]); the flags
    # live in the command's module and the shared flag modules it imports.
    for module in flags.FLAGS.flags_by_module_dict():
        if module.startswith("vgg_tf.cli."):
            for flag in flags.FLAGS.get_key_flags_for_module(module):
                flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main)
