"""The compare job: does version B (curated) train a better model than version A (raw)?

Stages, each one of the project's own jobs, each skipped on a rerun when it finished with the
same inputs (OUT/stages.json keeps, per stage, a digest of its inputs and its result):

1. export A whole and B with a held-out split (`curator export`, which also drops pairs too
   close to the evaluation set's prompts);
2. the training files: B's validation split is the held-out set; every training file loses the
   pairs whose normalized prompt is a held-out one or in a duplicate set with one; with
   --same-size, a seeded random subset of A as large as B's file (the control);
3. the same LoRA run (one seed, steps, lr...) on each file, validated on the held-out set; a
   killed run resumes from its last checkpoint;
4. `curator eval` of the base and each tuned model on the evaluation set and the held-out set;
5. the table, paired tests, OUT/compare.json and OUT/compare.png, and the job row's counts
   (what the app's Versions page shows).

A and B are version names or a reserved selection of storage.compare.RESERVED, kept as a
version for the comparison (storage.compare.snapshot).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from curator import compare as plan
from curator import evalset, training
from curator.errors import UserError
from jobs.demo import Notify, Stage  # the stages of `demo --full`, which the CLI prints alike
from jobs.evaluate import evaluate
from jobs.export import MANIFEST, TRAIN, VAL, ExportOptions, export
from jobs.runner import Job, Progress, no_progress
from jobs.train import train
from storage import compare as compare_rows
from storage import export as export_rows
from storage import versions as version_rows
from storage.db import Database

STATE, RESULT, CHART = "stages.json", "compare.json", "compare.png"
SAVE_EVERY = 10  # checkpoint steps: a killed run loses at most this many


@dataclass(frozen=True)
class CompareOptions:
    steps: int = 40  # the demo's run; the same for every model
    same_size: bool = False  # also train on a random subset of A as large as B
    eval_set: Path | None = None  # None: the default set (curator.evalset)
    eval_limit: int | None = None  # examples scored per set (the first N)
    max_length: int = 512  # training's tokens per example
    heldout_fraction: float = 0.05  # B's validation split: GPT4All's 5%
    seed: int = 42

    def __post_init__(self):
        if self.steps < 1:
            raise UserError("--steps must be at least 1")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise UserError("--eval-limit must be at least 1")


@dataclass
class CompareReport:
    job_id: int
    directory: Path
    result: dict  # what OUT/compare.json holds: versions, split, runs, rows, tests, stages


def default_out(a: str, b: str) -> Path:
    def name(version: str) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in version.lstrip("@"))

    return Path("runs") / f"compare-{name(a)}-vs-{name(b)}"


def compare(
    db: Database,
    a: str,
    b: str,
    out: str | Path,
    options: CompareOptions,
    progress: Progress = no_progress,
    notify: Notify | None = None,
) -> CompareReport:
    """Compare versions a and b into directory out (module docstring); notify(stage) as each
    stage ends or is skipped."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    eval_set = _eval_set(options.eval_set)
    params = {"a": a, "b": b, "out": str(out), **asdict(options), "eval_set": str(eval_set.path)}
    with Job(db, "compare", params, progress) as job:
        stages = _Stages(out / STATE, notify or (lambda stage: None))

        def reporting(title: str) -> Progress:
            return lambda done, total, message: job.report(done, total, f"{title}: {message}")

        versions = {plan.A: _version(db, a), plan.B: _version(db, b)}
        exports = {
            role: _export(
                db,
                stages,
                reporting,
                role,
                versions[role],
                out / f"export-{role}",
                0.0 if role == plan.A else options.heldout_fraction,
                eval_set,
                options.seed,
            )
            for role in (plan.A, plan.B)
        }
        files = _split(db, stages, out / "data", versions, exports, options)
        labels = {
            plan.BASE: f"base ({training.BUNDLED_BASE})",
            plan.A: a,
            plan.B: b,
            plan.A_SAME_SIZE: f"{a} (same size as {b})",
        }
        runs = {
            key: _train(db, stages, reporting, labels[key], files, key, out / "runs" / key, options)
            for key in files["train"]
        }
        set_names = {
            plan.EVAL_SET: ("Self-Instruct" if eval_set.sha256 == evalset.SELF_INSTRUCT_SHA256 else eval_set.path.name),
            plan.HELD_OUT: "held-out",
        }
        sets = {plan.EVAL_SET: eval_set.path, plan.HELD_OUT: Path(files["heldout"])}
        specs = {plan.BASE: training.BUNDLED_BASE, **{key: run["run"] for key, run in runs.items()}}
        models = [
            _model(
                key,
                labels[key],
                runs.get(key),
                {
                    name: _evaluate(db, stages, reporting, labels[key], spec, data, set_names[name], options)
                    for name, data in sets.items()
                },
            )
            for key, spec in specs.items()
        ]

        rows = plan.table(models)
        tests = plan.paired_tests(models, set_names, options.seed)
        plan.plot(rows, set_names, f"{a} vs {b}: {options.steps} LoRA steps each, seed {options.seed}", out / CHART)
        result = {
            "a": a,
            "b": b,
            "options": {**asdict(options), "eval_set": str(eval_set.path)},
            "versions": {
                role: {**version, "created_at": version["created_at"].isoformat()} for role, version in versions.items()
            },
            "eval_set": {"path": str(eval_set.path), "sha256": eval_set.sha256, "origin": eval_set.origin},
            "split": {k: v for k, v in files.items() if k != "train"},
            "runs": runs,
            "set_names": set_names,
            "rows": rows,
            "tests": tests,
            "verdicts": [plan.verdict(t) for t in tests],
            "chart": str(out / CHART),
            "stages": [asdict(s) for s in stages.seen],
        }
        (out / RESULT).write_text(json.dumps(result, indent=2))
        job.counts = {
            "rows": rows,
            "set_names": set_names,
            "verdicts": result["verdicts"],
            "chart": result["chart"],
            "result": str(out / RESULT),
        }
        return CompareReport(job.id, out, result)


def _model(key: str, label: str, run: dict | None, scores: dict) -> plan.Model:
    if run is None:  # the base
        return plan.Model(key, label, None, 0, 0, scores)
    return plan.Model(key, label, run["examples_train"], run["steps"], run["tokens"], scores)


def _eval_set(path: Path | None) -> evalset.EvalSet:
    if path is not None:
        return evalset.load(Path(path), "--eval-set")
    found, why_none = evalset.default_set()
    if found is None:
        raise UserError(f"curator compare scores every model on an evaluation set: {why_none}")
    return found


def _version(db: Database, name: str) -> dict:
    if name in compare_rows.RESERVED:
        with db.writing() as con:
            return compare_rows.snapshot(con, name)
    with db.reading() as con:
        version_rows.pair_ids(con, name)  # ValueError naming the known versions
        return version_rows.find(con, name)


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class _Stages:
    """Per stage (by its title): the digest of its inputs, whether it finished, its result; in
    OUT/stages.json, rewritten as each stage begins and ends."""

    def __init__(self, path: Path, notify: Notify):
        self.path, self.notify = path, notify
        self.state = json.loads(path.read_text()) if path.is_file() else {}
        self.seen: list[Stage] = []
        self.last = time.monotonic()

    def run(
        self,
        title: str,
        inputs,
        work: Callable[[bool], dict],
        describe: Callable[[dict], str],
        present: Callable[[dict], bool] = lambda result: True,
    ) -> dict:
        """The stage's result: the recorded one when it finished with the same inputs and its
        files are present, else work(resumed), where resumed says the stage began before with
        the same inputs and was cut short."""
        key = _digest(inputs)
        entry = self.state.get(title)
        if entry and entry["key"] == key and entry["done"] and present(entry["result"]):
            self._notify(title, False, describe(entry["result"]))
            return entry["result"]
        resumed = bool(entry and entry["key"] == key)
        self.state[title] = {"key": key, "done": False, "result": None}
        self._save()
        result = work(resumed)
        self.state[title] = {"key": key, "done": True, "result": result}
        self._save()
        self._notify(title, True, describe(result))
        return result

    def _save(self) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self.state, indent=1))
        partial.replace(self.path)

    def _notify(self, title: str, ran: bool, detail: str) -> None:
        now = time.monotonic()
        self.seen.append(Stage(title, ran, detail, round(now - self.last, 1)))
        self.last = now
        self.notify(self.seen[-1])


def _export(
    db: Database,
    stages: _Stages,
    reporting,
    role: str,
    version: dict,
    directory: Path,
    val_fraction: float,
    eval_set: evalset.EvalSet,
    seed: int,
) -> dict:
    title = f"export {role.upper()} ({version['name']})"
    options = ExportOptions(version=version["name"], val_fraction=val_fraction, seed=seed, eval_set=eval_set.path)

    def work(resumed: bool) -> dict:
        manifest = export(db, directory, options, reporting(title)).manifest
        return {
            "directory": str(directory),
            "manifest_sha256": _file_sha256(directory / MANIFEST),
            "train": manifest["pairs"]["train"],
            "val": manifest["pairs"]["val"],
            "removed_by_eval_check": manifest["pairs"]["removed_by_eval_check"],
        }

    def present(result: dict) -> bool:
        manifest = directory / MANIFEST
        return manifest.is_file() and _file_sha256(manifest) == result["manifest_sha256"]

    inputs = {"version": version["id"], "pairs": version["pairs"], **asdict(options), "eval_set": eval_set.sha256}
    return stages.run(
        title,
        inputs,
        work,
        lambda r: (
            f"{r['train']:,} train + {r['val']:,} val pairs; {r['removed_by_eval_check']:,} removed as too close "
            "to the evaluation set"
        ),
        present,
    )


def _split(
    db: Database, stages: _Stages, directory: Path, versions: dict, exports: dict, options: CompareOptions
) -> dict:
    """The held-out file and a training file per model (their paths, pairs and sha256)."""
    inputs = {
        "exports": {role: e["manifest_sha256"] for role, e in exports.items()},
        "same_size": options.same_size,
        "seed": options.seed,
    }

    def work(resumed: bool) -> dict:
        directory.mkdir(parents=True, exist_ok=True)
        heldout = _lines(Path(exports[plan.B]["directory"]) / VAL)
        if not heldout:
            raise UserError(
                f"version {versions[plan.B]['name']!r} is too small to hold out a split "
                f"of {options.heldout_fraction:.0%}"
            )
        with db.reading() as con:
            leaks = compare_rows.leak_prompt_hashes(con, [_prompt(line) for line in heldout])
        trained, removed = {}, {}
        for role in (plan.A, plan.B):
            lines = _lines(Path(exports[role]["directory"]) / TRAIN)
            with db.reading() as con:
                hashes = export_rows.prompt_hashes(con, [_prompt(line) for line in lines])
            keep = plan.heldout_mask(hashes, leaks)
            trained[role] = [line for line, kept in zip(lines, keep) if kept]
            removed[role] = len(lines) - len(trained[role])
        if options.same_size:
            chosen = plan.same_size_subset(len(trained[plan.A]), len(trained[plan.B]), options.seed)
            trained[plan.A_SAME_SIZE] = [trained[plan.A][i] for i in chosen]
        files = {
            plan.HELD_OUT: (directory / "heldout.jsonl", heldout),
            **{key: (directory / f"train-{key}.jsonl", lines) for key, lines in trained.items()},
        }
        for path, lines in files.values():
            path.write_bytes(b"".join(lines))
        return {
            "heldout": str(files[plan.HELD_OUT][0]),
            "heldout_pairs": len(heldout),
            "heldout_prompt_keys": len(leaks),
            "removed_from_training": removed,
            "train": {
                key: {"file": str(path), "pairs": len(lines), "sha256": _file_sha256(path)}
                for key, (path, lines) in files.items()
                if key != plan.HELD_OUT
            },
            "heldout_sha256": _file_sha256(files[plan.HELD_OUT][0]),
        }

    def present(result: dict) -> bool:
        return Path(result["heldout"]).is_file() and all(
            Path(f["file"]).is_file() and _file_sha256(f["file"]) == f["sha256"] for f in result["train"].values()
        )

    return stages.run(
        "held-out split",
        inputs,
        work,
        lambda r: (
            f"{r['heldout_pairs']:,} held-out pairs; removed from training A {r['removed_from_training'][plan.A]:,}, "
            f"B {r['removed_from_training'][plan.B]:,}; training pairs "
            + ", ".join(f"{key} {f['pairs']:,}" for key, f in r["train"].items())
        ),
        present,
    )


def _lines(path: Path) -> list[bytes]:
    with open(path, "rb") as records:
        return records.readlines()


def _prompt(line: bytes) -> str:
    return orjson.loads(line)["prompt"]  # compare exports in the gpt4all format


def _train(
    db: Database, stages: _Stages, reporting, label: str, files: dict, key: str, out: Path, options: CompareOptions
) -> dict:
    title = f"train {label}"
    # eval_every = steps: validated before and after only; the eval stage measures the held-out set in full.
    config = training.TrainConfig(
        data=files["train"][key]["file"],
        out=str(out),
        max_steps=options.steps,
        max_length=options.max_length,
        val=files["heldout"],
        eval_every=options.steps,
        save_every=SAVE_EVERY if options.steps > SAVE_EVERY else 0,
        seed=options.seed,
    )
    inputs = {"data": files["train"][key]["sha256"], "val": files["heldout_sha256"], **config.order_settings()}

    def work(resumed: bool) -> dict:
        run = training.Run(out)
        if run.report_file.is_file() and resumed:
            report = training.read_report(out)  # it ended just before the stage could record it
        else:
            if not resumed:
                shutil.rmtree(out, ignore_errors=True)  # a run on other inputs
            report = train(db, config, resume=run.config_file.is_file(), progress=reporting(title)).report
        return {
            "run": str(out),
            "examples_train": report["examples_train"],
            "steps": report["steps"],
            "tokens": report["tokens"],
            "val_loss_initial": report["val_loss_initial"],
            "val_loss_final": report["val_loss_final"],
            "train_seconds": report["train_seconds"],
            "report_sha256": _file_sha256(training.Run(out).report_file),
        }

    def present(result: dict) -> bool:
        report = training.Run(out).report_file
        return report.is_file() and _file_sha256(report) == result["report_sha256"]

    return stages.run(
        title,
        inputs,
        work,
        lambda r: (
            f"{r['steps']} steps on {r['examples_train']:,} pairs, {r['tokens']:,} tokens; validation loss "
            f"{r['val_loss_initial']:.3f} -> {r['val_loss_final']:.3f}, {r['train_seconds']:.0f} s"
        ),
        present,
    )


def _evaluate(
    db: Database, stages: _Stages, reporting, label: str, spec: str, data: Path, set_title: str, options: CompareOptions
) -> dict:
    title = f"eval {label} on {set_title}"
    model = (
        {"run_report": _file_sha256(training.Run(Path(spec)).report_file)} if Path(spec).is_dir() else {"model": spec}
    )
    inputs = {**model, "data": _file_sha256(data), "limit": options.eval_limit}

    def work(resumed: bool) -> dict:
        scores = evaluate(db, [spec], data, limit=options.eval_limit, progress=reporting(title))[0]
        return {**scores.summary(), "nll": scores.nll}

    return stages.run(
        title,
        inputs,
        work,
        lambda r: (
            f"perplexity {r['ppl_tokens']:.3f} (token-weighted), mean {r['ppl_mean']:.2f}, {r['n']:,} examples, "
            f"{r['seconds']:.0f} s"
        ),
    )
