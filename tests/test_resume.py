"""Hard kills: SIGKILL the whole workflow mid-stage, run the same command again, get the same result."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from ase.io import read

from mlip_autopipe.cli.resume import clear_stale_lock, stale_lock
from mlip_autopipe.data import read_structures
from snakemake_cli import finish_make_run, kill_workflow, start_make_run

REPO = Path(__file__).resolve().parent.parent
EMT_PRESET = REPO / "config" / "emt.yaml"

pytestmark = [pytest.mark.slow, pytest.mark.workflow]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The EMT preset cut to two generations without validation: the kills all happen in
    generation 0, and what follows only has to match an uninterrupted run."""
    settings = yaml.safe_load(EMT_PRESET.read_text())
    settings["loop"]["max_generations"] = 2
    settings["validation"] = {"enabled": False}
    path = tmp_path_factory.mktemp("config") / "emt-2-generations.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, config: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    finish_make_run(run_dir, config)
    return run_dir


def snapshot(run_dir: Path) -> dict[str, object]:
    """What must not depend on a kill: decisions and the labelled data of every generation."""
    result: dict[str, object] = {}
    for generation in sorted((run_dir / "results").glob("gen_*")):
        decision = json.loads((generation / "decision.json").read_text())
        labelled = read_structures(generation / "labelled.extxyz")
        result[generation.name] = (
            decision["reason"],
            decision["counts"],
            [(a.info["uid"], round(a.get_potential_energy(), 10)) for a in labelled],
        )
    return result


@pytest.mark.parametrize(
    ("stage", "trigger"),
    [
        ("labelling", "logs/gen_000/label"),
        ("fitting", "logs/gen_000/fit.log"),
        ("exploration", "logs/gen_000/explore.log"),
    ],
)
def test_sigkill_then_same_command_resumes(
    reference: Path, config: Path, tmp_path: Path, stage: str, trigger: str
) -> None:
    run_dir = tmp_path / f"killed during {stage}"
    run_dir.mkdir()
    process = start_make_run(run_dir, config)
    deadline = time.time() + 300
    while not (run_dir / trigger).exists():
        assert process.poll() is None, f"run ended before {stage} started"
        assert time.time() < deadline, f"{stage} never started"
        time.sleep(0.05)
    kill_workflow(process, run_dir)
    assert stale_lock(run_dir)

    incomplete = run_dir / ".snakemake" / "incomplete"
    half_done = {path.name for path in incomplete.iterdir()} if incomplete.is_dir() else set()
    finished_labels = {
        path: path.stat().st_mtime_ns for path in (run_dir / "results").glob("gen_*/label/*.extxyz")
    }
    output = finish_make_run(run_dir, config)
    assert "removed the stale Snakemake lock" in output

    assert snapshot(run_dir) == snapshot(reference)
    # labels written completely before the kill were reused, not recomputed
    import base64

    for path, mtime in finished_labels.items():
        encoded = base64.b64encode(str(path.relative_to(run_dir)).encode()).decode()
        if encoded not in half_done:
            assert path.stat().st_mtime_ns == mtime, path
    for path in (run_dir / "results").rglob("*.extxyz"):
        if path.stat().st_size:
            read(path, index=":")  # no partial file anywhere
    assert not list((run_dir / "results").rglob("*.tmp"))


def test_a_live_run_is_never_unlocked(tmp_path: Path) -> None:
    process = start_make_run(tmp_path, EMT_PRESET)
    try:
        deadline = time.time() + 120
        while not (tmp_path / ".snakemake" / "locks").is_dir() or not any(
            (tmp_path / ".snakemake" / "locks").iterdir()
        ):
            assert time.time() < deadline
            time.sleep(0.05)
        assert not stale_lock(tmp_path)
        assert not clear_stale_lock(tmp_path)
    finally:
        kill_workflow(process, tmp_path)
