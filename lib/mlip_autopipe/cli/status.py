"""Where a run stands, read from its results folder alone (works while the run is going on).

python -m mlip_autopipe.cli.status [RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlip_autopipe.contract import Status
from mlip_autopipe.data import read_structures


@dataclass
class GenerationStatus:
    """One generation's progress."""

    generation: int
    candidates: int | None = None
    labelled: int = 0
    failed: int = 0
    fitted: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    explored: bool = False
    halted_runs: int | None = None
    decision: dict[str, Any] | None = None

    @property
    def pending(self) -> int | None:
        if self.candidates is None:
            return None
        return max(self.candidates - self.labelled - self.failed, 0)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent, or being written right now


def _label_outcomes(folder: Path, uids: set[str] | None) -> tuple[int, int]:
    """Label files of the current candidates (a rerun may leave files of earlier ones)."""
    ok = failed = 0
    for path in folder.glob("*.extxyz"):
        if uids is not None and path.stem not in uids:
            continue
        try:
            (atoms,) = read_structures(path)
        except Exception:  # a label file that cannot be read yet counts as pending
            continue
        if atoms.info.get("label_status", Status.OK) == Status.OK:
            ok += 1
        else:
            failed += 1
    return ok, failed


def generation_status(folder: Path) -> GenerationStatus:
    """Progress of ``results/gen_NNN`` from the files present now."""
    status = GenerationStatus(generation=int(folder.name.split("_")[1]))
    split = folder / "candidates"
    uids = {path.stem for path in split.glob("*.extxyz")} if split.is_dir() else None
    status.candidates = None if uids is None else len(uids)
    ledger = _read_json(folder / "ledger.json")
    if isinstance(ledger, list):
        status.labelled = sum(entry["status"] == Status.OK for entry in ledger)
        status.failed = len(ledger) - status.labelled
        status.candidates = status.candidates if status.candidates is not None else len(ledger)
    else:
        status.labelled, status.failed = _label_outcomes(folder / "label", uids)
    metrics = _read_json(folder / "fit" / "metrics.json")
    if isinstance(metrics, dict):
        status.fitted, status.metrics = True, metrics
    runs = _read_json(folder / "explore" / "runs.json")
    if isinstance(runs, list):
        status.explored = True
        status.halted_runs = sum(bool(run.get("halted")) for run in runs)
    decision = _read_json(folder / "decision.json")
    status.decision = decision if isinstance(decision, dict) else None
    return status


def run_status(run_dir: str | Path) -> list[GenerationStatus]:
    """Status of every generation under ``run_dir/results``, in order."""
    results = Path(run_dir) / "results"
    folders = sorted(p for p in results.glob("gen_[0-9][0-9][0-9]") if p.is_dir())
    return [generation_status(folder) for folder in folders]


def _rmse(metrics: dict[str, Any], split: str, key: str, scale: float = 1.0) -> str:
    value = metrics.get(split, {}).get(key)
    return "-" if value is None else f"{value * scale:.3g}"


def render(run_dir: str | Path) -> str:
    """A console table of the run's progress, as plain text."""
    from rich.console import Console
    from rich.table import Table

    generations = run_status(run_dir)
    table = Table(title=f"MLIP-AutoPipe run: {Path(run_dir).resolve().name}")
    for column in (
        "gen",
        "candidates",
        "labelled",
        "failed",
        "pending",
        "test E (meV/at)",
        "test F (meV/A)",
        "halted MD",
        "decision",
    ):
        table.add_column(column)
    for status in generations:
        decision = status.decision
        table.add_row(
            f"{status.generation:03d}",
            "-" if status.candidates is None else str(status.candidates),
            str(status.labelled),
            str(status.failed),
            "-" if status.pending is None else str(status.pending),
            _rmse(status.metrics, "test", "energy_rmse_mev_per_atom"),
            _rmse(status.metrics, "test", "force_rmse_ev_per_a", 1000.0),
            "-" if status.halted_runs is None else str(status.halted_runs),
            "running" if decision is None else f"{decision['reason']}: {decision['why']}",
        )
    console = Console(record=True, width=160)
    with console.capture() as capture:
        if generations:
            console.print(table)
        else:
            console.print(f"no generation started yet under {Path(run_dir) / 'results'}")
    return capture.get()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mlip-autopipe-status", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default=".", help="the run's working directory")
    args = parser.parse_args(argv)
    print(render(args.run_dir), end="")


if __name__ == "__main__":
    main()
