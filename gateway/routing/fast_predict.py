"""The trained pipeline's prediction for one text, without scikit-learn's per-call
overhead (input validation, FeatureUnion dispatch, per-fold calibration objects), which
costs milliseconds for a single complaint. The same arithmetic — TF-IDF of each
vectorizer (l2-normalised), the linear SVMs' decision values, each fold's sigmoid
calibration, normalised and averaged over folds — on the fitted parameters, in numpy.
tests/test_routing_classifier.py checks it agrees with ``pipeline.predict_proba``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.pipeline import Pipeline

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class _Vectorizer:
    analyze: Callable[[str], list[str]]
    vocabulary: dict[str, int]
    idf: Floats
    offset: int  # where its columns start in the union


class FastPredictor:
    def __init__(self, pipeline: Pipeline) -> None:
        union, calibrated = pipeline.steps[0][1], pipeline.steps[-1][1]
        self.vectorizers: list[_Vectorizer] = []
        offset = 0
        for _, vectorizer in union.transformer_list:
            self.vectorizers.append(_Vectorizer(vectorizer.build_analyzer(),
                                                dict(vectorizer.vocabulary_),
                                                np.asarray(vectorizer.idf_), offset))
            offset += len(vectorizer.vocabulary_)
        self.classes = [str(c) for c in calibrated.classes_]
        folds = calibrated.calibrated_classifiers_
        self.fold_count = len(folds)
        # All folds' weights side by side, one row per feature: a complaint's few
        # hundred features are gathered as rows of one C-ordered array in one step.
        self.weights: Floats = np.ascontiguousarray(
            np.vstack([f.estimator.coef_ for f in folds]).T, dtype=np.float64)
        self.intercept = self._stacked(folds, lambda f: f.estimator.intercept_)
        self.slope = self._stacked(folds, lambda f: [c.a_ for c in f.calibrators])
        self.shift = self._stacked(folds, lambda f: [c.b_ for c in f.calibrators])

    @staticmethod
    def _stacked(folds: list[Any], part: Callable[[Any], Any]) -> Floats:
        return np.concatenate([np.asarray(part(f), dtype=np.float64) for f in folds])

    def features(self, text: str) -> tuple[NDArray[np.intp], Floats]:
        """Column indices and TF-IDF weights of the non-zero features of ``text``."""
        columns: list[NDArray[np.intp]] = []
        weights: list[Floats] = []
        for vec in self.vectorizers:
            vocabulary = vec.vocabulary
            found = np.fromiter((vocabulary[g] for g in vec.analyze(text) if g in vocabulary),
                                dtype=np.intp)
            if not found.size:
                continue
            index, counts = np.unique(found, return_counts=True)
            tfidf = counts * vec.idf[index]
            columns.append(index + vec.offset)
            weights.append(tfidf / np.sqrt(np.dot(tfidf, tfidf)))
        if not columns:
            return np.zeros(0, dtype=np.intp), np.zeros(0)
        return np.concatenate(columns), np.concatenate(weights)

    def probabilities(self, text: str) -> Floats:
        columns, weights = self.features(text)
        decision = weights @ self.weights[columns] + self.intercept
        calibrated = 1.0 / (1.0 + np.exp(self.slope * decision + self.shift))
        total = np.zeros(len(self.classes))
        for fold in np.split(calibrated, self.fold_count):
            total += self._normalise(fold)
        return total / self.fold_count

    def _normalise(self, calibrated: Floats) -> Floats:
        if len(self.classes) == 2:  # one decision value: the second class's probability
            return np.array([1.0 - calibrated[0], calibrated[0]])
        denominator = calibrated.sum()
        if denominator == 0:
            return np.full(len(self.classes), 1.0 / len(self.classes))
        normalised: Floats = calibrated / denominator
        return normalised
