"""The schema, as an append-only list of migrations.

Each entry is one schema version: a list of statements applied in one transaction. Never edit
a released entry; add a new one. `pairs_view` is the documented, stable, read-only face of the
data (README: "pairs_view"); later versions add columns to it, never remove or rename them.
"""

# Text normalization for content hashes lives here, as a SQL macro, so that it runs vectorized
# inside DuckDB during ingest and every later query (dedup, contamination checks) uses the very
# same definition: lower case, every run of whitespace one space. Ingest has already stripped
# both ends of every text (curator.formats). Measured on 483 MB of text: this form costs
# 3.9 CPU-s; with trim() 6.7 (DuckDB's trim is slow); with the pattern '\s+', which also
# rewrites every lone space, 13.5; nfc_normalize() doubled the cost again, and the texts we
# ingest (JSON from APIs) are NFC in practice.
_WHITESPACE_RUNS = r"regexp_replace(t, '[\t\n\v\f\r]\s*| \s+', ' ', 'g')"
_NORMALIZE = f"""
CREATE MACRO normalize_text(t) AS lower({_WHITESPACE_RUNS})
"""

# 6: the same normalize_text, run only where it changes something: the pattern can only match
# a text holding one of \t\n\v\f\r or two spaces (RE2's \s is [\t\n\f\r ]), and
# contains() finds those faster than the regex engine scans: 1M pairs (1 GB of text), all
# hashes of an ingest, 4.4 -> 3.6 s on 2 cores (bench/ingest.py --floor).
_NORMALIZE_FAST = f"""
CREATE OR REPLACE MACRO normalize_text(t) AS lower(
    CASE WHEN contains(t, chr(10)) OR contains(t, '  ') OR contains(t, chr(9)) OR contains(t, chr(13))
              OR contains(t, chr(11)) OR contains(t, chr(12))
         THEN {_WHITESPACE_RUNS} ELSE t END)
"""

MIGRATIONS: list[list[str]] = [
    # 1: pairs, the files they came from, rejected records, jobs.
    [
        _NORMALIZE,
        "CREATE SEQUENCE job_id_seq START 1",
        """
        CREATE TABLE jobs (
            id          BIGINT PRIMARY KEY DEFAULT nextval('job_id_seq'),
            kind        VARCHAR NOT NULL,
            params      VARCHAR NOT NULL,            -- JSON
            status      VARCHAR NOT NULL,            -- running | done | failed
            progress    DOUBLE NOT NULL DEFAULT 0,   -- 0..1
            message     VARCHAR,                     -- what it is doing now
            counts      VARCHAR,                     -- JSON
            error       VARCHAR,
            pid         INTEGER,
            host        VARCHAR,
            started_at  TIMESTAMP NOT NULL DEFAULT now(),
            updated_at  TIMESTAMP,
            finished_at TIMESTAMP
        )
        """,
        "CREATE SEQUENCE file_id_seq START 1",
        """
        CREATE TABLE files (
            id            INTEGER PRIMARY KEY DEFAULT nextval('file_id_seq'),
            sha256        VARCHAR NOT NULL UNIQUE,   -- content identity: re-ingest is a no-op
            path          VARCHAR NOT NULL,
            size          BIGINT NOT NULL,
            options       VARCHAR NOT NULL,          -- JSON: how its records were read
            format        VARCHAR,                   -- forced or detected
            status        VARCHAR NOT NULL,          -- ingesting | done
            job_id        BIGINT NOT NULL,           -- the job that finished it (or is on it)
            resume_line   BIGINT NOT NULL DEFAULT 0, -- records/lines committed so far
            resume_offset BIGINT NOT NULL DEFAULT 0, -- byte offset after them (line files)
            pairs         BIGINT NOT NULL DEFAULT 0,
            rejects       BIGINT NOT NULL DEFAULT 0,
            duplicates    BIGINT,
            started_at    TIMESTAMP NOT NULL DEFAULT now(),
            finished_at   TIMESTAMP
        )
        """,
        """
        CREATE TABLE pairs (
            id          BIGINT NOT NULL,     -- stable: hash of (file content, line, pair index)
            file_id     INTEGER NOT NULL,
            line        BIGINT NOT NULL,     -- 1-based physical line, or record index
            pair_index  INTEGER NOT NULL,    -- position among the pairs of one record
            prompt      VARCHAR NOT NULL,
            response    VARCHAR NOT NULL,
            messages    VARCHAR,             -- JSON [{role, content}] for multi-turn records
            source      VARCHAR NOT NULL,
            prompt_hash UBIGINT NOT NULL,    -- of normalize_text(prompt)
            pair_hash   UBIGINT NOT NULL,    -- of normalized prompt + response
            job_id      BIGINT NOT NULL,
            created_at  TIMESTAMP NOT NULL,
            deleted_op  BIGINT               -- the curation operation that removed it
        )
        """,
        """
        CREATE TABLE rejects (
            job_id  BIGINT NOT NULL,
            file_id INTEGER NOT NULL,
            file    VARCHAR NOT NULL,
            line    BIGINT NOT NULL,
            reason  VARCHAR NOT NULL,
            raw     VARCHAR NOT NULL         -- the record as read, cut at 64 KiB
        )
        """,
        """
        CREATE VIEW pairs_view AS
        SELECT p.id, p.prompt, p.response, p.source,
               p.deleted_op IS NOT NULL AS deleted,
               p.messages, f.path AS file, p.line, p.job_id, p.created_at
        FROM pairs p JOIN files f ON f.id = p.file_id
        """,
    ],
    # 2: embeddings, maps (2-D coordinates, clusters, topic labels); pairs_view gains the
    # default map's cluster, topic, x and y.
    [
        "CREATE SEQUENCE embedding_set_id_seq START 1",
        """
        CREATE TABLE embedding_sets (
            id         INTEGER PRIMARY KEY DEFAULT nextval('embedding_set_id_seq'),
            model      VARCHAR NOT NULL,         -- what made the vectors (name, path or fast:...)
            field      VARCHAR NOT NULL,         -- prompt | response | pair
            dim        INTEGER NOT NULL,
            directory  VARCHAR NOT NULL,         -- where the .npy shards live
            created_at TIMESTAMP NOT NULL DEFAULT now(),
            UNIQUE (model, field)
        )
        """,
        """
        CREATE TABLE embeddings (
            set_id  INTEGER NOT NULL,
            pair_id BIGINT NOT NULL,
            shard   INTEGER NOT NULL,           -- vectors: DIRECTORY/shard-NNNNNN.npy, float32
            "row"   INTEGER NOT NULL            -- row of this pair's vector in the shard
        )
        """,
        "CREATE SEQUENCE map_id_seq START 1",
        """
        CREATE TABLE maps (
            id          INTEGER PRIMARY KEY DEFAULT nextval('map_id_seq'),
            name        VARCHAR NOT NULL UNIQUE,
            field       VARCHAR NOT NULL,
            set_id      INTEGER NOT NULL,
            params      VARCHAR NOT NULL,        -- JSON: seed, PCA, UMAP, HDBSCAN settings
            projection  VARCHAR NOT NULL,        -- path of the pickled fitted projection
            is_default  BOOLEAN NOT NULL,        -- the map whose columns pairs_view shows
            fitted      BIGINT NOT NULL,         -- points the projection was fitted on
            placed      BIGINT NOT NULL DEFAULT 0, -- points placed later without refitting
            created_at  TIMESTAMP NOT NULL DEFAULT now(),
            updated_at  TIMESTAMP
        )
        """,
        """
        CREATE TABLE map_points (
            map_id  INTEGER NOT NULL,
            pair_id BIGINT NOT NULL,
            x       FLOAT NOT NULL,
            y       FLOAT NOT NULL,
            cluster INTEGER NOT NULL,           -- fine cluster, -1 = noise
            placed  BOOLEAN NOT NULL            -- placed after the fit, not fitted
        )
        """,
        """
        CREATE TABLE clusters (
            map_id      INTEGER NOT NULL,
            level       VARCHAR NOT NULL,       -- fine | coarse
            id          INTEGER NOT NULL,       -- -1 = noise
            parent      INTEGER,                -- the coarse cluster of a fine one
            label       VARCHAR NOT NULL,
            size        BIGINT NOT NULL,
            top_sources VARCHAR NOT NULL        -- JSON {source: pairs}, largest first
        )
        """,
        "DROP VIEW pairs_view",
        """
        CREATE VIEW pairs_view AS
        SELECT p.id, p.prompt, p.response, p.source,
               p.deleted_op IS NOT NULL AS deleted,
               p.messages, f.path AS file, p.line, p.job_id, p.created_at,
               mp.cluster, c.label AS topic, mp.x, mp.y
        FROM pairs p
        JOIN files f ON f.id = p.file_id
        LEFT JOIN (SELECT mp.* FROM map_points mp JOIN maps m ON m.id = mp.map_id AND m.is_default) mp
               ON mp.pair_id = p.id
        LEFT JOIN clusters c ON c.map_id = mp.map_id AND c.level = 'fine' AND c.id = mp.cluster
        """,
    ],
    # 3: curation. Pairs record the model that wrote them and why it stopped; quality signals,
    # duplicate groups, tags, the operations log (deletes are soft and undoable), versions.
    # pairs_view gains the signal, duplicate, tag and provenance columns.
    [
        "ALTER TABLE pairs ADD COLUMN model VARCHAR",  # the model that wrote the response
        "ALTER TABLE pairs ADD COLUMN finish_reason VARCHAR",  # "length": cut at max tokens
        # --- signals (one run's thresholds in params; one row per pair, the latest run) -----
        "CREATE SEQUENCE signal_run_id_seq START 1",
        """
        CREATE TABLE signal_runs (
            id         INTEGER PRIMARY KEY DEFAULT nextval('signal_run_id_seq'),
            job_id     BIGINT,
            params     VARCHAR NOT NULL,         -- JSON: thresholds, tokenizer, max length
            created_at TIMESTAMP NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE signals (
            pair_id          BIGINT NOT NULL,
            run_id           INTEGER NOT NULL,
            refusal          BOOLEAN NOT NULL,
            "short"          BOOLEAN NOT NULL,
            truncated        BOOLEAN NOT NULL,
            malformed        BOOLEAN NOT NULL,
            malformed_reason VARCHAR,            -- which check fired, when malformed
            lang             VARCHAR,            -- ISO 639-1 code of the response, NULL if unsure
            pii              BOOLEAN NOT NULL,
            pii_kinds        VARCHAR,            -- e.g. "email,phone"
            n_words          INTEGER NOT NULL,   -- of the response
            n_tokens         INTEGER,            -- of the whole pair under the chat template
            over_length      BOOLEAN
        )
        """,
        # --- duplicates: one row per pair that belongs to a duplicate set or a conflict -----
        "CREATE SEQUENCE duplicate_run_id_seq START 1",
        """
        CREATE TABLE duplicate_runs (
            id         INTEGER PRIMARY KEY DEFAULT nextval('duplicate_run_id_seq'),
            job_id     BIGINT,
            params     VARCHAR NOT NULL,         -- JSON: threshold, map or embedding set, k
            created_at TIMESTAMP NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE duplicates (
            pair_id    BIGINT NOT NULL,
            run_id     INTEGER NOT NULL,
            dup_group  BIGINT,                   -- NULL when only in a conflict
            dup_kind   VARCHAR,                  -- exact | semantic
            dup_keep   BOOLEAN,                  -- the member kept by quality score
            conflict   BOOLEAN NOT NULL          -- near-identical prompt, diverging answer
        )
        """,
        # --- operations log, tags, versions ----------------------------------------------------
        "CREATE SEQUENCE operation_id_seq START 1",
        """
        CREATE TABLE operations (
            id         BIGINT PRIMARY KEY DEFAULT nextval('operation_id_seq'),
            kind       VARCHAR NOT NULL,         -- tag | untag | delete | restore | undo
            selector   VARCHAR NOT NULL,         -- JSON: how the pairs were chosen
            tag        VARCHAR,
            reason     VARCHAR,
            count      BIGINT NOT NULL,          -- pairs it changed
            undoes     BIGINT,                   -- for kind = undo: the operation undone
            undone_by  BIGINT,                   -- set when a later undo reverted this one
            created_at TIMESTAMP NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE operation_pairs (
            op_id    BIGINT NOT NULL,
            pair_id  BIGINT NOT NULL,
            previous BIGINT                      -- what undo puts back: the deleted_op a restore
                                                 -- cleared, the op of a tag row an untag removed
        )
        """,
        """
        CREATE TABLE tags (
            pair_id BIGINT NOT NULL,
            tag     VARCHAR NOT NULL,
            op_id   BIGINT NOT NULL
        )
        """,
        "CREATE SEQUENCE version_id_seq START 1",
        """
        CREATE TABLE versions (
            id         INTEGER PRIMARY KEY DEFAULT nextval('version_id_seq'),
            name       VARCHAR NOT NULL UNIQUE,
            note       VARCHAR,
            op_id      BIGINT,                   -- the last operation it includes
            pairs      BIGINT NOT NULL,          -- kept pairs
            created_at TIMESTAMP NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE version_pairs (
            version_id INTEGER NOT NULL,
            pair_id    BIGINT NOT NULL
        )
        """,
        "DROP VIEW pairs_view",
        """
        CREATE VIEW pairs_view AS
        SELECT p.id, p.prompt, p.response, p.source,
               p.deleted_op IS NOT NULL AS deleted,
               p.messages, f.path AS file, p.line, p.job_id, p.created_at,
               mp.cluster, c.label AS topic, mp.x, mp.y,
               p.model, p.finish_reason,
               s.refusal, s."short", s.truncated, s.malformed, s.malformed_reason, s.lang,
               s.pii, s.pii_kinds, s.n_words, s.n_tokens, s.over_length,
               d.dup_group, d.dup_kind, d.dup_keep, coalesce(d.conflict, false) AS conflict,
               coalesce(t.tags, []::VARCHAR[]) AS tags
        FROM pairs p
        JOIN files f ON f.id = p.file_id
        LEFT JOIN (SELECT mp.* FROM map_points mp JOIN maps m ON m.id = mp.map_id AND m.is_default) mp
               ON mp.pair_id = p.id
        LEFT JOIN clusters c ON c.map_id = mp.map_id AND c.level = 'fine' AND c.id = mp.cluster
        LEFT JOIN signals s ON s.pair_id = p.id
        LEFT JOIN duplicates d ON d.pair_id = p.id
        LEFT JOIN (SELECT pair_id, list(tag ORDER BY tag) AS tags FROM tags GROUP BY pair_id) t
               ON t.pair_id = p.id
        """,
    ],
    # 4: distillation. A distill run is a `files` row whose sha256 is the run's identity (the
    # prompts, the model and the generation settings: curator.distill.run_identity), so its
    # pairs get ids like any file's and another model's answers to the same prompts never
    # collide. distill_prompts holds every prompt's state, which is what makes runs resumable.
    [
        """
        CREATE TABLE distill_runs (
            file_id    INTEGER PRIMARY KEY,      -- the files row the run's pairs belong to
            model      VARCHAR NOT NULL,         -- as requested (pairs.model: as answered)
            base_url   VARCHAR,                  -- where requests went, no credentials; NULL: OpenAI
            local      BOOLEAN NOT NULL,         -- a loopback server: its tokens cost nothing
            prompts    VARCHAR NOT NULL,         -- 'file:<sha256>[#prompt-field]', 'source:<name>'
            settings   VARCHAR NOT NULL,         -- JSON: system, max_tokens, temperature, source
            created_at TIMESTAMP NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE distill_prompts (
            file_id           INTEGER NOT NULL,
            line              BIGINT NOT NULL,   -- as pairs.line; --from-source: the answered pair's id
            pair_index        INTEGER NOT NULL,
            prompt            VARCHAR NOT NULL,
            context           VARCHAR,           -- JSON [{role, content}]: the turns up to the prompt
            status            VARCHAR NOT NULL,  -- pending | done | failed
            attempts          INTEGER NOT NULL DEFAULT 0,  -- requests sent for it, all runs together
            error             VARCHAR,           -- the last error (failed), key redacted
            max_tokens        INTEGER,           -- what the stored answer was asked with
            prompt_tokens     BIGINT,            -- usage of the stored answer, as the API reported it
            completion_tokens BIGINT,
            PRIMARY KEY (file_id, line, pair_index)
        )
        """,
    ],
    # 5: training. LoRA runs (one row per output directory; a resumed run keeps its row) and
    # their loss history; per-pair losses under a run's base and tuned model (`curator score`).
    # pairs_view gains loss_base and loss_tuned of the latest score run.
    [
        "CREATE SEQUENCE train_run_id_seq START 1",
        """
        CREATE TABLE train_runs (
            id               INTEGER PRIMARY KEY DEFAULT nextval('train_run_id_seq'),
            directory        VARCHAR NOT NULL UNIQUE,  -- the run's output directory (absolute)
            job_id           BIGINT NOT NULL,          -- the latest job on it (a resume is a new job)
            base             VARCHAR NOT NULL,
            data             VARCHAR NOT NULL,
            params           VARCHAR NOT NULL,         -- JSON: the run's settings
            steps            INTEGER,                  -- set when the run finishes
            val_loss_initial DOUBLE,
            val_loss_final   DOUBLE,
            tokens_per_s     DOUBLE,
            created_at       TIMESTAMP NOT NULL DEFAULT now(),
            finished_at      TIMESTAMP
        )
        """,
        """
        CREATE TABLE train_losses (
            run_id INTEGER NOT NULL,
            step   INTEGER NOT NULL,                   -- optimizer steps done (0: before training)
            split  VARCHAR NOT NULL,                   -- train | val
            loss   DOUBLE NOT NULL,                    -- mean over assistant tokens
            lr     DOUBLE,                             -- train: the learning rate of the step
            tokens INTEGER                             -- train: tokens in the step's batches
        )
        """,
        "CREATE SEQUENCE score_run_id_seq START 1",
        """
        CREATE TABLE score_runs (
            id           INTEGER PRIMARY KEY DEFAULT nextval('score_run_id_seq'),
            job_id       BIGINT NOT NULL,
            train_run_id INTEGER,                      -- the directory's train_runs row, if any
            directory    VARCHAR NOT NULL,             -- the run scored
            base         VARCHAR NOT NULL,
            pairs        BIGINT NOT NULL,
            created_at   TIMESTAMP NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE pair_losses (
            run_id     INTEGER NOT NULL,               -- score_runs.id
            pair_id    BIGINT NOT NULL,
            trained    BOOLEAN NOT NULL,               -- in the run's training split (else validation)
            tokens     INTEGER NOT NULL,               -- assistant tokens the losses average over
            loss_base  DOUBLE NOT NULL,
            loss_tuned DOUBLE NOT NULL
        )
        """,
        "DROP VIEW pairs_view",
        """
        CREATE VIEW pairs_view AS
        SELECT p.id, p.prompt, p.response, p.source,
               p.deleted_op IS NOT NULL AS deleted,
               p.messages, f.path AS file, p.line, p.job_id, p.created_at,
               mp.cluster, c.label AS topic, mp.x, mp.y,
               p.model, p.finish_reason,
               s.refusal, s."short", s.truncated, s.malformed, s.malformed_reason, s.lang,
               s.pii, s.pii_kinds, s.n_words, s.n_tokens, s.over_length,
               d.dup_group, d.dup_kind, d.dup_keep, coalesce(d.conflict, false) AS conflict,
               coalesce(t.tags, []::VARCHAR[]) AS tags,
               pl.loss_base, pl.loss_tuned
        FROM pairs p
        JOIN files f ON f.id = p.file_id
        LEFT JOIN (SELECT mp.* FROM map_points mp JOIN maps m ON m.id = mp.map_id AND m.is_default) mp
               ON mp.pair_id = p.id
        LEFT JOIN clusters c ON c.map_id = mp.map_id AND c.level = 'fine' AND c.id = mp.cluster
        LEFT JOIN signals s ON s.pair_id = p.id
        LEFT JOIN duplicates d ON d.pair_id = p.id
        LEFT JOIN (SELECT pair_id, list(tag ORDER BY tag) AS tags FROM tags GROUP BY pair_id) t
               ON t.pair_id = p.id
        LEFT JOIN (SELECT * FROM pair_losses WHERE run_id = (SELECT max(id) FROM score_runs)) pl
               ON pl.pair_id = p.id
        """,
    ],
    # 6: a faster normalize_text with the same results (see _NORMALIZE_FAST).
    [_NORMALIZE_FAST],
    # 7: model-based quality. Quality runs (IFD under a small model, ratings by an LLM judge),
    # each identified by what decides its scores so that a rerun continues it; concepts
    # (a classifier over stored embeddings, trained on labelled pairs). pairs_view becomes
    # pairs_view_base (every fixed column, now with the latest IFD and judge run's scores)
    # plus one `concept_NAME` column per concept, which storage.concepts.refresh_view adds;
    # DuckDB rebinds `b.*` at each query, so later migrations change pairs_view_base alone.
    [
        "CREATE SEQUENCE quality_run_id_seq START 1",
        """
        CREATE TABLE quality_runs (
            id         INTEGER PRIMARY KEY DEFAULT nextval('quality_run_id_seq'),
            kind       VARCHAR NOT NULL,          -- ifd | judge
            identity   VARCHAR NOT NULL UNIQUE,   -- sha256 of what decides the scores
            model      VARCHAR NOT NULL,          -- as requested (judge_scores.model: as answered)
            params     VARCHAR NOT NULL,          -- JSON: settings, rubric (judge)
            base_url   VARCHAR,                   -- judge: where requests went, no credentials
            local      BOOLEAN,                   -- judge: a loopback server (its tokens cost nothing)
            job_id     BIGINT,                    -- the latest job on it
            created_at TIMESTAMP NOT NULL DEFAULT now(),
            updated_at TIMESTAMP
        )
        """,
        """
        CREATE TABLE pair_ifd (
            run_id            INTEGER NOT NULL,   -- quality_runs.id
            pair_id           BIGINT NOT NULL,
            tokens            INTEGER NOT NULL,   -- response tokens both losses average over
            loss_given_prompt DOUBLE,             -- NULL: no response token within max length
            loss_alone        DOUBLE,
            ifd               DOUBLE              -- loss_given_prompt / loss_alone
        )
        """,
        """
        CREATE TABLE judge_scores (
            run_id            INTEGER NOT NULL,   -- quality_runs.id
            pair_id           BIGINT NOT NULL,
            status            VARCHAR NOT NULL,   -- pending | done | failed
            attempts          INTEGER NOT NULL DEFAULT 0,
            score             INTEGER,            -- 1..5
            reason            VARCHAR,            -- the judge's one line
            error             VARCHAR,            -- the last error (failed), key redacted
            model             VARCHAR,            -- the model that answered
            prompt_tokens     BIGINT,
            completion_tokens BIGINT,
            PRIMARY KEY (run_id, pair_id)
        )
        """,
        "CREATE SEQUENCE concept_id_seq START 1",
        """
        CREATE TABLE concepts (
            id           INTEGER PRIMARY KEY DEFAULT nextval('concept_id_seq'),
            name         VARCHAR NOT NULL UNIQUE,   -- [a-z][a-z0-9_]*: pairs_view's concept_NAME
            set_id       INTEGER NOT NULL,          -- the embedding set it classifies
            params       VARCHAR NOT NULL,          -- JSON: selectors, classifier settings
            positives    BIGINT NOT NULL,
            negatives    BIGINT NOT NULL,
            cv_precision DOUBLE,                    -- cross-validated, at `threshold`
            cv_recall    DOUBLE,
            threshold    DOUBLE NOT NULL,           -- score at or above: in the concept
            job_id       BIGINT,
            created_at   TIMESTAMP NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE concept_labels (
            concept_id INTEGER NOT NULL,
            pair_id    BIGINT NOT NULL,
            label      BOOLEAN NOT NULL           -- a positive or a negative example
        )
        """,
        """
        CREATE TABLE concept_scores (
            concept_id INTEGER NOT NULL,
            pair_id    BIGINT NOT NULL,
            score      FLOAT NOT NULL             -- the classifier's probability of the concept
        )
        """,
        "DROP VIEW pairs_view",
        """
        CREATE VIEW pairs_view_base AS
        SELECT p.id, p.prompt, p.response, p.source,
               p.deleted_op IS NOT NULL AS deleted,
               p.messages, f.path AS file, p.line, p.job_id, p.created_at,
               mp.cluster, c.label AS topic, mp.x, mp.y,
               p.model, p.finish_reason,
               s.refusal, s."short", s.truncated, s.malformed, s.malformed_reason, s.lang,
               s.pii, s.pii_kinds, s.n_words, s.n_tokens, s.over_length,
               d.dup_group, d.dup_kind, d.dup_keep, coalesce(d.conflict, false) AS conflict,
               coalesce(t.tags, []::VARCHAR[]) AS tags,
               pl.loss_base, pl.loss_tuned,
               qi.ifd, qi.loss_given_prompt, qi.loss_alone,
               qj.score AS judge_score, qj.reason AS judge_reason
        FROM pairs p
        JOIN files f ON f.id = p.file_id
        LEFT JOIN (SELECT mp.* FROM map_points mp JOIN maps m ON m.id = mp.map_id AND m.is_default) mp
               ON mp.pair_id = p.id
        LEFT JOIN clusters c ON c.map_id = mp.map_id AND c.level = 'fine' AND c.id = mp.cluster
        LEFT JOIN signals s ON s.pair_id = p.id
        LEFT JOIN duplicates d ON d.pair_id = p.id
        LEFT JOIN (SELECT pair_id, list(tag ORDER BY tag) AS tags FROM tags GROUP BY pair_id) t
               ON t.pair_id = p.id
        LEFT JOIN (SELECT * FROM pair_losses WHERE run_id = (SELECT max(id) FROM score_runs)) pl
               ON pl.pair_id = p.id
        LEFT JOIN (SELECT * FROM pair_ifd
                   WHERE run_id = (SELECT max(id) FROM quality_runs WHERE kind = 'ifd')) qi
               ON qi.pair_id = p.id
        LEFT JOIN (SELECT * FROM judge_scores WHERE status = 'done'
                   AND run_id = (SELECT max(id) FROM quality_runs WHERE kind = 'judge')) qj
               ON qj.pair_id = p.id
        """,
        "CREATE VIEW pairs_view AS SELECT b.* FROM pairs_view_base b",
    ],
    # 8: how long a job held the database in one piece at most (jobs hold it only for short
    # reads and writes, so that the app and other jobs get in between).
    ["ALTER TABLE jobs ADD COLUMN longest_hold_s DOUBLE"],
]
