"""The contamination check of an export: pairs whose prompt is (nearly) a prompt of the
evaluation set are left out of the training files, so that the evaluation measures what the
model learned, not what it saw.

Exact: the normalized prompt equals an eval prompt (hash match). Semantic: cosine >= threshold
between prompt vectors under the default embedding model, using the stored prompt vectors where
they exist; a pair without one is embedded only when its normalized prompt starts with the
beginning or ends with the end of an eval prompt (a cheap first pass), so that a large
unembedded database is not encoded whole for the check. The report is the manifest's
`eval_check` section, with examples of what was removed.
"""

from __future__ import annotations

import functools
from pathlib import Path

import duckdb
import numpy as np

from curator import embedding, evalset, training_set
from storage import embeddings as vector_rows
from storage import export as export_rows

DEFAULT_THRESHOLD = 0.9
EXAMPLES = 5  # removed pairs shown per kind of match
_VECTOR_CHUNK = 100_000  # pairs whose stored vectors are compared at a time (bounded memory)


def check(
    con: duckdb.DuckDBPyConnection,
    ids: np.ndarray,
    prompt_hash: np.ndarray,
    eval_set_path: Path | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    enabled: bool = True,
) -> tuple[np.ndarray, dict]:
    """(mask of the pairs to drop, the manifest's eval_check section) for the pairs `ids`
    (sorted) with their normalized prompt hashes. `eval_set_path`: None for the default set
    when there is one, "self-instruct" to fetch it, else a file."""
    nothing = np.zeros(len(ids), dtype=bool)
    if not enabled:
        return nothing, {"checked": False, "reason": "skipped (--no-eval-check)"}
    if eval_set_path is not None and str(eval_set_path) == evalset.SELF_INSTRUCT:
        eval_set = evalset.fetch_self_instruct()
    elif eval_set_path is not None:
        eval_set = evalset.load(eval_set_path, "--eval-set")
    else:
        eval_set, why_none = evalset.default_set()
        if eval_set is None:
            return nothing, {"checked": False, "reason": why_none}
    prompts = eval_set.prompts

    hashes = export_rows.prompt_hashes(con, prompts)
    exact = np.isin(prompt_hash, hashes)
    eval_of_hash = {int(h): i for i, h in reversed(list(enumerate(hashes)))}

    # The model is loaded only if something needs embedding: the eval prompts' vectors are
    # cached, and pairs with stored vectors are not embedded again.
    model = embedding.BUNDLED_NAME
    encoder = functools.partial(_encoder, model)
    eval_vectors = functools.cache(
        lambda: evalset.cached_vectors(prompts, model, lambda texts: encoder().encode(texts))
    )
    scores = np.zeros(len(ids), dtype=np.float32)
    best = np.zeros(len(ids), dtype=np.int64)
    have_vector = np.zeros(len(ids), dtype=bool)
    set_id = export_rows.prompt_vector_set(con, model)
    if set_id is not None:
        for start in range(0, len(ids), _VECTOR_CHUNK):
            found_ids, vectors = vector_rows.load_vectors(con, set_id, ids[start : start + _VECTOR_CHUNK])
            if len(found_ids):
                where = np.searchsorted(ids, found_ids)  # chosen ids are sorted
                scores[where], best[where] = training_set.best_matches(vectors, eval_vectors())
                have_vector[where] = True
    without = ids[~have_vector & ~exact]
    candidates = export_rows.head_tail_candidates(con, without, prompts) if len(without) else without
    if len(candidates):
        found_ids, candidate_prompts, _ = vector_rows.pair_texts(con, candidates)
        where = np.searchsorted(ids, found_ids)
        scores[where], best[where] = training_set.best_matches(encoder().encode(candidate_prompts), eval_vectors())
    semantic = ~exact & (scores >= threshold)

    shown = np.concatenate(
        [
            np.flatnonzero(exact)[:EXAMPLES],
            np.flatnonzero(semantic)[np.argsort(scores[semantic], kind="stable")[:EXAMPLES]],
        ]
    )
    texts = export_rows.texts_of(con, ids[shown])
    examples = [
        {
            "pair_id": int(ids[i]),
            "match": "exact" if exact[i] else "semantic",
            "similarity": 1.0 if exact[i] else round(float(scores[i]), 4),
            "prompt": _clip(texts[int(ids[i])][0]),
            "eval_prompt": _clip(prompts[eval_of_hash[int(prompt_hash[i])] if exact[i] else int(best[i])]),
        }
        for i in shown
    ]
    report = {
        "checked": True,
        "set": {
            "name": eval_set.path.name,
            "found": eval_set.origin,
            "sha256": eval_set.sha256,
            "prompts": len(prompts),
        },
        "model": model,
        "threshold": threshold,
        "removed": int((exact | semantic).sum()),
        "removed_exact": int(exact.sum()),
        "removed_semantic": int(semantic.sum()),
        "compared": {
            "stored_vectors": int(have_vector.sum()),
            "without_vectors": len(without),
            "first_pass_candidates_embedded": len(candidates),
        },
        "method": (
            "exact: normalized prompt equal to an eval prompt; semantic: cosine >= threshold "
            "between prompt vectors, using the stored prompt vectors where they exist; pairs "
            "without one are embedded only when their normalized prompt starts with the "
            "beginning or ends with the end of an eval prompt (first pass)"
        ),
        "examples": examples,
    }
    return exact | semantic, report


@functools.lru_cache(maxsize=1)
def _encoder(model: str) -> embedding.Encoder:
    """Loading the model costs ~8 CPU-s: a process that exports several times (the web app,
    the tests) pays it once."""
    return embedding.load_encoder(model)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
