"""What a map shows: every point coloured by one column, cluster labels, the selection.

The drawing happens in the browser (ui.map_component, WebGL): this module turns a map frame
(ui.state.map_frame) into what the component takes (a legend code per point, the legend, the
labels, greyed and selected points) and turns the user's gestures back into selections.
Every page that shows a map calls `chart`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from curator.errors import UserError
from storage.browse import is_score, signal_columns
from ui import map_component, state

MAX_LEGEND = 12  # categories with a colour of their own; the rest are "other"
FINE_LABELS = 400  # the largest fine clusters get a label (drawn when they do not collide)
PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#393b79",
    "#e7969c",
]
# Ordered categories (quintiles low to high, then "not scored") get a sequential scale instead.
QUINTILES = 5
SEQUENTIAL = ["#0d0887", "#6a00a8", "#b12a90", "#e16462", "#fca636"]
NOT_SCORED = "not scored"
NOT_SCORED_COLOR = "#bbbbbb"
OTHER_COLOR = "#5f5f5f"


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
    """The legend entry of each point for `color_by`, as a categorical Series: the MAX_LEGEND
    largest values, the rest "other". Built from category codes, never from a million strings
    (a colour change at 1M pairs: 0.3 s through strings, a few ms through codes)."""
    column = frame[color_by]
    if is_score(color_by):
        return quintiles(column)
    if color_by == "judge_score":
        scores = column.to_numpy(dtype=float, na_value=0).astype(np.int8)  # 1..5, 0: not judged
        return _named(np.where(scores > 0, scores - 1, 5), ["1", "2", "3", "4", "5", "not judged"], frame.index)
    if color_by == "dup_group":
        return _named(column.notna().to_numpy(np.int8), ["unique", "duplicate"], frame.index)
    if color_by == "deleted":
        return _named(column.to_numpy(bool).astype(np.int8), ["kept", "deleted"], frame.index)
    if color_by in signal_columns() or column.dtype == bool:
        flags = column.to_numpy(dtype=float, na_value=np.nan)
        return _named(np.where(np.isnan(flags), 2, flags).astype(np.int8), ["no", "yes", "unknown"], frame.index)
    values = column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype(str).astype("category")
    counts = np.bincount(values.cat.codes.to_numpy() + 1, minlength=len(values.cat.categories) + 1)[1:]
    top = np.argsort(-counts, kind="stable")[:MAX_LEGEND]
    top = top[counts[top] > 0]
    names = [str(values.cat.categories[i]) for i in top]
    remap = np.full(len(values.cat.categories) + 1, len(names), dtype=np.int16)  # -1 (missing) and the rest: other
    remap[top + 1] = np.arange(len(names))
    codes = remap[values.cat.codes.to_numpy() + 1]
    return _named(codes, [*names, "other"], frame.index)


def _named(codes: np.ndarray, names: list[str], index) -> pd.Series:
    return pd.Series(pd.Categorical.from_codes(codes, categories=names), index=index)


def legend(cats: pd.Series) -> list[tuple[str, str, int]]:
    """(category, colour, points) in legend order: quintiles low to high on a sequential scale,
    other categories largest first on the qualitative palette ("other" last, in grey)."""
    counts = cats.value_counts()
    counts = counts[counts > 0]
    if cats.cat.ordered:
        colors = [*SEQUENTIAL, NOT_SCORED_COLOR]
        return [
            (name, colors[i], int(counts[name])) for i, name in enumerate(cats.cat.categories) if counts.get(name, 0)
        ]
    named = [name for name in counts.index if name != "other"]
    out = [(name, PALETTE[i % len(PALETTE)], int(counts[name])) for i, name in enumerate(named)]
    return out + ([("other", OTHER_COLOR, int(counts["other"]))] if counts.get("other", 0) else [])


@st.cache_resource(max_entries=16, show_spinner=False)
def colours(_frame: pd.DataFrame, token: tuple, color_by: str) -> tuple[np.ndarray, list]:
    """(a legend code per point, the legend) for `color_by`; cached per `token` (the frame's,
    without the operations part unless `color_by` is what operations change)."""
    cats = categories(_frame, color_by)
    entries = legend(cats)
    position = {name: i for i, (name, _, _) in enumerate(entries)}
    remap = np.array([position.get(name, 0) for name in cats.cat.categories], dtype=np.uint8)
    return remap[cats.cat.codes.to_numpy()], entries


def labels(frame: pd.DataFrame, clusters: list[dict]) -> list[dict]:
    """Cluster labels at the median of their points: every coarse cluster and the FINE_LABELS
    largest fine ones. The browser draws those that do not collide: coarse ones zoomed out,
    fine ones zoomed in."""
    clustered = frame[frame["cluster"] >= 0]
    if clustered.empty:
        return []
    by_key = {(c["level"], c["id"]): c for c in clusters}
    parent = {c["id"]: c["parent"] for c in clusters if c["level"] == "fine" and c["parent"] is not None}
    out = []
    for level, groups in (("fine", clustered["cluster"]), ("coarse", clustered["cluster"].map(parent))):
        centres = clustered.groupby(groups.to_numpy(), dropna=True).agg(
            x=("x", "median"), y=("y", "median"), size=("id", "size")
        )
        if level == "fine":
            centres = centres.nlargest(FINE_LABELS, "size")
        for cluster, row in centres.iterrows():
            info = by_key.get((level, int(cluster)))
            if info and info["label"]:
                out.append(
                    {
                        "x": float(row["x"]),
                        "y": float(row["y"]),
                        "text": info["label"],
                        "level": level,
                        "size": int(row["size"]),
                    }
                )
    return out


@st.cache_resource(max_entries=8, show_spinner=False)
def _labels(_frame: pd.DataFrame, token: tuple, _clusters: list[dict]) -> list[dict]:
    return labels(_frame, _clusters)


def chart(
    map_row,
    frame: pd.DataFrame,
    color_by: str,
    *,
    key: str,
    height: int = 640,
    dim: np.ndarray | None = None,
    dim_label: str = "filtered out",
) -> None:
    """Draw `map_row` (every point of `frame`, ui.state.map_frame) with the current selection
    highlighted; a lasso, box, click or clear drawn on it becomes the selection."""
    token = frame.attrs["token"]
    layout = state.map_layout(token)
    gesture(map_row, frame, key=key)
    codes, entries = colours(frame, token if color_by in ("tag", "deleted") else token[:2], color_by)
    chosen = state.selection()
    selected = state.selected_mask(chosen, frame) if chosen is not None else None
    shown_labels = _labels(frame, token[:2], state.map_clusters(token))  # labels ignore operations
    map_component.map_chart(
        layout,
        codes=codes,
        legend=entries,
        color_by=color_by,
        labels=shown_labels,
        key=key,
        dim=dim,
        dim_label=dim_label,
        selected=selected,
        height=height,
    )
    if st.session_state.get("no_webgl"):
        st.error(
            "The map needs WebGL, which this browser has turned off or cannot use: turn on its "
            "hardware acceleration setting. The Clusters and Search pages still list the pairs."
        )


def gesture(map_row, frame: pd.DataFrame, *, key: str) -> None:
    """Act once on the user's last gesture on the map drawn under `key` (`chart` calls it; a
    page may call it earlier): the component hands the same gesture back on every rerun
    until the next one, each with its own id."""
    event = st.session_state.get(key)
    if not event or st.session_state.get(f"{key}-done") == event.get("id"):
        return
    st.session_state[f"{key}-done"] = event.get("id")
    kind = event.get("kind")
    if kind == "polygon":
        try:
            state.select_polygon(map_row, frame, event["polygon"], event.get("shape", "lasso"))
        except UserError as err:  # a degenerate lasso: say why, keep the selection there was
            st.warning(f"That {event.get('shape', 'lasso')} selects nothing: {err}")
    elif kind == "click" and 0 <= int(event["index"]) < len(frame):
        pair_id = int(frame["id"].iat[int(event["index"])])  # point i is row i (both ordered by id)
        state.select({"ids": [pair_id]}, f"pair {pair_id}, clicked on map {map_row.name}", map_row.id)
    elif kind == "clear":
        state.clear_selection()
    elif kind == "nowebgl":
        st.session_state["no_webgl"] = True
