"""Concepts: a few labelled pairs -> a linear classifier over their stored embeddings (after
Lilac's concepts), scoring every pair with the probability that it belongs.

The classifier is scikit-learn's logistic regression on unit-length vectors, with balanced
class weights: a concept starts from a handful of positives against many more negatives.
Its precision and recall are cross-validated (stratified folds, out-of-fold probabilities), so
what is reported is how it did on labelled pairs it was not fitted on. Without explicit
negatives, a seeded random sample of the other pairs stands in: mostly not the concept, and a
few true members among them cost a little recall, not the method.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from curator.errors import UserError

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
THRESHOLD = 0.5
MAX_FOLDS = 5
RANDOM_NEGATIVES_PER_POSITIVE = 10
MIN_RANDOM_NEGATIVES = 200


def check_name(name: str) -> str:
    """A concept's name becomes the column concept_NAME: lower-case letters, digits and _."""
    if not NAME.fullmatch(name):
        raise UserError(f"concept name {name!r}: use 1-40 lower-case letters, digits or _, starting with a letter")
    return name


def random_negatives(candidates: np.ndarray, positives: int, seed: int) -> np.ndarray:
    """A seeded sample of `candidates` (ids that are not positives) to stand in as negatives."""
    wanted = min(len(candidates), max(MIN_RANDOM_NEGATIVES, RANDOM_NEGATIVES_PER_POSITIVE * positives))
    return np.sort(np.random.default_rng(seed).choice(candidates, size=wanted, replace=False))


@dataclass
class Fitted:
    classifier: object  # sklearn LogisticRegression
    cv_precision: float | None  # None: too few labels of a class to cross-validate
    cv_recall: float | None
    folds: int
    threshold: float = THRESHOLD


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def _classifier(seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed)


def fit(vectors: np.ndarray, labels: np.ndarray, seed: int = 42) -> Fitted:
    """Fit on labelled vectors (labels: bool); cross-validated precision and recall at THRESHOLD."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    labels = np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives < 1 or negatives < 1:
        raise UserError(f"a concept needs positive and negative examples (got {positives} and {negatives})")
    x = _unit(np.asarray(vectors, dtype=np.float32))
    folds = min(MAX_FOLDS, positives, negatives)
    precision = recall = None
    if folds >= 2:
        split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        held_out = cross_val_predict(_classifier(seed), x, labels, cv=split, method="predict_proba")[:, 1]
        predicted = held_out >= THRESHOLD
        true_positives = int((predicted & labels).sum())
        precision = true_positives / max(1, int(predicted.sum()))
        recall = true_positives / positives
    classifier = _classifier(seed).fit(x, labels)
    return Fitted(classifier, precision, recall, folds if folds >= 2 else 0)


def scores(fitted: Fitted, vectors: np.ndarray) -> np.ndarray:
    """Probability of the concept for each vector (float32)."""
    return fitted.classifier.predict_proba(_unit(np.asarray(vectors, dtype=np.float32)))[:, 1].astype(np.float32)
