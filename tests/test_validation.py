"""Validation of a potential against an oracle: EOS, elastic constants, phonons, MD stability.

EMT serves as both "potential" and reference here: the library's numbers are checked against
independent routes to the same physics (an energy minimum found by a scalar minimiser, the
bulk modulus from the elastic constants, sound-free acoustic modes at Gamma).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT
from scipy.optimize import minimize_scalar

from mlip_autopipe import validation
from mlip_autopipe.config import section_defaults
from mlip_autopipe.errors import ValidationError
from mlip_autopipe.oracles import EMTOracle

#: The schema's phonon settings (with_oracle null: only for a cheap oracle).
PHONONS = section_defaults("validation")["phonons"]


@pytest.fixture
def emt() -> validation.Labeller:
    return validation.oracle_labeller(EMTOracle())


def emt_energy_per_atom(a: float) -> float:
    atoms = bulk("Cu", "fcc", a=a, cubic=True)
    atoms.calc = EMT()
    return float(atoms.get_potential_energy() / len(atoms))


def test_equation_of_state_finds_the_energy_minimum_and_curvature(emt: validation.Labeller) -> None:
    cell = bulk("Cu", "fcc", a=3.61, cubic=True)
    eos = validation.equation_of_state(cell, emt, 3.61, volume_range=0.06, points=9)
    best = minimize_scalar(emt_energy_per_atom, bounds=(3.4, 3.8), method="bounded", options={"xatol": 1e-6})
    assert eos["a0"] == pytest.approx(best.x, rel=5e-4)
    # B = V d2E/dV2 at the minimum, by central differences on volume per atom
    v0, step = best.x**3 / 4, 0.05
    energies = [emt_energy_per_atom((4 * (v0 + k * step)) ** (1 / 3)) for k in (-1, 0, 1)]
    curvature = (energies[0] - 2 * energies[1] + energies[2]) / step**2
    assert eos["B0"] == pytest.approx(v0 * curvature / units.GPa, rel=0.02)
    assert eos["v0"] == pytest.approx(v0, rel=2e-3)


def test_equation_of_state_refuses_a_minimum_outside_the_scan(emt: validation.Labeller) -> None:
    squeezed = bulk("Cu", "fcc", a=3.3, cubic=True)
    with pytest.raises(ValidationError, match="volume_range"):
        validation.equation_of_state(squeezed, emt, 3.3, volume_range=0.03, points=5)


def test_cubic_elastic_constants_agree_with_the_bulk_modulus(emt: validation.Labeller) -> None:
    cell = bulk("Ni", "fcc", a=3.52, cubic=True)
    eos = validation.equation_of_state(cell, emt, 3.52, volume_range=0.06, points=7)
    equilibrium = validation.scaled_to_volume(cell, eos["v0"])
    elastic = validation.elastic_constants(equilibrium, emt, [0.005, 0.01], cubic=True)
    assert elastic["C11"] > elastic["C12"] > 0 and elastic["C44"] > 0
    assert (elastic["C11"] + 2 * elastic["C12"]) / 3 == pytest.approx(eos["B0"], rel=0.02)
    matrix = np.array(elastic["matrix"])
    assert np.allclose(matrix, matrix.T) and abs(matrix[0, 3]) < 1e-3 * elastic["C11"]


def test_strain_in_voigt_form_deforms_the_cell_as_engineering_strain() -> None:
    cell = bulk("Cu", "fcc", a=3.6, cubic=True)
    deformed = validation.strained(cell, [0.01, 0, 0, 0, 0, 0.02])
    gradient = np.linalg.solve(np.asarray(cell.cell), np.asarray(deformed.cell)) - np.eye(3)
    assert gradient[0, 0] == pytest.approx(0.01) and gradient[0, 1] + gradient[1, 0] == pytest.approx(0.02)


def test_phonons_are_real_with_silent_acoustic_modes_at_gamma(emt: validation.Labeller) -> None:
    cell = bulk("Cu", "fcc", a=3.59, cubic=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bands = validation.phonon_dispersion(cell, emt, [2, 2, 2], "GXL", 30, 0.01)
    frequencies = np.array(bands["frequencies"])
    assert frequencies.shape == (30, 3)  # one atom in the primitive cell: three branches
    assert bands["special_labels"] == ["G", "X", "L"]
    assert bands["gamma_acoustic_max_abs"] < 0.05
    assert bands["min_frequency"] > -0.05 and bands["max_frequency"] > 1.0


def test_stable_md_run_passes_and_a_close_contact_fails(small_potential: dict) -> None:
    from mlip_autopipe.explore import load_calculator

    calculator = load_calculator(small_potential["yaml"], small_potential["asi"])
    start = next(a for a in small_potential["pool"] if a.info["origin"] == "sqs")
    settings = dict(timestep_fs=2.0, friction=0.02, check_interval=10, seed=3)
    calm = validation.md_stability(start, calculator, temperature=300, steps=40, min_distance=1.5, **settings)
    assert calm["stable"] and calm["steps_done"] == 40 and calm["lost_atoms"] == 0
    assert calm["min_distance_observed"] > 1.5 and calm["max_gamma"] is not None
    # nearest neighbours in fcc Cu-Ni sit ~2.5 A apart: a 3 A threshold must trip at once
    strict = validation.md_stability(
        start, calculator, temperature=300, steps=40, min_distance=3.0, **settings
    )
    assert not strict["stable"] and strict["steps_done"] == 10 and "3 A" in strict["reason"]


class EnergyPumping(EMT):
    """EMT plus a force along each atom's velocity: dynamics that gain energy, as a potential's
    do when its start cell collapses or its forces extrapolate (not a gradient of any energy)."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):  # type: ignore[no-untyped-def]
        super().calculate(atoms, properties, system_changes or ["positions", "numbers", "cell"])
        self.results["forces"] = self.results["forces"] + self.gain * self.atoms.get_velocities()


def test_md_whose_thermostat_cannot_hold_its_temperature_is_unstable() -> None:
    # A Si-Ge default run's potential ran its stability MD at 2118 K (then 1877 K) for 1440 K
    # with no lost atoms and no close pair, and the check called it stable.
    start = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    settings = dict(temperature=1200, steps=400, timestep_fs=2.0, friction=0.01, check_interval=10, seed=3)
    settings["min_distance"] = 1.5
    held = validation.md_stability(start, EMT(), temperature_tolerance=0.2, **settings)
    assert held["stable"] and abs(held["mean_temperature"] / 1200 - 1) < 0.1, held["mean_temperature"]
    pumped = validation.md_stability(start, EnergyPumping(3.0), temperature_tolerance=0.2, **settings)
    assert pumped["mean_temperature"] > 1.2 * 1200 and pumped["lost_atoms"] == 0
    assert not pumped["stable"] and "above the thermostat's 1200 K (> 20 %)" in pumped["reason"]
    unchecked = validation.md_stability(start, EnergyPumping(3.0), temperature_tolerance=None, **settings)
    assert unchecked["stable"]
    # a short run is cold while the lattice takes up half the start's kinetic energy: not a fault
    short = validation.md_stability(start, EMT(), temperature_tolerance=0.2, **{**settings, "steps": 30})
    assert short["stable"] and short["mean_temperature"] < 0.8 * 1200, short["mean_temperature"]


def test_default_materials_are_the_pure_elements_and_the_first_alloy(emt_config: dict) -> None:
    from mlip_autopipe.structures import build_pool

    structures = dict(
        emt_config["structures"],
        cells_per_composition=1,
        sqs={**emt_config["structures"]["sqs"], "iterations": 1000},
    )
    pool = build_pool(
        {**structures, "compositions": structures["compositions"][:1], "composition_step": None}, seed=1
    )
    materials = validation.validation_materials(
        emt_config["elements"], structures, emt_config["validation"], pool, seed=1
    )
    assert [m.name for m in materials] == ["Cu", "Ni", "Cu0.5Ni0.5"]
    assert [len(m.atoms) for m in materials] == [4, 4, 32]
    alloy = materials[-1].atoms
    assert alloy.info["uid"] == pool[0].info["uid"]  # the pool's own SQS cell
    assert validation.md_material(materials).name == "Cu0.5Ni0.5"
    assert len(validation.md_material(materials[:1]).atoms) == 32


def test_comparison_is_relative_to_the_oracle() -> None:
    assert validation.compare(101.0, 100.0)["relative_error"] == pytest.approx(0.01)
    assert validation.compare(3.5, 3.6)["relative_error"] == pytest.approx(-0.1 / 3.6)


def test_phonons_with_the_oracle_only_when_cheap_unless_asked() -> None:
    assert validation.phonons_with_oracle(PHONONS, "emt")
    assert not validation.phonons_with_oracle(PHONONS, "qe")
    assert validation.phonons_with_oracle({**PHONONS, "with_oracle": True}, "qe")


def test_a_failing_oracle_is_a_validation_error() -> None:
    label = validation.oracle_labeller(EMTOracle())
    with pytest.raises(ValidationError, match="emt oracle failed"):
        label(Atoms("Fe", cell=[3, 3, 3], pbc=True))
