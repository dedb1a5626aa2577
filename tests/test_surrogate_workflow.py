"""The workflow with CHGNet pre-screening and distillation switched on (EMT preset, generation 0)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlip_autopipe.data import read_structures
from snakemake_cli import REPO, run_snakemake

EMT_PRESET = REPO / "config" / "emt.yaml"

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def run_until_fit(tmp_path: Path, config: dict, until: str = "fit") -> Path:
    """``config`` through Snakemake up to generation 0's fit (or rule ``until``); the run folder."""
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    result = run_snakemake(run_dir, configfile, "--until", until)
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir


def test_prescreen_and_distillation_feed_labelling_and_fit(tmp_path: Path) -> None:
    config = yaml.safe_load(EMT_PRESET.read_text())
    config["loop"]["max_generations"] = 1
    config["surrogate"] = {
        "kind": "chgnet",
        # 0.2 eV/atom above the median: the preset's most strained or defective cells go
        "prescreen": {"enabled": True, "max_relative_energy": 0.2},
        "distillation": {"enabled": True, "max_structures": 40},
    }
    run_dir = run_until_fit(tmp_path, config)
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


def test_finetuned_surrogate_labels_the_distillation_pool(tmp_path: Path) -> None:
    from mlip_autopipe.config import with_defaults
    from mlip_autopipe.finetune import finetuned_surrogate
    from mlip_autopipe.oracles import oracle_from_config

    config = yaml.safe_load(EMT_PRESET.read_text())
    config["loop"]["max_generations"] = 1
    config["structures"]["initial_pick"] = 16
    config["surrogate"] = {
        "kind": "chgnet",
        "distillation": {
            "enabled": True,
            "finetune": True,
            "max_structures": 20,
            # 2 frames from each of the preset's 6 scenario runs (tests/test_surrogate_md.py)
            "md": {"enabled": True, "steps": 10, "sample_interval": 5},
        },
        "finetuning": {"epochs": 1},  # the wiring, not the learning (tests/test_finetune.py)
    }
    run_dir = run_until_fit(tmp_path, config)
    generation = run_dir / "results/gen_000"
    metrics = json.loads((generation / "surrogate/metrics.json").read_text())
    labelled = read_structures(generation / "labelled.extxyz")
    # trained on the generation's oracle labels, a held-out part measured before and after
    assert metrics["n_train"] + metrics["n_train_left_out"] + metrics["n_test"] == len(labelled)
    assert metrics["n_test"] > 0 and metrics["n_train"] > 0
    for split in ("test_before", "test_after"):
        assert metrics[split]["force_rmse_ev_per_a"] > 0 and metrics[split]["energy_rmse_mev_per_atom"] > 0
    # the pool carries the fine-tuned model's labels, not the shipped weights': 20 pool
    # structures, then the surrogate MD frames, one run per scenario of the exploration policy
    pool = read_structures(generation / "surrogate_pool.extxyz")
    md_frames = [atoms for atoms in pool if atoms.info.get("origin") == "surrogate_md"]
    scenarios = config["explore"]["policy"]["scenarios"]
    assert len(pool) == 20 + len(md_frames) and len(md_frames) == 2 * len(scenarios)
    assert {atoms.info["scenario"] for atoms in md_frames} == {
        "surface_111" if name == "surface" else name for name in scenarios
    }
    summary = json.loads((generation / "surrogate_md/summary.json").read_text())
    # CHGNet is one model: no committee spread, nothing routed to the oracle
    assert summary["n_pool"] == len(md_frames) and summary["n_uncertain"] == 0
    full = with_defaults(config)
    tuned = finetuned_surrogate(full["surrogate"], generation / "surrogate/model.pt")
    shipped = oracle_from_config(full, section="surrogate")
    # (MD frames carry the MD step's labels at the unrounded positions: CHGNet's float32 answer
    # to the 1e-8 A rounding is up to ~2e-5 eV/A)
    for atoms, tolerance in [(atoms, 1e-6) for atoms in pool[:3]] + [
        (atoms, 1e-4) for atoms in md_frames[:3]
    ]:
        assert np.allclose(tuned.label(atoms).get_forces(), atoms.get_forces(), atol=tolerance)
        assert np.abs(shipped.label(atoms).get_forces() - atoms.get_forces()).max() > 10 * tolerance
    # pool structures the oracle labelled are left out of the fit's pool part
    added = re.search(
        r"distillation: (\d+) surrogate-labelled", (run_dir / "logs/gen_000/fit.log").read_text()
    )
    assert added is not None and len(md_frames) < int(added.group(1)) <= 20 + len(md_frames)


def test_frames_the_surrogate_committee_disputes_go_to_selection(tmp_path: Path) -> None:
    """The whole route with a MACE committee: two small MACE models fine-tuned from scratch on
    generation 0's oracle labels drive surrogate MD; with a spread threshold below any spread,
    every frame goes to the oracle queue: none into the pool, the largest-spread ones (up to
    max_uncertain) graded by the ACE among the selection's candidates."""
    config = yaml.safe_load(EMT_PRESET.read_text())
    config["loop"]["max_generations"] = 1
    config["structures"]["initial_pick"] = 16
    config["fit"]["functions_per_element"] = 100  # a quick fit: the routing is tested, not the ACE
    config["explore"]["steps"] = 200
    config["explore"]["policy"]["scenarios"] = ["bulk", "vacancy"]
    config["surrogate"] = {
        "kind": "mace",
        "distillation": {
            "enabled": True,
            "finetune": True,
            "max_structures": 10,
            "md": {
                "enabled": True,
                "steps": 6,
                "sample_interval": 2,
                "max_force_std": 1e-9,
                "max_uncertain": 4,
            },
        },
        "finetuning": {"epochs": 2, "committee": 2},
    }
    run_dir = run_until_fit(tmp_path, config, until="select")
    generation = run_dir / "results/gen_000"
    metrics = json.loads((generation / "surrogate/metrics.json").read_text())
    assert metrics["committee"] == 2 and (generation / "surrogate/committee_1.pt").is_file()
    summary = json.loads((generation / "surrogate_md/summary.json").read_text())
    assert summary["n_pool"] == 0 and set(summary["uncertain_per_scenario"]) <= {"bulk", "vacancy"}
    uncertain = read_structures(generation / "surrogate_md/uncertain.extxyz")
    assert len(uncertain) == summary["n_uncertain"] == 4
    spreads = [atoms.info["surrogate_force_std"] for atoms in uncertain]
    assert all(spread > 0 for spread in spreads) and spreads == sorted(spreads, reverse=True)
    pool = read_structures(generation / "surrogate_pool.extxyz")
    assert not [atoms for atoms in pool if atoms.info.get("origin") == "surrogate_md"]
    log = (run_dir / "logs/gen_000/select.log").read_text()
    assert "4 surrogate MD frames routed to the oracle join the candidates" in log
