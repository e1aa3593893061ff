"""The map job: embed what is missing, project to 2-D, cluster, label topics.

The database is open only to read the vectors and texts and to commit the map: the fit (minutes
on a large set) runs with the file closed, so the app stays usable meanwhile.

A map is built once (fitted) and then kept stable: pairs that arrive later are placed with
the fitted projection (UMAP transform) and given their nearest fitted point's cluster,
without moving any existing point; the map counts how many points were placed rather than
fitted. `rebuild=True` fits again from scratch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from curator import embedding, parallel, projection, topics
from curator.errors import UserError
from jobs.embed import embed
from jobs.runner import Job, Progress, no_progress
from storage import embeddings as vector_rows
from storage import maps as map_rows
from storage.db import Database

if TYPE_CHECKING:
    from jobs.ray_pool import RayCluster


@dataclass
class MapReport:
    job_id: int
    map_id: int
    name: str
    model: str
    fitted: int
    placed: int  # placed by this run without refitting
    clusters: int
    noise: int


def build_map(
    db: Database,
    *,
    name: str | None = None,
    field: str = "prompt",
    model: str | None = None,
    fast: bool = False,
    params: projection.MapParams | None = None,
    rebuild: bool = False,
    make_default: bool = False,
    label_model: str | None = None,
    base_url: str | None = None,
    progress: Progress = no_progress,
    cluster: RayCluster | None = None,
) -> MapReport:
    """`label_model`: also have this chat model (any OpenAI-compatible endpoint, `base_url`)
    name the fine clusters; the term labels stay where it gives no usable answer.
    `cluster`: embed, and place the points outside the fit sample, on this Ray cluster."""
    embedding.check_field(field)
    name = name or field
    params = params or projection.MapParams()
    encoder = cluster.encoder(model, fast=fast) if cluster else embedding.load_encoder(model, fast=fast)
    mapper = cluster.map if cluster else None
    set_id = embed(db, field=field, encoder=encoder, progress=progress).set_id
    with db.reading() as con:
        existing = map_rows.find(con, name)
    job_params = {
        "name": name,
        "field": field,
        "model": encoder.name,
        "rebuild": rebuild,
        "label_model": label_model,
        "base_url": base_url,
        **asdict(params),
    }
    with Job(db, "map", job_params, progress) as job:
        if existing is not None and not rebuild:
            if existing.set_id != set_id:
                raise UserError(
                    f"map {name!r} was built from other vectors ({existing.params.get('model')}); "
                    "use --rebuild to fit it again with this model"
                )
            report = _place_new_points(db, job, existing, mapper)
        else:
            report = _fit(
                db,
                job,
                name,
                field,
                set_id,
                encoder.name,
                params,
                make_default,
                (label_model, base_url) if label_model else None,
                mapper,
            )
        job.counts = asdict(report)
        return report


def _fit(
    db: Database,
    job: Job,
    name: str,
    field: str,
    set_id: int,
    model: str,
    params: projection.MapParams,
    make_default: bool,
    labeller: tuple[str, str | None] | None,
    mapper: parallel.Mapper | None,
) -> MapReport:
    steps = 5
    job.report(0, steps, "loading vectors")
    with db.reading() as con:
        pair_ids, vectors = vector_rows.load_vectors(con, set_id)
        texts = _texts(con, pair_ids, field)
    if len(pair_ids) < 3:
        raise UserError(f"a map needs at least 3 pairs; the database has {len(pair_ids)}")
    job.report(1, steps, f"projecting {len(pair_ids):,} points")
    fitted, coords = projection.fit_projection(
        vectors, params, lambda stage: job.report(1, steps, f"projecting {len(pair_ids):,} points: {stage}"), mapper
    )
    job.report(2, steps, "clustering")
    labels = projection.cluster(coords, params)
    parents = projection.coarse_clusters(coords, labels)
    job.report(3, steps, "labelling topics")
    fine_labels = topics.cluster_labels(texts, labels)
    if labeller is not None:
        job.report(3, steps, f"asking {labeller[0]} to name {len(fine_labels) - 1} clusters")
        fine_labels = _llm_labels(texts, labels, fine_labels, *labeller)
    coarse_of_point = np.array([parents.get(int(c), topics.NOISE) for c in labels], dtype=np.int32)
    coarse_labels = topics.cluster_labels(texts, coarse_of_point)
    job.report(4, steps, "saving")
    path = map_rows.save_projection(db.path, name, fitted)
    recorded = {"model": model, "label_model": labeller[0] if labeller else None, **asdict(params)}
    with db.writing() as con:
        map_id = map_rows.replace(con, name, field, set_id, recorded, str(path), len(pair_ids), make_default)
        map_rows.add_points(con, map_id, pair_ids, coords, labels, placed=False)
        map_rows.write_clusters(con, map_id, fine_labels, parents, coarse_labels)
    return MapReport(
        job.id,
        map_id,
        name,
        model,
        len(pair_ids),
        0,
        len(set(labels.tolist()) - {topics.NOISE}),
        int((labels == topics.NOISE).sum()),
    )


def _place_new_points(db: Database, job: Job, existing: map_rows.MapRow, mapper: parallel.Mapper | None) -> MapReport:
    with db.reading() as con:
        new_ids = map_rows.unmapped_pair_ids(con, existing.id)
        points = map_rows.points(con, existing.id)
        new_ids, vectors = vector_rows.load_vectors(con, existing.set_id, new_ids)
    if len(new_ids):
        job.report(0, 2, f"placing {len(new_ids):,} new points")
        fitted = map_rows.load_projection(existing.projection)
        coords = projection.place(fitted, vectors, lambda stage: job.report(0, 2, stage), mapper)
        fitted_coords = np.column_stack([points["x"], points["y"]])
        clusters = projection.nearest_cluster(fitted_coords, points["cluster"], coords)
        with db.writing() as con:
            map_rows.add_points(con, existing.id, new_ids, coords, clusters, placed=True)
            map_rows.recount_clusters(con, existing.id)
    all_clusters = np.concatenate([points["cluster"], clusters]) if len(new_ids) else points["cluster"]
    return MapReport(
        job.id,
        existing.id,
        existing.name,
        existing.params.get("model", ""),
        existing.fitted,
        len(new_ids),
        len(set(all_clusters.tolist()) - {topics.NOISE}),
        int((all_clusters == topics.NOISE).sum()),
    )


def _llm_labels(
    texts: list[str], clusters: np.ndarray, term_labels: dict[int, str], model: str, base_url: str | None
) -> dict[int, str]:
    """Fine cluster labels written by a chat model, a few requests at a time; a cluster whose
    request fails or whose answer is unusable keeps its term label."""
    from concurrent.futures import ThreadPoolExecutor

    import openai

    # The key comes from the environment only; local servers ignore it but the client needs one.
    client = openai.OpenAI(
        base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY") or "unused-local-key", timeout=60, max_retries=2
    )

    def name(cluster: int) -> tuple[int, str | None, str | None]:
        members = np.flatnonzero(clusters == cluster)
        rng = np.random.default_rng([0, cluster + 1])  # the same examples every run
        examples = [texts[i] for i in rng.choice(members, min(len(members), topics.LLM_LABEL_EXAMPLES), replace=False)]
        terms = [] if term_labels[cluster].startswith("“") else term_labels[cluster].split(topics.SEPARATOR)
        try:
            answer = client.chat.completions.create(
                model=model, messages=topics.llm_label_messages(terms, examples), max_tokens=16, temperature=0
            )
        except openai.OpenAIError as err:
            return cluster, None, str(err)
        return cluster, topics.clean_llm_label(answer.choices[0].message.content), None

    named = [c for c in sorted(term_labels) if c != topics.NOISE]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(name, named))
    errors = [error for _, _, error in answers if error]
    if named and len(errors) == len(named):
        raise UserError(f"--label-model {model}: every request failed, first: {errors[0]}")
    return {**term_labels, **{cluster: label for cluster, label, _ in answers if label}}


def _texts(con, pair_ids: np.ndarray, field: str) -> list[str]:
    _, prompts, responses = vector_rows.pair_texts(con, pair_ids)
    return embedding.field_texts(prompts, responses, field)
