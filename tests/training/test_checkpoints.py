"""vgg_tf.training.checkpoints: a resume never starts over silently, and SIGTERM saves;
on a local disk and on a filesystem TensorFlow serves (ram://, as gs:// or s3://)."""

import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from vgg_tf.training import checkpoints


def _run_checkpoint(workdir, keep=3):
    """A RunCheckpoint of a step counter and a small weight, as a run's."""
    step = tf.Variable(0, dtype=tf.int64)
    weight = tf.Variable(tf.zeros([256]))
    ckpt = checkpoints.RunCheckpoint(
        str(workdir), tf.distribute.get_strategy(), keep, step=step, weight=weight
    )
    return ckpt, step, weight


def _saved(workdir, steps=(5, 10, 15), keep=3):
    """A workdir whose checkpoints hold, at each step, the weight ``step``."""
    ckpt, step, weight = _run_checkpoint(workdir, keep)
    for number in steps:
        step.assign(number)
        weight.assign(tf.fill([256], float(number)))
        ckpt.save(number)
    return workdir / "checkpoints"


def _on_disk(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".index"))


def _restored(workdir):
    ckpt, step, weight = _run_checkpoint(workdir)
    restored = ckpt.restore_latest()
    assert int(step.numpy()) == restored.step
    np.testing.assert_array_equal(weight.numpy(), np.full(256, float(restored.step)))
    return ckpt, restored


@pytest.mark.parametrize("lost", ["index", "state file", "state file and index"])
def test_a_lost_file_resumes_from_the_newest_checkpoint_that_reads(tmp_path, lost):
    """Issue 20: a deleted newest ``ckpt-N.index`` or ``checkpoint`` state file started the
    run at step 0, over the older checkpoints."""
    directory = _saved(tmp_path)
    if "index" in lost:
        os.remove(directory / "ckpt-15.index")
    if "state" in lost:
        os.remove(directory / "checkpoint")
    ckpt, restored = _restored(tmp_path)
    if "index" in lost:
        assert restored.step == 10
        assert restored.skipped == ((str(directory / "ckpt-15"), "its .index file is missing"),)
    else:
        assert restored.step == 15 and restored.skipped == ()
    # The state file lists the checkpoints kept again: each save keeps 3, deleting the
    # oldest readable one only once a newer one is written.
    kept = {20: [5, 10, 20], 25: [10, 20, 25]}
    if "index" not in lost:
        kept = {20: [10, 15, 20], 25: [15, 20, 25]}
    for number in (20, 25):
        ckpt.save(number)
        assert _on_disk(directory) == sorted(f"ckpt-{n}.index" for n in kept[number])
    assert tf.train.latest_checkpoint(str(directory)).endswith("ckpt-25")


@pytest.mark.parametrize(
    "damage, reason",
    [("truncated", "Read less bytes than requested"), ("bit flip", "Checksum does not match")],
)
def test_a_damaged_newest_checkpoint_is_skipped_and_named(tmp_path, damage, reason):
    """Issue 20: a truncated or bit-flipped newest checkpoint gave a 40-line traceback
    although two good ones sat beside it."""
    directory = _saved(tmp_path)
    (data,) = directory.glob("ckpt-15.data-*")
    blob = bytearray(data.read_bytes())
    if damage == "truncated":
        blob = blob[: len(blob) // 2]
    else:
        blob[200] ^= 0xFF  # inside the weight's bytes
    data.write_bytes(bytes(blob))
    _, restored = _restored(tmp_path)
    assert restored.step == 10
    ((path, why),) = restored.skipped
    assert path == str(directory / "ckpt-15") and reason in why and "\n" not in why


def test_checkpoints_none_of_which_reads_refuse_in_one_line(tmp_path):
    directory = _saved(tmp_path, steps=(5, 10))
    for index in directory.glob("*.index"):
        index.write_bytes(b"not an index")
    ckpt, step, _ = _run_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="No checkpoint in .* reads \\(ckpt-10: .*--overwrite"):
        ckpt.restore_latest()
    # Files the state file names but that are gone refuse too: the run does not start over.
    for path in directory.glob("ckpt-*"):
        path.unlink()
    with pytest.raises(ValueError, match="ckpt-10: named in the state file"):
        ckpt.restore_latest()
    assert int(step.numpy()) == 0


def test_a_new_workdir_starts_at_step_zero(tmp_path):
    ckpt, step, _ = _run_checkpoint(tmp_path)
    assert ckpt.restore_latest() is None and int(step.numpy()) == 0


def test_temporary_folders_of_a_failed_save_are_removed(tmp_path):
    """Issue 20: ``ckpt-N_temp/`` stayed after a full disk and kept the disk full."""
    directory = _saved(tmp_path, steps=(5,))
    (directory / "ckpt-10_temp").mkdir()
    (directory / "ckpt-10_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"0")
    _, restored = _restored(tmp_path)
    assert restored.step == 5 and not (directory / "ckpt-10_temp").exists()


def test_sigterm_inside_watching_saves_once_and_raises_preempted(tmp_path):
    saved = []

    def save():
        saved.append(7)
        return 7

    preemption = checkpoints.Preemption(tf.distribute.get_strategy(), save, str(tmp_path / "s"))
    before = signal.getsignal(signal.SIGTERM)
    with preemption.watching():
        preemption.check()  # nothing asked: nothing saved
        assert saved == []
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(checkpoints.Preempted, match="SIGTERM at step 7"):
            preemption.check()
    assert saved == [7]
    assert signal.getsignal(signal.SIGTERM) == before  # SIGTERM means what it did again


def test_a_save_that_fails_on_a_full_disk_leaves_the_older_checkpoints_and_no_temp(
    tmp_path, monkeypatch
):
    """Issue 20: a full disk left ``ckpt-N_temp/`` behind, keeping the disk full."""
    directory = _saved(tmp_path, steps=(5, 10))
    ckpt, step, _ = _run_checkpoint(tmp_path)
    ckpt.restore_latest()

    def full_disk(self, checkpoint_number=None, **options):  # TensorFlow's first steps, then
        temp = directory / f"ckpt-{checkpoint_number}_temp"  # no space left
        temp.mkdir()
        (temp / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"0")
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk)
    step.assign(15)
    with pytest.raises(tf.errors.ResourceExhaustedError):
        ckpt.save(15)
    assert sorted(os.listdir(directory)) == [
        "checkpoint",
        *(f"ckpt-{n}.{kind}" for n in (10, 5) for kind in ("data-00000-of-00001", "index")),
    ]
    assert tf.train.latest_checkpoint(str(directory)).endswith("ckpt-10")


def test_a_remote_workdir_resumes_from_the_newest_checkpoint_that_reads(ram_dir):
    """The checkpoint folder is listed, cleaned and rewritten through tf.io.gfile: on an
    object store a lost index resumes from the checkpoint before it, and a killed save's
    ``ckpt-N_temp/`` is removed, as on a disk."""
    workdir = f"{ram_dir}/run"
    directory = f"{workdir}/checkpoints"
    ckpt, step, weight = _run_checkpoint(workdir)
    for number in (5, 10, 15):
        step.assign(number)
        weight.assign(tf.fill([256], float(number)))
        ckpt.save(number)
    tf.io.gfile.remove(f"{directory}/ckpt-15.index")
    tf.io.gfile.makedirs(f"{directory}/ckpt-20_temp")
    with tf.io.gfile.GFile(f"{directory}/ckpt-20_temp/part-00000-of-00001.index", "w") as f:
        f.write("half")
    ckpt, restored = _restored(workdir)
    assert restored.step == 10
    assert restored.skipped == ((f"{directory}/ckpt-15", "its .index file is missing"),)
    assert not tf.io.gfile.exists(f"{directory}/ckpt-20_temp")
    step.assign(20)
    ckpt.save(20)
    indexes = sorted(n for n in tf.io.gfile.listdir(directory) if n.endswith(".index"))
    assert indexes == ["ckpt-10.index", "ckpt-20.index", "ckpt-5.index"]
    assert tf.train.latest_checkpoint(directory) == f"{directory}/ckpt-20"
