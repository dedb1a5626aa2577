"""Shared fixtures: tiny systems built in code, the repository paths, a validated config."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipe.config import check_config, load_yaml, section_defaults, validate_schema

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "config" / "schema.yaml"
EMT_PRESET = REPO / "config" / "emt.yaml"


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    return load_yaml(SCHEMA)


@pytest.fixture
def emt_config(schema: dict[str, Any]) -> dict[str, Any]:
    """The EMT preset, validated with defaults filled in."""
    config = load_yaml(EMT_PRESET)
    validate_schema(config, copy.deepcopy(schema))
    check_config(config)
    return config


#: No variants and no defects: what a structures section gives when a test names only its cells.
NO_VARIANTS: dict[str, Any] = {
    "strains": [],
    "shear_strains": [],
    "rattle_amplitudes": [],
    "defects": {"vacancies": 0, "antisites": 0, "interstitials": 0},
}


def structures_section(**values: Any) -> dict[str, Any]:
    """A validated ``structures`` section: ``values``, no variants unless given, schema defaults
    for everything else (the library takes validated sections; defaults live in the schema)."""
    return section_defaults("structures", {**NO_VARIANTS, **values})


@pytest.fixture
def cuni_cell() -> Atoms:
    """A 32-atom fcc Cu-Ni cell, 50/50, slightly rattled so forces are non-zero."""
    atoms = bulk("Cu", "fcc", a=3.58, cubic=True).repeat((2, 2, 2))
    symbols = np.array(["Cu", "Ni"] * 16)
    np.random.default_rng(0).shuffle(symbols)
    atoms.set_chemical_symbols(list(symbols))
    atoms.positions += np.random.default_rng(1).normal(scale=0.05, size=atoms.positions.shape)
    return atoms


#: Exploration settings of the engine tests: one short MD run at 900 K, gamma checked every 10 steps.
EXPLORE_SETTINGS: dict[str, Any] = {
    "engine": "ase",
    "temperatures": [900],
    "starts_per_temperature": 1,
    "steps": 200,
    "timestep_fs": 2.0,
    "friction": 0.02,
    "check_interval": 10,
    "gamma_lo": 1.2,
    "gamma_hi": 5.0,
}


@pytest.fixture(scope="session")
def emt_cuni_images() -> list[Atoms]:
    """EMT-labelled fcc Cu-Ni cells (two compositions, strained and rattled variants); read only."""
    from mlip_autopipe.labelling import label_candidate
    from mlip_autopipe.oracles import EMTOracle
    from mlip_autopipe.structures import build_pool

    structures = structures_section(
        lattice="fcc",
        supercell=[2, 2, 2],
        compositions=[{"Cu": 0.5, "Ni": 0.5}, {"Cu": 0.75, "Ni": 0.25}],
        cells_per_composition=2,
        strains=[-0.02, 0.02],
        rattle_amplitudes=[0.05, 0.1, 0.15],
    )
    return [label_candidate(atoms, EMTOracle()) for atoms in build_pool(structures, seed=11)]


#: A small nonlinear (pacemaker) Cu-Ni fit; tests set functions_per_element and maxiter.
NONLINEAR_FIT_SETTINGS: dict[str, Any] = {
    "mode": "nonlinear",
    "cutoff": 5.0,
    "functions_per_element": 15,
    "nradmax_by_orders": [8, 3, 2],
    "lmax_by_orders": [0, 2, 1],
    "fs_parameters": [1, 1, 1, 0.5],
    "loss_kappa": 0.3,
    "l1_coefficient": 1e-8,
    "l2_coefficient": 1e-8,
    "maxiter": 60,
    "warm_start_maxiter": 60,
    "batch_size": 100,
    "repulsion": "auto",
    "test_fraction": 0.25,
}


#: A small linear ACE basis (cutoff 5 A) that fits in seconds.
SMALL_FIT_SETTINGS = {
    "cutoff": 5.0,
    "functions_per_element": 30,
    "nradmax_by_orders": [10, 3, 2],
    "lmax_by_orders": [0, 2, 1],
    "ridge_alpha": 1e-6,
    "energy_weight": 30.0,
}


def small_fit_section(**values: Any) -> dict[str, Any]:
    """The ``fit`` section of SMALL_FIT_SETTINGS (linear, nothing held out) with ``values``."""
    return section_defaults("fit", {**SMALL_FIT_SETTINGS, "mode": "linear", "test_fraction": 0.0, **values})


def fit_small_potential(data: list[Atoms], folder: Path) -> dict[str, Any]:
    """Fit SMALL_FIT_SETTINGS on labelled Cu-Ni ``data`` with the pipeline's own recipe;
    potential.yaml/.yace, active set, references."""
    from mlip_autopipe.training import train_potential

    fitted = train_potential(data, ["Cu", "Ni"], small_fit_section(), folder)
    return {"yaml": fitted.yaml, "yace": fitted.yace, "asi": fitted.asi, "references": fitted.references}


@pytest.fixture(scope="session")
def small_potential(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A linear ACE potential (cutoff 5 A) with its active set, fitted in seconds on a few EMT
    Cu-Ni cells: small data, so MD leaves its training domain quickly (gamma rises)."""
    from mlip_autopipe.labelling import label_candidate
    from mlip_autopipe.oracles import EMTOracle
    from mlip_autopipe.structures import build_pool

    structures = structures_section(
        lattice="fcc",
        supercell=[2, 2, 2],
        compositions=[{"Cu": 0.5, "Ni": 0.5}],
        cells_per_composition=2,
        strains=[-0.02],
        rattle_amplitudes=[0.05],
    )
    pool = build_pool(structures, seed=5)
    data = [label_candidate(atoms, EMTOracle()) for atoms in pool]
    folder = tmp_path_factory.mktemp("small potential")  # a space in the path on purpose
    files = fit_small_potential(data, folder)
    return {"pool": pool, **files, "cutoff": SMALL_FIT_SETTINGS["cutoff"]}


#: The longest test files (measured, `--durations`), run first: `make test` runs two pytest-xdist
#: workers that take whole files in this order (`--dist loadfile --no-loadscope-reorder`; xdist
#: would otherwise start with the files that hold the most tests), so no long file starts last
#: and leaves the other worker idle at the end. Within a file the order is unchanged.
LONGEST_FIRST = (
    "test_slurm.py",
    "test_workflow.py",
    "test_resume.py",
    "test_production.py",
    "test_benchmark_exploration.py",
    "test_nonlinear_fit.py",
    "test_workflow_lammps.py",
    "test_surrogate_workflow.py",
    "test_frontdoor.py",
    "test_finetune.py",
    "test_ladder.py",
    "test_resume_qe.py",
    "test_hostile_names.py",
    "test_dft_workflow.py",
    "test_validation_qe.py",
    "test_surrogate_md.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole
