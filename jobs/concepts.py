"""The concept job: labelled pairs -> a classifier over their embeddings -> a score per pair.

Selectors are resolved on a read-only connection first (a --where is the user's own SQL, run
where it can change nothing), vectors read from the embedding set, the classifier fitted and
cross-validated (curator.concepts), and the concept with its labels and every scored pair
stored in one transaction, with pairs_view's concept_NAME column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curator import concepts
from curator.errors import UserError
from curator.selection import Selector
from jobs.operations import resolve
from jobs.runner import Job, Progress, no_progress
from storage import concepts as concept_rows
from storage import embeddings as vector_rows
from storage.db import Database


@dataclass
class ConceptReport:
    job_id: int
    concept_id: int
    name: str
    model: str  # the embedding model of the set it classifies
    field: str
    positives: int
    negatives: int
    random_negatives: bool  # negatives sampled from the other pairs
    cv_precision: float | None
    cv_recall: float | None
    folds: int
    threshold: float
    scored: int  # pairs with a vector in the set, all scored
    members: int  # of them, at or above the threshold (deleted pairs too)
    missing: int  # labelled pairs without a vector (left out of the fit)


def create(
    db: Database,
    name: str,
    positive: Selector,
    negative: Selector | None = None,
    *,
    field: str | None = None,
    map_name: str | None = None,
    seed: int = 42,
    progress: Progress = no_progress,
) -> ConceptReport:
    """Fit concept `name` on the pairs `positive` selects against those `negative` selects
    (default: a seeded random sample of the other pairs); replaces a concept of that name."""
    concepts.check_name(name)
    with db.reading() as reader:
        set_id, model, set_field = concept_rows.embedding_set(reader, field, map_name)
        positive_ids = np.unique(resolve(reader, positive))
        negative_ids = np.unique(resolve(reader, negative)) if negative is not None else None
        all_ids, vectors = vector_rows.load_vectors(reader, set_id)
    if len(positive_ids) == 0:
        raise UserError(f"the positive selector {positive.describe()} chooses no pair")
    if negative_ids is not None:
        overlap = np.intersect1d(positive_ids, negative_ids)
        if len(overlap):
            raise UserError(f"{len(overlap):,} pairs are both positive and negative (e.g. pair {overlap[0]})")
    have = np.isin(positive_ids, all_ids)
    missing = int((~have).sum()) + (int((~np.isin(negative_ids, all_ids)).sum()) if negative_ids is not None else 0)
    positive_ids = positive_ids[have]
    if negative_ids is None:
        negative_ids = concepts.random_negatives(all_ids[~np.isin(all_ids, positive_ids)], len(positive_ids), seed)
    else:
        negative_ids = negative_ids[np.isin(negative_ids, all_ids)]
    if len(positive_ids) == 0:
        raise UserError(f"none of the positive pairs has a {set_field} vector of {model}: run `curator embed`")
    labelled = np.concatenate([positive_ids, negative_ids])
    labels = np.concatenate([np.ones(len(positive_ids), bool), np.zeros(len(negative_ids), bool)])
    row = np.searchsorted(all_ids, labelled)  # load_vectors gives ids ascending

    params = {
        "positive": positive.describe(),
        "negative": negative.describe() if negative else "random",
        "field": set_field,
        "model": model,
        "seed": seed,
        "classifier": "logistic regression, balanced",
    }
    with Job(db, "concept", {"name": name, **params}, progress) as job:
        job.report(0, 2, f"fitting on {len(positive_ids):,} positives, {len(negative_ids):,} negatives")
        fitted = concepts.fit(vectors[row], labels, seed)
        job.report(1, 2, f"scoring {len(all_ids):,} pairs")
        scores = concepts.scores(fitted, vectors)
        with db.writing() as con:
            concept_id = concept_rows.save(
                con,
                name,
                set_id,
                params,
                job.id,
                labelled,
                labels,
                fitted.cv_precision,
                fitted.cv_recall,
                fitted.threshold,
                all_ids,
                scores,
            )
        report = ConceptReport(
            job.id,
            concept_id,
            name,
            model,
            set_field,
            len(positive_ids),
            len(negative_ids),
            negative is None,
            fitted.cv_precision,
            fitted.cv_recall,
            fitted.folds,
            fitted.threshold,
            len(all_ids),
            int((scores >= fitted.threshold).sum()),
            missing,
        )
        job.counts = {
            "concept": concept_id,
            "positives": report.positives,
            "negatives": report.negatives,
            "members": report.members,
        }
        return report
