"""The embed job: vectors for every pair that has none yet for (model, field).

Batches are committed as they finish (a shard file plus its index rows), so kill -9 and a
rerun continue where they stopped; pairs embedded before are never embedded again. The
database is open only to read a batch's texts and to commit its vectors: the encoding, nearly
all of the time, runs with the file closed, so the app and other jobs read and write meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from curator import embedding
from jobs.runner import Job, Progress, no_progress
from storage import embeddings as vector_rows
from storage.db import Database


@dataclass
class EmbedReport:
    job_id: int
    set_id: int
    model: str
    field: str
    embedded: int
    already: int
    seconds: float

    @property
    def texts_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0


def embed(
    db: Database,
    *,
    model: str | None = None,
    field: str = "prompt",
    fast: bool = False,
    batch_size: int = embedding.BATCH_SIZE,
    commit_every: int = 4096,
    progress: Progress = no_progress,
    encoder: embedding.Encoder | None = None,
) -> EmbedReport:
    """Embed the pairs missing from the (model, field) set, committing a shard every
    `commit_every` pairs (the resume granularity). `encoder` lets a caller that has already
    loaded the model (the map job) pass it in."""
    embedding.check_field(field)
    encoder = encoder or embedding.load_encoder(model, fast=fast)
    params = {"model": encoder.name, "field": field, "fast": fast, "batch_size": batch_size}
    with Job(db, "embed", params, progress) as job:
        with db.writing() as con:
            set_id, directory = vector_rows.ensure_set(
                con, vector_rows.vectors_root(db.path), encoder.name, field, encoder.dim
            )
        with db.reading() as con:
            missing = vector_rows.missing_pair_ids(con, set_id)
            already = vector_rows.pair_count(con) - len(missing)
        started = time.perf_counter()
        done = 0
        for start in range(0, len(missing), commit_every):
            with db.reading() as con:
                ids, prompts, responses = vector_rows.pair_texts(con, missing[start : start + commit_every])
            vectors = encoder.encode(embedding.field_texts(prompts, responses, field), batch_size=batch_size)
            with db.writing() as con:
                vector_rows.write_shard(con, set_id, directory, ids, vectors)
                done += len(ids)
                job.counts = {"embedded": done, "already": already}
                job.report(done, len(missing), f"{encoder.name} {field}: {done:,}/{len(missing):,}", con)
        job.counts = {"embedded": done, "already": already}
        return EmbedReport(job.id, set_id, encoder.name, field, done, already, time.perf_counter() - started)
