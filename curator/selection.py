"""Selectors: how a curation operation chooses its pairs, and the pure geometry behind them.

A selector is exactly one of:

- `where`: a SQL boolean expression over pairs_view (run read-only by storage),
- `cluster` (+ `map`, `level`): the pairs of a fine or coarse cluster of a map,
- `source`: the pairs of a source,
- `tag`: the pairs carrying a tag,
- `ids`: explicit pair ids,
- `polygon` (+ `map`): the points of a map inside a polygon in map coordinates (a lasso or a
  box drawn in the web app),
- `similar_to` + `top` (+ `map`): the `top` pairs nearest to a text under the map's model.

`map` names the map for the map-based kinds (default: the default map). A selector is stored
with every operation as JSON (`describe()`), so the log says how pairs were chosen; the pairs
themselves are recorded one by one beside it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from curator.errors import UserError

KINDS = ("where", "cluster", "source", "tag", "ids", "polygon", "similar_to")
LEVELS = ("fine", "coarse")
_MAP_KINDS = ("cluster", "polygon", "similar_to")
# Longer id lists are logged as a count and a digest instead of inline.
_LOGGED_IDS = 50


@dataclass(eq=False)
class Selector:
    where: str | None = None
    cluster: int | None = None
    source: str | None = None
    tag: str | None = None
    ids: np.ndarray | None = None  # int64 pair ids
    polygon: list[tuple[float, float]] | None = None
    similar_to: str | None = None
    top: int | None = None  # with similar_to: how many nearest pairs
    map: str | None = None  # cluster, polygon, similar_to: default map if None
    level: str = "fine"  # cluster: fine or coarse

    def __post_init__(self) -> None:
        chosen = [k for k in KINDS if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise UserError(
                "give exactly one selector: "
                + " | ".join(f"--{k.replace('_', '-')}" for k in KINDS)
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        kind = chosen[0]
        for name in ("where", "source", "tag", "similar_to", "map"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise UserError(f"{name} must be a string, not {getattr(self, name)!r}")
        if self.map is not None and kind not in _MAP_KINDS:
            raise UserError(f"a map only goes with --cluster, --polygon or --similar-to, not --{kind}")
        if (self.top is not None) != (kind == "similar_to"):
            raise UserError("--top goes with --similar-to, and --similar-to needs --top")
        if self.level not in LEVELS or (self.level != "fine" and kind != "cluster"):
            raise UserError(f"level {self.level!r}: only --cluster takes a level (fine or coarse)")
        if kind == "where" and not self.where.strip():
            raise UserError("--where needs an expression, e.g. --where \"source = 'alpaca'\"")
        if kind == "cluster":
            self.cluster = _integer(self.cluster, "cluster")
        if kind == "ids":
            self.ids = np.unique(np.asarray(self.ids, dtype=np.int64))
        if kind == "polygon":
            self.polygon = _polygon(self.polygon)
        if kind == "similar_to":
            self.top = _integer(self.top, "top")
            if self.top < 1 or not self.similar_to.strip():
                raise UserError("--similar-to needs a text and --top a positive count")

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @classmethod
    def from_dict(cls, value: dict | Selector) -> Selector:
        """From the JSON form (what the web app sends, what the log stores for replay)."""
        if isinstance(value, Selector):
            return value
        unknown = set(value) - {*KINDS, "top", "map", "level"}
        if unknown:
            raise UserError(f"unknown selector key(s): {', '.join(sorted(unknown))}")
        return cls(**value)

    def describe(self) -> dict:
        """The selector as logged: JSON-ready; a long id list becomes its count and sha256."""
        out: dict = {}
        for key in (*KINDS, "top", "map"):
            value = getattr(self, key)
            if value is None:
                continue
            if key == "ids":
                value = (
                    [int(i) for i in value]
                    if len(value) <= _LOGGED_IDS
                    else {"count": len(value), "sha256": hashlib.sha256(value.tobytes()).hexdigest()}
                )
            elif key == "polygon":
                value = [list(p) for p in value]
            out[key] = value
        if self.kind == "cluster":
            out["level"] = self.level
        return out


def _integer(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"{name} must be an integer, not {value!r}")
    return int(value)


def _polygon(value) -> list[tuple[float, float]]:
    try:
        points = [(float(x), float(y)) for x, y in value]
    except (TypeError, ValueError):
        raise UserError("a polygon is a JSON list of [x, y] points, e.g. [[0,0],[1,0],[1,1]]") from None
    if len(points) < 3 or not all(math.isfinite(c) for p in points for c in p):
        raise UserError(f"a polygon needs at least 3 points with finite coordinates (got {len(points)})")
    return points


def parse_id_list(text: str) -> np.ndarray:
    """Pair ids from a JSON array, or one id per line (blank lines and # comments skipped)."""
    stripped = text.strip()
    if stripped.startswith("["):
        values = json.loads(stripped)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise UserError("the ids' JSON array must hold integers only")
        return np.asarray(values, dtype=np.int64)
    ids = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            ids.append(int(line))
        except ValueError:
            raise UserError(f"line {number}: {line[:40]!r} is not a pair id") from None
    return np.asarray(ids, dtype=np.int64)


def points_in_polygon(x: np.ndarray, y: np.ndarray, polygon: list[tuple[float, float]]) -> np.ndarray:
    """Which points lie inside the polygon (even-odd rule, so concave lassos work), vectorized.

    Ray casting: a point is inside when a ray from it towards +x crosses the boundary an odd
    number of times. Edge (a, b) crosses the ray of every point with min(ya, yb) <= y <
    max(ya, yb) (half-open, so a vertex is counted once) and x left of the edge at that y.
    Points outside the polygon's bounding box are dropped first; the rest are sorted by y, so
    each edge touches only the contiguous run of points in its y band instead of every point:
    the work is the number of (point, crossing edge) pairs, not points x edges.
    """
    x, y = _floats(x), _floats(y)  # float32 map coordinates stay float32: half the sort's work
    vertices = np.asarray(polygon, dtype=np.float64)
    inside = np.zeros(len(x), dtype=bool)
    (xmin, ymin), (xmax, ymax) = vertices.min(axis=0), vertices.max(axis=0)
    candidates = np.flatnonzero((x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax))
    if len(candidates) == 0:
        return inside
    order = np.argsort(y[candidates])
    candidates = candidates[order]
    cx, cy = x[candidates], y[candidates]
    parity = np.zeros(len(candidates), dtype=bool)
    starts, ends = vertices, np.roll(vertices, -1, axis=0)
    for (xa, ya), (xb, yb) in zip(starts, ends):
        if ya == yb:
            continue  # horizontal edges cross no ray under the half-open rule
        lo, hi = np.searchsorted(cy, [min(ya, yb), max(ya, yb)], side="left")
        if lo == hi:
            continue
        band_y = cy[lo:hi]
        crossing_x = xa + (band_y - ya) * ((xb - xa) / (yb - ya))
        parity[lo:hi] ^= cx[lo:hi] < crossing_x
    inside[candidates] = parity
    return inside


def _floats(values) -> np.ndarray:
    values = np.asarray(values)
    return values if values.dtype in (np.float32, np.float64) else values.astype(np.float64)


def top_k(vectors: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the k rows most similar to the query (cosine on normalized vectors), best first."""
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.int64)
    scores = vectors @ np.asarray(query, dtype=np.float32).reshape(-1)
    k = min(k, len(scores))
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.argsort(-scores[best], kind="stable")]


# --- what a selection holds ------------------------------------------------------------------

BREAKDOWN_TOP = 20  # sources and topics listed, largest first


def breakdown(columns, flags: list[str], mask: np.ndarray | None = None) -> dict[str, list[tuple[str, int]]]:
    """Counts of the chosen rows by source, by topic and by flag: {"source": [(name, n)],
    "topic": [...], "signal": [(flag, n) for flags set on some row]}, largest first (ties by
    name), BREAKDOWN_TOP names at most. `columns`: a frame (or mapping of arrays) with `source`,
    `topic`, `deleted` and each of `flags`; `mask`: the chosen rows (default: all). Categories
    are counted by their codes: a lasso over half of a million points takes milliseconds."""
    out: dict[str, list[tuple[str, int]]] = {}
    for column in ("source", "topic"):
        values = pd.Series(columns[column]).astype("category")
        codes = values.cat.codes.to_numpy()
        chosen = codes if mask is None else codes[mask]
        counts = np.bincount(chosen + 1, minlength=len(values.cat.categories) + 1)[1:]  # code -1: missing
        named = sorted(((str(name), int(n)) for name, n in zip(values.cat.categories, counts) if n), key=_largest)
        out[column] = named[:BREAKDOWN_TOP]
    signal = []
    for name in ["deleted", *flags]:
        values = pd.Series(columns[name]).to_numpy(dtype=bool, na_value=False)
        n = int(np.count_nonzero(values if mask is None else values[mask]))
        if n:
            signal.append((name, n))
    out["signal"] = signal
    return out


def _largest(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]
