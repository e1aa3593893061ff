"""The export job: curated pairs to DIR/train.jsonl, DIR/val.jsonl and DIR/manifest.json.

1. Select the pairs: every pair not deleted, or exactly a version's pairs.
2. Contamination check: drop pairs whose prompt near-duplicates a prompt of the evaluation set
   (exact after normalization, or cosine >= threshold under the default embedding model).
3. Split: near-duplicate groups go whole to one side, stratified by cluster (else source).
4. Write the records in a seeded order, then the manifest, which holds no time: the same
   version and seed give byte-identical files.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from curator import training_set
from curator.errors import UserError
from jobs import contamination
from jobs.runner import Job, Progress, no_progress, prefetch
from storage import export as export_rows
from storage import maps as map_rows
from storage import versions as version_rows
from storage.db import Database

TRAIN, VAL, MANIFEST = "train.jsonl", "val.jsonl", "manifest.json"


@dataclass(frozen=True)
class ExportOptions:
    format: str = "gpt4all"
    version: str | None = None
    val_fraction: float = 0.05  # GPT4All's split: 5%, seed 42
    seed: int = 42
    eval_set: Path | None = None  # None: the default set if present; Path("self-instruct"): fetch it
    eval_check: bool = True
    eval_threshold: float = contamination.DEFAULT_THRESHOLD

    def __post_init__(self):
        training_set.check_format(self.format)
        if not 0 <= self.val_fraction < 1:
            raise UserError(f"--val-fraction must be in [0, 1); got {self.val_fraction}")
        if not 0 < self.eval_threshold <= 1:
            raise UserError(f"--eval-threshold must be in (0, 1]; got {self.eval_threshold}")


@dataclass
class ExportReport:
    job_id: int
    directory: Path
    manifest: dict


def export(
    db: Database, directory: str | Path, options: ExportOptions, progress: Progress = no_progress
) -> ExportReport:
    """Write the curated pairs (every pair not deleted, or a version's) to `directory`: the
    contamination check, the leak-free split, train.jsonl, val.jsonl and manifest.json."""
    directory = Path(directory)
    params = {
        **asdict(options),
        "eval_set": str(options.eval_set) if options.eval_set else None,
        "directory": str(directory),
    }
    with Job(db, "export", params, progress) as job:
        # One read of the whole export: the selection, the files and the manifest must agree, so
        # they come from one snapshot (a read: the app reads beside it; its writes wait for it).
        with db.reading() as con:
            job.report(0, 1, "selecting pairs")
            version = None
            if options.version is not None:
                pair_ids = version_rows.pair_ids(con, options.version)  # ValueError for an unknown name
                version = version_rows.find(con, options.version)
            else:
                pair_ids = None
            chosen = export_rows.selection(con, pair_ids)
            if pair_ids is not None and len(chosen["id"]) != len(pair_ids):
                raise UserError(
                    f"version {options.version!r} names {len(pair_ids) - len(chosen['id']):,} "
                    "pairs that are no longer in the database"
                )

            job.report(0, 1, "checking against the evaluation set")
            contaminated, eval_report = contamination.check(
                con, chosen["id"], chosen["prompt_hash"], options.eval_set, options.eval_threshold, options.eval_check
            )
            kept = {name: values[~contaminated] for name, values in chosen.items() if name != "sources"}

            job.report(0, 1, "splitting")
            default_map = map_rows.default(con)
            strata = (
                np.where(kept["on_map"], kept["cluster"], np.iinfo(np.int64).min)
                if default_map
                else kept["source_code"]
            )
            keys = training_set.order_keys(kept["id"], options.seed)
            groups = training_set.leak_groups(kept["prompt_hash"], kept["dup_group"], kept["in_dup_group"])
            is_val = training_set.assign_split(groups, strata, keys, options.val_fraction)
            order = np.argsort(keys, kind="stable")
            ids, is_val = kept["id"][order], is_val[order]

            directory.mkdir(parents=True, exist_ok=True)
            shape = training_set.check_format(options.format)
            total = len(ids)
            files = {TRAIN: _write(con, job, directory / TRAIN, shape, ids[~is_val], 0, total)}
            if options.val_fraction > 0:
                files[VAL] = _write(con, job, directory / VAL, shape, ids[is_val], files[TRAIN]["records"], total)
            else:
                (directory / VAL).unlink(missing_ok=True)  # an earlier export's: not part of this one

            up_to = None if version is None else (version["op_id"] or 0)
            manifest = training_set.build_manifest(
                fmt=options.format,
                version=options.version,
                seed=options.seed,
                val_fraction=options.val_fraction,
                selected=len(chosen["id"]),
                files=files,
                removed_by_eval_check=int(contaminated.sum()),
                eval_check=eval_report,
                multi_turn=int(kept["multi_turn"].sum()),
                counts=export_rows.counts(con, ids, is_val),
                groups=int(len(np.unique(groups))),
                stratified_by=f"cluster (map {default_map.name})" if default_map else "source (no map)",
                operations=export_rows.operations(con, up_to),
                operations_up_to=up_to,
                signals=export_rows.latest_run_params(con, "signal_runs"),
                duplicates=export_rows.latest_run_params(con, "duplicate_runs"),
            )
        (directory / MANIFEST).write_bytes(training_set.manifest_bytes(manifest))
        job.counts = {
            "train": manifest["pairs"]["train"],
            "val": manifest["pairs"]["val"],
            "removed_by_eval_check": manifest["pairs"]["removed_by_eval_check"],
        }
        job.report(total, total, "done")
        return ExportReport(job.id, directory, manifest)


def _write(con, job: Job, path: Path, shape: dict, pair_ids: np.ndarray, done: int, total: int) -> dict:
    """Stream the records into path (renamed into place when complete); records, bytes, sha256."""
    digest = hashlib.sha256()
    records = size = 0
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as out:
        # DuckDB builds the next batch of lines in a background thread while this one is
        # written and hashed (both release the GIL).
        for lines in prefetch(export_rows.record_lines(con, shape, pair_ids), depth=2):
            data = _string_bytes(lines)
            out.write(data)
            digest.update(data)
            records += len(lines)
            size += len(data)
            job.report(done + records, total, f"{path.name}: {records:,} records")
    partial.replace(path)
    return {"records": records, "bytes": size, "sha256": digest.hexdigest()}


def _string_bytes(column: pa.Array) -> memoryview:
    """The bytes of a string array's values back to back, without copying them: the lines
    already end in a newline, so this is the file's next chunk."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = column.cast(pa.large_string())
    _, offsets, values = column.buffers()
    width = np.int32 if pa.types.is_string(column.type) else np.int64
    ends = np.frombuffer(offsets, dtype=width)[column.offset : column.offset + len(column) + 1]
    if values is None:  # every string empty
        return memoryview(b"")
    return memoryview(values)[int(ends[0]) : int(ends[-1])]
