"""The Snakemake workflow end to end with the `lammps` exploration engine (EMT oracle, 2 generations)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlip_autopipe.data import read_structures
from snakemake_cli import run_snakemake

REPO = Path(__file__).resolve().parent.parent
EMT_PRESET = REPO / "config" / "emt.yaml"

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def lammps_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = yaml.safe_load(EMT_PRESET.read_text())
    config["explore"].update(
        engine="lammps", steps=300, swap_interval=20, swap_attempts=2, temperature_ramp=1.25
    )
    config["loop"]["max_generations"] = 2
    config["validation"] = {"enabled": False}  # this test is about the engine
    run_dir = tmp_path_factory.mktemp("lammps run")  # a space in the path on purpose
    configfile = run_dir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = run_snakemake(run_dir, configfile)
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir


def test_lammps_engine_drives_the_loop(lammps_run: Path) -> None:
    summary = json.loads((lammps_run / "results/final/summary.json").read_text())
    assert summary["generations"] >= 1
    runs = json.loads((lammps_run / "results/gen_000/explore/runs.json").read_text())
    assert len(runs) == 2 * 2  # two temperatures x two starts, one pressure (bulk: NPT)
    assert all(run["run"].startswith("T") and "_P0_" in run["run"] for run in runs)
    assert all(run["status"] in {"completed", "halted"} for run in runs)
    decks = []
    for run in runs:
        deck = (lammps_run / "results/gen_000/explore/runs" / run["run"] / "in.lammps").read_text()
        assert "fix md all npt" in deck
        decks.append(deck)
    # the pool holds pure-element cells too (composition grid): only alloy starts swap
    assert any("fix swap all atom/swap 20 2" in deck for deck in decks)
    for run in runs:
        if run["halted"]:
            assert run["halt_step"] == run["steps_done"] and run["max_gamma"] > 5.0


def test_lammps_frames_feed_selection_and_labelling(lammps_run: Path) -> None:
    frames = read_structures(lammps_run / "results/gen_000/explore/frames.extxyz")
    assert frames and all(
        frame.arrays["gamma"].max() == pytest.approx(frame.info["max_gamma"]) for frame in frames
    )
    assert all(frame.info["max_gamma"] > 1.5 and frame.info["origin"] == "md" for frame in frames)
    if (lammps_run / "results/gen_001/labelled.extxyz").exists():
        labelled = read_structures(lammps_run / "results/gen_001/labelled.extxyz")
        assert labelled and all(atoms.info["origin"] == "md" for atoms in labelled)
