"""The EMT preset through the Slurm profile on a real local Slurm equals the local run."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

import slurm_cluster
from mlip_autopipe.data import read_structures
from snakemake_cli import run_snakemake

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
