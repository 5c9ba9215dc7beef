"""``python -m vgg_tf.cli COMMAND [flags]``: any command without its script (``summary``, ...)."""

import sys

from vgg_tf.cli import entry

if len(sys.argv) < 2 or sys.argv[1] not in entry.COMMANDS:
    given = repr(sys.argv[1]) if len(sys.argv) > 1 else "none"
    sys.exit(
        f"error: expected a command, one of {', '.join(entry.COMMANDS)}; got {given}. "
        "Usage: python -m vgg_tf.cli COMMAND [flags]"
    )
command = sys.argv.pop(1)
sys.argv[0] = f"vgg-{command.replace('_', '-')}"
entry.launch(command)
