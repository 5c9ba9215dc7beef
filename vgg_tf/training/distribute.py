"""Distribution strategies: one device, all local devices, or many workers.

The paper (§3.3) trains with synchronous data parallelism: every device takes
a slice of the batch and the gradients are averaged, which equals training on
one device with the whole batch. ``tf.distribute`` does exactly this; the
trainer scales the loss by the global batch and the optimizer all-reduces
(sums) the gradients.
"""

from __future__ import annotations

import os

import tensorflow as tf

from vgg_tf.training.recipe import STRATEGIES


def make_strategy(
    name: str = "default", devices: list[str] | None = None
) -> tf.distribute.Strategy:
    """Creates the ``tf.distribute`` strategy called ``name``.

    Args:
        name: "default" (one device), "mirrored" (MirroredStrategy over every
            local GPU, or ``devices``), "multi_worker" (MultiWorkerMirroredStrategy
            configured by the TF_CONFIG environment variable) or "tpu".
        devices: Device names for "mirrored", e.g. ``["/gpu:0", "/gpu:1"]``.

    Returns:
        The strategy. Create it before any other TensorFlow op runs
        (MultiWorkerMirroredStrategy must come first).

    Example:
        >>> strategy = make_strategy("mirrored", ["/cpu:0"])
        >>> strategy.num_replicas_in_sync
        1
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}.")
    if devices and name != "mirrored":
        raise ValueError(
            f"devices={devices!r} is only accepted with strategy 'mirrored', not {name!r}."
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices or None)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy 'multi_worker' needs the TF_CONFIG environment variable (cluster and task); "
                "see BUILD.md."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def strategy_for(config) -> tf.distribute.Strategy:
    """The strategy a recipe asks for (``config.strategy`` over ``config.devices``).

    Example:
        >>> strategy_for({"strategy": "default", "devices": ""}).num_replicas_in_sync
        1
    """
    devices = [d for d in config["devices"].split(",") if d] or None
    return make_strategy(config["strategy"], devices)


def check_batch_sizes(batch_sizes, strategy: tf.distribute.Strategy) -> None:
    """Refuses global batch sizes that do not split evenly over the strategy's replicas."""
    replicas = strategy.num_replicas_in_sync
    uneven = [size for size in batch_sizes if size % replicas]
    if uneven:
        raise ValueError(
            f"batch_size={','.join(map(str, uneven))} does not divide over the {replicas} "
            f"replicas; expected a multiple of {replicas}."
        )


def split_logical_cpus(count: int) -> None:
    """Splits the CPU into ``count`` logical devices (for tests and CPU dry runs).

    Must run before TensorFlow initialises its devices.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * count
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (the chief, or worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def task_id(strategy: tf.distribute.Strategy) -> int:
    """This worker's index in a multi-worker cluster (0 otherwise)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id or 0) if resolver is not None else 0
