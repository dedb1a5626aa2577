"""Hard kills: SIGKILL the whole workflow mid-stage, run the same command again, get the same result."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from base64 import urlsafe_b64decode
from pathlib import Path

import pytest
import yaml
from ase.io import read

from mlip_autopipe.cli.resume import clear_stale_lock, live_processes_in, main, stale_lock
from mlip_autopipe.data import read_structures
from snakemake_cli import finish_make_run, kill_workflow, start_make_run

REPO = Path(__file__).resolve().parent.parent
EMT_PRESET = REPO / "config" / "emt.yaml"


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


def half_done_outputs(run_dir: Path) -> set[Path]:
    """Outputs whose jobs Snakemake had started but not finished (its `.snakemake/incomplete` marks)."""
    incomplete = run_dir / ".snakemake" / "incomplete"
    outputs = set()
    for mark in incomplete.rglob("*") if incomplete.is_dir() else []:
        if mark.is_file():  # long names are split into folders of "@"-prefixed chunks
            encoded = "".join(part.lstrip("@") for part in mark.relative_to(incomplete).parts)
            with contextlib.suppress(ValueError):
                outputs.add(run_dir / urlsafe_b64decode(encoded).decode())
    return outputs


def finished_labels(run_dir: Path) -> dict[Path, int]:
    """Label files of finished label jobs, with their modification times."""
    half_done = half_done_outputs(run_dir)
    finished = {}
    for path in (run_dir / "results").glob("gen_*/label/*.extxyz"):
        with contextlib.suppress(FileNotFoundError):
            if path not in half_done:
                finished[path] = path.stat().st_mtime_ns
    return finished


@pytest.mark.slow
@pytest.mark.workflow
@pytest.mark.parametrize(
    ("stage", "trigger"),
    [
        ("labelling", None),  # after the first label job has finished, with others to go
        ("fitting", "logs/gen_000/fit.log"),
        ("exploration", "logs/gen_000/explore.log"),
    ],
)
def test_sigkill_then_same_command_resumes(
    reference: Path, config: Path, tmp_path: Path, stage: str, trigger: str | None
) -> None:
    run_dir = tmp_path / f"killed during {stage}"
    run_dir.mkdir()
    process = start_make_run(run_dir, config)
    deadline = time.time() + 300
    while not (finished_labels(run_dir) if trigger is None else (run_dir / trigger).exists()):
        assert process.poll() is None, f"run ended before {stage} started"
        assert time.time() < deadline, f"{stage} never started"
        time.sleep(0.05)
    kill_workflow(process, run_dir)
    assert stale_lock(run_dir)

    reused = finished_labels(run_dir)
    if stage == "labelling":
        candidates = list((run_dir / "results" / "gen_000" / "candidates").glob("*.extxyz"))
        assert len(reused) < len(candidates), "labelling was over before the kill"
    output = finish_make_run(run_dir, config)
    assert "removed the stale Snakemake lock" in output

    assert snapshot(run_dir) == snapshot(reference)
    # labels written completely before the kill were reused, not recomputed
    assert len(reused) > 0
    for path, mtime in reused.items():
        assert path.stat().st_mtime_ns == mtime, path
    for path in (run_dir / "results").rglob("*.extxyz"):
        if path.stat().st_size:
            read(path, index=":")  # no partial file anywhere
    assert not list((run_dir / "results").rglob("*.tmp"))


@pytest.mark.slow
@pytest.mark.workflow
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


#: A real Snakemake run whose one job works in a subfolder for a minute (as pw.x does in its
#: attempt folder under logs/).
SLEEPING_SNAKEFILE = """
rule all:
    output: "done"
    shell: "mkdir -p work && cd work && sleep 60 && touch ../done"
"""


def _wait_for(condition, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"{what} never happened"
        time.sleep(0.05)


def test_relative_directory_of_a_live_run_and_its_orphans_keep_the_lock(tmp_path: Path) -> None:
    # Snakemake started elsewhere with a *relative* --directory: resume runs from another cwd
    # (the test's) and must resolve that path against the live process's cwd, not its own.
    launch_dir = tmp_path / "launched here"
    run_dir = launch_dir / "run"
    run_dir.mkdir(parents=True)
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(SLEEPING_SNAKEFILE)
    assert Path.cwd() != launch_dir
    command = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", "run", "--cores", "1"]
    snakemake = subprocess.Popen(command, cwd=launch_dir, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for(
            lambda: (run_dir / "work").is_dir() and any((run_dir / ".snakemake" / "locks").iterdir()),
            "job start",
        )
        assert snakemake.pid in live_processes_in(run_dir)
        assert not stale_lock(run_dir) and not clear_stale_lock(run_dir)
        with pytest.raises(SystemExit, match="still working"):
            main([str(run_dir)])

        # SIGKILL Snakemake alone: its job (bash, sleep in run/work) lives on as an orphan.
        snakemake.send_signal(signal.SIGKILL)
        snakemake.wait()
        orphans = live_processes_in(run_dir)
        assert orphans, "the orphaned job was not seen"
        assert any((run_dir / ".snakemake" / "locks").iterdir())
        assert not stale_lock(run_dir) and not clear_stale_lock(run_dir)
    finally:
        snakemake.kill()
        snakemake.wait()
        for pid in live_processes_in(run_dir):
            os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: not live_processes_in(run_dir), "the orphans' end", timeout=10)
    assert stale_lock(run_dir) and clear_stale_lock(run_dir)
    assert not any((run_dir / ".snakemake" / "locks").iterdir())
