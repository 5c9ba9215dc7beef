"""Appendix B's transfer protocol: linear SVMs on the descriptors, scored as the paper scores.

The descriptors of a dataset's train split (:mod:`vgg_tf.evaluation.features`)
train scikit-learn's ``LinearSVC``, one-vs-rest: one linear SVM per class,
which for a dataset whose images hold several classes (VOC) is trained on the
images that hold the class against all others. The held-out split is scored in
the measure the paper reports for the dataset (:mod:`vgg_tf.evaluation.measures`):
VOC's mean average precision, Caltech's mean class recall, or accuracy.

Example:
    >>> scores, train, test = linear_eval(["workdirs/digits_A"], DatasetSplit("digits"))  # doctest: +SKIP
    >>> scores["measure"], scores["score"]  # doctest: +SKIP
    ('accuracy', 0.986)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from vgg_tf.evaluation import measures
from vgg_tf.evaluation.datasets import DatasetSplit
from vgg_tf.evaluation.features import (
    DEFAULT_DESCRIPTOR,
    Descriptor,
    FeatureSet,
    extractor_for,
    split_features,
)
from vgg_tf.weights.trained import TrainedModel

#: The SVM constants C cross-validation chooses from, and its folds.
C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
CV_FOLDS = 3


def _svm(c: float, seed: int):
    """scikit-learn's ``LinearSVC`` solving the primal problem: on these descriptors the
    dual solver (its default) needed thousands of iterations at large C, and sometimes
    did not converge, where the primal one takes a fraction of a second."""
    from sklearn.svm import LinearSVC

    return LinearSVC(C=c, dual=False, random_state=seed, max_iter=10_000)


def _multi_label(train: FeatureSet, measure: str) -> bool:
    """One binary SVM per class on the classes each image holds (VOC's mean AP)."""
    return train.targets is not None and measure.startswith("map")


def _fit(features, fs: FeatureSet, c: float, seed: int, multi_label: bool):
    """The fitted one-vs-rest SVM(s) and a function giving ``[N, classes]`` scores."""
    if multi_label:
        from sklearn.multiclass import OneVsRestClassifier

        svm = OneVsRestClassifier(_svm(c, seed)).fit(features, fs.class_targets())
    else:
        svm = _svm(c, seed).fit(features, fs.labels)

    def decisions(x):
        scores = svm.decision_function(x)
        if scores.ndim == 1:  # two classes: scikit-learn gives the second's score alone
            scores = np.stack([-scores, scores], axis=1)
        full = np.full([len(x), len(fs.class_names)], -np.inf)
        classes = np.arange(len(fs.class_names)) if multi_label else svm.classes_
        full[:, classes] = scores
        return full

    return svm, decisions


def _score(decisions, fs: FeatureSet, measure: str) -> float:
    return measures.score(measure, decisions(fs.features), fs.labels, fs.class_targets())


def choose_c(train: FeatureSet, *, seed: int = 0, measure: str = "accuracy") -> float:
    """The C of :data:`C_GRID` with the best mean ``measure`` over :data:`CV_FOLDS` folds of
    ``train`` (the held-out split is not looked at; stratified by class for one class per
    image); 1.0 when a class has fewer than two examples.

    L2-normalised descriptors are small: scikit-learn's default C = 1 underfits
    them (on the digits, a tiny net's descriptors gave 72% test accuracy at C = 1
    and 89% at C = 100), so C is chosen on the training split.
    """
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

    measures.check_measure(measure)
    folds = min(CV_FOLDS, int(np.unique(train.labels, return_counts=True)[1].min()))
    if folds < 2:
        return 1.0
    if measure == "accuracy":
        search = GridSearchCV(
            _svm(1.0, seed),
            {"C": list(C_GRID)},
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        )
        search.fit(train.features, train.labels)
        return float(search.best_params_["C"])
    multi_label = _multi_label(train, measure)
    splitter = (
        KFold(folds, shuffle=True, random_state=seed)
        if multi_label
        else StratifiedKFold(folds, shuffle=True, random_state=seed)
    )
    means = []
    for c in C_GRID:
        per_fold = []
        for fit_rows, held_rows in splitter.split(train.features, train.labels):
            fit_part, held_part = _rows(train, fit_rows), _rows(train, held_rows)
            _, decisions = _fit(fit_part.features, fit_part, c, seed, multi_label)
            per_fold.append(_score(decisions, held_part, measure))
        means.append(np.nanmean(per_fold))
    return float(C_GRID[int(np.argmax(means))])


def _rows(fs: FeatureSet, rows) -> FeatureSet:
    targets = None if fs.targets is None else fs.targets[rows]
    return dataclasses.replace(
        fs,
        features=fs.features[rows],
        labels=fs.labels[rows],
        filenames=tuple(fs.filenames[i] for i in rows),
        targets=targets,
    )


def fit_linear_svm(
    train: FeatureSet,
    test: FeatureSet,
    *,
    c: float | None = None,
    seed: int = 0,
    measure: str = "accuracy",
) -> dict:
    """Fits one-vs-rest linear SVMs on ``train``'s descriptors; scores ``test`` in ``measure``.

    Args:
        train, test: Descriptors and labels (and, for VOC, each image's classes).
        c: The SVM's C; None chooses it by cross-validation on ``train``
            (:func:`choose_c`, in the same measure).
        seed: For the solver and the folds.
        measure: One of :data:`vgg_tf.evaluation.measures.MEASURES`. The mean APs
            train one binary SVM per class on the classes each image holds when
            the dataset lists them (VOC), else on its one class.

    Returns:
        ``measure``, ``score`` (a fraction) on ``test`` and ``train_score`` on
        ``train``, ``accuracy`` and ``train_accuracy`` (the top-scored class being
        the image's ``label``), the example counts and the ``c`` used.
    """
    measures.check_measure(measure)
    if c is not None and not c > 0:
        raise ValueError(f"c={c!r} is not accepted; expected > 0 (or None: cross-validated).")
    c = choose_c(train, seed=seed, measure=measure) if c is None else float(c)
    _, decisions = _fit(train.features, train, c, seed, _multi_label(train, measure))
    return dict(
        measure=measure,
        score=_score(decisions, test, measure),
        train_score=_score(decisions, train, measure),
        accuracy=_score(decisions, test, "accuracy"),
        train_accuracy=_score(decisions, train, "accuracy"),
        train_examples=len(train.labels),
        test_examples=len(test.labels),
        c=c,
    )


def linear_eval(
    models: str | os.PathLike | TrainedModel | Sequence[str | os.PathLike | TrainedModel],
    data: DatasetSplit,
    descriptor: Descriptor = DEFAULT_DESCRIPTOR,
    *,
    train_split: str | None = None,
    c: float | None = None,
    measure: str = "accuracy",
    verbose: int = 1,
) -> tuple[dict, FeatureSet, FeatureSet]:
    """Appendix B's protocol: linear SVMs on the train split's descriptors, scored on a
    held-out split (``bin/features --linear_eval``).

    Args:
        models, descriptor, verbose: As :func:`vgg_tf.evaluation.features.extract_features`
            (several models: their descriptors stacked).
        data: The held-out images (its split: default the dataset's test split);
            the train split is read the same way (its first n, within the limits).
        train_split: Default: the dataset's train split (for a dataset without a
            validation split, its first 90%, so that the held-out 10% stays unseen).
        c: The SVM's regularisation constant C; None chooses it by cross-validation
            on the train split (:func:`choose_c`).
        measure: What to report (:data:`vgg_tf.evaluation.measures.MEASURES`; the
            paper's per dataset: :data:`vgg_tf.evaluation.features.PRESETS`).

    Returns:
        ``(scores, train features, test features)``; scores as :func:`fit_linear_svm`,
        plus the split names.
    """
    measures.check_measure(measure)
    extractor = extractor_for(models, descriptor)
    source = data.source()
    test_data = dataclasses.replace(data, split=data.split_of(source))
    train_data = dataclasses.replace(data, split=train_split or source.train_split)
    train = split_features(extractor, train_data, source, verbose=verbose)
    test = split_features(extractor, test_data, source, verbose=verbose)
    scores = fit_linear_svm(train, test, c=c, measure=measure)
    return {**scores, "train_split": train_data.split, "test_split": test_data.split}, train, test
