"""The classifier: character n-grams of the subject and of the whole text (TF-IDF), a
linear SVM with calibrated probabilities (scikit-learn), trained on the centre's own
history. A few hundred messages train it in seconds on one core; one prediction costs
well under a millisecond (bench/classify.py measures both).

The model file is a skops archive, not a pickle: loading it builds only the scikit-learn
types listed in ``TRUSTED_TYPES`` and refuses anything else, so a model file cannot run
code. It carries a format version and its training metadata.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline, make_pipeline, make_union
from sklearn.svm import LinearSVC

from gateway.model.errors import ConfigError
from gateway.routing.fast_predict import FastPredictor

FORMAT_VERSION = 1
SEPARATOR = "\x00"  # between subject and body in one model input
# What skops does not trust by default and this model needs: our two input selectors
# and scikit-learn's calibration parts. Nothing else is built from a model file.
TRUSTED_TYPES = [
    "gateway.routing.classifier.subject_of",
    "gateway.routing.classifier.whole_text",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
]


def model_input(subject: str, body: str) -> str:
    return f"{subject}{SEPARATOR}{body}"


def subject_of(text: str) -> str:
    """The subject part of a model input: short, and the most telling words."""
    return text.partition(SEPARATOR)[0]


def whole_text(text: str) -> str:
    return text.replace(SEPARATOR, " ")


def build_pipeline() -> Pipeline:
    """Subject and whole-text character uni- and bigrams; a calibrated linear SVM (its
    probabilities are the confidence the intake compares with the threshold)."""
    features = make_union(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 2), preprocessor=subject_of),
        TfidfVectorizer(analyzer="char", ngram_range=(1, 2), preprocessor=whole_text),
    )
    return make_pipeline(features, CalibratedClassifierCV(LinearSVC(C=3.0), cv=3))


def data_hash(texts: list[str], labels: list[str]) -> str:
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(f"{label}\x1f{text}\x1e".encode())
    return digest.hexdigest()


@dataclass
class TrainedModel:
    pipeline: Pipeline
    metadata: dict[str, Any]
    fast: FastPredictor = field(init=False)

    def __post_init__(self) -> None:
        self.fast = FastPredictor(self.pipeline)

    @property
    def name(self) -> str:
        """How a complaint names the model: its training date and data hash prefix."""
        return f"char-svm-v{FORMAT_VERSION}:{self.metadata['trained_at'][:10]}:" \
               f"{self.metadata['data_sha256'][:8]}"

    def predict(self, subject: str, body: str) -> tuple[str, float]:
        """The most likely label and its probability."""
        probabilities = self.fast.probabilities(model_input(subject, body))
        best = int(np.argmax(probabilities))
        return self.fast.classes[best], float(probabilities[best])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        sio.dump({"format_version": FORMAT_VERSION, "metadata": self.metadata,
                  "pipeline": self.pipeline}, path)


def train(texts: list[str], labels: list[str], priors: dict[str, str] | None = None,
          source: str = "") -> TrainedModel:
    """Fit on ``texts`` (``model_input`` strings); ``priors``: per label, the taxonomy's
    names below it as one extra document, prior knowledge for classes with few examples."""
    extra = sorted((priors or {}).items())
    pipeline = build_pipeline()
    pipeline.fit(texts + [model_input(t, t) for _, t in extra], labels + [k for k, _ in extra])
    metadata = {
        "format_version": FORMAT_VERSION,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "libraries": {name: importlib.metadata.version(name)
                      for name in ("scikit-learn", "numpy", "scipy", "skops")},
        "classes": [str(c) for c in pipeline.classes_],
        "rows": len(texts),
        "data_sha256": data_hash(texts, labels),
        "taxonomy_priors": [k for k, _ in extra],
        "source": source,
    }
    return TrainedModel(pipeline, metadata)


def load_model(path: Path) -> TrainedModel:
    """A model file written by ``TrainedModel.save``; anything else is a ConfigError."""
    try:
        content = sio.load(path, trusted=TRUSTED_TYPES)
    except OSError as exc:
        raise ConfigError([f"classifier model {path}: {exc.strerror or exc}"]) from None
    except Exception as exc:  # skops refuses untrusted types, a broken zip, ...
        raise ConfigError([f"classifier model {path}: not a usable model file ({exc})"]) from None
    if not isinstance(content, dict) or content.get("format_version") != FORMAT_VERSION:
        raise ConfigError([f"classifier model {path}: format version is not {FORMAT_VERSION}; "
                          "train it again with `minsheng classify train`"])
    pipeline = content["pipeline"]
    if not isinstance(pipeline, Pipeline):
        raise ConfigError([f"classifier model {path}: no pipeline inside"])
    return TrainedModel(pipeline, dict(content["metadata"]))
