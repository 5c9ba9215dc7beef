"""The search space of a hyper-parameter search over the training recipe.

A :class:`SearchSpace` holds the ranges of the searched recipe fields
(learning rate, weight decay, dropout, batch size, the scale-jitter range of S
and the initialisation); :class:`RecipeHyperModel` declares them to keras-tuner
and turns a trial's values into a copy of the recipe (:func:`apply_values`).
The search itself is :mod:`vgg_tf.training.tuning`.

Example:
    >>> space = make_space(config_lib.paper_recipe(), learning_rate="0.001,0.05")
    >>> space.learning_rate
    (0.001, 0.05)
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import keras_tuner
import ml_collections

from vgg_tf.nets import specs

#: Hyper-parameter name -> recipe field it sets (``scale`` sets scale_min and scale_max).
FIELDS = {
    "learning_rate": "learning_rate",
    "weight_decay": "weight_decay",
    "dropout": "dropout",
    "batch_size": "batch_size",
    "scale": ("scale_min", "scale_max"),
    "init": "kernel_initializer",
}


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Ranges of the searched recipe fields.

    A float range with ``min == max`` (or a one-element choice) is held fixed.

    Attributes:
        learning_rate: (min, max) of the initial learning rate, sampled on a log scale.
        weight_decay: (min, max), Caffe meaning (see BUILD.md); log scale when min > 0.
        dropout: (min, max) dropout rate of fc6/fc7, linear.
        batch_sizes: Global batch sizes to choose from.
        scale_ranges: (scale_min, scale_max) pairs of the training scale S to choose
            from; scale_min < scale_max jitters S per image (paper §3.1).
        inits: Kernel initialisers to choose from ("paper" N(0, 0.01), "glorot", "he").

    Example:
        >>> space = SearchSpace((1e-3, 1e-1), (1e-5, 1e-3), (0.0, 0.5), (32, 64),
        ...                     ((32, 32), (32, 48)), ("glorot",))
        >>> validate_space(space, crop_size=32)
    """

    learning_rate: tuple[float, float]
    weight_decay: tuple[float, float]
    dropout: tuple[float, float]
    batch_sizes: tuple[int, ...]
    scale_ranges: tuple[tuple[int, int], ...]
    inits: tuple[str, ...]

    def to_json(self) -> dict:
        """A JSON-able description (recorded in ``search.json``)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def default_space(config: ml_collections.ConfigDict) -> SearchSpace:
    """Ranges around a recipe: lr / 10 .. lr * 10, batch / 2 .. batch * 2, and so on.

    The scale choices are the recipe's own range, S fixed at its scale_min, and
    the paper's jitter ratio [S, 2S] (256..512).

    Example:
        >>> space = default_space(config_lib.paper_recipe())
        >>> space.learning_rate, space.batch_sizes, space.scale_ranges
        ((0.001, 0.1), (128, 256, 512), ((256, 256), (256, 512)))
    """
    lr = float(config.learning_rate)
    s_min, s_max = int(config.scale_min), int(config.scale_max)
    scales = list(dict.fromkeys([(s_min, s_max), (s_min, s_min), (s_min, 2 * s_min)]))
    batch = int(config.batch_size)
    return SearchSpace(
        learning_rate=(lr / 10, lr * 10),
        weight_decay=(1e-5, 1e-3),
        dropout=(0.0, 0.6),
        batch_sizes=tuple(sorted({max(1, batch // 2), batch, batch * 2})),
        scale_ranges=tuple(sorted(scales)),
        inits=("paper", "glorot"),  # the paper's two (§3.1); "he" on request
    )


def parse_range(name: str, text: str) -> tuple[float, float]:
    """Parses ``"MIN,MAX"`` (or one value, held fixed) of flag ``--<name>``.

    Example:
        >>> parse_range("learning_rate_range", "1e-3,0.1")
        (0.001, 0.1)
    """
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name}={text!r} is not accepted; expected MIN,MAX (two numbers).")
    return values[0], values[1]


def parse_ints(name: str, text: str) -> tuple[int, ...]:
    """Parses ``"32,64,128"``.

    Example:
        >>> parse_ints("batch_sizes", "32, 64")
        (32, 64)
    """
    try:
        values = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        values = ()
    if not values:
        raise ValueError(f"{name}={text!r} is not accepted; expected integers like 32,64,128.")
    return values


def parse_scale_ranges(text: str) -> tuple[tuple[int, int], ...]:
    """Parses ``"32-32,32-48"`` (``S`` alone means S fixed) into (scale_min, scale_max) pairs.

    Example:
        >>> parse_scale_ranges("32,32-48")
        ((32, 32), (32, 48))
    """
    ranges = []
    for item in (p.strip() for p in text.split(",") if p.strip()):
        try:
            bounds = [int(v) for v in item.split("-")]
        except ValueError:
            bounds = []
        if len(bounds) == 1:
            bounds *= 2
        if len(bounds) != 2:
            raise ValueError(
                f"scale_ranges={text!r} is not accepted; expected SMIN-SMAX items like 32-32,32-48."
            )
        ranges.append((bounds[0], bounds[1]))
    if not ranges:
        raise ValueError(f"scale_ranges={text!r} is not accepted; expected items like 32-32,32-48.")
    return tuple(ranges)


def parse_names(text: str) -> tuple[str, ...]:
    """Parses ``"paper,glorot"``.

    Example:
        >>> parse_names("paper, glorot")
        ('paper', 'glorot')
    """
    return tuple(p.strip() for p in text.split(",") if p.strip())


def make_space(
    recipe: ml_collections.ConfigDict,
    *,
    learning_rate: str | None = None,
    weight_decay: str | None = None,
    dropout: str | None = None,
    batch_sizes: str | None = None,
    scale_ranges: str | None = None,
    inits: str | None = None,
) -> SearchSpace:
    """The default space of ``recipe`` with the ranges given as flag text replaced.

    Example:
        >>> make_space(config_lib.paper_recipe(), learning_rate="0.001,0.05").learning_rate
        (0.001, 0.05)
    """
    space = default_space(recipe)
    changes = {}
    if learning_rate is not None:
        changes["learning_rate"] = parse_range("learning_rate_range", learning_rate)
    if weight_decay is not None:
        changes["weight_decay"] = parse_range("weight_decay_range", weight_decay)
    if dropout is not None:
        changes["dropout"] = parse_range("dropout_range", dropout)
    if batch_sizes is not None:
        changes["batch_sizes"] = parse_ints("batch_sizes", batch_sizes)
    if scale_ranges is not None:
        changes["scale_ranges"] = parse_scale_ranges(scale_ranges)
    if inits is not None:
        changes["inits"] = parse_names(inits)
    space = dataclasses.replace(space, **changes)
    validate_space(space, int(recipe.crop_size))
    return space


def validate_space(space: SearchSpace, crop_size: int) -> None:
    """Raises ValueError naming the first bad range and what is accepted."""
    for name, (low, high) in (
        ("learning_rate", space.learning_rate),
        ("weight_decay", space.weight_decay),
        ("dropout", space.dropout),
    ):
        if low > high:
            raise ValueError(f"{name} range min={low:g} > max={high:g}; expected min <= max.")
    if space.learning_rate[0] <= 0:
        raise ValueError(
            f"learning_rate range min={space.learning_rate[0]:g} is not accepted; expected a "
            "positive learning rate (the range is sampled on a log scale)."
        )
    if space.weight_decay[0] < 0:
        raise ValueError(
            f"weight_decay range min={space.weight_decay[0]:g} is not accepted; expected >= 0."
        )
    if space.dropout[0] < 0 or space.dropout[1] >= 1:
        raise ValueError(
            f"dropout range {space.dropout[0]:g},{space.dropout[1]:g} is not accepted; expected "
            "0 <= min <= max < 1."
        )
    if not space.batch_sizes or min(space.batch_sizes) < 1:
        raise ValueError(
            f"batch_sizes={list(space.batch_sizes)} is not accepted; expected integers >= 1."
        )
    for s_min, s_max in space.scale_ranges:
        if s_min > s_max:
            raise ValueError(f"scale range {s_min}-{s_max} has min > max; expected SMIN <= SMAX.")
        if s_min < crop_size:
            raise ValueError(
                f"scale range {s_min}-{s_max} starts below crop_size={crop_size}; expected "
                f"SMIN >= {crop_size}."
            )
    unknown = [i for i in space.inits if i not in specs.KERNEL_INITIALIZERS]
    if unknown or not space.inits:
        raise ValueError(
            f"inits={','.join(space.inits)!r} is not accepted; expected some of "
            f"{', '.join(specs.KERNEL_INITIALIZERS)}."
        )


def _scale_name(bounds: Sequence[int]) -> str:
    return f"{bounds[0]}-{bounds[1]}"


class RecipeHyperModel(keras_tuner.HyperModel):
    """A HyperModel over the training recipe: ``build(hp)`` returns the trial's recipe.

    keras-tuner calls ``build`` to discover the space; :class:`RecipeTuner`
    calls it to get the recipe it trains. The model itself is built by the
    trainer, from the recipe.

    Example:
        >>> hypermodel = RecipeHyperModel(config_lib.paper_recipe())
        >>> hp = keras_tuner.HyperParameters()
        >>> recipe = hypermodel.build(hp)
        >>> recipe.batch_size in hypermodel.space.batch_sizes
        True
    """

    def __init__(
        self,
        recipe: ml_collections.ConfigDict,
        space: SearchSpace | None = None,
        trial_epochs: int | None = None,
    ):
        super().__init__(name="vgg_recipe")
        self.recipe = recipe
        self.space = space or default_space(recipe)
        self.trial_epochs = int(recipe.epochs if trial_epochs is None else trial_epochs)

    def declare_hyperparameters(self, hp: keras_tuner.HyperParameters) -> None:
        self._define(hp)

    @staticmethod
    def _float(hp, name: str, bounds: tuple[float, float], log: bool):
        low, high = bounds
        if low == high:
            return hp.Fixed(name, low)
        return hp.Float(name, low, high, sampling="log" if log and low > 0 else "linear")

    @staticmethod
    def _choice(hp, name: str, values: Sequence):
        values = list(values)
        return hp.Fixed(name, values[0]) if len(values) == 1 else hp.Choice(name, values)

    def _define(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        s = self.space
        return {
            "learning_rate": self._float(hp, "learning_rate", s.learning_rate, log=True),
            "weight_decay": self._float(hp, "weight_decay", s.weight_decay, log=True),
            "dropout": self._float(hp, "dropout", s.dropout, log=False),
            "batch_size": self._choice(hp, "batch_size", s.batch_sizes),
            "scale": self._choice(hp, "scale", [_scale_name(r) for r in s.scale_ranges]),
            "init": self._choice(hp, "init", s.inits),
        }

    def build(self, hp: keras_tuner.HyperParameters) -> ml_collections.ConfigDict:
        """The recipe of one trial (trial epochs; Hyperband's epochs and parent respected)."""
        values = self._define(hp)
        config = apply_values(self.recipe, values)
        with config.unlocked():
            config.epochs = self.trial_epochs
            if "tuner/epochs" in hp.values:  # Hyperband's successive halving
                config.epochs = int(hp.values["tuner/epochs"]) - int(
                    hp.values.get("tuner/initial_epoch", 0)
                )
        return config


def apply_values(
    recipe: ml_collections.ConfigDict, values: dict[str, Any]
) -> ml_collections.ConfigDict:
    """A copy of ``recipe`` with searched values (names of :data:`FIELDS`) set.

    Example:
        >>> config = apply_values(config_lib.paper_recipe(), {"scale": "256-512", "init": "glorot"})
        >>> config.scale_min, config.scale_max, config.kernel_initializer
        (256, 512, 'glorot')
    """
    config = recipe.copy_and_resolve_references()
    with config.unlocked():
        for name, value in values.items():
            if name not in FIELDS:
                continue
            if name == "scale":
                config.scale_min, config.scale_max = (int(v) for v in str(value).split("-"))
            elif name == "batch_size":
                config.batch_size = int(value)
            elif name == "init":
                config.kernel_initializer = str(value)
            else:
                config[FIELDS[name]] = float(value)
    return config
