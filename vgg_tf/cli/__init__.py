"""The command line: ``bin/*`` and the ``vgg-*`` console scripts, a few lines each.

Owns the flags of each command (a module per command, plus the flag groups two
commands share: :mod:`~vgg_tf.cli.recipe_flags`, :mod:`~vgg_tf.cli.image_flags`),
the start of a process (:mod:`~vgg_tf.cli.entry`: TensorFlow's start-up lines
hidden, the CPU path chosen, before TensorFlow is imported; see
:mod:`~vgg_tf.cli.quiet`), and turning a library's ``ValueError`` into one
line on stderr. Importing this package, or a command's module, changes nothing
in the process: only the entry points do.

May import: every folder of vgg_tf.
"""
