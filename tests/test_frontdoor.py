"""Acceptance of the front door (issue 20): `mlip-autopipe init` -> `check` -> `run` (EMT, tiny)
-> `status` -> `export` (SQLite and a real PostgreSQL server) -> `dashboard` in a real headless
Chromium. The dashboard's screenshot is kept as tests/artifacts/dashboard.png."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from browser import dashboard_server, page_text_and_screenshot
from postgres_server import postgres_server
from test_cli import cli

from mlip_autopipe.provenance import count_rows

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"


def tiny(config: Path) -> None:
    """The starter config cut to two generations on a small pool (a few minutes on 2 cores)."""
    settings = yaml.safe_load(config.read_text())
    settings["structures"].update(initial_pick=12, cells_per_composition=1)
    settings["structures"].pop("composition_step", None)
    settings["fit"]["functions_per_element"] = 60
    settings["explore"].update(steps=300, starts_per_temperature=1)
    settings["select"]["max_per_generation"] = 4
    settings["loop"]["max_generations"] = 2
    settings["validation"] = {"enabled": False}
    config.write_text(yaml.safe_dump(settings))


def ledger_total(run_dir: Path, status: str | None = None) -> int:
    total = 0
    for ledger in sorted((run_dir / "results").glob("gen_*/ledger.json")):
        total += sum(status is None or entry["status"] == status for entry in json.loads(ledger.read_text()))
    return total


@pytest.mark.slow
@pytest.mark.workflow
def test_init_check_run_status_export_dashboard(tmp_path: Path) -> None:
    config, run_dir = tmp_path / "cuni.yaml", tmp_path / "cu ni run"  # a space on purpose
    assert cli("init", "Cu", "Ni", "--oracle", "emt", "-o", str(config)).returncode == 0
    tiny(config)
    checked = cli("check", str(config))
    assert checked.returncode == 0, checked.stderr

    ran = cli("run", str(config), "--dir", str(run_dir), "--cores", "2")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "generation 1 (of up to 2) | labelling" in ran.stdout  # the live progress lines
    generations = sorted((run_dir / "results").glob("gen_*/decision.json"))
    assert len(generations) == 2

    status = cli("status", str(run_dir), "--html", str(tmp_path / "status.html"))
    assert status.returncode == 0 and "max_generations" in status.stdout
    assert "max_generations" in (tmp_path / "status.html").read_text()

    # The workflow kept results/dataset.db current: one row per ledger entry, each update
    # well under a second.
    workflow_db = run_dir / "results" / "dataset.db"
    assert count_rows(workflow_db) == ledger_total(run_dir) > 0
    assert count_rows(workflow_db, status="ok") == ledger_total(run_dir, "ok")
    receipts = sorted((run_dir / "results").glob("gen_*/database/*.json"))
    assert len(receipts) == 4
    assert max(json.loads(receipt.read_text())["seconds"] for receipt in receipts) < 1.0

    exported = tmp_path / "export.db"
    for _ in range(2):  # the second export updates the same rows
        assert cli("export", str(run_dir), "--db", str(exported)).returncode == 0
    assert count_rows(exported) == ledger_total(run_dir)
    with postgres_server() as url:
        result = cli("export", str(run_dir), "--db", url)
        assert result.returncode == 0, result.stderr
        assert count_rows(url) == count_rows(url, generation=0) + count_rows(url, generation=1)
        assert count_rows(url) == ledger_total(run_dir)

    # the last held-out RMSE of the run, or the last training RMSE (labelled so) when the tiny
    # run held no structure out
    fits = [
        json.loads((run_dir / "results" / f"gen_{g:03d}" / "fit" / "metrics.json").read_text())
        for g in (0, 1)
    ]
    held_out = [g for g in (0, 1) if fits[g]["test"]["energy_rmse_mev_per_atom"] is not None]
    split, generation = ("test", held_out[-1]) if held_out else ("train", 1)
    final_energy = f"{fits[generation][split]['energy_rmse_mev_per_atom']:.3g} meV/atom"
    screenshot = tmp_path / "dashboard.png"
    with dashboard_server(run_dir, tmp_path / "dashboard.log") as url:
        text = page_text_and_screenshot(url, screenshot, ready_text="Structure drill-down")
    assert "Generations\n2" in text
    assert final_energy in text and f"({split}, gen {generation})" in text
    failed = ledger_total(run_dir) - ledger_total(run_dir, "ok")
    assert ("No failed label." in text) == (failed == 0)
    assert screenshot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / "dashboard.png")
