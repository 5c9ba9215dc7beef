"""The paper's training recipe (§3.1) as a config, where recipes live, and what a recipe may hold.

Recipe files (``vgg_tf/configs/*.py``, shipped inside the package; ``configs/``
in a checkout points there) start from :func:`paper_recipe` and change the
fields that differ; every field can be overridden on the command line
(``--config.<field>=value``). A user's own recipe file works the same way.

Example:
    >>> config = paper_recipe()
    >>> validate_config(config)
    >>> recipe_path("digits").endswith("digits.py")
    True
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.resources
import inspect
import io
import os
import re
import textwrap
import tokenize

import ml_collections

from vgg_tf.data.constants import DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS
from vgg_tf.nets import specs

#: Fields that describe where or how fast a run executes, not what it learns:
#: a workdir may be resumed with different values for these.
EXECUTION_FIELDS = (
    "strategy",
    "devices",
    "steps_per_execution",
    "jit_compile",
    "log_every_steps",
)
#: Fields a resumed run may raise (not lower): a finished run trained further continues
#: from its last checkpoint, with the schedule's state.
EXTENDABLE_FIELDS = ("epochs",)
#: What a run learns (:mod:`vgg_tf.training.tasks`): class scores, or a box (Appendix A).
TASKS = ("classification", "localisation")
#: A localisation net's boxes: one for all classes (scr) or one per class (pcr).
HEADS = ("scr", "pcr")
#: The ``tf.distribute`` strategies a run may use (:mod:`vgg_tf.training.distribute`).
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
MIXED_PRECISION = ("", "bfloat16", "float16")
#: What ``freeze`` may hold: train everything, only the FC layers, or only fc8.
FREEZE = ("none", "convs", "all_but_head")
DEFAULT_RECIPE = "digits"
#: How a run shows its steps (not a recipe field: ``train_and_evaluate``'s ``progress``,
#: ``bin/train --progress``); see :func:`vgg_tf.training.reporting.progress_mode`.
PROGRESS_MODES = ("auto", "bar", "lines", "none")


def paper_recipe() -> ml_collections.ConfigDict:
    """Training recipe of the paper (§3.1) for ImageNet at fixed S = 256.

    Example:
        >>> config = paper_recipe()
        >>> config.batch_size, config.learning_rate, config.weight_decay
        (256, 0.01, 0.0005)
    """
    # Each field's comment is its note in the commands' --help (field_notes); a "-- X --" line
    # starts a section there.
    c = ml_collections.ConfigDict()
    c.recipe = "imagenet_s256"  # the recipe's name, for messages
    c.task = "classification"  # or "localisation" (Appendix A: the last layer predicts a box)
    c.head = "scr"  # localisation: "scr" one box for all classes, "pcr" one per class
    # -- Network (vgg_tf.VGG arguments) --
    c.variant = "A"  # a column of Table 1: A, A-LRN, B, C, D, E
    c.kernel_initializer = "paper"  # N(0, 0.01) weights, zero biases; or "glorot", "he"
    c.init_from = ""  # workdir or .keras of a trained model to start from (§3.1)
    c.init_from_required = ""  # the run a fine-tuning recipe starts from: --init_from needed
    c.new_layer_initializer = ""  # of the layers init_from lacks ("": kernel_initializer)
    c.freeze = "none"  # "convs": train the FC layers only; "all_but_head": fc8 only
    c.batch_norm = False  # batch normalisation after each conv (torchvision's vgg*_bn)
    c.dropout = 0.5  # after fc6 and fc7
    c.width_multiplier = 1.0  # filters and FC units times this (1/16: a net for tests)
    # -- Data --
    c.dataset = "imagenet2012"  # TFDS name, "digits" (built in) or a folder of class subfolders
    c.data_dir = ml_collections.FieldReference(None, field_type=str)  # TFDS data directory
    # where TFDS finds ImageNet's downloaded archives
    c.manual_dir = ml_collections.FieldReference(None, field_type=str)
    c.crop_size = 224  # the net's input: a random crop of the rescaled image
    c.scale_min = 256  # S; scale_min < scale_max jitters S per image
    c.scale_max = 256  # S's upper bound (= scale_min: single-scale training)
    # subtracted from every pixel (§2.1); None: init_from's, else ImageNet's or the data's own
    c.mean_rgb = ml_collections.FieldReference(None, field_type=tuple)
    c.flip = True  # random horizontal flips
    c.color_shift_std = 0.1  # PCA lighting (Krizhevsky et al. 2012)
    c.cache = False  # keep the decoded training set in memory
    # Images over these limits (read from the header) are skipped, counted and named; 0: none.
    c.max_pixels = DEFAULT_MAX_PIXELS  # images with more pixels are skipped; 0: no limit
    c.max_aspect_ratio = DEFAULT_MAX_ASPECT_RATIO  # longer side / shorter side; 0: no limit
    # -- Optimisation --
    c.batch_size = 256  # global, split over replicas
    c.learning_rate = 0.01
    c.momentum = 0.9
    c.weight_decay = 5e-4  # Caffe meaning: the gradient gains 5e-4 * w
    c.epochs = 74
    c.warmup_epochs = 0.0  # linear warm-up (not in the paper; helps deep nets on small data)
    c.lr_drop_factor = 0.1  # the rate is multiplied by this on a plateau
    c.lr_max_drops = 3
    c.lr_plateau_patience = 2  # epochs without validation improvement before a drop
    c.lr_plateau_min_delta = 1e-3  # improvement in validation top-1 accuracy that counts
    c.lr_plateau_start_epoch = 0  # first epoch the plateau scheduler watches
    # -- Execution --
    c.strategy = "default"  # or "mirrored", "multi_worker", "tpu" (§3.3)
    c.devices = ""  # comma-separated, for strategy "mirrored"
    c.mixed_precision = ""  # "", "bfloat16" or "float16"
    c.jit_compile = False  # compile the train step with XLA
    c.steps_per_execution = 1  # train steps per tf.function call
    c.seed = 0  # of init, data order and augmentation
    c.deterministic = False  # op determinism and a fixed data order: resumes are bit-identical
    c.checkpoint_every_steps = 1000
    c.keep_checkpoints = 3
    # the training loss goes to TensorBoard (and to a log's plain lines) every this many steps
    c.log_every_steps = 100
    return c


@dataclasses.dataclass(frozen=True)
class FieldNote:
    """One field of :func:`paper_recipe` as its source describes it.

    Attributes:
        field: The field's name.
        section: The section it is in (``"Data"``, ...; ``""`` before the first).
        note: The comment beside the field, else the comment lines just above it; ``""`` if
            none.
    """

    field: str
    section: str
    note: str


def field_notes() -> tuple[FieldNote, ...]:
    """The fields of :func:`paper_recipe` in its order, each with its section and comment.

    Read from the function's source, so the notes the commands' ``--help`` shows are the
    comments of the recipe itself; empty when the source is not installed.

    Example:
        >>> notes = {note.field: note for note in field_notes()}
        >>> notes["scale_min"].section, notes["scale_min"].note
        ('Data', 'S; scale_min < scale_max jitters S per image')
    """
    try:
        source = textwrap.dedent(inspect.getsource(paper_recipe))
    except (OSError, TypeError):
        return ()
    comments = {}  # line number -> (text, whether it is alone on its line)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            alone = not token.line[: token.start[1]].strip()
            comments[token.start[0]] = (token.string.lstrip("#").strip(), alone)
    sections = {
        line: match.group(1)
        for line, (text, alone) in comments.items()
        if alone and (match := re.fullmatch(r"-- (.+?)(?: \(.*\))? --", text))
    }
    notes = []
    for statement in ast.parse(source).body[0].body:
        if not (
            isinstance(statement, ast.Assign)
            and isinstance(target := statement.targets[0], ast.Attribute)
            and isinstance(target.value, ast.Name)
        ):
            continue
        above, line = [], statement.lineno - 1
        while line in comments and comments[line][1] and line not in sections:
            above.insert(0, comments[line][0])
            line -= 1
        beside = [
            comments[line][0]
            for line in range(statement.lineno, statement.end_lineno + 1)
            if line in comments and not comments[line][1]
        ]
        section = max((line for line in sections if line < statement.lineno), default=None)
        notes.append(FieldNote(target.attr, sections.get(section, ""), " ".join(beside or above)))
    return tuple(notes)


def fields_free_on_resume(config, recorded: dict | None) -> tuple[str, ...]:
    """The fields ``config`` may change in a workdir that recorded ``recorded``.

    :data:`EXECUTION_FIELDS` always; each of :data:`EXTENDABLE_FIELDS` when it
    is raised or kept (lowered, the run would already be past it).

    Example:
        >>> config = paper_recipe()
        >>> "epochs" in fields_free_on_resume(config, {"epochs": 10})
        True
        >>> "epochs" in fields_free_on_resume(config, {"epochs": 100})
        False
    """
    recorded = recorded or {}
    raised = tuple(
        field
        for field in EXTENDABLE_FIELDS
        if field not in recorded or config[field] >= recorded[field]
    )
    return EXECUTION_FIELDS + raised


def recipe_names() -> tuple[str, ...]:
    """Names of the recipes shipped with the package.

    Example:
        >>> "imagenet_s256" in recipe_names()
        True
    """
    files = importlib.resources.files("vgg_tf.configs").iterdir()
    return tuple(sorted(f.name[:-3] for f in files if f.name.endswith(".py") and f.name[0] != "_"))


def recipe_path(name_or_path: str) -> str:
    """The file of a packaged recipe (``"digits"``) or an existing recipe path, unchanged.

    Raises:
        ValueError: Neither a packaged recipe nor an existing file.

    Example:
        >>> os.path.basename(recipe_path("imagenet_s384"))
        'imagenet_s384.py'
    """
    if os.path.isfile(name_or_path):
        return name_or_path
    name = name_or_path[:-3] if name_or_path.endswith(".py") else name_or_path
    if name in recipe_names():
        # Packages install as plain files: the resource is a real path.
        return os.fspath(importlib.resources.files("vgg_tf.configs") / f"{name}.py")
    raise ValueError(
        f"Recipe {name_or_path!r} is neither a file nor a packaged recipe; expected a path to a "
        f"recipe file or one of {', '.join(recipe_names())}."
    )


def default_config_path() -> str:
    """Path of the default recipe (the built-in digits dataset)."""
    return recipe_path(DEFAULT_RECIPE)


def _check_choice(config, field: str, accepted, allow_empty: bool = False) -> None:
    if config[field] not in accepted and not (allow_empty and not config[field]):
        raise ValueError(
            f"Unknown {field} {config[field]!r}; expected one of "
            f"{', '.join(a or repr(a) for a in accepted)}."
        )


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming the first bad field and what is accepted.

    Example:
        >>> bad = paper_recipe()
        >>> bad.scale_min = 128
        >>> validate_config(bad)
        Traceback (most recent call last):
        ...
        ValueError: scale_min=128 is smaller than crop_size=224; expected S >= crop size.
    """
    # Imported here: a recipe file imports this module, and loading it stays free of TensorFlow.
    from vgg_tf.data import images

    specs.get_spec(config.variant)
    _check_choice(config, "task", TASKS)
    _check_choice(config, "head", HEADS)
    if not config.dataset:
        raise ValueError(
            f"Recipe {config.recipe!r} names no dataset; pass --dataset (a TFDS name, 'digits', "
            "or a folder of class subfolders)."
        )
    _check_choice(config, "kernel_initializer", specs.KERNEL_INITIALIZERS)
    _check_choice(config, "new_layer_initializer", specs.KERNEL_INITIALIZERS, allow_empty=True)
    _check_choice(config, "strategy", STRATEGIES)
    _check_choice(config, "mixed_precision", MIXED_PRECISION)
    _check_choice(config, "freeze", FREEZE)
    for field in (
        "batch_size",
        "epochs",
        "steps_per_execution",
        "checkpoint_every_steps",
        "keep_checkpoints",
        "log_every_steps",
        "crop_size",
    ):
        if int(config[field]) < 1:
            raise ValueError(f"{field}={config[field]!r} is not accepted; expected >= 1.")
    for field, low in (("learning_rate", "> 0"), ("warmup_epochs", ">= 0")):
        ok = config[field] > 0 if low == "> 0" else config[field] >= 0
        if not ok:
            raise ValueError(f"{field}={config[field]!r} is not accepted; expected {low}.")
    if not config.scale_min <= config.scale_max:
        raise ValueError(
            f"scale_min={config.scale_min} > scale_max={config.scale_max}; expected "
            "scale_min <= scale_max."
        )
    if config.scale_min < config.crop_size:
        raise ValueError(
            f"scale_min={config.scale_min} is smaller than crop_size={config.crop_size}; "
            "expected S >= crop size."
        )
    images.check_image_limits(config.max_pixels or None, config.max_aspect_ratio or None)
    if config.init_from_required and not config.init_from:
        raise ValueError(
            f"Recipe {config.recipe!r} fine-tunes (learning_rate={config.learning_rate:g}) from "
            f"{config.init_from_required}; pass --init_from=WORKDIR of that run (or "
            "--config.init_from_required='' to train from scratch at this rate)."
        )
