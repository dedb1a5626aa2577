"""The pure parts of benchmarks/qe_cutoffs.py: which structures it labels and how it compares them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import GPa

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("qe_cutoffs", REPO / "benchmarks" / "qe_cutoffs.py")
assert _spec is not None and _spec.loader is not None
qe_cutoffs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(qe_cutoffs)


def _cell(symbols: list[str], origin: str) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.5, cubic=True)
    atoms.set_chemical_symbols(symbols)
    atoms.info["origin"] = origin
    return atoms


def _labelled(atoms: Atoms, energy: float, forces: np.ndarray, stress: np.ndarray) -> Atoms:
    copy = atoms.copy()
    copy.calc = SinglePointCalculator(copy, energy=energy, forces=forces, stress=stress)
    return copy


def test_picks_cover_every_origin_and_composition_without_repeats() -> None:
    formulas = [["Si", "Ge"] * 4, ["Si"] * 6 + ["Ge"] * 2, ["Ge"] * 6 + ["Si"] * 2]
    pool = [_cell(symbols, origin) for symbols in formulas for origin in ("sqs", "strain", "rattle")]
    picked = qe_cutoffs.pick_structures(pool, 5)
    assert len({id(atoms) for atoms in picked}) == 5
    assert [atoms.info["origin"] for atoms in picked] == ["sqs", "strain", "rattle", "sqs", "strain"]
    assert {atoms.get_chemical_formula() for atoms in picked[:3]} == {"Ge4Si4", "Ge2Si6", "Ge6Si2"}
    # more than the pool holds: the whole pool, once
    assert len({id(atoms) for atoms in qe_cutoffs.pick_structures(pool, 50)}) == len(pool)


def test_comparison_separates_per_element_shifts_from_the_rest() -> None:
    rng = np.random.default_rng(0)
    shifts = {"Si": -0.012, "Ge": 0.004}  # eV/atom, demo minus suggested
    high, low = [], []
    for symbols in (["Si", "Ge"] * 4, ["Si"] * 6 + ["Ge"] * 2, ["Ge"] * 6 + ["Si"] * 2):
        atoms = _cell(symbols, "sqs")
        forces = rng.normal(size=(8, 3))
        stress = rng.normal(size=6) * GPa
        energy = float(rng.normal()) - 40.0
        shift = sum(shifts[s] for s in atoms.get_chemical_symbols())
        high.append(_labelled(atoms, energy, forces, stress))
        low.append(_labelled(atoms, energy + shift, forces + 0.1, stress + 0.5 * GPa))
    result = qe_cutoffs.compare(low, high, ["Si", "Ge"])
    energy = result["energy_mev_per_atom"]
    assert energy["element_shifts_mev"] == pytest.approx({"Si": -12.0, "Ge": 4.0}, abs=1e-9)
    assert energy["rmse_after_element_shifts"] == pytest.approx(0.0, abs=1e-9)
    assert energy["per_structure"] == pytest.approx([-4.0, -8.0, 0.0], abs=1e-9)
    assert energy["mean"] == pytest.approx(-4.0) and energy["max_abs"] == pytest.approx(8.0)
    assert result["force_ev_per_a"]["rmse"] == pytest.approx(0.1)
    assert result["stress_gpa"]["rmse"] == pytest.approx(0.5)
