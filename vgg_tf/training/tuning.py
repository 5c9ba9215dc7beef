"""Hyper-parameter search over the training recipe with keras-tuner.

The paper fixes its hyper-parameters by hand (§3.1); this module searches
them for a new dataset. A :class:`RecipeHyperModel` turns a trial's
hyper-parameters (learning rate, weight decay, dropout, batch size, the
scale-jitter range of S and the initialisation) into a copy of the recipe, and
:class:`RecipeTuner` trains that recipe with :func:`vgg_tf.training.loop.train_and_evaluate`
(the one training loop, its input pipeline, strategy and metrics) in
``DIR/<project>/trial_<id>/``. That folder is a training workdir, so a trial
killed half-way resumes from its checkpoint when the search is rerun, and
keras-tuner's oracle state in ``DIR/<project>/oracle.json`` makes the search
itself continue where it stopped.

The objective is the final validation top-1 (or top-5) error, minimised.
At the end :func:`search` returns a table of the trials and writes the best
trial as a recipe file, ``DIR/<project>/best_config.py``, that
``bin/train --config`` accepts.

Example:
    >>> import runpy  # doctest: +SKIP
    >>> recipe = runpy.run_path("configs/digits.py")["get_config"]()  # doctest: +SKIP
    >>> settings = tune.SearchSettings(max_trials=3, trial_epochs=1)  # doctest: +SKIP
    >>> result = tune.search(recipe, "tuning", settings=settings)  # doctest: +SKIP
    >>> print(result.table)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import keras
import keras_tuner
import ml_collections
import tensorflow as tf
from keras_tuner.engine import base_tuner
from keras_tuner.engine.trial import TrialStatus

from vgg_tf import tables, workdir
from vgg_tf.data import sources
from vgg_tf.training import distribute, metrics
from vgg_tf.training import loop as train
from vgg_tf.training import recipe as config_lib
from vgg_tf.training.checkpoints import Preempted
from vgg_tf.training.search_space import (
    RecipeHyperModel,
    SearchSpace,
    apply_values,
    default_space,
    validate_space,
)

TUNERS = ("random", "bayesian", "hyperband")
OBJECTIVES = {"top1": "val_top1_error", "top5": "val_top5_error"}
SEARCH_FILE = "search.json"
BEST_CONFIG_FILE = "best_config.py"
TRIALS_FILE = "trials.csv"

TrainFn = Callable[..., dict]


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """How a search runs: the algorithm, what it minimises, its trials and their epochs.

    All but ``max_trials`` are recorded with the search (``search.json``): a rerun
    with other values is refused, as the resumed oracle would ignore them; more
    trials on a rerun extend the search.

    Attributes:
        tuner: ``"random"``, ``"bayesian"`` or ``"hyperband"`` (:data:`TUNERS`).
        objective: ``"top1"`` or ``"top5"``: the validation error minimised.
        max_trials: Number of trials (Hyperband: at most this many).
        trial_epochs: Epochs each trial trains (Hyperband: the maximum); None:
            the recipe's (:meth:`for_recipe`). The best recipe keeps the recipe's
            epochs.
        seed: Seed of the oracle (>= 1).
        hyperband_factor: Hyperband's reduction factor (>= 2).

    Raises:
        ValueError: An unknown tuner or objective, or a count below its minimum.

    Example:
        >>> SearchSettings(tuner="bayesian", max_trials=20).objective
        'top1'
        >>> SearchSettings(tuner="grid")
        Traceback (most recent call last):
        ...
        ValueError: Unknown tuner 'grid'; expected one of random, bayesian, hyperband.
    """

    tuner: str = "random"
    objective: str = "top1"
    max_trials: int = 10
    trial_epochs: int | None = None
    seed: int = 1
    hyperband_factor: int = 3

    def __post_init__(self):
        if self.tuner not in TUNERS:
            raise ValueError(f"Unknown tuner {self.tuner!r}; expected one of {', '.join(TUNERS)}.")
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"Unknown objective {self.objective!r}; expected one of {', '.join(OBJECTIVES)}."
            )
        for name, value, low in (
            ("max_trials", self.max_trials, 1),
            ("seed", self.seed, 1),
            ("hyperband_factor", self.hyperband_factor, 2),
            ("epochs", self.trial_epochs, 1),
        ):
            if value is not None and int(value) < low:
                raise ValueError(f"{name}={value} is not accepted; expected >= {low}.")

    def for_recipe(self, recipe: ml_collections.ConfigDict) -> SearchSettings:
        """These settings with ``trial_epochs`` given: the recipe's epochs when it was None."""
        epochs = recipe.epochs if self.trial_epochs is None else self.trial_epochs
        return dataclasses.replace(self, trial_epochs=int(epochs))

    @property
    def goal(self) -> str:
        """The metric minimised: ``val_top1_error`` or ``val_top5_error``."""
        return OBJECTIVES[self.objective]


#: keras-tuner's random search, 10 trials of the recipe's epochs, minimising top-1 error.
DEFAULT_SEARCH = SearchSettings()


# --- The tuner -------------------------------------------------------------


class TrialPreempted(keras_tuner.errors.FatalError, Preempted):
    """SIGTERM stopped a trial (its checkpoint saved): keras-tuner stops the search too."""


class RecipeTuner(base_tuner.BaseTuner):
    """Runs each trial as a training run in ``DIR/<project>/trial_<id>/``.

    Args:
        oracle: A keras-tuner oracle whose objective is a ``val_*_error`` metric.
        hypermodel: The :class:`RecipeHyperModel`.
        strategy: The distribution strategy every trial trains under.
        train_fn: The training stage (tests pass a stand-in).
        **kwargs: ``directory``, ``project_name``, ``overwrite`` of keras-tuner.
    """

    def __init__(
        self,
        oracle,
        hypermodel: RecipeHyperModel,
        *,
        strategy: tf.distribute.Strategy | None = None,
        train_fn: TrainFn | None = None,
        **kwargs,
    ):
        super().__init__(oracle, hypermodel, **kwargs)
        self.strategy = strategy
        self.train_fn = train_fn or train.train_and_evaluate

    def trial_config(self, trial) -> ml_collections.ConfigDict:
        """The recipe a trial trains (Hyperband: starting from its parent trial's model)."""
        config = self.hypermodel.build(trial.hyperparameters)
        parent = trial.hyperparameters.values.get("tuner/trial_id")
        if parent:
            with config.unlocked():
                config.init_from = self.get_trial_dir(parent)
        return config

    def run_trial(self, trial, *args, **kwargs) -> dict[str, float]:
        config = self.trial_config(trial)
        workdir = self.get_trial_dir(trial.trial_id)
        try:
            # The trial's workdir is held for the trial (train_and_evaluate holds it).
            result = self.train_fn(config, workdir, strategy=self.strategy)
        except train.NonFiniteLossError as error:
            # The setting diverges: a result of the search, not a crash to retry.
            raise keras_tuner.errors.FailedTrialError(str(error)) from error
        except Preempted as stop:
            # The search stops with the trial; rerun, the trial resumes from its checkpoint.
            raise TrialPreempted(str(stop)) from stop
        finally:
            keras.backend.clear_session()
            gc.collect()
        return {  # no top-5 error for 5 classes or fewer
            name: float(result[name])
            for name in ("val_top1_error", "val_top5_error", "val_loss")
            if name in result
        }

    def on_trial_end(self, trial):
        if trial.status == TrialStatus.FAILED and trial.message:
            last = trial.message.strip().splitlines()[-1]
            print(f"trial {trial.trial_id} failed: {last}", file=sys.stderr, flush=True)
        super().on_trial_end(trial)


def make_oracle(settings: SearchSettings) -> keras_tuner.Oracle:
    """The keras-tuner oracle of ``settings``, minimising its objective.

    ``settings.trial_epochs`` is Hyperband's maximum (see :meth:`SearchSettings.for_recipe`).

    Example:
        >>> oracle = make_oracle(SearchSettings(max_trials=3, trial_epochs=1))
        >>> oracle.objective.name, oracle.objective.direction
        ('val_top1_error', 'min')
    """
    goal = keras_tuner.Objective(settings.goal, direction="min")
    max_trials, seed = settings.max_trials, settings.seed
    if settings.tuner == "random":
        return keras_tuner.oracles.RandomSearchOracle(goal, max_trials=max_trials, seed=seed)
    if settings.tuner == "bayesian":
        # keras-tuner's default, 3 random trials per hyper-parameter (18 here), would
        # leave a search of 10 or 20 trials random; a third of the trials is enough
        # to fit the Gaussian process to.
        return keras_tuner.oracles.BayesianOptimizationOracle(
            goal,
            max_trials=max_trials,
            seed=seed,
            num_initial_points=max(2, max_trials // 3),
        )
    if settings.trial_epochs is None:
        raise ValueError(
            "Hyperband needs trial_epochs, its maximum; SearchSettings.for_recipe gives the "
            "recipe's."
        )
    oracle = keras_tuner.oracles.HyperbandOracle(
        goal, max_epochs=settings.trial_epochs, factor=settings.hyperband_factor, seed=seed
    )
    oracle.max_trials = max_trials  # Hyperband has no cap of its own; the oracle base honours it
    return oracle


# --- Results ---------------------------------------------------------------


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "-" if value is None else str(value)


def trial_rows(oracle: keras_tuner.Oracle) -> list[dict[str, Any]]:
    """One row per trial in id order: trial, status, hyper-parameters, the objective."""
    objective = oracle.objective.name
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        row = {"trial": trial_id, "status": trial.status}
        row.update(trial.hyperparameters.values)
        metric = (
            trial.metrics.get_best_value(objective) if trial.metrics.exists(objective) else None
        )
        row[objective] = metric
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]], best_id: str | None = None) -> str:
    """A plain-text table of ``rows``; the best trial is marked with ``*``.

    Example:
        >>> print(format_table([{"trial": "0", "status": "COMPLETED", "dropout": 0.5,
        ...                      "val_top1_error": 0.25}], best_id="0"))
        trial  status     dropout  val_top1_error
        0*     COMPLETED  0.5      0.25
    """
    if not rows:
        return "(no trials)"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [
        [
            _format(row.get(c)) + ("*" if c == "trial" and row["trial"] == best_id else "")
            for c in columns
        ]
        for row in rows
    ]
    return tables.format_table(columns, cells)


def write_rows(rows: list[dict[str, Any]], path: str) -> None:
    """Writes ``rows`` as CSV (the union of their keys as columns), whole or not at all.

    ``path`` may be local or on a filesystem TensorFlow serves (``gs://``, ``ram://``).

    Example:
        >>> write_rows([{"trial": "0", "dropout": 0.5}], "ram://example/trials.csv")
    """
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with workdir.atomic_path(path) as tmp, tf.io.gfile.GFile(tmp, "w") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def config_source(config: ml_collections.ConfigDict, header: str = "") -> str:
    """Python source of a recipe file whose ``get_config()`` returns ``config``.

    It starts from :func:`vgg_tf.training.recipe.paper_recipe` (which keeps the field
    types, so ``--config.<field>=value`` overrides work) and sets every field.

    Example:
        >>> source = config_source(config_lib.paper_recipe())
        >>> namespace = {}
        >>> exec(source, namespace)
        >>> namespace["get_config"]().to_dict() == config_lib.paper_recipe().to_dict()
        True
    """
    lines = [f'"""{header.strip()}"""' if header else '"""A vgg_tf training recipe."""', ""]
    lines += ["from vgg_tf.training.recipe import paper_recipe", "", "", "def get_config():"]
    lines.append("    config = paper_recipe()")
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            value = value.to_dict()
        lines.append(f"    config.{key} = {value!r}")
    lines.append("    return config")
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class SearchResult:
    """What :func:`search` found.

    Attributes:
        table: The trials table (empty on a keras-tuner worker).
        rows: The table's rows.
        best_trial: Id of the best completed trial, or None.
        best_value: Its objective value.
        best_config_path: The written recipe file of the best trial, or None.
        project_dir: ``DIR/<project>``.
        worker: Whether this process ran as a keras-tuner worker (the chief reports).
    """

    table: str
    rows: list
    best_trial: str | None
    best_value: float | None
    best_config_path: str | None
    project_dir: str
    worker: bool = False


# --- The search ------------------------------------------------------------


def _search_record(recipe, space: SearchSpace, settings: SearchSettings) -> dict:
    recipe_json = json.loads(recipe.to_json())
    for field in config_lib.EXECUTION_FIELDS:
        recipe_json.pop(field, None)
    return {
        "tuner": settings.tuner,
        "objective": settings.objective,
        "trial_epochs": settings.trial_epochs,
        # A resumed oracle keeps its seed and factor: another value would be ignored.
        "seed": int(settings.seed),
        "hyperband_factor": int(settings.hyperband_factor),
        "space": space.to_json(),
        "recipe": recipe_json,
    }


def _check_search_record(project_dir: str, record: dict, write: bool = True) -> None:
    """Refuses to continue a search in ``project_dir`` that has another space or recipe.

    Writes ``record`` there unless ``write`` is False (a worker only checks the
    chief's record).
    """
    path = os.path.join(project_dir, SEARCH_FILE)
    recorded = None
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            recorded = json.load(f)
    workdir.check_same_run(project_dir, recorded, record, "a search", config_lib.EXECUTION_FIELDS)
    if write:
        workdir.write_json(path, record)


def tuner_role() -> str:
    """ "single", or keras-tuner's distributed role from KERASTUNER_TUNER_ID: "chief" or "worker".

    keras-tuner runs distributed when KERASTUNER_ORACLE_IP is set; the tuner
    whose id contains "chief" serves the oracle, the others run trials.
    """
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def search(
    recipe: ml_collections.ConfigDict,
    directory: str,
    *,
    space: SearchSpace | None = None,
    settings: SearchSettings = DEFAULT_SEARCH,
    project_name: str | None = None,
    overwrite: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    train_fn: TrainFn | None = None,
) -> SearchResult:
    """Searches the hyper-parameters of ``recipe``; resumes the search in ``directory``.

    Under keras-tuner's distributed mode (KERASTUNER_TUNER_ID,
    KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT) the process named ``chief``
    runs the oracle and reports, the others run trials.

    Args:
        recipe: The base recipe; the searched fields are overwritten per trial.
        directory: Where the search lives (``directory/<project_name>/``).
        space: The ranges (default: :func:`default_space` of the recipe).
        settings: The algorithm, objective, trials and epochs per trial
            (:class:`SearchSettings`).
        project_name: Default ``<dataset>_<variant>``.
        overwrite: Start the search over (workers never delete).
        strategy: The strategy of every trial (default: ``recipe.strategy``).
        train_fn: The training function (default :func:`vgg_tf.training.loop.train_and_evaluate`).

    Returns:
        A :class:`SearchResult`; the best recipe is written to
        ``directory/<project_name>/best_config.py``.

    Raises:
        ValueError: A bad range or recipe field, or a directory that holds a
            search with other settings.
        RuntimeError: Trials kept failing (keras-tuner gives up after 3 in a row).

    Example:
        >>> search(recipe, "tuning", settings=SearchSettings("bayesian", max_trials=20))  # doctest: +SKIP
    """
    settings = settings.for_recipe(recipe)
    config_lib.validate_config(recipe)
    check_objective(settings, recipe)
    space = space or default_space(recipe)
    validate_space(space, int(recipe.crop_size))

    role = tuner_role()
    worker = role == "worker"
    if strategy is None and role != "chief":
        strategy = distribute.strategy_for(recipe)
    if strategy is not None:  # refused here, not as failed trials
        distribute.check_batch_sizes(space.batch_sizes, strategy)
    project_name = project_name or workdir.default_run_name(recipe)
    project_dir = os.path.join(directory, project_name)
    if overwrite and not worker and tf.io.gfile.exists(project_dir):
        tf.io.gfile.rmtree(project_dir)
    # A worker checks the chief's record too: its trials must train the same search.
    # (With --overwrite the chief may be deleting it: the chief's check is enough.)
    if not (worker and overwrite):
        _check_search_record(project_dir, _search_record(recipe, space, settings), write=not worker)

    recipe_tuner = RecipeTuner(
        make_oracle(settings),
        RecipeHyperModel(recipe, space, settings.trial_epochs),
        strategy=strategy,
        train_fn=train_fn,
        directory=directory,
        project_name=project_name,
        overwrite=False,
    )
    recipe_tuner.search()
    if worker:
        return SearchResult("", [], None, None, None, project_dir, worker=True)
    return _report(recipe_tuner, recipe, settings, project_dir)


def check_objective(settings: SearchSettings, recipe: ml_collections.ConfigDict) -> None:
    """Refuses the top-5 objective on a dataset of 5 classes or fewer, before any trial:
    every label is among the top 5 there, and each trial would score 0.

    Raises:
        ValueError: Naming the dataset, its number of classes and what is accepted.

    Example:
        >>> check_objective(SearchSettings(objective="top1"), recipe)  # doctest: +SKIP
    """
    if settings.objective != "top5":
        return
    source = sources.get_source(
        recipe.dataset, data_dir=recipe.data_dir, manual_dir=recipe.manual_dir
    )
    if not metrics.has_top5_error(source.num_classes):
        raise ValueError(
            f"objective='top5' is not accepted for {recipe.dataset!r}, which has "
            f"{source.num_classes} classes: every label is among the top 5; expected 'top1' "
            "(top-5 error needs more than 5 classes)."
        )


def _report(recipe_tuner, recipe, settings: SearchSettings, project_dir: str) -> SearchResult:
    """The trials' table and file, and the best trial's recipe file."""
    rows = trial_rows(recipe_tuner.oracle)
    completed = [t for t in recipe_tuner.oracle.trials.values() if t.status == "COMPLETED"]
    best = recipe_tuner.oracle.get_best_trials(1)[0] if completed else None
    best_path = None
    if best is not None:
        best_config = apply_values(recipe, best.hyperparameters.values)
        best_path = os.path.join(project_dir, BEST_CONFIG_FILE)
        header = (
            f"Best trial {best.trial_id} of the search in {project_dir} "
            f"({settings.tuner}, {settings.goal} = {best.score:.4g} after "
            f"{settings.trial_epochs} epoch(s)).\n\n"
            f"    bin/train --config={best_path}\n"
        )
        with workdir.atomic_path(best_path) as tmp, tf.io.gfile.GFile(tmp, "w") as f:
            f.write(config_source(best_config, header))
    write_rows(rows, os.path.join(project_dir, TRIALS_FILE))
    return SearchResult(
        table=format_table(rows, best.trial_id if best else None),
        rows=rows,
        best_trial=best.trial_id if best else None,
        best_value=float(best.score) if best else None,
        best_config_path=best_path,
        project_dir=project_dir,
    )
