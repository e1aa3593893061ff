"""The map as a Streamlit component: every point drawn in the browser with WebGL.

The browser side (frontend/src/index.js, built into build/ and committed, so installing needs
no node) draws with regl-scatterplot. What it needs travels as binary blobs named by their
content digest, served by ui/server.py's routes from `BLOBS`:

- positions, once per map: float32 x[n] then y[n], scaled into [-1, 1] (`Layout`);
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
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit.components.v1 as components

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


@dataclass(eq=False)
class Layout:
    """A map's points as the browser draws them: pair ids in point order, positions scaled
    into the view (published under `digest`), and the transform back to map coordinates:
    map = view / scale + (cx, cy)."""

    map_id: int
    ids: np.ndarray
    digest: str
    data: bytes  # the published positions, kept to publish again if the store dropped them
    cx: float
    cy: float
    scale: float

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
        data = np.concatenate([(x - cx) * scale, (y - cy) * scale]).astype("<f4").tobytes()
        layout = cls(map_id, np.asarray(ids, dtype=np.int64), BLOBS.put(data), data, cx, cy, scale)
        _remember(layout)
        return layout

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
# (0.5 s at 1M points on 2 cores), and 1M points are 125 KB.
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
    BLOBS.keep(layout.digest, layout.data)
    if len(codes) != n or len(legend) > 254:
        raise ValueError(f"{len(codes)} codes for {n} points, {len(legend)} legend entries (254 at most)")
    dim_count = int(np.count_nonzero(dim)) if dim is not None else 0
    selected_count = int(np.count_nonzero(selected)) if selected is not None else 0
    shown_labels = []
    for label in labels:
        vx, vy = layout.to_view(label["x"], label["y"])
        shown_labels.append({**label, "x": round(float(vx), 5), "y": round(float(vy), 5)})
    spec = {
        "n": n,
        "points": layout.digest,
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
