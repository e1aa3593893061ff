"""Where curator keeps what it can rebuild: the demo file, ONNX exports, distilled models,
numba's compiled code. $CURATOR_CACHE, else ~/.cache/curator. Everything there is derived
deterministically from inputs, so deleting it only costs time."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("CURATOR_CACHE") or Path.home() / ".cache" / "curator")
