"""The web app's Train page on a real run (export, `curator train` in a child process, the
report), and the map's colouring by per-pair loss."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import storage
from curator import config, run_log, training
from storage import training as run_rows
from tests.conftest import needs_data
from tests.test_app import APP
from tests.test_train import short_alpaca
from ui import mapview


@needs_data
@pytest.mark.slow
def test_train_page_trains_a_version_and_shows_the_report(curator, tmp_path, monkeypatch):
    (tmp_path / "pairs.json").write_text(json.dumps(short_alpaca(24)))
    curator("ingest", tmp_path / "pairs.json")
    monkeypatch.setenv("CURATOR_DB", str(curator.db))
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page("ui/train_page.py").run()
    assert not app.exception
    # The form's defaults are the trainer's.
    defaults = training.TrainConfig(data=".", out=".")
    assert app.number_input(key="lr").value == defaults.lr and app.number_input(key="lora_r").value == defaults.lora_r
    assert app.number_input(key="max_steps").value == config.CPU_DEFAULT_STEPS
    assert app.selectbox(key="template").options == list(config.TEMPLATES)

    app.number_input(key="max_steps").set_value(2)
    next(b for b in app.button if b.label == "Export and train").click().run()
    assert not app.exception
    deadline = time.time() + 180
    while not any(m.label == "tokens/s" for m in app.metric):  # the report of the finished run
        assert time.time() < deadline and not app.exception and not app.warning, [w.value for w in app.warning] + [
            c.value for c in app.code
        ]  # a failed run: its log
        time.sleep(1)
        app.run()
    assert {m.label: m.value for m in app.metric}["steps"] == "2"
    assert app.get("image")  # the loss curve

    run = next((curator.db.parent / "runs").iterdir())
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert manifest["pairs"]["train"] + manifest["pairs"]["val"] == 24
    # The live log the page watched holds exactly the losses the database has.
    live = [(e["step"], e["split"], e["loss"]) for e in run_log.losses(run)]
    con = storage.connect_read_only(curator.db)
    try:
        (row,) = run_rows.runs(con)
        stored = [(e["step"], e["split"], e["loss"]) for e in run_rows.losses(con, row["id"])]
    finally:
        con.close()
    assert row["status"] == "done" and Path(row["directory"]) == run
    assert sorted(live) == sorted(stored) and [s for s, split, _ in live if split == "train"] == [1, 2]


def test_loss_quintiles_hold_a_fifth_each_low_to_high():
    values = pd.Series([5.0, np.nan, 1.0, 3.0, 2.0, 4.0, np.nan, 10.0, 9.0, 8.0, 7.0, 6.0])
    labels = mapview.quintiles(values)
    assert labels.tolist() == [
        "q3 (5.00 to 6.00)",
        "not scored",
        "q1 lowest (1.00 to 2.00)",
        "q2 (3.00 to 4.00)",
        "q1 lowest (1.00 to 2.00)",
        "q2 (3.00 to 4.00)",
        "not scored",
        "q5 highest (9.00 to 10.00)",
        "q5 highest (9.00 to 10.00)",
        "q4 (7.00 to 8.00)",
        "q4 (7.00 to 8.00)",
        "q3 (5.00 to 6.00)",
    ]
    # Equal values are still split evenly, and the legend runs low to high, "not scored" last.
    tied = mapview.quintiles(pd.Series([0.5] * 10 + [None]))
    assert tied.value_counts(sort=False).tolist() == [2, 2, 2, 2, 2, 1]
    frame = pd.DataFrame({"id": range(12), "x": 0.0, "y": 0.0, "topic": "t", "loss_change": values})
    legend = [name for name, _, _ in mapview.legend(mapview.categories(frame, "loss_change"))]
    assert legend == [*labels.cat.categories]
