"""Keeping Keras models out of a tf.Module's saved state.

A serving module holds the fully-convolutional nets it calls; tracked, their
variables would be saved twice (once as the module's, once captured by the
traced functions). :class:`Untracked` hides a value from tf.Module's
dependency tracking, and the functions capture what they use.

Example:
    >>> holder = Untracked([1, 2])
    >>> holder.value
    [1, 2]
"""


class Untracked:
    """Holds an object out of sight of tf.Module's dependency tracking."""

    def __init__(self, value):
        self.value = value
