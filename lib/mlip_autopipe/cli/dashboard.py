"""The live dashboard of a run (Streamlit): ``mlip-autopipe dashboard RUN_DIR``.

It reads the run folder on every refresh (files only, no database needed), so it works while
the loop runs; anything not written yet shows as "not yet".

    streamlit run lib/mlip_autopipe/cli/dashboard.py -- RUN_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

from mlip_autopipe.cli import dashboard_data as data


def _run_dir() -> Path:
    return Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()


def _overview(run_dir: Path) -> None:
    status = data.status_table(run_dir)
    final = data.final_rmse(run_dir)
    columns = st.columns(4)
    columns[0].metric("Generations", len(status))
    columns[1].metric("Labelled structures", int(status["labelled"].sum()) if not status.empty else 0)
    if final is not None:
        where = f"{final['split']}, gen {final['generation']}"
        columns[2].metric(f"Final energy RMSE ({where})", f"{final['energy']:.3g} meV/atom")
        columns[3].metric(f"Final force RMSE ({where})", f"{final['force']:.3g} meV/A")
    else:
        columns[2].metric("Final test energy RMSE", "not yet")
        columns[3].metric("Final test force RMSE", "not yet")
    st.subheader("Status")
    if status.empty:
        st.info("No generation started yet.")
    else:
        st.dataframe(status, hide_index=True, width="stretch")


def _learning(run_dir: Path) -> None:
    st.subheader("Learning curves")
    curves = data.learning_curves(run_dir)
    if curves.empty:
        st.info("No fit yet.")
        return
    left, right = st.columns(2)
    for column, quantity in ((left, "energy RMSE (meV/atom)"), (right, "force RMSE (meV/A)")):
        table = curves.pivot(index="generation", columns="split", values=quantity)
        column.markdown(f"**{quantity}**")
        column.line_chart(table)
    scenarios = data.scenario_decisions(run_dir)
    if not scenarios.empty and "extrapolative_fraction" in scenarios:
        st.markdown("**Extrapolative fraction per scenario**")
        fractions = scenarios.pivot(index="generation", columns="scenario", values="extrapolative_fraction")
        st.line_chart(fractions)


def _dataset(run_dir: Path) -> None:
    st.subheader("Dataset by generation and origin")
    table = data.dataset_by_origin(run_dir)
    if table.empty:
        st.info("No labels gathered yet.")
    else:
        st.bar_chart(table)


def _exploration(run_dir: Path) -> None:
    st.subheader("Extrapolation (gamma) and halts")
    runs = data.md_runs(run_dir)
    if runs.empty:
        st.info("No exploration yet.")
        return
    halted = (
        runs.groupby("generation")["halted"]
        .agg(["sum", "count"])
        .rename(columns={"sum": "halted runs", "count": "MD runs"})
    )
    left, right = st.columns(2)
    left.markdown("**Max gamma per MD run**")
    left.scatter_chart(runs, x="generation", y="max gamma", color="halted")
    right.markdown("**Halted MD runs per generation**")
    right.bar_chart(halted, stack=False)
    st.dataframe(runs, hide_index=True, width="stretch")


def _figures(run_dir: Path) -> None:
    st.subheader("Parity plots and validation")
    figures = data.figures(run_dir)
    report = data.validation_summary(run_dir)
    if report is not None:
        st.json(report, expanded=False)
    if not figures:
        st.info("Parity and validation figures appear when the run finishes (results/report, /validation).")
    columns = st.columns(3)
    ordered = sorted(figures.items(), key=lambda item: item[0] != "parity")  # parity first
    for index, (title, path) in enumerate(ordered):
        columns[index % 3].image(str(path), caption=title)


def _failures(run_dir: Path) -> None:
    st.subheader("Failure ledger")
    ledger = data.ledger_table(run_dir)
    failed = ledger[ledger["status"] != "ok"] if not ledger.empty else ledger
    if failed.empty:
        st.success("No failed label.")
    else:
        columns = ("generation", "uid", "origin", "failure", "reason", "attempts", "attempt history")
        st.dataframe(failed[[c for c in columns if c in failed]], hide_index=True, width="stretch")


def _drill_down(run_dir: Path) -> None:
    st.subheader("Structure drill-down")
    ledger = data.ledger_table(run_dir)
    if ledger.empty:
        st.info("No candidate labelled yet.")
        return
    choices = [f"{row.generation:03d} {row.uid} ({row.origin}, {row.status})" for row in ledger.itertuples()]
    choice = st.selectbox("Candidate", choices)
    generation, uid = int(choice.split()[0]), choice.split()[1]
    details = data.structure_details(run_dir, generation, uid)
    if not details:
        st.warning("Its label file is not readable yet.")
        return
    row = details["row"]
    left, right = st.columns(2)
    left.markdown(f"**{details['formula']}**, generation {generation}, origin {row.get('origin')}")
    left.markdown(f"Parent: `{row.get('parent_uid', '-')}`; status {row['status']}: {details['reason']}")
    left.json(details["why picked"])
    cost = row.get("seconds")
    right.markdown(
        f"Oracle {row.get('oracle')} (settings `{row.get('settings_hash')}`), "
        f"{row.get('attempts', 1)} attempt(s), {'-' if cost is None else f'{cost:.2f} s'}"
        + (", from the label cache" if row.get("from_cache") else "")
    )
    settings = data.run_settings(run_dir)
    if settings is not None:
        right.json(settings.get("oracle", {}), expanded=False)
    if details["history"]:
        right.json(details["history"], expanded=False)


def main() -> None:
    run_dir = _run_dir()
    st.set_page_config(page_title=f"MLIP-AutoPipe: {run_dir.name}", layout="wide")
    st.title(f"MLIP-AutoPipe run: {run_dir.name}")
    st.caption("Read from the run folder's files on every load: reload for the latest state.")
    _overview(run_dir)
    _learning(run_dir)
    _dataset(run_dir)
    _exploration(run_dir)
    _figures(run_dir)
    _failures(run_dir)
    _drill_down(run_dir)


main()
