"""Regenerate the shipped demo set: curator/data/demo-smollm2-v1.jsonl.zst and its manifest.

    .venv/bin/python scripts/make_demo_set.py [--workdir DIR] [--n-parallel N]

Answers curator.demo's prompts with the bundled SmolLM2-135M-Instruct through `curator
distill` against the local llama.cpp server (jobs/demo_set.py `regenerate`). Resumable: stop it
and run it again, answers already stored in DIR/demo-generation.duckdb are kept. Offline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from cli.output import ProgressBar  # noqa: E402
from curator.cache import cache_dir  # noqa: E402
from jobs import demo_set  # noqa: E402


class LogProgress:
    """One line every `every` seconds, for runs whose output goes to a log, not a terminal."""

    def __init__(self, every: float = 30.0):
        self.every, self.last = every, 0.0

    def __call__(self, done: int, total: int, message: str) -> None:
        if time.monotonic() - self.last >= self.every or done == total:
            self.last = time.monotonic()
            print(f"{time.strftime('%H:%M:%S')} {done:,}/{total:,} {message}", flush=True)

    def close(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=cache_dir() / "demo-generation",
        help="scratch folder: prompt files and the resumable generation database",
    )
    parser.add_argument("--n-parallel", type=int, default=4, help="server slots and requests in flight")
    parser.add_argument("--out", type=Path, default=demo_set.DEMO_FILE)
    args = parser.parse_args()
    bar = ProgressBar(unit="prompt", unit_scale=False) if sys.stderr.isatty() else LogProgress()
    try:
        manifest = demo_set.regenerate(args.workdir, args.out, n_parallel=args.n_parallel, progress=bar)
    finally:
        bar.close()
    print(f"{args.out}: {manifest['pairs']:,} pairs, {manifest['bytes']:,} bytes, sha256 {manifest['sha256']}")
    for name, entry in manifest["sources"].items():
        print(f"  {name}: {entry['pairs']:,} pairs ({entry['failed']} failed), max_tokens {entry['max_tokens']}")


if __name__ == "__main__":
    main()
