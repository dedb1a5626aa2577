"""What the dashboard shows, as plain tables read from a run folder (no Streamlit here).

Every reader tolerates missing or half-written files: the dashboard runs while the loop does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from mlip_autopipe.cli.status import run_status

#: ``atoms.info`` entries that say why a structure was picked (selection, MD frame, core atom).
WHY_PICKED = (
    "selection",
    "selection_score",
    "md_step",
    "temperature",
    "run",
    "scenario",
    "core_atom",
    "core_gamma",
)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def generation_dirs(run_dir: Path) -> list[Path]:
    return sorted(path for path in (run_dir / "results").glob("gen_[0-9][0-9][0-9]") if path.is_dir())


def status_table(run_dir: Path) -> pd.DataFrame:
    """One row per generation: candidates, labels, fit, exploration, decision."""
    rows = []
    for status in run_status(run_dir):
        decision = status.decision or {}
        rows.append(
            {
                "generation": status.generation,
                "candidates": status.candidates,
                "labelled": status.labelled,
                "failed": status.failed,
                "pending": status.pending,
                "fitted": status.fitted,
                "halted MD runs": status.halted_runs,
                "decision": decision.get("reason", "running"),
                "why": decision.get("why", ""),
            }
        )
    return pd.DataFrame(rows)


def learning_curves(run_dir: Path) -> pd.DataFrame:
    """Energy (meV/atom) and force (meV/A) RMSE per generation and split."""
    rows = []
    for folder in generation_dirs(run_dir):
        metrics = _read_json(folder / "fit" / "metrics.json")
        if not isinstance(metrics, dict):
            continue
        generation = int(folder.name.split("_")[1])
        for split in ("train", "test"):
            values = metrics.get(split) or {}
            if values.get("energy_rmse_mev_per_atom") is None:
                continue
            rows.append(
                {
                    "generation": generation,
                    "split": split,
                    "energy RMSE (meV/atom)": float(values["energy_rmse_mev_per_atom"]),
                    "force RMSE (meV/A)": 1000.0 * float(values.get("force_rmse_ev_per_a") or float("nan")),
                }
            )
    return pd.DataFrame(rows)


def final_rmse(run_dir: Path) -> dict[str, Any] | None:
    """RMSE of the last fitted generation (energy meV/atom, force meV/A), its generation and
    split: the held-out test split where one exists, else the training split (said so)."""
    curves = learning_curves(run_dir)
    if curves.empty:
        return None
    test = curves[curves["split"] == "test"]
    last = (test if not test.empty else curves).sort_values(["generation", "split"]).iloc[-1]
    return {
        "generation": int(last["generation"]),
        "split": str(last["split"]),
        "energy": float(last["energy RMSE (meV/atom)"]),
        "force": float(last["force RMSE (meV/A)"]),
    }


def ledger_table(run_dir: Path) -> pd.DataFrame:
    """Every ledger entry of every generation (labelled and failed), with its generation."""
    rows = []
    for folder in generation_dirs(run_dir):
        ledger = _read_json(folder / "ledger.json")
        if not isinstance(ledger, list):
            continue
        generation = int(folder.name.split("_")[1])
        for entry in ledger:
            row = {key: value for key, value in entry.items() if key != "history"}
            row["generation"] = generation
            row["scenario"] = entry.get("scenario")
            row["attempt history"] = json.dumps(entry.get("history") or [])
            rows.append(row)
    return pd.DataFrame(rows)


def dataset_by_origin(run_dir: Path) -> pd.DataFrame:
    """Labelled structures per generation and origin (scenario when present)."""
    ledger = ledger_table(run_dir)
    if ledger.empty:
        return ledger
    ok = ledger[ledger["status"] == "ok"].copy()
    source = ok["scenario"].where(ok["scenario"].notna(), None) if "scenario" in ok else None
    ok["source"] = ok["origin"].fillna("?") if source is None else source.fillna(ok["origin"].fillna("?"))
    return ok.groupby(["generation", "source"]).size().unstack(fill_value=0)


def md_runs(run_dir: Path) -> pd.DataFrame:
    """Every exploration run: generation, scenario, temperature, max gamma, halted, reason."""
    rows = []
    for folder in generation_dirs(run_dir):
        runs = _read_json(folder / "explore" / "runs.json")
        if not isinstance(runs, list):
            continue
        for run in runs:
            rows.append(
                {
                    "generation": int(folder.name.split("_")[1]),
                    "run": run.get("run"),
                    "scenario": run.get("scenario", ""),
                    "temperature": run.get("temperature"),
                    "steps done": run.get("steps_done"),
                    "max gamma": run.get("max_gamma"),
                    "halted": bool(run.get("halted")),
                    "reason": run.get("reason", ""),
                }
            )
    return pd.DataFrame(rows)


def scenario_decisions(run_dir: Path) -> pd.DataFrame:
    """Per generation and exploration scenario: the decision's counts (when scenarios exist)."""
    rows = []
    for folder in generation_dirs(run_dir):
        decision = _read_json(folder / "decision.json")
        scenarios = decision.get("scenarios") if isinstance(decision, dict) else None
        if not isinstance(scenarios, dict):
            continue
        for name, counts in scenarios.items():
            rows.append({"generation": int(folder.name.split("_")[1]), "scenario": name, **counts})
    return pd.DataFrame(rows)


def validation_summary(run_dir: Path) -> dict[str, Any] | None:
    """The final potential's validation report, when there is one."""
    report = _read_json(run_dir / "results" / "validation" / "validation.json")
    return report if isinstance(report, dict) else None


def figures(run_dir: Path) -> dict[str, Path]:
    """The report and validation figures present now, by title."""
    found = {}
    for folder in ("report", "validation"):
        for path in sorted((run_dir / "results" / folder).glob("*.png")):
            found[path.stem.replace("_", " ")] = path
    return found


def structure_details(run_dir: Path, generation: int, uid: str) -> dict[str, Any]:
    """One candidate: why it was picked, its parent, the oracle settings and the cost."""
    from mlip_autopipe.provenance import generation_rows

    folder = run_dir / "results" / f"gen_{generation:03d}"
    for row in generation_rows(folder):
        if row.key_value_pairs["uid"] == uid:
            info = row.data.get("info", {})
            picked = {key: info[key] for key in WHY_PICKED if key in info}
            return {
                "row": row.key_value_pairs,
                "why picked": picked or {"origin": row.key_value_pairs.get("origin")},
                "reason": row.data.get("reason"),
                "history": row.data.get("history", []),
                "info": info,
                "formula": row.atoms.get_chemical_formula(),
            }
    return {}


def run_settings(run_dir: Path) -> dict[str, Any] | None:
    """The config a `mlip-autopipe run` started this folder with (oracle settings and the rest)."""
    record = _read_json(run_dir / ".mlip-autopipe" / "run.json")
    if not isinstance(record, dict):
        return None
    import yaml

    try:
        settings = yaml.safe_load(Path(record["config"]).read_text())
    except (OSError, KeyError, yaml.YAMLError):
        return None
    return settings if isinstance(settings, dict) else None
