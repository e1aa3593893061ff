"""What the model-based scores add to the rules, on a real mixture (issue 15's "raise these").

    .venv/bin/python bench/quality.py                 # build (once, ~6 min on 2 cores) and measure
    .venv/bin/python bench/quality.py --ifd 400       # plus IFD on a random 400 pairs (~3-5 min)
    .venv/bin/python bench/quality.py --ifd-speed 300 # only: IFD pairs/s against the raw loss passes

The mixture (bench/out/quality/mixture.duckdb, built once), all real public data from
../shared/data:
- alpaca: the first 2,000 Alpaca records (text-davinci-003; no refusals, tests/test_signals.py);
- p3: 25 records from each of 20 P3 templates (500 pairs, 20% of the Alpaca + P3 part);
- guanaco-7b, falcon-7b-instruct, llama-2-7b-chat-hf: their 805 AlpacaEval outputs each, with
  66 refusals and 33 hard negatives labelled by reading (bench/labelled_refusals.py);
- hh: the 80 labelled Anthropic HH answers (19 refusals), a held-out kind of refusal
  (conversational), never used for fitting;
- identity: the first 300 FastChat identity conversations (a blob of canned answers).
Then `curator map` (prompts), `curator embed --field opening`, `curator signals`.

Measured, each against labels the fit never saw:
1. refusals: the rule (signal `refusal`), a concept fitted on 20 labelled AlpacaEval refusals
   (response openings, random negatives), and the two together; recall on the other 46 and on
   HH's 19; precision over the labelled hard negatives plus every Alpaca pair flagged (Alpaca
   holds none: each flag there is a false positive);
2. identity: a concept from 20 identity pairs; share of the other identity pairs found, and of
   the rest wrongly flagged; where the identity clusters rank in `curator blobs`;
3. P3: a concept from 20 pairs of 10 templates (prompts); recall on the 10 templates it never
   saw; flags outside P3; against the map alone: the share of P3 pairs in P3-pure (>= 90%)
   clusters; and a concept from one pair of each of the 20 templates;
4. with --ifd N: IFD (bundled SmolLM2) of a random N pairs, mean and median per kind.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import storage  # noqa: E402
from bench.labelled_refusals import HH_OTHERS, HH_REFUSALS, NOT_REFUSALS, REFUSALS  # noqa: E402
from curator.selection import Selector  # noqa: E402
from jobs import concepts as concept_job  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out" / "quality"
MODELS = ("guanaco-7b", "falcon-7b-instruct", "llama-2-7b-chat-hf")
P3_DIR = DATA / "t0_train_50k_data_per_template"
P3_TEMPLATES = sorted(p.stem for p in P3_DIR.glob("*.jsonl"))[::15][:20]
P3_PER_TEMPLATE, ALPACA, IDENTITY = 25, 2000, 300
LABELS = 20
CURATOR = [str(Path(sys.executable).with_name("curator"))]


def curator(db: Path, *args) -> str:
    result = subprocess.run([*CURATOR, "--db", str(db), *map(str, args)], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"curator {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result.stdout


def build(db: Path) -> None:
    files = OUT / "files"
    files.mkdir(parents=True, exist_ok=True)
    (files / "alpaca.json").write_text(json.dumps(json.loads((DATA / "alpaca_5000.json").read_text())[:ALPACA]))
    (files / "identity.json").write_text(
        json.dumps(json.loads((DATA / "dummy_conversation.json").read_text())[:IDENTITY])
    )
    with (files / "p3.jsonl").open("w") as out:
        for name in P3_TEMPLATES:
            for line in (P3_DIR / f"{name}.jsonl").read_text().splitlines()[:P3_PER_TEMPLATE]:
                out.write(json.dumps({**json.loads(line), "source": f"p3:{name}"}) + "\n")
    with gzip.open(DATA / "hh-rlhf_harmless-base" / "test.jsonl.gz", "rt") as f:
        hh = [json.loads(line) for line in f]
    (files / "hh.jsonl").write_text(
        "".join(json.dumps({**hh[i], "id": i}) + "\n" for i in sorted(HH_REFUSALS + HH_OTHERS))
    )
    curator(db, "ingest", files / "alpaca.json", files / "identity.json", files / "hh.jsonl")
    curator(db, "ingest", files / "p3.jsonl", "--format", "gpt4all")
    for model in MODELS:
        curator(db, "ingest", DATA / "alpaca_eval_results" / model / "model_outputs.json", "--source", model)
    for args in (["map"], ["embed", "--field", "opening"], ["signals"]):
        started = time.monotonic()
        curator(db, *args)
        print(f"  curator {' '.join(args)}: {time.monotonic() - started:.0f} s", flush=True)


def rows(db: Path, sql: str, params=()) -> list[tuple]:
    """A read-only query on a connection of its own: concepts write between reads, and DuckDB
    does not open one file read-only and read-write in the same process at once."""
    con = storage.connect_read_only(db)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def hh_pair_ids(db: Path) -> dict[int, int]:
    """HH line number -> pair id of its last answer (the labelled one). The labelled lines were
    written in order, one per line of hh.jsonl."""
    lines = sorted(HH_REFUSALS + HH_OTHERS)
    last = dict(rows(db, "SELECT line, arg_max(id, pair_index) FROM pairs WHERE source = 'hh' GROUP BY line"))
    assert len(last) == len(lines), (len(last), len(lines))
    return {line: last[k + 1] for k, line in enumerate(lines)}


def concept(db: Path, name: str, positives: list[int], field: str) -> dict[int, float]:
    report = concept_job.create(storage.Database(db), name, Selector(ids=np.array(positives)), field=field)
    print(
        f"  concept {name}: cross-validated precision {report.cv_precision:.0%}, recall {report.cv_recall:.0%} "
        f"({report.positives} positives, {report.negatives} random negatives, {field})"
    )
    return dict(rows(db, f'SELECT id, "concept_{name}" FROM pairs_view'))


def share(flags: list[bool]) -> str:
    return f"{np.mean(flags):.0%} ({sum(flags)}/{len(flags)})" if flags else "-"


def refusals(db: Path) -> None:
    key = {
        (s, line - 1): i
        for i, s, line in rows(db, "SELECT id, source, line FROM pairs WHERE source IN (?, ?, ?)", MODELS)
    }
    positives = [key[(m, i)] for m in MODELS for i in REFUSALS.get(m, [])]
    negatives = [key[(m, i)] for m in MODELS for i in NOT_REFUSALS.get(m, [])]
    train = random.Random(0).sample(positives, LABELS)
    held = [i for i in positives if i not in train]
    hh = hh_pair_ids(db)
    hh_pos, hh_neg = [hh[i] for i in HH_REFUSALS], [hh[i] for i in HH_OTHERS]
    alpaca = [i for (i,) in rows(db, "SELECT id FROM pairs WHERE source = 'alpaca'")]
    rule = dict(rows(db, "SELECT id, refusal FROM pairs_view"))
    score = concept(db, "refusal_like", train, "opening")
    print(
        f"\n1. refusals: {len(held)} held-out AlpacaEval refusals, {len(hh_pos)} HH refusals; wrong flags counted "
        f"on {len(negatives) + len(hh_neg)} labelled hard negatives and {len(alpaca):,} Alpaca pairs"
    )
    print(f"   {'method':<28} {'recall AlpacaEval':>18} {'recall HH':>14} {'wrong flags':>12} {'precision':>10}")
    for label, flag in (
        ("rule", lambda i: bool(rule[i])),
        ("concept >= 0.5", lambda i: score[i] >= 0.5),
        ("concept >= 0.8", lambda i: score[i] >= 0.8),
        ("rule or concept >= 0.8", lambda i: bool(rule[i]) or score[i] >= 0.8),
    ):
        found = [flag(i) for i in held] + [flag(i) for i in hh_pos]
        wrong = sum(flag(i) for i in negatives + hh_neg + alpaca)
        print(
            f"   {label:<28} {share([flag(i) for i in held]):>18} {share([flag(i) for i in hh_pos]):>14} "
            f"{wrong:>12} {sum(found) / max(1, sum(found) + wrong):>10.0%}"
        )


def identity(db: Path) -> None:
    ids = sorted(i for (i,) in rows(db, "SELECT id FROM pairs WHERE source = 'identity'"))
    train = random.Random(0).sample(ids, LABELS)
    score = concept(db, "identity_like", train, "opening")
    rest = [i for i in ids if i not in train]
    others = [i for i in score if i not in set(ids)]
    print(f"\n2. identity: {len(ids)} pairs of {IDENTITY} conversations; concept from {LABELS}")
    print(
        f"   found {share([score[i] >= 0.5 for i in rest])} of the others; flagged "
        f"{share([score[i] >= 0.5 for i in others])} of the {len(others):,} non-identity pairs"
    )
    blobs = json.loads(curator(db, "blobs", "--json"))
    ranked = [b for b in blobs if b["kind"] == "cluster"]
    members = dict(
        rows(
            db,
            "SELECT mp.cluster, count(*) FILTER (WHERE p.source = 'identity') FROM map_points mp "
            "JOIN pairs p ON p.id = mp.pair_id GROUP BY 1",
        )
    )
    top = [(rank, b["id"], members.get(b["id"], 0)) for rank, b in enumerate(ranked, 1) if members.get(b["id"], 0)]
    shown = ", ".join(f"#{rank} ({n} identity pairs)" for rank, _, n in top[:4])
    print(f"   `curator blobs`: clusters holding identity pairs rank {shown} of {len(ranked)} clusters")


def p3(db: Path) -> None:
    ids = rows(db, "SELECT id, source FROM pairs WHERE source LIKE 'p3:%'")
    seen = set(P3_TEMPLATES[::2])
    train = random.Random(0).sample([i for i, s in ids if s[3:] in seen], LABELS)
    score = concept(db, "p3_like", train, "prompt")
    unseen = [i for i, s in ids if s[3:] not in seen]
    p3_ids = {i for i, _ in ids}
    others = [i for i in score if i not in p3_ids]
    clusters = rows(
        db,
        "SELECT mp.cluster, count(*), count(*) FILTER (WHERE p.source LIKE 'p3:%') FROM map_points mp "
        "JOIN pairs p ON p.id = mp.pair_id JOIN maps m ON m.id = mp.map_id AND m.is_default "
        "WHERE mp.cluster >= 0 GROUP BY 1",
    )
    pure = sum(n_p3 for _, n, n_p3 in clusters if n_p3 >= 0.9 * n)
    print(
        f"\n3. P3: {len(ids)} pairs of {len(P3_TEMPLATES)} templates; concept from {LABELS} pairs of "
        f"{len(seen)} templates"
    )
    print(
        f"   found {share([score[i] >= 0.5 for i in unseen])} of the pairs of the {len(P3_TEMPLATES) - len(seen)} "
        f"templates it never saw; flagged {share([score[i] >= 0.5 for i in others])} of the {len(others):,} "
        f"non-P3 pairs"
    )
    print(f"   map alone: {pure / len(ids):.0%} of the P3 pairs sit in P3-pure (>= 90%) clusters")
    # The workflow the map makes quick: a pair or so of every template, labelled.
    by_template: dict[str, list[int]] = {}
    for i, s in sorted(ids):
        by_template.setdefault(s, []).append(i)
    rng = random.Random(0)
    train = [rng.choice(members) for members in by_template.values()]
    score = concept(db, "p3_every_template", train, "prompt")
    rest = [i for i, _ in ids if i not in set(train)]
    print(
        f"   concept from 1 pair of each of the {len(by_template)} templates: found "
        f"{share([score[i] >= 0.5 for i in rest])} of the other P3 pairs; flagged "
        f"{share([score[i] >= 0.5 for i in others])} of the non-P3 pairs"
    )


def ifd(db: Path, sample: int) -> None:
    started = time.monotonic()
    report = json.loads(curator(db, "quality", "ifd", "--limit", sample, "--json"))
    seconds = time.monotonic() - started
    kinds = rows(
        db,
        """
            SELECT CASE WHEN source LIKE 'p3:%' THEN 'p3' WHEN source IN (?, ?, ?) THEN 'model outputs'
                        ELSE source END AS kind, count(*), avg(ifd), median(ifd)
            FROM pairs_view WHERE ifd IS NOT NULL GROUP BY 1 ORDER BY 3""",
        MODELS,
    )
    print(
        f"\n4. IFD (bundled SmolLM2, --max-length 512): {report['scored'] + report['already']} pairs, "
        f"{report['pairs_per_s']:.1f} pairs/s now ({seconds:.0f} s with loading)"
    )
    for kind, n, mean, median in kinds:
        print(f"   {kind:<14} {n:>4} pairs  mean {mean:.3f}  median {median:.3f}")


def ifd_speed(n: int) -> None:
    """`curator quality ifd` on the first n Alpaca pairs against the raw baseline: the same
    model's two loss passes over the same pairs, pre-encoded, in this process."""
    from curator import evaluation, quality, training

    folder = OUT / "speed"
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    folder.mkdir(parents=True)
    records = json.loads((DATA / "alpaca_5000.json").read_text())[:n]
    (folder / "alpaca.json").write_text(json.dumps(records))
    db = folder / "speed.duckdb"
    curator(db, "ingest", folder / "alpaca.json")
    started = time.monotonic()
    report = json.loads(curator(db, "quality", "ifd", "--json"))
    wall = time.monotonic() - started
    prompts, responses = zip(*rows(db, "SELECT prompt, response FROM pairs"))
    model = evaluation.open_model(training.BUNDLED_BASE)
    chat = training.chat_template(model.tokenizer, "model")
    encoded = [quality.encode_pair(p, r, model.tokenizer, chat, 512) for p, r in zip(prompts, responses)]
    started = time.monotonic()
    model.losses([given for given, _ in encoded])
    model.losses([alone for _, alone in encoded])
    raw = time.monotonic() - started
    tokens = sum(len(given.input_ids) + len(alone.input_ids) for given, alone in encoded)
    print(
        f"\nIFD speed, {report['scored']} Alpaca pairs ({tokens:,} tokens through the model), bundled SmolLM2, "
        f"batch 16, 2 cores:"
    )
    print(
        f"   curator quality ifd: {report['pairs_per_s']:.1f} pairs/s scoring ({report['seconds']:.1f} s; "
        f"{wall:.1f} s with start-up and model loading)"
    )
    print(f"   raw (the two loss passes alone): {len(encoded) / raw:.1f} pairs/s ({raw:.1f} s)")
    print(f"   ratio curator / raw: {report['pairs_per_s'] / (len(encoded) / raw):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ifd", type=int, default=0, help="IFD on a random N pairs (0: skip)")
    parser.add_argument(
        "--ifd-speed", type=int, default=0, help="only time IFD on the first N Alpaca pairs against the raw loss passes"
    )
    args = parser.parse_args()
    if args.ifd_speed:
        ifd_speed(args.ifd_speed)
        return
    db = OUT / "mixture.duckdb"
    if not (OUT / "built").exists():
        print(f"building {db}", flush=True)
        for stale in OUT.glob("mixture.duckdb*"):
            subprocess.run(["rm", "-rf", str(stale)], check=True)
        build(db)
        (OUT / "built").touch()
    print(
        "pairs:",
        ", ".join(
            f"{s} {n:,}"
            for s, n in rows(
                db,
                "SELECT CASE WHEN source LIKE 'p3:%' THEN 'p3' ELSE source END, count(*) FROM pairs "
                "GROUP BY 1 ORDER BY 2 DESC",
            )
        ),
    )
    for measure in (refusals, identity, p3):
        measure(db)
    if args.ifd:
        ifd(db, args.ifd)


if __name__ == "__main__":
    main()
