"""Names the docstring examples of the package may use without importing them.

``pytest --doctest-modules vgg_tf`` runs every example in the package's
docstrings; those that need data on disk or a trained run are marked
``# doctest: +SKIP``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# The tests run on the CPU path the commands choose (vgg_tf.cli.cpu_path), as users' runs
# do: decided before TensorFlow is imported, and inherited by the processes tests start.
from vgg_tf.cli import cpu_path  # noqa: E402

cpu_path.apply()

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# The entry points define absl flags when imported: one import each, by their own tests.
collect_ignore_glob = ["vgg_tf/cli/*"]


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    import keras
    import tensorflow as tf

    import vgg_tf
    from vgg_tf.training import recipe as config_lib

    doctest_namespace.update(np=np, tf=tf, keras=keras, vgg_tf=vgg_tf, config_lib=config_lib)
