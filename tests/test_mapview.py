"""What the map sends the browser (ui.map_component) and how points get their colours and
labels (ui.mapview), without a browser: the browser tests drive the same code for real."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest

from ui import map_component, mapview


def test_layout_fits_the_bulk_of_the_points_in_view_and_maps_back():
    rng = np.random.default_rng(0)
    x, y = rng.normal(5, 2, 10_000), rng.normal(-3, 1, 10_000)
    x[:3] = 1e4  # far outliers: still drawn, but they must not shrink the map into a speck
    layout = map_component.Layout.of(7, np.arange(10_000) * 11, x, y)
    assert map_component.BLOBS.get(layout.digest) == layout.data
    view = np.frombuffer(layout.data, dtype="<f4").reshape(2, -1)
    assert view.shape == (2, 10_000)
    inside = (np.abs(view) <= 1).all(axis=0).mean()
    assert 0.995 <= inside < 1
    assert np.quantile(np.abs(view[0]), 0.999) == pytest.approx(map_component.VIEW_MARGIN, abs=0.05)
    # view -> map coordinates: what the browser does with a lasso's vertices
    assert np.allclose(view[0] / layout.scale + layout.cx, x, atol=1e-2 * (1 + np.abs(x) * 1e-4))
    assert map_component.layout_of(layout.digest) is layout and layout.map_id == 7


def test_density_levels_measure_points_per_unit_of_view():
    steps = map_component.DENSITY_STEPS
    # A lattice of spacing h holds 1 / h² points per unit²: its level is steps * log2(1 / h²).
    for spacing in (0.004, 0.02, 0.1):
        grid = np.arange(-0.6, 0.6, spacing)
        x, y = (a.ravel() for a in np.meshgrid(grid, grid))
        levels = map_component.density_levels(x, y).astype(float)
        inner = (np.abs(x) < 0.4) & (np.abs(y) < 0.4)  # the lattice's edge has fewer neighbours
        assert np.median(levels[inner]) == pytest.approx(steps * np.log2(spacing**-2), abs=steps / 2)
    # A tight core, a loose halo around it and one far point: each measured on its own scale.
    rng = np.random.default_rng(1)
    core, halo = rng.normal(0, 0.01, (5_000, 2)), rng.normal(0, 0.3, (500, 2))
    points = np.vstack([core, halo, [[0.9, -0.9]], [[50, 50]]])
    layout = map_component.Layout.of(3, np.arange(len(points)), points[:, 0], points[:, 1])
    levels = np.frombuffer(map_component.BLOBS.get(layout.density), dtype=np.uint8).astype(int)
    assert len(levels) == len(points)
    core_level, halo_level = np.median(levels[:5_000]), np.median(levels[5_000:5_500])
    isolated, beyond = levels[-2], levels[-1]
    assert core_level - halo_level >= 6 * steps  # the core: ~1000x denser than the halo
    assert halo_level - isolated >= 2 * steps
    assert beyond == 0  # a far outlier, outside the counting grid: isolated


def test_density_contours_outline_the_densest_half_and_nine_tenths():
    from curator.selection import points_in_polygon

    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 0.3, 20_000), rng.normal(0, 0.2, 20_000)
    contours = map_component.density_contours(x, y)
    assert [c["share"] for c in contours] == list(map_component.CONTOUR_SHARES)
    for contour in contours:
        (line,) = contour["lines"]  # one blob, one closed outline
        polygon = np.reshape(line, (-1, 2))
        assert points_in_polygon(x, y, polygon).mean() == pytest.approx(contour["share"], abs=0.05)
    assert map_component.density_contours(np.array([]), np.array([])) == []


def test_blob_store_names_bytes_by_content_and_drops_the_oldest():
    store = map_component.BlobStore(capacity=10)
    a = store.put(b"aaaa")
    assert store.put(b"aaaa") == a and store.get(a) == b"aaaa"
    b = store.put(b"bbbbbb")
    store.put(b"cccc")  # 14 bytes: the least recently used (a) goes
    assert store.get(a) is None and store.get(b) == b"bbbbbb"
    store.keep(a, b"aaaa")  # a layout publishes its positions again under the same digest
    assert store.get(a) == b"aaaa"


def _bits(reference: str) -> np.ndarray:
    data = base64.b64decode(reference[4:]) if reference.startswith("b64:") else map_component.BLOBS.get(reference)
    return np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")


def test_bitmask_sets_bit_i_for_point_i_inline_when_small():
    mask = np.zeros(1003, dtype=bool)
    mask[[0, 9, 1002]] = True
    reference = map_component.bitmask(mask)
    assert reference.startswith("b64:")  # 126 bytes travel inside the component's arguments
    assert len(_bits(reference)) == 1008 and np.flatnonzero(_bits(reference)).tolist() == [0, 9, 1002]
    big = np.zeros(8 * map_component.INLINE_BYTES + 1, dtype=bool)
    big[-1] = True
    reference = map_component.bitmask(big)
    assert not reference.startswith("b64:")  # published, fetched by digest
    assert np.flatnonzero(_bits(reference)).tolist() == [len(big) - 1]


def test_categories_keep_the_largest_values_and_call_the_rest_other():
    sources = [f"s{i}" for i in range(20) for _ in range(20 - i)]
    frame = pd.DataFrame(
        {"source": pd.Categorical(sources), "refusal": [True, False, None] * 70, "dup_group": [1, None] * 105}
    )
    cats = mapview.categories(frame, "source")
    legend = mapview.legend(cats)
    assert [name for name, _, _ in legend] == [f"s{i}" for i in range(mapview.MAX_LEGEND)] + ["other"]
    assert legend[-1][2] == sum(20 - i for i in range(mapview.MAX_LEGEND, 20))
    assert legend[-1][1] == mapview.OTHER_COLOR
    flags = mapview.categories(frame, "refusal")
    assert flags.value_counts().to_dict() == {"yes": 70, "no": 70, "unknown": 70}
    assert set(mapview.categories(frame, "dup_group")) == {"duplicate", "unique"}


def test_colour_codes_index_the_legend():
    frame = pd.DataFrame({"source": pd.Categorical(["b", "a", "b", "c", "b", "a"])})
    codes, legend = mapview.colours(frame, ("test", 1), "source")
    names = [name for name, _, _ in legend]
    assert names == ["b", "a", "c"]
    assert [names[c] for c in codes] == ["b", "a", "b", "c", "b", "a"]
    assert codes.dtype == np.uint8


def test_labels_sit_at_cluster_medians_fine_and_coarse():
    frame = pd.DataFrame(
        {
            "id": range(7),
            "x": [0, 1, 2, 10, 11, 12, 50.0],
            "y": [0, 0, 0, 5, 5, 5, 9.0],
            "cluster": [0, 0, 0, 1, 1, 1, -1],
        }
    )
    clusters = [
        {"level": "fine", "id": 0, "parent": 0, "label": "cats · dogs"},
        {"level": "fine", "id": 1, "parent": 0, "label": "birds"},
        {"level": "coarse", "id": 0, "parent": None, "label": "animals"},
    ]
    labels = {(lb["level"], lb["text"]): (lb["x"], lb["y"], lb["size"]) for lb in mapview.labels(frame, clusters)}
    assert labels == {
        ("fine", "cats · dogs"): (1.0, 0.0, 3),
        ("fine", "birds"): (11.0, 5.0, 3),
        ("coarse", "animals"): (6.0, 2.5, 6),
    }


def test_operations_marks_join_the_cached_points():
    from ui import state

    points = pd.DataFrame({"id": np.arange(0, 20, 2, dtype=np.int64), "x": 0.0, "y": 0.0})
    deleted = np.array([4, 6], dtype=np.int64)
    tags = pd.DataFrame({"id": [2, 6, 7], "tag": ["b", "a", "not on this map"]})
    frame = state.marked(points, deleted, tags)
    assert frame["tag"].tolist()[:5] == [state.UNTAGGED, "b", state.UNTAGGED, "a", state.UNTAGGED]
    assert frame["deleted"].tolist()[:5] == [False, False, True, True, False]
    assert "deleted" not in points.columns  # the cached points are left as they were
    legend = {name: count for name, _, count in mapview.legend(mapview.categories(frame, "tag"))}
    assert legend == {state.UNTAGGED: 8, "a": 1, "b": 1}


def test_a_degenerate_lasso_is_refused_with_the_reason():
    from streamlit.testing.v1 import AppTest

    def page():
        from types import SimpleNamespace

        import pandas as pd
        import streamlit as st

        from ui import mapview

        st.session_state["map-1"] = {"kind": "polygon", "shape": "box", "polygon": [[0, 0], [1, 1]], "id": "7"}
        mapview.gesture(SimpleNamespace(id=1, name="prompt"), pd.DataFrame(), key="map-1")
        st.write("selection" in st.session_state)

    app = AppTest.from_function(page).run()
    assert not app.exception
    assert "That box selects nothing" in app.warning[0].value and "at least 3 points" in app.warning[0].value
    assert app.markdown[0].value == "`False`"  # nothing selected
