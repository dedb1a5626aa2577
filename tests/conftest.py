"""Shared fixtures: tiny systems built in code, the repository paths, a validated config."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipe.config import check_config, load_yaml, validate_schema

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


@pytest.fixture
def cuni_cell() -> Atoms:
    """A 32-atom fcc Cu-Ni cell, 50/50, slightly rattled so forces are non-zero."""
    atoms = bulk("Cu", "fcc", a=3.58, cubic=True).repeat((2, 2, 2))
    symbols = np.array(["Cu", "Ni"] * 16)
    np.random.default_rng(0).shuffle(symbols)
    atoms.set_chemical_symbols(list(symbols))
    atoms.positions += np.random.default_rng(1).normal(scale=0.05, size=atoms.positions.shape)
    return atoms
