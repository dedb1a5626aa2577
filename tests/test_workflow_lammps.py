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
    assert config["explore"]["engine"] == "lammps"  # the preset's own engine
    config["explore"].update(steps=300, swap_attempts=2)
    config["loop"]["max_generations"] = 2
    config["validation"] = {"enabled": False}  # this test is about the engine
    run_dir = tmp_path_factory.mktemp("lammps run")  # a space in the path on purpose
    configfile = run_dir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = run_snakemake(run_dir, configfile)
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir


def runs_of(run_dir: Path, generation: int) -> list[dict]:
    return json.loads((run_dir / f"results/gen_{generation:03d}/explore/runs.json").read_text())


def test_lammps_explores_three_or_more_scenarios_one_job_each(lammps_run: Path) -> None:
    summary = json.loads((lammps_run / "results/final/summary.json").read_text())
    assert summary["generations"] >= 1
    runs = runs_of(lammps_run, 0)
    assert len({run["scenario"] for run in runs}) >= 3
    assert all(run["status"] in {"completed", "halted"} for run in runs)
    folder = lammps_run / "results/gen_000/explore/runs"
    logs = lammps_run / "logs/gen_000/explore"
    for run in runs:
        deck = (folder / run["run"] / "md" / "in.lammps").read_text()
        assert (logs / f"{run['run']}.log").exists()  # its own job
        if run["scenario"].startswith("surface"):
            assert "fix md all nvt" in deck and run["pressure_bar"] is None  # vacuum detected
        else:
            assert "fix md all npt" in deck
        assert ("fix swap all atom/swap 20 2" in deck) == (run["scenario"] == "ordering")
        assert "fix halt_gamma all halt 10 v_max_gamma > 5 error continue" in deck
        if run["halted"]:
            assert run["halt_step"] == run["steps_done"] and run["max_gamma"] > 5.0


def test_next_generation_continues_every_run_from_its_last_frame(lammps_run: Path) -> None:
    # generation 0's potential (30 structures) halts every run: there is a generation 1
    assert (lammps_run / "results/gen_001/explore/runs.json").exists()
    before = {run["run"]: run for run in runs_of(lammps_run, 0)}
    for run in runs_of(lammps_run, 1):
        (last,) = read_structures(lammps_run / f"results/gen_000/explore/runs/{run['run']}/last.extxyz")
        assert run["start"] == ("halt" if before[run["run"]]["halted"] else "last")
        assert run["start_uid"] == last.info["uid"]
        deck = (lammps_run / f"results/gen_001/explore/runs/{run['run']}/md/in.lammps").read_text()
        assert "velocity all create" not in deck  # the velocities come with the last frame


def test_lammps_frames_feed_selection_and_labelling(lammps_run: Path) -> None:
    frames = read_structures(lammps_run / "results/gen_000/explore/frames.extxyz")
    assert frames and all(
        frame.arrays["gamma"].max() == pytest.approx(frame.info["max_gamma"]) for frame in frames
    )
    assert all(frame.info["max_gamma"] > 1.5 and frame.info["origin"] == "md" for frame in frames)
    assert all(frame.info["scenario"] == frame.info["run"] for frame in frames)
    decision = json.loads((lammps_run / "results/gen_000/decision.json").read_text())
    assert set(decision["scenarios"]) == {run["scenario"] for run in runs_of(lammps_run, 0)}
    if (lammps_run / "results/gen_001/labelled.extxyz").exists():
        labelled = read_structures(lammps_run / "results/gen_001/labelled.extxyz")
        assert labelled and all(atoms.info["origin"] in {"md", "embed"} for atoms in labelled)
        assert {atoms.info["scenario"] for atoms in labelled} <= set(decision["scenarios"])
