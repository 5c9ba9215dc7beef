"""The run directory, and the one module that reads and writes it.

A run directory (workdir) holds what a training run leaves behind::

    config.json            the recipe, plus mean_rgb, num_classes and class_names
    model.keras            the trained classifier
    metrics.csv, learning_curves.png, logs/, checkpoints/

This module owns those names and their meaning: writing and reading
``config.json``; refusing a workdir that holds a run of another recipe; the
test scales Q a trained model is evaluated at (§4.1-4.2); and files written
whole or not at all (:func:`atomic_path`). It knows neither the recipe schema
nor the networks: loading a model with its config is
:func:`vgg_tf.weights.loading.load_model`.

A workdir may be local or on any filesystem TensorFlow serves (``gs://``,
``s3://``, ``hdfs://``, the in-memory ``ram://``; :func:`is_remote`): local
paths go through ``os`` (an atomic ``os.replace``, ``flock``), the others
through ``tf.io.gfile``. Files written here are opened with
``tf.io.gfile.GFile``, which reads and writes both.

Example:
    >>> config = {"scale_min": 256, "scale_max": 512, "crop_size": 224}
    >>> single_test_scale(config), multi_test_scales(config)
    (384, (256, 384, 512))
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import keras
import tensorflow as tf

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
#: Files of a run that ``overwrite`` removes (nothing else in the workdir is touched).
RUN_FILES = (CONFIG_FILE, "metrics.csv", "learning_curves.png", MODEL_FILE)
RUN_DIRS = ("checkpoints", "logs", "workers")
#: Fields of config.json that are not part of the recipe being compared.
_RECORDED_FIELDS = ("mean_rgb", "num_classes", "class_names", "recipe")


# --- Writing whole files ---------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path beside ``path``; renames it to ``path`` when the block succeeds.

    The temporary name is unique to this process and keeps the extension
    (``model.tmp-<host>-<pid>.keras``), as Keras and matplotlib choose the format
    by it: two processes writing the same file never write into each other's
    temporary file. A reader sees the old file or the new one, never half of
    one; on an error the temporary file is removed. The folder of ``path`` is
    made when missing.

    Local paths are renamed with ``os.replace`` (atomic); a remote path
    (:func:`is_remote`) with ``tf.io.gfile.rename``: open the temporary path
    with ``tf.io.gfile.GFile`` (Python's ``open`` reads local paths only).
    On an object store the rename is a copy, and the object appears whole.

    Example:
        >>> with atomic_path("/tmp/example.json") as tmp, tf.io.gfile.GFile(tmp, "w") as f:
        ...     _ = f.write("{}")
    """
    path = os.fspath(path)
    base, extension = os.path.splitext(path)
    tmp = f"{base}.{temporary_tag()}{extension}"
    _makedirs(_parent(path))
    try:
        yield tmp
        if is_remote(path):
            tf.io.gfile.rename(tmp, path, overwrite=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if _exists(tmp):
            _remove(tmp)
        raise


def temporary_tag() -> str:
    """``tmp-<host>-<pid>``: in every temporary name this process gives, so that two
    processes never share one and :func:`remove_dead_temporaries` tells whose it is."""
    return f"tmp-{socket.gethostname()}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_dead_temporaries(folder: str | os.PathLike) -> list[str]:
    """Removes the temporary files and folders that dead processes of this host left in
    ``folder`` (a kill, SIGTERM or a full disk while writing); returns their names.

    A temporary name holds its writer's :func:`temporary_tag`; one of another host,
    or of a process still running, is left alone. Local and remote folders alike.

    Example:
        >>> remove_dead_temporaries("/no/such/folder")
        []
    """
    folder = os.fspath(folder)
    if not _isdir(folder):
        return []
    tag = re.compile(rf"tmp-{re.escape(socket.gethostname())}-(\d+)(?:[.-]|$)")
    removed = []
    for name in sorted(_listdir(folder)):
        match = tag.search(name)
        if not match or _alive(int(match.group(1))):
            continue
        if _remove(os.path.join(folder, name)):
            removed.append(name)
    return removed


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Writes ``payload`` as indented JSON, whole or not at all (local or remote ``path``).

    Example:
        >>> write_json("ram://example/run/config.json", {"lr": 0.01})
        >>> read_config("ram://example/run")
        {'lr': 0.01}
    """
    text = json.dumps(payload, indent=2, sort_keys=True)  # fails before anything is written
    with atomic_path(path) as tmp, tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)


def save_model(model: keras.Model, path: str | os.PathLike) -> None:
    """Saves ``model`` (``.keras``), whole or not at all (local or remote ``path``).

    Example:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> save_model(model, "ram://example/run/model.keras")
    """
    with atomic_path(path) as tmp:
        model.save(tmp)


# --- Files, local or remote ----------------------------------------------------------
# Local paths keep os' behaviour (symbolic links are not followed into); the others go
# through tf.io.gfile. Folders are made explicitly: TensorFlow's in-memory filesystem
# (ram://) lists and removes only folders made so.


def _exists(path: str) -> bool:
    return tf.io.gfile.exists(path) if is_remote(path) else os.path.exists(path)


def _isdir(path: str) -> bool:
    return tf.io.gfile.isdir(path) if is_remote(path) else os.path.isdir(path)


def _is_file(path: str) -> bool:
    if is_remote(path):
        return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)
    return os.path.isfile(path)


def _listdir(folder: str) -> list[str]:
    if is_remote(folder):
        return [name.rstrip("/") for name in tf.io.gfile.listdir(folder)]
    return os.listdir(folder)


def _makedirs(folder: str) -> None:
    if not is_remote(folder):
        os.makedirs(folder or ".", exist_ok=True)
    elif not folder.endswith("://"):  # a filesystem's root is no folder to make
        tf.io.gfile.makedirs(folder)


def _parent(path: str) -> str:
    """The folder holding ``path``; a remote root (``gs://``) is its own parent."""
    if not is_remote(path):
        return os.path.dirname(path)
    scheme, rest = path.split("://", 1)
    return f"{scheme}://{rest.rstrip('/').rpartition('/')[0]}"


def _remove(path: str) -> bool:
    """Removes the file or folder tree at ``path``; False when it was gone already."""
    if is_remote(path):
        try:
            if tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                tf.io.gfile.remove(path)
        except tf.errors.NotFoundError:
            return False
        return True
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    except FileNotFoundError:
        return False
    return True


# --- config.json -----------------------------------------------------------


def read_config(workdir: str | os.PathLike) -> dict | None:
    """The run's recorded ``config.json``, or None where there is none (local or remote).

    Example:
        >>> read_config("/no/such/run") is None
        True
    """
    path = os.path.join(os.fspath(workdir), CONFIG_FILE)
    if not _is_file(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_config(workdir: str | os.PathLike, run_config: Mapping[str, Any]) -> None:
    """Records the run's config (recipe plus mean_rgb, num_classes, class_names).

    Example:
        >>> write_config("ram://example/run", {"variant": "A", "num_classes": 10})
    """
    write_json(os.path.join(os.fspath(workdir), CONFIG_FILE), dict(run_config))


def config_differences(old: Mapping, new: Mapping, ignore: Iterable[str] = ()) -> list[str]:
    """``"field: old -> new"`` for each field both record with different values.

    A field only one side has is not a difference: a field the recipe gained
    or lost since the run started changes nothing the run did. Nested dicts
    are compared field by field (``"space.dropout: ..."``).

    Example:
        >>> config_differences({"lr": 0.1, "old": 1}, {"lr": 0.01, "new": 2})
        ['lr: 0.1 -> 0.01']
    """
    ignore = set(ignore)
    diffs = []
    for key in sorted(set(old) & set(new) - ignore):
        a, b = old[key], new[key]
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{key}.{d}" for d in config_differences(a, b)]
        elif a != b:
            diffs.append(f"{key}: {a!r} -> {b!r}")
    return diffs


def check_same_run(
    workdir: str, recorded: Mapping | None, current: Mapping, what: str, ignore: Iterable[str] = ()
) -> None:
    """Refuses to continue in ``workdir`` a run whose recorded settings differ.

    Args:
        workdir: The directory, for the message.
        recorded: What the directory records (None: nothing, accepted).
        current: What this run would record.
        what: "a run", "a search": for the message.
        ignore: Fields that may differ (how a run executes, not what it computes).

    Raises:
        ValueError: Naming every differing field, and how to start over.
    """
    if recorded is None:
        return
    diffs = config_differences(recorded, current, ignore=ignore)
    if diffs:
        raise ValueError(
            f"{workdir!r} holds {what} with other settings ({'; '.join(diffs)}); pass "
            "--overwrite to start over there, or choose another directory."
        )


def prepare(
    workdir: str, config: Any, overwrite: bool = False, ignore: Iterable[str] = ()
) -> dict | None:
    """Checks that ``workdir`` is new or belongs to this config; returns its recorded config.

    With ``overwrite`` the run files of a previous run are removed first.
    The recorded mean RGB is compared only when ``config`` sets one.

    Example:
        >>> prepare("/tmp/new_run", config_lib.paper_recipe())  # doctest: +SKIP
    """
    if overwrite:
        clear_run(workdir)
    recorded = read_config(workdir)
    if recorded is None:
        return None
    current = json.loads(config.to_json())
    old = {k: v for k, v in recorded.items() if k not in _RECORDED_FIELDS}
    new = {k: v for k, v in current.items() if k not in _RECORDED_FIELDS}
    if config.mean_rgb is not None:
        old["mean_rgb"], new["mean_rgb"] = recorded.get("mean_rgb"), list(config.mean_rgb)
    check_same_run(workdir, old, new, "a run", ignore)
    return recorded


def clear_run(workdir: str) -> None:
    """Removes the files of a run (:data:`RUN_FILES`, :data:`RUN_DIRS`) from ``workdir``.

    Example:
        >>> clear_run("ram://example/run")
    """
    for name in RUN_FILES:
        if _is_file(os.path.join(workdir, name)):
            _remove(os.path.join(workdir, name))
    for name in RUN_DIRS:
        if _isdir(os.path.join(workdir, name)):
            _remove(os.path.join(workdir, name))


def check_outside(init_from: str, workdir: str) -> None:
    """Refuses a run that would start from a model in its own workdir.

    The new run's files would replace the source (and --overwrite would delete it).
    Only a path that exists is compared: a name such as ``imagenet-D`` (published
    weights) is not a path, and a path that does not exist holds no model to lose.

    Example:
        >>> check_outside("imagenet-D", ".")  # not a file here: nothing to compare
    """
    if not init_from or not _exists(init_from) or is_remote(init_from) != is_remote(workdir):
        return
    if is_remote(workdir):
        source, run, sep = init_from.rstrip("/"), workdir.rstrip("/"), "/"
    else:
        source, run, sep = os.path.realpath(init_from), os.path.realpath(workdir), os.sep
    if source == run or source.startswith(run.rstrip(sep) + sep):
        raise ValueError(
            f"--init_from {init_from!r} is inside this run's workdir {workdir!r}; expected "
            "the model of another run: pass --workdir with a new directory for this run."
        )


def default_run_name(config: Any) -> str:
    """``<dataset>_<variant>``: the default workdir under ``workdirs/`` and tuning project.

    A localisation net adds its head (``digits_on_canvas_A_scr``).

    Example:
        >>> default_run_name({"dataset": "/data/photos/", "variant": "E"})
        'photos_E'
    """
    name = f"{os.path.basename(os.path.normpath(config['dataset']))}_{config['variant']}"
    if config.get("task") == "localisation":
        name += f"_{config.get('head') or 'scr'}"
    return name


# --- What a recorded config means --------------------------------------------


def _training_scales(config: Mapping, where: str = "") -> tuple[int, int]:
    if config.get("scale_min") is None or config.get("scale_max") is None:
        raise ValueError(
            f"No training scales for {where or 'this model'}: config.json with scale_min and "
            "scale_max is missing beside the model; pass the test scales explicitly (--scales)."
        )
    return int(config["scale_min"]), int(config["scale_max"])


def single_test_scale(config: Mapping, where: str = "") -> int:
    """The single test scale Q (§4.1): S for a fixed-S model, (Smin + Smax) / 2 if jittered.

    Never below the crop size.

    Example:
        >>> single_test_scale({"scale_min": 256, "scale_max": 512, "crop_size": 224})
        384
    """
    s_min, s_max = _training_scales(config, where)
    return max((s_min + s_max) // 2, int(config.get("crop_size") or 0))


def multi_test_scales(config: Mapping, where: str = "") -> tuple[int, ...]:
    """The multi-scale test set (§4.2): {S-32, S, S+32} for fixed S, else {Smin, mid, Smax}.

    Scales below the crop size are raised to it, then deduplicated.

    Example:
        >>> multi_test_scales({"scale_min": 32, "scale_max": 32, "crop_size": 32})
        (32, 64)
    """
    s_min, s_max = _training_scales(config, where)
    qs = [s_min - 32, s_min, s_min + 32] if s_min == s_max else [s_min, (s_min + s_max) // 2, s_max]
    crop = int(config.get("crop_size") or 0)
    return tuple(dict.fromkeys(max(q, crop) for q in qs))


# --- One run per workdir -------------------------------------------------------

#: The lock file of a workdir (holds the holder's host, pid and command).
LOCK_FILE = ".lock"


class WorkdirBusyError(ValueError):
    """Another live process holds the workdir."""


@contextlib.contextmanager
def exclusive(workdir: str | os.PathLike, what: str = "a run") -> Iterator[None]:
    """Holds ``workdir`` for one process for the block; refuses at once if another holds it.

    An advisory ``fcntl.flock`` on ``WORKDIR/.lock``: the kernel drops it when
    the holder exits, however it exits (SIGKILL included), so a lock left by a
    dead process never blocks the next run. The file names the holder (host,
    pid, command) for the refusal. flock is per host on most network
    filesystems; on object stores (``gs://``, ``s3://``) there is no lock:
    one job per workdir is then the scheduler's rule to keep.

    Raises:
        WorkdirBusyError: Naming the holder, when another process holds it.

    Example:
        >>> with exclusive("/tmp/example_run"):
        ...     pass
    """
    import fcntl

    workdir = os.fspath(workdir)
    if is_remote(workdir):  # no lock on an object store: the scheduler's rule
        yield
        return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_FILE)
    handle = open(path, "a+")  # noqa: SIM115 (held open for the whole block)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise WorkdirBusyError(
                f"{workdir!r} is in use by {holder}; wait for it to finish, or choose another "
                f"directory for {what}."
            ) from None
        handle.seek(0)
        handle.truncate()
        command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
        handle.write(f"{what} (host {socket.gethostname()}, pid {os.getpid()}: {command})\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def is_remote(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a ``tf.io.gfile`` filesystem (``gs://``, ``s3://``, ``ram://``).

    Example:
        >>> is_remote("gs://bucket/run"), is_remote("/data/run")
        (True, False)
    """
    return "://" in os.fspath(path)


def _absolute(path: str) -> str:
    return path.rstrip("/") if is_remote(path) else os.path.abspath(path)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What a workdir held before a run claimed it, to put back if the run is refused.

    A refused run (a bad recipe, another run's workdir, a dataset that does not
    load, a checkpoint that does not read) leaves the filesystem as it found it:
    :meth:`put_back` removes what was added since :meth:`take` (the lock file,
    config.json, logs/), and the workdir itself and the empty folders above it
    when they did not exist. Take it before :func:`exclusive`, put it back while
    still holding the workdir. Local and remote workdirs alike.

    Attributes:
        workdir: The run directory.
        created: The first folder on the way to ``workdir`` that did not exist
            (``workdir`` itself or one above it); None when ``workdir`` existed.
        entries: The names ``workdir`` held.

    Example:
        >>> import tempfile
        >>> new = os.path.join(tempfile.mkdtemp(), "runs", "run")
        >>> before = Snapshot.take(new)
        >>> os.makedirs(new)
        >>> before.put_back()
        >>> os.path.exists(os.path.dirname(new))
        False
    """

    workdir: str
    created: str | None
    entries: frozenset[str]

    @classmethod
    def take(cls, workdir: str | os.PathLike) -> Snapshot:
        """Records what ``workdir`` holds now."""
        workdir = os.fspath(workdir)
        path, created = _absolute(workdir), None
        while not _exists(path) and _parent(path) != path:
            path, created = _parent(path), path
        entries = frozenset(_listdir(workdir)) if created is None else frozenset()
        return cls(workdir, created, entries)

    def put_back(self) -> None:
        """Removes what was added since :meth:`take` (best effort: never raises)."""
        with contextlib.suppress(OSError, tf.errors.OpError):
            if self.created is None:
                for name in set(_listdir(self.workdir)) - self.entries:
                    _remove(os.path.join(self.workdir, name))
                return
            _remove(self.workdir)
            # Folders above it only when empty: another run may have started beside it.
            parent = _parent(_absolute(self.workdir))
            while parent != _parent(self.created) and not _listdir(parent):
                if is_remote(parent):  # removes the folder alone, never what is in it
                    tf.io.gfile.remove(parent)
                else:
                    os.rmdir(parent)
                parent = _parent(parent)
