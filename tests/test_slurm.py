"""The EMT preset through the Slurm profile on a real local Slurm equals the local run."""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

import slurm_cluster
from mlip_autopipe.data import read_structures
from snakemake_cli import run_snakemake, snakemake_command, snakemake_env

REPO = Path(__file__).resolve().parent.parent
EMT_PRESET = REPO / "config" / "emt.yaml"

pytestmark = [pytest.mark.slow, pytest.mark.workflow]


@pytest.fixture(scope="module")
def jobcomp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reason = slurm_cluster.slurm_available()
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI must run the Slurm test: {reason}")
    if reason:
        pytest.skip(reason)
    records = slurm_cluster.start(tmp_path_factory.mktemp("slurm-state"))
    yield records
    slurm_cluster.stop()


def run(run_dir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_snakemake(run_dir, configfile, *args, cores=None, timeout=1500)


def comparable(info: dict) -> dict:
    """Info without the cache flag, arrays as lists (so == compares values)."""
    return {
        k: np.asarray(v).tolist() if isinstance(v, np.ndarray) else v
        for k, v in info.items()
        if k != "from_cache"
    }


def assert_same_labels(mine: Path, theirs: Path) -> None:
    """Same structures, labels and ledger; only whether a label came from the cache may differ."""
    ours, others = read_structures(mine / "labelled.extxyz"), read_structures(theirs / "labelled.extxyz")
    assert [a.info["uid"] for a in ours] == [a.info["uid"] for a in others]
    for a, b in zip(ours, others, strict=True):
        assert a.get_potential_energy() == b.get_potential_energy()
        assert (a.get_forces() == b.get_forces()).all() and (a.positions == b.positions).all()
        assert comparable(a.info) == comparable(b.info)
    strip = lambda path: [  # noqa: E731
        {k: v for k, v in entry.items() if k != "from_cache"}
        for entry in json.loads((path / "ledger.json").read_text())
    ]
    assert strip(mine) == strip(theirs)


def test_slurm_run_matches_local_run(jobcomp: Path, tmp_path: Path) -> None:
    # two generations of the EMT preset, no validation: every sbatch round trip costs ~20 s
    # here (benchmarks/README.md), and two generations take every rule through the queue
    config = yaml.safe_load(EMT_PRESET.read_text())
    config["loop"]["max_generations"] = 2
    config["validation"] = {"enabled": False}
    # two exploration scenarios, one of them a slab: one sbatch job per run is what is tested
    config["explore"]["policy"]["scenarios"] = ["bulk", "surface"]
    configfile = tmp_path / "emt-2-generations.yaml"
    configfile.write_text(yaml.safe_dump(config))
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    local = run(local_dir, configfile, "--cores", "2")
    assert local.returncode == 0, local.stderr[-3000:]
    slurm = run(slurm_dir, configfile, *slurm_cluster.PROFILE_ARGS)
    assert slurm.returncode == 0, slurm.stderr[-5000:]

    local_decisions = sorted((local_dir / "results").glob("gen_*/decision.json"))
    slurm_decisions = sorted((slurm_dir / "results").glob("gen_*/decision.json"))
    assert [p.relative_to(local_dir) for p in local_decisions] == [
        p.relative_to(slurm_dir) for p in slurm_decisions
    ]
    for mine, theirs in zip(local_decisions, slurm_decisions, strict=True):
        assert json.loads(mine.read_text()) == json.loads(theirs.read_text())
        assert filecmp.cmp(mine.parent / "candidates.extxyz", theirs.parent / "candidates.extxyz")
        assert_same_labels(mine.parent, theirs.parent)

    # the jobs really went through sbatch: Slurm's job-completion records list them
    records = jobcomp.read_text().splitlines()
    completed = [line for line in records if "JobState=COMPLETED" in line and str(slurm_dir) in line]
    submitted = slurm.stderr.count("has been submitted with SLURM jobid")
    assert submitted >= 4 and len(completed) >= submitted
    for rule in ("rule_structures", "group_label_batch", "rule_fit", "rule_explore_run"):
        assert rule in slurm.stderr
    labelled = read_structures(slurm_dir / "results/gen_000/labelled.extxyz")
    assert labelled and all(atoms.calc is not None for atoms in labelled)


def label_scripts_running(label_logs: Path) -> dict[int, str]:
    """{pid: uid} of the label jobs' scripts running now (each holds its log file open)."""
    running = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for descriptor in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = Path(os.readlink(descriptor))
                    if target.parent == label_logs and target.suffix == ".log":
                        running[int(entry.name)] = target.stem
    return running


def stall_one_label_job(run_dir: Path, workflow: subprocess.Popen[str], timeout: float = 900) -> str:
    """SIGSTOP one label job while its oracle runs, as a job hung on a file system; its uid.

    Nothing in the workflow knows: Slurm alone ends the job, at its time limit.
    """
    label_logs = (run_dir / "logs" / "gen_000" / "label").resolve()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if workflow.poll() is not None:
            raise AssertionError(
                f"the workflow ended before a label job ran: {workflow.communicate()[1][-3000:]}"
            )
        for pid, uid in label_scripts_running(label_logs).items():
            attempts = label_logs / f"{uid}.attempts.json"
            label = run_dir / "results" / "gen_000" / "label" / f"{uid}.extxyz"
            # Stopped at once, then let run in 2 ms steps: an EMT label takes milliseconds, so
            # polling a running job misses the moment between its record and its label.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                while not label.exists():
                    if attempts.exists():
                        return uid  # stopped between the attempt's record and its label
                    os.kill(pid, signal.SIGCONT)
                    time.sleep(0.002)
                    os.kill(pid, signal.SIGSTOP)
                os.kill(pid, signal.SIGCONT)  # too late: that one had finished
        time.sleep(0.02)
    raise AssertionError("no label job could be stopped while its oracle ran")


def test_a_label_job_past_its_runtime_is_ledgered_and_the_generation_goes_on(
    jobcomp: Path, tmp_path: Path
) -> None:
    # two EMT candidates, one generation; the pool and candidates are made locally
    config = yaml.safe_load(EMT_PRESET.read_text())
    config["structures"]["initial_pick"] = 2
    config["loop"]["max_generations"] = 1
    config["validation"] = {"enabled": False}
    configfile = tmp_path / "emt-2-candidates.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    local = run(run_dir, configfile, "--cores", "2", "results/gen_000/candidates")
    assert local.returncode == 0, local.stderr[-3000:]

    # label jobs get a 1-minute runtime (Snakemake stacks the group's two: two minutes), and one
    # hangs; "--set-resources=..." takes one value, so targets can follow
    slurm_args = [*slurm_cluster.PROFILE_ARGS, "--set-resources=label:runtime=1"]
    command = snakemake_command(run_dir, configfile, *slurm_args, "results/gen_000/ledger.json", cores=None)
    workflow = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=snakemake_env()
    )
    try:
        stalled = stall_one_label_job(run_dir, workflow)
        _, stderr = workflow.communicate(timeout=900)
    finally:
        workflow.kill()
    assert workflow.returncode != 0, "the stopped label job did not fail the run"
    assert "TIMEOUT" in stderr or "time limit" in stderr.lower(), stderr[-3000:]

    # the same command again: the killed job is ledgered, and the generation is gathered
    # (before, no label and no ledger row: gather_labels could never run)
    again = run(run_dir, configfile, *slurm_args, "results/gen_000/ledger.json")
    assert again.returncode == 0, again.stderr[-5000:]
    ledger = {
        entry["uid"]: entry for entry in json.loads((run_dir / "results/gen_000/ledger.json").read_text())
    }
    assert len(ledger) == 2
    assert ledger[stalled]["status"] == "failed" and ledger[stalled]["failure"] == "walltime"
    assert "killed at its runtime of 1 min (Slurm job " in ledger[stalled]["reason"]
    (attempt,) = ledger[stalled]["history"]
    # killed at its Slurm job's limit, not before (squeue's end time: the job's clock starts
    # before the label script's, by 1-3 s measured; CI's loaded machine took longer, and an
    # attempt timed alone was classed 'killed' and labelled again)
    assert attempt["signal"] == "SIGTERM" and attempt["short_of_limit_s"] <= 2
    (other,) = set(ledger) - {stalled}
    assert ledger[other]["status"] == "ok"
    labelled = read_structures(run_dir / "results/gen_000/labelled.extxyz")
    assert [atoms.info["uid"] for atoms in labelled] == [other]
