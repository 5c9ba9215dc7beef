import pytest
import tensorflow as tf

from vgg_tf.training import distribute


def test_default_and_mirrored_strategies():
    assert distribute.make_strategy("default").num_replicas_in_sync == 1
    mirrored = distribute.make_strategy("mirrored", ["/cpu:0"])
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert distribute.is_chief(mirrored) and distribute.task_id(mirrored) == 0


@pytest.mark.parametrize(
    "name, devices, message",
    [
        ("horovod", None, r"'horovod'.*default, mirrored, multi_worker, tpu"),
        ("default", ["/gpu:0"], r"only accepted with strategy 'mirrored'"),
    ],
)
def test_bad_strategy_arguments(name, devices, message):
    with pytest.raises(ValueError, match=message):
        distribute.make_strategy(name, devices)


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.make_strategy("multi_worker")


class _Resolver:
    def __init__(self, cluster, task_type, task_id):
        self._cluster, self.task_type, self.task_id = cluster, task_type, task_id

    def cluster_spec(self):
        return tf.train.ClusterSpec(self._cluster)


class _Strategy:
    def __init__(self, resolver):
        self.cluster_resolver = resolver


def test_chief_is_worker_zero_unless_a_chief_task_exists():
    workers = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    assert distribute.is_chief(_Strategy(_Resolver(workers, "worker", 0)))
    assert not distribute.is_chief(_Strategy(_Resolver(workers, "worker", 1)))
    with_chief = {"chief": ["127.0.0.1:3"], **workers}
    assert distribute.is_chief(_Strategy(_Resolver(with_chief, "chief", 0)))
    assert not distribute.is_chief(_Strategy(_Resolver(with_chief, "worker", 0)))
    assert distribute.task_id(_Strategy(_Resolver(workers, "worker", 1))) == 1
