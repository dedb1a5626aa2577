"""The workflow with CHGNet pre-screening and distillation switched on (EMT preset, generation 0)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlip_autopipe.data import read_structures
from snakemake_cli import REPO, run_snakemake

EMT_PRESET = REPO / "config" / "emt.yaml"

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def test_prescreen_and_distillation_feed_labelling_and_fit(tmp_path: Path) -> None:
    config = yaml.safe_load(EMT_PRESET.read_text())
    config["loop"]["max_generations"] = 1
    config["surrogate"] = {
        "kind": "chgnet",
        # 0.2 eV/atom above the median: the preset's most strained or defective cells go
        "prescreen": {"enabled": True, "max_relative_energy": 0.2},
        "distillation": {"enabled": True, "max_structures": 40},
    }
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    result = run_snakemake(run_dir, configfile, "--until", "fit")
    assert result.returncode == 0, result.stderr[-4000:]
    generation = run_dir / "results/gen_000"
    candidates = read_structures(generation / "candidates.extxyz")
    screened = read_structures(generation / "screened.extxyz")
    ledger = json.loads((generation / "prescreen.json").read_text())
    assert [row["uid"] for row in ledger] == [atoms.info["uid"] for atoms in candidates]
    rejected = [row for row in ledger if row["status"] == "rejected"]
    assert rejected and all(row["reason"] for row in rejected)
    assert len(screened) == len(candidates) - len(rejected)
    labels = json.loads((generation / "ledger.json").read_text())
    assert sorted(row["uid"] for row in labels) == sorted(atoms.info["uid"] for atoms in screened)
    pool = read_structures(generation / "surrogate_pool.extxyz")
    assert len(pool) == 40 and all(atoms.get_forces().shape == (len(atoms), 3) for atoms in pool)
    log = (run_dir / "logs/gen_000/fit.log").read_text()
    assert "distillation:" in log and "surrogate-labelled structures added" in log
