"""Train page: export a version into a run folder beside the database, LoRA-train on it, watch
the loss, read the report, score each pair.

A run is `curator train` in a child process, as it would be from a terminal; it opens the
database only to record its start, its losses every few seconds and its end (storage.Database),
so the other pages stay usable, and this page watches the run's folder (curator.run_log) for
the loss as it comes. Nothing here imports torch.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pandas as pd
import streamlit as st

import storage
from curator import config, run_log
from curator.errors import UserError
from jobs import export
from storage import versions
from ui import background, state

KEPT = "(current kept pairs)"
RUNS = Path(state.db_path()).resolve().parent / "runs"


def _child(run: Path, task: str) -> background.Child | None:
    """The child started here for a run's task ("train" or "score")."""
    return background.get(f"{task}:{run}")


def _running(run: Path, task: str) -> bool:
    child = _child(run, task)
    return child is not None and child.running


def _new_run(version: str | None, steps: int, lr: float, lora_r: int, template: str) -> Path:
    """Export the pairs into a new run folder and start training on them."""
    run = RUNS / (re.sub(r"[^\w.-]+", "-", version or "kept") + time.strftime("-%Y%m%d-%H%M%S"))
    with state.database():
        # openai: the format that keeps every turn of a multi-turn pair, all of which are trained.
        export.export(
            storage.Database(state.db_path()), run / "export", export.ExportOptions(format="openai", version=version)
        )
    background.start(
        f"train:{run}",
        [
            "train",
            run / "export",
            "--out",
            run,
            "--max-steps",
            steps,
            "--lr",
            lr,
            "--lora-r",
            lora_r,
            "--template",
            template,
        ],
        run / "train.log",
    )
    return run


def _folders() -> list[Path]:
    """Run folders beside the database and under ./runs (the CLI's default), and those started
    here that have not written their settings yet; newest first."""
    found = {config.parent.resolve() for root in (RUNS, Path("runs")) for config in root.glob(f"*/{run_log.CONFIG}")}
    found |= {Path(key.removeprefix("train:")) for key in background.children() if key.startswith("train:")}
    found = {run for run in found if run.is_dir()}
    return sorted(found, key=lambda run: run.stat().st_mtime, reverse=True)


def _status(run: Path) -> str:
    if _running(run, "train"):
        return "running"
    return "finished" if (run / run_log.REPORT).exists() else "not finished"


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _loss_chart(losses: list[dict]) -> None:
    frame = pd.DataFrame(losses).pivot_table(index="step", columns="split", values="loss")
    # Validation runs every few steps: join its points instead of leaving them unconnected.
    st.line_chart(frame.interpolate(limit_area="inside"), x_label="step", y_label="loss (assistant tokens)")


def _watch(run: Path) -> None:
    """The live part of a running run, refreshed every few seconds; the page reruns at the end."""
    if not _running(run, "train"):
        st.rerun()
    losses = run_log.losses(run)
    train = [e for e in losses if e["split"] == "train"]
    val = [e for e in losses if e["split"] == "val"]
    total = run_log.settings(run).get("max_steps")
    done = train[-1]["step"] if train else 0
    label = f"step {done:,}" + (f" of {total:,}" if total else "")
    st.progress(min(done / total, 1.0) if total else 0.0, text=label)
    st.caption(_child(run, "train").last_line() or "starting…")  # the CLI's progress bar: rate and ETA
    train_loss, val_loss = st.columns(2)
    train_loss.metric("train loss", f"{train[-1]['loss']:.3f}" if train else "-")
    val_loss.metric("validation loss", f"{val[-1]['loss']:.3f}" if val else "-")
    if losses:
        _loss_chart(losses)


def _report(run: Path, report: dict) -> None:
    steps, loss, perplexity, speed = st.columns(4)
    steps.metric(
        "steps", f"{report['steps']:,}", help=f"{report['epochs_done']} epochs of {report['examples_train']:,} examples"
    )
    if report["val_loss_final"] is not None:
        loss.metric(
            "validation loss",
            f"{report['val_loss_final']:.3f}",
            delta_color="inverse",
            delta=f"{report['val_loss_final'] - report['val_loss_initial']:+.3f}",
        )
        perplexity.metric(
            "perplexity",
            f"{report['val_perplexity_final']:.2f}",
            delta_color="inverse",
            delta=f"{report['val_perplexity_final'] - report['val_perplexity_initial']:+.2f}",
        )
    speed.metric("tokens/s", f"{report['tokens_per_s']:,.0f}", help=f"{report['device']}, {report['dtype']}")
    if (run / run_log.PLOT).exists():
        st.image(str(run / run_log.PLOT))
    with st.expander("train_report.json"):
        st.json({k: v for k, v in report.items() if k != "history"}, expanded=1)


def _scores(run: Path) -> dict | None:
    """`curator score --json` of the run, once it has finished."""
    try:
        return json.loads((run / "score.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _scoring(run: Path) -> None:
    if not _running(run, "score"):
        st.rerun()
    st.info("scoring each pair of the run under the base and under the tuned model…")


def _score_section(run: Path, busy: bool) -> None:
    st.subheader("Per-pair loss")
    if _running(run, "score"):
        st.fragment(_scoring, run_every=2)(run)
        return
    scores = _scores(run)
    if scores is not None:
        st.caption(
            f"score run {scores['score_run']}: {scores['pairs']:,} pairs scored. The Map page colours "
            "them by loss_base, loss_tuned and loss_tuned - loss_base."
        )
        st.dataframe(scores["splits"], hide_index=True)
    elif (run / "score.log").exists():
        st.error("scoring failed")
        st.code(_tail(run / "score.log"))
    if st.button(
        "Score each pair" if scores is None else "Score again",
        disabled=busy,
        help="`curator score`: each pair's loss under the base and under the tuned model",
    ):
        background.start(f"score:{run}", ["score", run, "--json"], run / "score.log", run / "score.json")
        st.rerun()


busy = [child for child in background.children().values() if child.running]

st.subheader("New run")
if busy:
    st.info(
        f"`curator {' '.join(busy[0].args[:2])}` is running: a new run can start when it ends (one at a time, "
        "as each uses every core)."
    )
else:
    with state.reading() as con:
        names = [row["name"] for row in versions.listing(con)]
    with st.form("new_run"):
        data, steps, lr, lora_r, template = st.columns(5)
        version = data.selectbox("Pairs", [KEPT, *names])
        max_steps = steps.number_input(
            "Max steps",
            min_value=1,
            value=config.CPU_DEFAULT_STEPS,
            key="max_steps",
            help="60 steps of 8 short pairs take ~5 minutes on 2 CPU cores",
        )
        defaults = config.train_defaults()
        rate = lr.number_input(
            "Learning rate", min_value=1e-6, value=defaults["lr"], step=1e-4, format="%.1e", key="lr"
        )
        rank = lora_r.number_input("LoRA r", min_value=1, value=defaults["lora_r"], key="lora_r")
        chosen_template = template.selectbox(
            "Template",
            config.TEMPLATES,
            key="template",
            help="model: the base model's chat template; gpt4all: prompt\\nresponse",
        )
        if st.form_submit_button("Export and train", type="primary"):
            try:
                with st.spinner("exporting…"):
                    started = _new_run(None if version == KEPT else version, max_steps, rate, rank, chosen_template)
            except (UserError, storage.DatabaseLocked) as err:
                st.error(str(err))
            else:
                st.session_state["train_run"] = str(started)
                st.rerun()

st.subheader("Runs")
folders = _folders()
if not folders:
    st.info(f"No run yet in {RUNS}: start one above, or with `curator train`.")
    st.stop()
chosen = st.session_state.get("train_run")
run = st.selectbox(
    "Run",
    folders,
    index=folders.index(Path(chosen)) if chosen and Path(chosen) in folders else 0,
    format_func=lambda r: r.name,
)
status = _status(run)
st.caption(f"{run} · {status}")
if status == "running":
    st.fragment(_watch, run_every=2)(run)
    if st.button("Stop", help="Interrupt the run (its job is marked interrupted)"):
        _child(run, "train").process.send_signal(signal.SIGINT)
        st.rerun()
elif status == "finished":
    _report(run, run_log.report(run))
    _score_section(run, bool(busy))
else:
    losses = run_log.losses(run)
    if losses:
        _loss_chart(losses)
    st.warning("This run has not finished: it was stopped, it failed, or it runs in another process.")
    if (run / "train.log").exists():
        st.code(_tail(run / "train.log"))
