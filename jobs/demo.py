"""The demo job: ingest the shipped demo set and map it; the whole loop on it. (How that set
was generated: jobs/demo_set.py.)

`run` is what `curator demo` does, offline: ingest curator/data/DEMO_FILE (ingest keys files
by content, so running it again is a no-op) and build its prompt map.

`run_full` is `curator demo --full`: the whole loop on the demo set, each stage one of the
project's own jobs. Ingest and map (`run`), signals, duplicates, the automatic curation
(CURATION: every rule one logged, undoable delete with its reason), version VERSION, export,
a short LoRA run, GGUF files (q8_0 and the 4-bit q4_1 that keeps the tuning), and eval of the
bundled base GGUF against them on the export's validation set; everything it writes goes to
DB_DIR/demo-full/, where the app's Chat page finds the files. Rerunning it skips what is
complete: the curation once the version exists, an export whose manifest names the version
and whose files are whole, a finished run (an interrupted one resumes from its last
checkpoint), a file recorded in quant_report.json after the run finished, an eval whose inputs
are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from curator import demo, llm_server
from curator.errors import UserError
from curator.selection import Selector
from jobs import operations
from jobs.ingest import IngestOptions, IngestReport, ingest
from jobs.map import MapReport, build_map
from jobs.runner import Progress, no_progress
from storage import versions as version_rows
from storage.db import Database

DATA_DIR = Path(demo.__file__).parent / "data"
DEMO_FILE = DATA_DIR / "demo-smollm2-v1.jsonl.zst"
MANIFEST = DATA_DIR / "demo-smollm2-v1.manifest.json"


def run(db: Database, progress: Progress = no_progress) -> tuple[IngestReport, MapReport]:
    """Ingest the demo set and build (or bring up to date) its prompt map."""
    report = ingest(db, [DEMO_FILE], IngestOptions(), progress)
    return report, build_map(db, progress=progress)


# --- `curator demo --full` ---------------------------------------------------------------------

FULL_DIR = "demo-full"  # beside the database: export/, run/, the GGUF files, eval.json
VERSION = "demo-curated"
TRAIN_STEPS = 40  # ~1/6 of an epoch at batch 8; lr is the trainer's default (1e-3)
SAVE_EVERY = 10  # checkpoints, so an interrupted run resumes
QUANT_TYPES = ("q8_0", "q4_1")  # q4_1: the default 4-bit file, which keeps the tuning
QUANT_REPORT = "quant_report.json"  # jobs.quantize.REPORT_NAME, not imported here: it loads torch
EVAL_FILE = "eval.json"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class Rule:
    """One step of the automatic curation: a delete with its selector and the reason it logs."""

    name: str
    selector: dict
    reason: str


# What the demo set's own counts justify (README, `curator demo`): its refusals and broken
# answers, the extra copies of its near-duplicate sets, and the few-shot classification source,
# a homogeneous blob of one-word answers (GPT4All dropped P3 for the same reason). Truncated
# answers stay: 68% of the set stops at max_tokens, and a cut answer still teaches its start.
CURATION = (
    Rule("refusals", {"where": "refusal"}, "refusals and AI disclaimers (signals: refusal)"),
    Rule("malformed", {"where": "malformed"}, "malformed answers: loops, unbalanced code fences (signals: malformed)"),
    Rule(
        "duplicate copies",
        {"where": "dup_group IS NOT NULL AND NOT dup_keep"},
        "extra copies: the members of each duplicate set other than the one it keeps (curator duplicates)",
    ),
    Rule(
        "one-word blob",
        {"source": "demo-classify"},
        "one-word classification blob: templated few-shot questions answered in a word (like GPT4All's P3)",
    ),
)


@dataclass
class Stage:
    name: str
    ran: bool  # False: skipped, already complete
    detail: str
    seconds: float  # since the previous stage ended


@dataclass
class FullReport:
    directory: Path
    stages: list[Stage] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # the table: base, tuned, each file
    eval_examples: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "directory": str(self.directory),
            "stages": [asdict(s) for s in self.stages],
            "rows": self.rows,
            "eval_examples": self.eval_examples,
            "seconds": round(self.seconds, 1),
        }


Notify = Callable[[Stage], None]


def _quiet(stage: Stage) -> None:
    pass


def full_dir(db_path: str | Path) -> Path:
    return Path(db_path).resolve().parent / FULL_DIR


def run_full(db_path: str | Path, progress: Progress = no_progress, notify: Notify = _quiet) -> FullReport:
    """The whole loop (module docstring); notify(stage) as each stage ends or is skipped."""
    started = time.monotonic()
    directory = full_dir(db_path)
    report = FullReport(directory)
    last = started

    def stage(name: str, ran: bool, detail: str) -> None:
        nonlocal last
        now = time.monotonic()
        report.stages.append(Stage(name, ran, detail, round(now - last, 1)))
        last = now
        notify(report.stages[-1])

    version = _version(db_path)
    if version is None:
        ingested, mapped = run(Database(db_path), progress)
        stage(
            "ingest + map",
            True,
            f"{ingested.total('pairs'):,} pairs added; map {mapped.name}: {mapped.clusters:,} clusters",
        )
        curate(db_path, progress, stage)
    else:
        stage("ingest to version", False, f"version {VERSION} exists ({version['pairs']:,} pairs)")

    export_dir, run_dir = directory / "export", directory / "run"
    _export(db_path, export_dir, progress, stage)
    _train(db_path, export_dir, run_dir, progress, stage)
    entries = {
        qtype: _quantize(db_path, run_dir, directory / f"model-{qtype}.gguf", qtype, progress, stage)
        for qtype in QUANT_TYPES
    }
    base_gguf = llm_server.bundled_model().resolve()
    scores = _evaluate(
        db_path, [base_gguf, *(Path(e["path"]) for e in entries.values())], export_dir, directory, progress, stage
    )
    report.rows = _table(entries, base_gguf, scores)
    report.eval_examples = scores[0]["n"] if scores else 0
    report.seconds = time.monotonic() - started
    (directory / SUMMARY_FILE).write_text(json.dumps(report.as_dict(), indent=2))
    return report


def _version(db_path: str | Path) -> dict | None:
    if not Path(db_path).exists():
        return None
    with Database(db_path).reading() as con:
        return version_rows.find(con, VERSION)


def applied_rules(db_path: str | Path) -> dict[str, int]:
    """{rule name: operation id} of the CURATION rules already applied and not undone."""
    done = {}
    for op in operations.log(db_path):
        for rule in CURATION:
            if (
                op["kind"] == "delete"
                and op["undone_by"] is None
                and op["reason"] == rule.reason
                and op["selector"] == Selector.from_dict(rule.selector).describe()
            ):
                done[rule.name] = op["id"]
    return done


def curate(
    db_path: str | Path,
    progress: Progress = no_progress,
    stage: Callable[[str, bool, str], None] = lambda name, ran, detail: None,
) -> dict:
    """Signals, duplicates, the CURATION rules (each skipped if applied already), then version
    VERSION; returns the version. The duplicate sets are found again only while their copies
    are still to be deleted (a rerun after deletes would regroup what is left)."""
    from jobs.duplicates import find_duplicates
    from jobs.signals import compute_signals

    signals = compute_signals(Database(db_path), progress=progress)
    counts = signals.summary["counts"]
    stage(
        "signals",
        signals.computed > 0,
        f"{signals.computed:,} pairs computed, {signals.already:,} current; "
        f"refusal {counts['refusal']:,}, malformed {counts['malformed']:,}",
    )
    applied = applied_rules(db_path)
    if "duplicate copies" in applied:
        stage("duplicates", False, f"their copies were deleted by operation {applied['duplicate copies']}")
    else:
        found = find_duplicates(Database(db_path), progress=progress)
        stage(
            "duplicates",
            True,
            f"{found.exact_groups + found.semantic_groups:,} sets, {found.not_kept:,} copies not kept",
        )
    for rule in CURATION:
        if rule.name in applied:
            stage(f"delete {rule.name}", False, f"done by operation {applied[rule.name]}")
            continue
        op = operations.apply(db_path, "delete", rule.selector, reason=rule.reason)
        stage(f"delete {rule.name}", True, f"operation {op.id}: {op.count:,} pairs ({rule.reason})")
    made = operations.create_version(
        db_path, VERSION, "curator demo --full: " + "; ".join(rule.name for rule in CURATION)
    )
    stage("version", True, f"{VERSION}: {made['pairs']:,} pairs kept")
    return made


def export_complete(export_dir: Path) -> dict | None:
    """The manifest of a finished export of VERSION in export_dir (its files whole), else None."""
    manifest_file = export_dir / "manifest.json"
    if not manifest_file.is_file():
        return None
    manifest = json.loads(manifest_file.read_text())
    whole = all(
        (export_dir / name).is_file() and (export_dir / name).stat().st_size == info["bytes"]
        for name, info in manifest["files"].items()
    )
    return manifest if whole and manifest.get("version") == VERSION else None


def _export(db_path, export_dir: Path, progress: Progress, stage) -> dict:
    manifest = export_complete(export_dir)
    if manifest is not None:
        stage("export", False, f"{export_dir} holds version {VERSION}")
        return manifest
    from jobs.export import ExportOptions, export

    manifest = export(Database(db_path), export_dir, ExportOptions(version=VERSION), progress).manifest
    check = manifest["eval_check"]
    stage(
        "export",
        True,
        f"{manifest['pairs']['train']:,} train + {manifest['pairs']['val']:,} val pairs to "
        f"{export_dir}; eval check: "
        + (f"{check['removed']:,} removed" if check["checked"] else f"NOT DONE ({check['reason']})"),
    )
    return manifest


def _train(db_path, export_dir: Path, run_dir: Path, progress: Progress, stage) -> dict:
    manifest_sha = hashlib.sha256((export_dir / "manifest.json").read_bytes()).hexdigest()
    report_file = run_dir / "train_report.json"
    if report_file.is_file():
        report = json.loads(report_file.read_text())
        if report["manifest_sha256"] != manifest_sha:
            raise UserError(f"{run_dir} was trained on another export than {export_dir}: remove it to train again")
        stage("train", False, f"{run_dir} is a finished run")
        return report
    from curator.training import TrainConfig
    from jobs.train import train

    resume = (run_dir / "train_config.json").is_file()
    report = train(
        Database(db_path),
        TrainConfig(data=str(export_dir), out=str(run_dir), max_steps=TRAIN_STEPS, save_every=SAVE_EVERY),
        resume=resume,
        progress=progress,
    ).report
    stage(
        "train",
        True,
        f"{report['steps']} steps, validation loss {report['val_loss_initial']:.3f} -> "
        f"{report['val_loss_final']:.3f}, {report['tokens_per_s']:,.0f} tokens/s, {report['train_seconds']:.0f} s",
    )
    return report


def quant_entry(run_dir: Path, out: Path) -> dict | None:
    """out's quant_report.json entry if it is out as it is now, written from the finished run."""
    report_file, finished = out.parent / QUANT_REPORT, run_dir / "train_report.json"
    if not (report_file.is_file() and out.is_file() and finished.is_file()):
        return None
    entry = json.loads(report_file.read_text())["files"].get(out.name)
    if (
        entry is None
        or entry["run"] != str(run_dir.resolve())
        or entry["size_bytes"] != out.stat().st_size
        or out.stat().st_mtime < finished.stat().st_mtime
    ):
        return None
    return entry


def _quantize(db_path, run_dir: Path, out: Path, qtype: str, progress: Progress, stage) -> dict:
    entry = quant_entry(run_dir, out)
    if entry is not None:
        stage(f"quantize {qtype}", False, f"{out} is recorded")
        return entry
    from jobs.quantize import quantize

    entry = quantize(Database(db_path), run_dir, out, qtype, progress=progress)
    kept = "no tuning gain to keep" if entry["gain_kept"] is None else f"gain kept {entry['gain_kept']:.0%}"
    stage(f"quantize {qtype}", True, f"{out}: {entry['size_bytes'] / 1e6:,.1f} MB, ppl {entry['ppl_file']:.3f}, {kept}")
    return entry


def eval_key(models: list[Path], data: Path) -> str:
    """What an eval's result depends on: the data's bytes and each model file as it is now."""
    digest = hashlib.sha256((data / "val.jsonl").read_bytes())
    for model in models:
        digest.update(json.dumps([str(model), model.stat().st_size, model.stat().st_mtime_ns]).encode())
    return digest.hexdigest()


def _evaluate(db_path, models: list[Path], export_dir: Path, directory: Path, progress: Progress, stage) -> list[dict]:
    key, path = eval_key(models, export_dir), directory / EVAL_FILE
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            stage("eval", False, f"{path} is current")
            return saved["results"]
    from jobs.evaluate import evaluate

    scores = evaluate(
        Database(db_path), [str(m) for m in models], export_dir, plot=directory / "eval.png", progress=progress
    )
    results = [s.summary() for s in scores]
    path.write_text(json.dumps({"key": key, "data": str(export_dir / "val.jsonl"), "results": results}, indent=2))
    stage(
        "eval",
        True,
        f"{len(models)} models on {results[0]['n']:,} validation examples, "
        f"{sum(r['seconds'] for r in results):.0f} s; histogram {directory / 'eval.png'}",
    )
    return results


def _table(entries: dict[str, dict], base_gguf: Path, scores: list[dict]) -> list[dict]:
    """Rows: the base and the tuned model in torch (the references), then the base GGUF and each
    file in llama.cpp, with quantize's measure on the run's validation subset and eval's on the
    whole validation file."""
    first = next(iter(entries.values()))
    by_model = {r["model"]: r for r in scores}

    def row(name, engine, size, ppl, kept, model=None) -> dict:
        measured = by_model.get(str(model)) if model else None
        return {
            "model": name,
            "engine": engine,
            "size_bytes": size,
            "ppl": ppl,
            "gain_kept": kept,
            "eval_ppl_tokens": measured and measured["ppl_tokens"],
            "eval_ppl_mean": measured and measured["ppl_mean"],
        }

    rows = [
        row("base", first["engines"]["base"], None, first["ppl_base"], 0.0),
        row("tuned (run)", first["engines"]["tuned"], None, first["ppl_tuned"], 1.0),
        row(f"{base_gguf.name} (bundled base)", "llama.cpp", base_gguf.stat().st_size, None, None, base_gguf),
    ]
    for entry in entries.values():
        rows.append(
            row(
                Path(entry["path"]).name,
                entry["engines"]["file"],
                entry["size_bytes"],
                entry["ppl_file"],
                entry["gain_kept"],
                entry["path"],
            )
        )
    return rows
