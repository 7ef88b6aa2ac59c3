"""Reading labelled history and measuring a classifier: accuracy, macro-F1, per-class
precision and recall, the confusion matrix; on a held-out file or in stratified k-fold
cross-validation (the protocol bench/classify.py reports)."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.model_selection import StratifiedKFold

from gateway.routing.classifier import model_input

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class LabelledData:
    texts: list[str]  # model inputs (subject, separator, body)
    labels: list[str]


def clean(text: str) -> str:
    """Collapse the scraped whitespace (tabs, newlines, U+3000, NBSP) of exported text."""
    return _SPACE.sub(" ", text).strip()


def read_labelled(path: Path, text_cols: list[str], label_col: str) -> LabelledData:
    """Rows of a UTF-8 CSV with a label: the first text column is the subject, the others
    are joined as the body. Rows without a label or text are skipped."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in [*text_cols, label_col] if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: no column {', '.join(missing)}")
        rows = list(reader)
    texts, labels = [], []
    for row in rows:
        label = clean(row[label_col] or "")
        parts = [clean(row[c] or "") for c in text_cols]
        if label and any(parts):
            texts.append(model_input(parts[0], " ".join(parts[1:])))
            labels.append(label)
    return LabelledData(texts, labels)


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    macro_f1: float
    classes: list[str]
    precision: list[float]
    recall: list[float]
    confusion: list[list[int]]  # rows: true class, columns: predicted

    def as_json(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 4), "macro_f1": round(self.macro_f1, 4),
            "per_class": {c: {"precision": round(p, 4), "recall": round(r, 4)}
                          for c, p, r in zip(self.classes, self.precision, self.recall,
                                             strict=True)},
            "confusion": {"classes": self.classes, "matrix": self.confusion},
        }


def evaluate(truth: list[str], predicted: list[str]) -> Evaluation:
    classes = sorted(set(truth) | set(predicted))
    precision, recall, _, _ = precision_recall_fscore_support(
        truth, predicted, labels=classes, zero_division=0)
    return Evaluation(
        accuracy=float(accuracy_score(truth, predicted)),
        macro_f1=float(f1_score(truth, predicted, labels=sorted(set(truth)), average="macro",
                                zero_division=0)),
        classes=classes, precision=[float(p) for p in precision],
        recall=[float(r) for r in recall],
        confusion=confusion_matrix(truth, predicted, labels=classes).tolist(),
    )


# Fits on (texts, labels) and returns a predictor of many texts.
Fitter = Callable[[list[str], list[str]], Callable[[list[str]], list[str]]]


def cross_validate(data: LabelledData, fit: Fitter, folds: int = 5, seed: int = 0) -> Evaluation:
    """Stratified k-fold: every message is predicted once by a model that never saw it;
    the pooled predictions are scored."""
    texts = np.array(data.texts, dtype=object)
    labels = np.array(data.labels, dtype=object)
    predicted = np.empty(len(labels), dtype=object)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(texts, labels):
        predict = fit(list(texts[train_idx]), list(labels[train_idx]))
        predicted[test_idx] = predict(list(texts[test_idx]))
    return evaluate(list(labels), [str(p) for p in predicted])
