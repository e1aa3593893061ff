"""The map as a Streamlit component: every point drawn in the browser with WebGL.

The browser side (frontend/src/index.js, built into build/ and committed, so installing needs
no node) draws with regl-scatterplot. What it needs travels as binary blobs named by their
content digest, served by ui/server.py's routes from `BLOBS`:

- positions, once per map: float32 x[n] then y[n], scaled into [-1, 1] (`Layout`);
- local density, once per map: one uint8 level per point (`density_levels`), from which the
  browser sets each point's opacity and size;
- density contours, once per map: JSON polylines in view coordinates (`density_contours`);
- colours: one uint8 legend code per point, when the colouring changes;
- greyed points (filters, deleted pairs) and the selection: bitmasks of n bits.

Streamlit's arguments carry only those digests, the legend and the labels, so a rerun costs a
few KB; the browser keeps what it fetched by digest and fetches a blob again only when its
content changed. Hover text is fetched pair by pair from /curator/pair/DIGEST/INDEX.

What comes back is the user's last gesture, as a dict with a unique `id`:
{"kind": "polygon", "shape": "lasso" | "box", "polygon": [[x, y], ...]} in map coordinates,
{"kind": "click", "index": i}, {"kind": "clear"}, or {"kind": "nowebgl"}.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import contourpy
import numpy as np
import streamlit.components.v1 as components
from scipy.ndimage import gaussian_filter

from curator.errors import UserError

BUILD = Path(__file__).with_name("build")


@functools.cache
def _component():
    # Declared on first use, inside a script run: Streamlit registers a component only when it
    # is declared there, and ui/server.py imports this module before any script runs.
    return components.declare_component("curator_map", path=str(BUILD))


# The share of points inside the initial view: the box of the 0.1st..99.9th percentiles, so a
# few far outliers do not shrink the map into a speck (they stay drawn, a zoom-out away).
VIEW_QUANTILES = (0.001, 0.999)
VIEW_MARGIN = 0.92  # the box fills 92% of the view's side

# Local density, per point, in points per unit² of the view (the [-1, 1] square the positions
# are scaled into), sent as a uint8 level: DENSITY_STEPS * log2(density), so level 0 is one
# point per unit² or fewer and 255 about 4e9 (~40,000 points on a pixel of a 640 px tall map).
DENSITY_STEPS = 8  # levels per doubling of the density
DENSITY_NEIGHBOURS = 8  # the points a density is measured over (what k is to k-nearest neighbours)
DENSITY_CELLS = 1024  # the finest counting grid's cells per side: ~1.2 px at a 640 px tall map
DENSITY_REACH = 2.0  # the grid covers [-2, 2]²: points beyond count as isolated (level 0)

# Density contours: the outlines of the densest regions holding these shares of the points
# (highest-density regions), on a CONTOUR_CELLS² histogram of the view smoothed over
# CONTOUR_SMOOTHING cells: ~6 px cells, so outlines follow clusters, not single points.
CONTOUR_SHARES = (0.5, 0.9)
CONTOUR_CELLS = 128
CONTOUR_SMOOTHING = 1.5
CONTOUR_REACH = 1.1  # the histogram covers [-1.1, 1.1]², the view and its margin


class BlobStore:
    """Bytes the browser fetches by content digest, kept in memory; past `capacity` bytes the
    least recently used go (the browser then asks a rerun for fresh digests)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str:
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        with self._lock:
            if digest in self._items:
                self._items.move_to_end(digest)
                return digest
            self._items[digest] = data
            self._size += len(data)
            while self._size > self.capacity and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)
        return digest

    def keep(self, digest: str, data: bytes) -> None:
        """Put `data` back under its known digest if it was dropped (no hashing)."""
        with self._lock:
            if digest not in self._items:
                self._items[digest] = data
                self._size += len(data)

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            data = self._items.get(digest)
            if data is not None:
                self._items.move_to_end(digest)
            return data


BLOBS = BlobStore(768 * 2**20)


def density_levels(vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """Each point's local density in view coordinates, as a uint8 level (see DENSITY_STEPS).

    Counted on a pyramid of grids rather than from each point's k-th nearest neighbour (a
    KD-tree query takes seconds for 1M points on 2 cores, this a fraction of one): from the
    finest grid up, a point's density is the count in the 3 x 3 cells around its cell over
    their area, taken at the first grid where they hold DENSITY_NEIGHBOURS points. A point in
    a dense core is so measured over a few pixels, an isolated one over the distance to its
    neighbours, as a k-nearest-neighbour estimate would."""
    density = np.zeros(len(vx))
    cells = DENSITY_CELLS
    todo = np.flatnonzero((np.abs(vx) < DENSITY_REACH) & (np.abs(vy) < DENSITY_REACH))
    ix, iy = (((v[todo] + DENSITY_REACH) * (cells / (2 * DENSITY_REACH))).astype(np.int32) for v in (vx, vy))
    counts = np.bincount(ix * cells + iy, minlength=cells * cells).astype(np.int32).reshape(cells, cells)
    while len(todo):
        padded = np.pad(counts, 1)
        block = sum(padded[i : i + cells, j : j + cells] for i in range(3) for j in range(3))
        found = block.ravel()[ix * cells + iy]
        done = (found >= DENSITY_NEIGHBOURS) | (cells <= 4)
        span = np.full(cells, 3)  # the block's cells inside the grid, per axis: 2 at its border
        span[[0, -1]] = 2
        area = span[ix[done]] * span[iy[done]] * (2 * DENSITY_REACH / cells) ** 2
        density[todo[done]] = found[done] / area
        left = ~done
        todo, ix, iy = todo[left], ix[left] // 2, iy[left] // 2
        cells //= 2
        counts = counts.reshape(cells, 2, cells, 2).sum(axis=(1, 3))
    levels = np.round(DENSITY_STEPS * np.log2(np.maximum(density, 1)))
    return np.clip(levels, 0, 255).astype(np.uint8)


def density_contours(vx: np.ndarray, vy: np.ndarray) -> list[dict]:
    """Iso-lines of the points' smoothed density: for each share in CONTOUR_SHARES, the
    outline of the densest region that holds that share of the points, as polylines in view
    coordinates: [{"share": 0.5, "lines": [[x0, y0, x1, y1, ...], ...]}, ...]."""
    cells = CONTOUR_CELLS
    ix, iy = (np.floor((v + CONTOUR_REACH) * (cells / (2 * CONTOUR_REACH))) for v in (vx, vy))
    inside = (ix >= 0) & (ix < cells) & (iy >= 0) & (iy < cells)
    flat = (iy[inside] * cells + ix[inside]).astype(np.int64)  # rows: y, as contourpy reads them
    counts = np.bincount(flat, minlength=cells * cells).reshape(cells, cells)
    smooth = gaussian_filter(counts.astype(np.float64), CONTOUR_SMOOTHING)
    ranked = np.sort(smooth.ravel())[::-1]
    if ranked[0] <= 0:  # no points in the view
        return []
    held = np.cumsum(ranked) / ranked.sum()
    centres = (np.arange(cells) + 0.5) * (2 * CONTOUR_REACH / cells) - CONTOUR_REACH
    contours = contourpy.contour_generator(centres, centres, smooth)
    out = []
    for share in CONTOUR_SHARES:
        level = ranked[min(np.searchsorted(held, share), len(ranked) - 1)]
        lines = [np.round(line, 3).ravel().tolist() for line in contours.lines(level) if len(line) > 2]
        out.append({"share": share, "lines": lines})
    return out


@dataclass(eq=False)
class Layout:
    """A map's points as the browser draws them: pair ids in point order, positions scaled
    into the view (published under `digest`), each point's local density level (under
    `density`), the density contours (under `contours`), and the transform back to map
    coordinates: map = view / scale + (cx, cy)."""

    map_id: int
    ids: np.ndarray
    digest: str
    density: str
    contours: str
    published: dict[str, bytes]  # every blob above by digest, to publish again if the store dropped them
    cx: float
    cy: float
    scale: float

    @property
    def data(self) -> bytes:
        """The published positions."""
        return self.published[self.digest]

    @classmethod
    def of(cls, map_id: int, ids: np.ndarray, x: np.ndarray, y: np.ndarray) -> Layout:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if len(x):
            (x0, x1), (y0, y1) = np.quantile(x, VIEW_QUANTILES), np.quantile(y, VIEW_QUANTILES)
        else:
            x0 = x1 = y0 = y1 = 0.0
        side = max(x1 - x0, y1 - y0) or 1.0
        cx, cy, scale = (x0 + x1) / 2, (y0 + y1) / 2, 2 * VIEW_MARGIN / side
        vx, vy = (x - cx) * scale, (y - cy) * scale
        data = np.concatenate([vx, vy]).astype("<f4").tobytes()
        density = density_levels(vx, vy).tobytes()
        contours = json.dumps(density_contours(vx, vy), separators=(",", ":")).encode()
        digest, density_digest, contours_digest = (BLOBS.put(blob) for blob in (data, density, contours))
        published = {digest: data, density_digest: density, contours_digest: contours}
        ids = np.asarray(ids, dtype=np.int64)
        layout = cls(map_id, ids, digest, density_digest, contours_digest, published, cx, cy, scale)
        _remember(layout)
        return layout

    def republish(self) -> None:
        """Put the layout's blobs back in BLOBS where the store dropped them."""
        for digest, blob in self.published.items():
            BLOBS.keep(digest, blob)

    def to_view(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(x) - self.cx) * self.scale, (np.asarray(y) - self.cy) * self.scale


_LAYOUTS: OrderedDict[str, Layout] = OrderedDict()
_LAYOUTS_KEPT = 8
_LAYOUTS_LOCK = threading.Lock()  # sessions' script threads and the hover route share them


def _remember(layout: Layout) -> None:
    with _LAYOUTS_LOCK:
        _LAYOUTS[layout.digest] = layout
        _LAYOUTS.move_to_end(layout.digest)
        while len(_LAYOUTS) > _LAYOUTS_KEPT:
            _LAYOUTS.popitem(last=False)


def layout_of(digest: str) -> Layout | None:
    """The layout whose positions have this digest (what a hover request names)."""
    with _LAYOUTS_LOCK:
        return _LAYOUTS.get(digest)


# Bitmasks up to this size travel inside the component's arguments (base64) instead of being
# fetched: a fetch right after a rerun waits for the browser to finish drawing the page
# (0.5 s at 1M points on 2 cores: bench/app.py), and 1M points are 125 KB.
INLINE_BYTES = 256 * 1024


def bitmask(mask: np.ndarray) -> str:
    """A boolean per point as n bits (bit i of byte i // 8 is point i): "b64:DATA" when small
    enough to travel inline, else the digest it is published under."""
    data = np.packbits(np.asarray(mask, dtype=bool), bitorder="little").tobytes()
    return "b64:" + base64.b64encode(data).decode() if len(data) <= INLINE_BYTES else BLOBS.put(data)


def point_size(n: int) -> float:
    """Pixels per point: large for a few thousand points, small for millions (they overlap)."""
    return float(np.clip(10 - 1.3 * math.log10(max(n, 1)), 1.5, 7))


def map_chart(
    layout: Layout,
    *,
    codes: np.ndarray,
    legend: list[tuple[str, str, int]],
    color_by: str,
    labels: list[dict],
    key: str,
    dim: np.ndarray | None = None,
    dim_label: str = "",
    selected: np.ndarray | None = None,
    height: int = 640,
) -> dict | None:
    """Draw the map; returns the last gesture (see the module's docstring) or None.

    codes: a legend index per point (uint8, below len(legend)); legend: (name, colour, count)
    in code order; dim: points drawn grey (filtered out, deleted), under `dim_label`;
    selected: points highlighted; labels: {"x", "y", "text", "level": "coarse"|"fine", "size"}
    in map coordinates."""
    n = len(layout.ids)
    layout.republish()
    if len(codes) != n or len(legend) > 254:
        raise UserError(f"{len(codes)} codes for {n} points, {len(legend)} legend entries (254 at most)")
    dim_count = int(np.count_nonzero(dim)) if dim is not None else 0
    selected_count = int(np.count_nonzero(selected)) if selected is not None else 0
    shown_labels = []
    for label in labels:
        vx, vy = layout.to_view(label["x"], label["y"])
        shown_labels.append({**label, "x": round(float(vx), 5), "y": round(float(vy), 5)})
    spec = {
        "n": n,
        "points": layout.digest,
        "density": layout.density,
        "densitySteps": DENSITY_STEPS,
        "contours": layout.contours,
        "view": {"cx": layout.cx, "cy": layout.cy, "scale": layout.scale},
        "codes": BLOBS.put(np.asarray(codes, dtype=np.uint8).tobytes()),
        "palette": [colour for _, colour, _ in legend],
        "legend": [[str(name), colour, int(count)] for name, colour, count in legend],
        "colorBy": color_by,
        "dim": bitmask(dim) if dim_count else None,
        "dimCount": dim_count,
        "dimLabel": dim_label,
        "selected": bitmask(selected) if selected_count else None,
        "selectedCount": selected_count,
        "labels": shown_labels,
        "labelsKey": hashlib.blake2b(repr(shown_labels).encode(), digest_size=8).hexdigest(),
        "pointSize": point_size(n),
        "height": height,
    }
    return _component()(spec=spec, key=key, default=None)
