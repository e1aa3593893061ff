"""The map figure: a Plotly scattergl of (a sample of) the points, coloured by one column.

Plotly stays smooth to ~1e5 points and is sluggish at 1e6, so above MAX_DRAWN points the
figure draws a deterministic sample over a density layer of all points; selections are applied
to every point on the server (ui.state), never to what happens to be drawn. MAX_DRAWN is 50k,
not 100k: a laptop without a GPU draws WebGL in software, and the page must be usable in a
few seconds on 2 cores (bench/app.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from storage.browse import LOSS_COLUMNS

MAX_DRAWN = 50_000
MAX_LEGEND = 12        # categories with a colour of their own; the rest are "other"
GREY = "rgba(170,170,170,0.35)"
HIGHLIGHT = "#111111"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#e7969c"]
# Ordered categories (quintiles low to high, then "not scored") get a sequential scale instead.
QUINTILES = 5
SEQUENTIAL = ["#0d0887", "#6a00a8", "#b12a90", "#e16462", "#fca636"]
NOT_SCORED = "not scored"
NOT_SCORED_COLOR = "#bbbbbb"


def drawn(frame: pd.DataFrame) -> pd.DataFrame:
    """The points to draw: all of them, or MAX_DRAWN chosen by a hash of the id (stable)."""
    if len(frame) <= MAX_DRAWN:
        return frame
    order = np.argsort((frame["id"].to_numpy(np.uint64) * np.uint64(0x9E3779B97F4A7C15)), kind="stable")
    return frame.iloc[np.sort(order[:MAX_DRAWN])]


def quintiles(values: pd.Series) -> pd.Series:
    """Each value's quintile among the values present, as an ordered category from
    "q1 lowest (a to b)" to "q5 highest (a to b)", and NOT_SCORED where the value is missing.
    The bins hold equal counts (ties are split by position), so a skewed loss still shows five
    colours of a fifth of the points each."""
    numbers = values.to_numpy(dtype=float, na_value=np.nan)
    present = np.flatnonzero(~np.isnan(numbers))
    ranked = present[np.argsort(numbers[present], kind="stable")]
    bins = np.full(len(numbers), QUINTILES)  # QUINTILES: the NOT_SCORED bin
    bins[ranked] = np.arange(len(ranked)) * QUINTILES // max(len(ranked), 1)
    names = []
    for q in range(QUINTILES):
        inside = numbers[bins == q]
        rank = {0: " lowest", QUINTILES - 1: " highest"}.get(q, "")
        span = f" ({inside.min():.2f} to {inside.max():.2f})" if len(inside) else ""
        names.append(f"q{q + 1}{rank}{span}")
    names.append(NOT_SCORED)
    labels = pd.Categorical.from_codes(bins, categories=names, ordered=True)
    return pd.Series(labels, index=values.index)


def categories(frame: pd.DataFrame, color_by: str) -> pd.Series:
    """The legend entry of each point for `color_by`."""
    if color_by in LOSS_COLUMNS:
        return quintiles(frame[color_by])
    if color_by == "tag":
        values = frame["tag"]
    elif color_by == "dup_group":
        values = frame["dup_group"].map(lambda g: "duplicate" if pd.notna(g) else "unique")
    elif color_by == "deleted":
        values = frame["deleted"].map({True: "deleted", False: "kept"})
    elif frame[color_by].dtype == bool or color_by in ("refusal", "short", "truncated", "malformed",
                                                        "pii", "over_length", "conflict"):
        values = frame[color_by].map(lambda v: "unknown" if pd.isna(v) else ("yes" if v else "no"))
    else:
        values = frame[color_by].astype(str)
    top = values.value_counts().index[:MAX_LEGEND]
    return values.where(values.isin(top), "other")


def figure(frame: pd.DataFrame, color_by: str, *, highlight: np.ndarray | None = None,
           dim: np.ndarray | None = None, labels: pd.DataFrame | None = None,
           density_of: pd.DataFrame | None = None, height: int = 640) -> go.Figure:
    """The figure for `frame` (already sampled by `drawn`).

    highlight: ids drawn on top in black (the selection); dim: a boolean per row of `frame`,
    True for points outside the active filter, drawn grey but kept for spatial context;
    labels: topic labels (columns x, y, label) written at cluster centres; density_of: every
    point, binned into a density layer under a sampled scatter.
    """
    fig = go.Figure()
    if density_of is not None and len(density_of) > len(frame):
        counts, xs, ys = np.histogram2d(density_of["x"], density_of["y"], bins=200)
        fig.add_trace(go.Heatmap(z=np.log1p(counts.T), x=(xs[:-1] + xs[1:]) / 2, y=(ys[:-1] + ys[1:]) / 2,
                                 colorscale="Greys", showscale=False, hoverinfo="skip", opacity=0.5))
    cats = categories(frame, color_by)
    dim = np.zeros(len(frame), dtype=bool) if dim is None else dim
    if dim.any():
        grey = frame[dim]
        fig.add_trace(_scatter(grey, "filtered out", GREY))
    for name, color in _legend(cats[~dim]):
        part = frame[(cats == name).to_numpy() & ~dim]
        fig.add_trace(_scatter(part, str(name), color))
    if highlight is not None and len(highlight):
        chosen = frame[frame["id"].isin(highlight)]
        fig.add_trace(_scatter(chosen, f"selected ({len(highlight):,})", HIGHLIGHT, size=5))
    if labels is not None and len(labels):
        fig.add_trace(go.Scatter(x=labels["x"], y=labels["y"], text=labels["label"], mode="text",
                                 textfont={"size": 11}, hoverinfo="skip", showlegend=False))
    fig.update_layout(height=height, dragmode="lasso", margin={"l": 0, "r": 0, "t": 24, "b": 0},
                      legend={"itemsizing": "constant"}, uirevision="map",
                      xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"})
    return fig


def _legend(cats: pd.Series) -> list[tuple[str, str]]:
    """(category, colour) in legend order: quintiles low to high on a sequential scale, other
    categories largest first on the qualitative palette."""
    if isinstance(cats.dtype, pd.CategoricalDtype) and cats.cat.ordered:
        present = set(cats.unique())
        colors = [*SEQUENTIAL, NOT_SCORED_COLOR]
        return [(name, colors[i]) for i, name in enumerate(cats.cat.categories) if name in present]
    return [(name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(cats.value_counts().index)]


def _scatter(part: pd.DataFrame, name: str, color: str, size: int = 4) -> go.Scattergl:
    # customdata carries the pair id: per-trace point indices collide once colour splits traces.
    return go.Scattergl(x=part["x"], y=part["y"], mode="markers", name=name,
                        marker={"size": size, "color": color},
                        customdata=part["id"].to_numpy(), text=part["topic"],
                        hovertemplate="%{text}<br>id %{customdata}<extra>" + name + "</extra>")


def cluster_centres(frame: pd.DataFrame, largest: int = 25) -> pd.DataFrame:
    """Median position and label of the `largest` non-noise clusters: more labels than that
    cover the points they name."""
    clustered = frame[frame["cluster"] >= 0]
    grouped = clustered.groupby("cluster").agg(x=("x", "median"), y=("y", "median"),
                                                label=("topic", "first"), size=("id", "size"))
    return grouped.nlargest(largest, "size").reset_index()
