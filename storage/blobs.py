"""What the blob report reads: per fine cluster, coarse cluster and source counts, and samples
of members."""

from __future__ import annotations

import duckdb
import numpy as np

from curator.signals import blob_flags

# Pairs that are not deleted (with the flags whose shares the report weighs, at {flags}), each
# once as a member of its fine cluster on the map and once of its coarse cluster (noise and
# pairs not on the map excluded), and once of its source.
_MEMBERS = r"""
WITH live AS (
    SELECT p.id, p.source, mp.cluster, fc.parent AS coarse,
           coalesce(s.n_words, len(string_split_regex(p.response, '\s+'))) AS words,
           {flags}qi.ifd, qj.score AS judge_score
    FROM pairs p
    LEFT JOIN map_points mp ON mp.pair_id = p.id AND mp.map_id = $map
    LEFT JOIN clusters fc ON fc.map_id = $map AND fc.level = 'fine' AND fc.id = mp.cluster
    LEFT JOIN signals s ON s.pair_id = p.id
    LEFT JOIN pair_ifd qi ON qi.pair_id = p.id AND qi.run_id = (SELECT max(id) FROM quality_runs WHERE kind = 'ifd')
    LEFT JOIN judge_scores qj ON qj.pair_id = p.id AND qj.status = 'done'
          AND qj.run_id = (SELECT max(id) FROM quality_runs WHERE kind = 'judge')
    WHERE p.deleted_op IS NULL
),
members AS (
    SELECT 'cluster' AS kind, cluster::VARCHAR AS "key", * FROM live WHERE cluster >= 0
    UNION ALL
    SELECT 'coarse', coarse::VARCHAR, * FROM live WHERE coarse >= 0
    UNION ALL
    SELECT 'source', source, * FROM live
)
"""


def _members() -> str:
    flags = "".join(f'coalesce(s."{name}", false) AS "{name}", ' for name in blob_flags())
    return _MEMBERS.replace("{flags}", flags)


def group_counts(con: duckdb.DuckDBPyConnection, map_id: int) -> list[dict]:
    """kind (cluster, coarse or source), key, size, response word quartiles (q1, q3), share of
    each signal, mean IFD and judge score (NULL when unscored), label, parent (a fine cluster's
    coarse cluster) and the largest sources, per group. A source's label is that of the fine
    cluster holding most of it."""
    shares = "".join(f'avg("{name}"::DOUBLE) AS "{name}", ' for name in blob_flags())
    cursor = con.execute(
        _members()
        + """
        , counts AS (
            SELECT kind, "key", count(*) AS size,
                   quantile_cont(words, 0.25) AS q1, quantile_cont(words, 0.75) AS q3,
                   {shares}avg(ifd) AS ifd_mean, avg(judge_score) AS judge_mean
            FROM members GROUP BY kind, "key"
        ),
        per_source AS (
            SELECT kind, "key", source, count(*) AS n FROM members WHERE kind <> 'source' GROUP BY ALL
        ),
        top_sources AS (
            SELECT kind, "key",
                   to_json(map_from_entries(list({'k': source, 'v': n} ORDER BY n DESC, source)[1:3]))::VARCHAR
                       AS top_sources
            FROM per_source GROUP BY kind, "key"
        ),
        source_cluster AS (
            SELECT source AS "key", arg_max(cluster, n) AS cluster
            FROM (SELECT source, cluster, count(*) AS n FROM live WHERE cluster >= 0 GROUP BY ALL)
            GROUP BY source
        )
        SELECT c.*, t.top_sources, coalesce(l.label, '') AS label,
               CASE WHEN c.kind = 'cluster' THEN l.parent END AS parent
        FROM counts c
        LEFT JOIN top_sources t USING (kind, "key")
        LEFT JOIN source_cluster sc ON c.kind = 'source' AND sc."key" = c."key"
        LEFT JOIN clusters l ON l.map_id = $map AND l.level = if(c.kind = 'coarse', 'coarse', 'fine')
              AND l.id = CASE WHEN c.kind = 'source' THEN sc.cluster ELSE c."key"::INTEGER END
        ORDER BY c.kind, c."key"
        """.replace("{shares}", shares),
        {"map": map_id},
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def samples(con: duckdb.DuckDBPyConnection, map_id: int, vectors: int, texts: int) -> dict[str, list | np.ndarray]:
    """Up to `vectors` member ids per group (the same ones on every run: ordered by a hash of the
    id), with prompt and response for the first `texts` of them (None beyond). Lists, but the
    ids: a numpy array."""
    table = con.execute(
        _members()
        + """
        SELECT m.kind, m."key", m.id,
               CASE WHEN m.rank <= $texts THEN p.prompt END AS prompt,
               CASE WHEN m.rank <= $texts THEN p.response END AS response
        FROM (SELECT kind, "key", id, row_number() OVER (PARTITION BY kind, "key" ORDER BY hash(id), id) AS rank
              FROM members) m
        JOIN pairs p ON p.id = m.id
        WHERE m.rank <= $vectors
        ORDER BY m.kind, m."key", m.rank
        """,
        {"map": map_id, "vectors": vectors, "texts": texts},
    ).to_arrow_table()
    return {
        name: table.column(name).to_numpy() if name == "id" else table.column(name).to_pylist()
        for name in table.column_names
    }
