"""Validation with the qe oracle, end to end: the `validate` rule runs real pw.x on a tiny Si-Ge
configuration (one 2-atom Si cell: equation of state and elastic constants, low cutoffs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.build import bulk
from ase.io import write

from conftest import small_fit_section
from mlip_autopipe.config import with_defaults
from mlip_autopipe.data import tag_structure, write_structures
from mlip_autopipe.oracles import oracle_from_config
from mlip_autopipe.training import train_potential
from snakemake_cli import run_snakemake

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.workflow

#: Cheap pw.x settings for 2-atom cells (seconds per label).
TINY_QE: dict[str, Any] = {"ecutwfc": 15.0, "ecutrho": 60.0, "kspacing": 1.2}

#: Lattice constant of the validated diamond Si cell (A): pw.x's minimum at these low cutoffs.
SILICON_A = 5.58


def tiny_validation_config() -> dict[str, Any]:
    """The default (Si-Ge, qe) config with a 2-atom parent cell and the cheapest validation:
    equation of state and elastic constants of pure Si only."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert config["oracle"]["kind"] == "qe" and config["elements"] == ["Si", "Ge"]
    config["structures"].update(
        lattice_file="primitive.extxyz", supercell=[2, 2, 2], compositions=[{"Si": 0.5, "Ge": 0.5}]
    )
    config["structures"]["composition_step"] = None  # the default adds pure Si and Ge: not here
    config["oracle"]["qe"].update(TINY_QE)
    # validation checks the potential results/final ships: with production on, results/production's
    # (a fixed path, so the test's own fit stands there; the loop's fits would need the loop)
    config["production"] = {"enabled": True}
    config["validation"] = {
        "compositions": [{"Si": 1.0}],
        "eos": {"points": 5, "volume_range": 0.12},
        "elastic": {"strains": [0.01]},
        "phonons": {"enabled": False},
        "md": {"enabled": False},
    }
    return config


def training_cells() -> list[Atoms]:
    """Strained, slightly rattled 2-atom Si, Ge and SiGe diamond cells around Si's a0."""
    rng = np.random.default_rng(4)
    cells = []
    for symbols in (["Si", "Si"], ["Si", "Ge"], ["Ge", "Si"], ["Ge", "Ge"]):
        for strain in (-0.04, -0.02, 0.0, 0.02, 0.04):
            atoms = bulk("Si", "diamond", a=SILICON_A * (1 + strain))
            atoms.set_chemical_symbols(symbols)
            atoms.positions += rng.normal(scale=0.03, size=atoms.positions.shape)
            cells.append(tag_structure(atoms, generation=0, origin="rattle"))
    return cells


@pytest.mark.slow
def test_validate_rule_runs_pw_x_with_the_labelling_oracle(tmp_path: Path) -> None:
    config = tiny_validation_config()
    run_dir = tmp_path / "run"
    (run_dir / "results" / "production").mkdir(parents=True)
    (run_dir / "results" / "structures").mkdir(parents=True)
    write(run_dir / "primitive.extxyz", bulk("Si", "diamond", a=SILICON_A))
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))

    # the rule's inputs, made here from a few pw.x labels: a tiny fitted potential and the pool
    oracle = oracle_from_config(with_defaults(config), cores=1)
    data = [oracle.label(atoms) for atoms in training_cells()]
    # energies weighted up: the fit must hold the E(V) curve whose minimum the scan brackets
    settings = small_fit_section(functions_per_element=15, energy_weight=1000.0)
    train_potential(data, config["elements"], settings, run_dir / "results" / "production")
    write_structures(run_dir / "results" / "structures" / "pool.extxyz", data)

    result = run_snakemake(
        run_dir, configfile, "--allowed-rules", "validate", "--", "results/validation/validation.json"
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((run_dir / "results" / "validation" / "validation.json").read_text())
    assert report["oracle"] == "qe" and report["oracle_settings_hash"] == oracle.settings_hash()
    silicon = report["materials"]["Si"]
    assert set(silicon["comparison"]) >= {"a0", "B0"}
    # the oracle side is pw.x's Si at these cutoffs (v0 ~ 22 A^3/atom, B0 ~ 80 GPa)
    oracle_side = silicon["methods"]["oracle"]
    assert 20.0 < oracle_side["eos"]["v0"] < 24.5 and 50 < oracle_side["eos"]["B0"] < 130, oracle_side["eos"]
    assert oracle_side["elastic"]["matrix"]
    # the potential was fitted on this very oracle's labels: close to it
    assert abs(silicon["comparison"]["v0"]["relative_error"]) < 0.05, silicon["comparison"]
