"""Held-out test sets: each category is what its name says, made with the real oracle (EMT)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from mlip_autopipe import testsets
from mlip_autopipe.errors import StructureError

#: Short MD so that the tests take seconds; melting keeps its real temperature.
FAST_MD = testsets.MDSettings(equilibration=20, interval=10, melt_steps=300)


def alloy_parent() -> tuple[Atoms, dict[str, float]]:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    composition = {"Cu": 0.5, "Ni": 0.5}
    parent = testsets.decorate(atoms, composition, np.random.default_rng(0))
    parent.info["lattice_constant"] = 3.6
    return parent, composition


def test_translational_order_tells_crystal_from_random_positions() -> None:
    crystal = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    vectors = testsets.bragg_vectors(crystal)
    # the conventional (111) and (200) families: (2, 2, 2) and (4, 0, 0) in the 2x2x2 supercell
    assert len(vectors) == testsets.BRAGG_VECTORS == 14
    assert np.all(np.abs(vectors[:8]) == 2) and np.all(np.sort(np.abs(vectors[8:])) == [0, 0, 4])
    assert testsets.translational_order(crystal, vectors) == pytest.approx(1.0)
    scrambled = crystal.copy()
    scrambled.positions = np.random.default_rng(0).uniform(0, 7.2, size=(32, 3))
    assert testsets.translational_order(scrambled, vectors) < testsets.MOLTEN_ORDER


def test_decorate_keeps_sites_and_composition() -> None:
    cell = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    decorated = testsets.decorate(cell, {"Cu": 0.25, "Ni": 0.75}, np.random.default_rng(1))
    assert decorated.get_chemical_symbols().count("Cu") == 8
    np.testing.assert_allclose(decorated.positions, cell.positions)


@pytest.mark.parametrize("a", [3.6, 3.5575, 3.5225])
@pytest.mark.parametrize("miller", [(1, 1, 1), (1, 0, 0)])
def test_surface_slab_has_two_free_surfaces_and_the_composition(
    miller: tuple[int, int, int], a: float
) -> None:
    from ase.neighborlist import neighbor_list

    slab = testsets.surface_slab("fcc", a, miller, {"Cu": 0.5, "Ni": 0.5}, np.random.default_rng(2))
    # whole planes: every atom at least as coordinated as on the ideal surface (9 on (111), 8 on
    # (100)); ase.build.surface alone left 3- and 5-coordinated atoms for 3.5575 and 3.5225 A
    coordination = np.bincount(neighbor_list("i", slab, a / np.sqrt(2) * 1.2), minlength=len(slab))
    assert coordination.min() == (9 if miller == (1, 1, 1) else 8), np.bincount(coordination)
    heights = np.sort(slab.positions[:, 2])
    gap = slab.cell.lengths()[2] - np.ptp(heights)
    assert gap > 2 * 7.9 and np.ptp(heights) >= 8.0
    assert min(slab.cell.lengths()[:2]) >= 5.0
    assert abs(slab.get_chemical_symbols().count("Cu") - len(slab) / 2) <= 0.5
    assert slab.info["miller"] == list(miller)


def test_liquid_frames_are_molten_and_count_their_md_steps() -> None:
    parent, composition = alloy_parent()
    scenario = testsets.Scenario("liquid", "liquid", 2400.0, strain=0.05)
    frames = testsets.scenario_frames(
        scenario, parent, "fcc", 3.6, composition, EMT, 2, np.random.default_rng(3), FAST_MD
    )
    assert len(frames) == 2
    for frame in frames:
        assert frame.info["category"] == "liquid" and frame.info["temperature"] == 2400.0
        assert frame.info["translational_order"] < testsets.MOLTEN_ORDER
        # at least one heating round, the hold and the two sampling intervals
        assert frame.info["md_steps"] * 2 >= 300 + 20 + 2 * 10
        assert frame.get_forces().shape == (32, 3)


def test_melting_that_never_happens_is_an_error() -> None:
    parent, composition = alloy_parent()
    cold = testsets.MDSettings(melt_temperature=50.0, melt_steps=5, max_melt_rounds=2, melt_rattle=0.0)
    with pytest.raises(StructureError, match="not molten"):
        testsets.melted(parent, EMT, 50.0, np.random.default_rng(0), cold)


def test_test_set_has_every_category_labelled_by_the_oracle() -> None:
    parent, composition = alloy_parent()
    test = testsets.build_test_set(
        [(parent, composition)], "fcc", EMT, seed=5, settings=FAST_MD, frames_per_run=1
    )
    names = [scenario.name for scenario in testsets.default_scenarios()]
    assert testsets.categories(test) == names
    by_name = {str(atoms.info["category"]): atoms for atoms in test}
    assert len(by_name["vacancy"]) == 31 and len(by_name["interstitial"]) == 33
    assert (
        by_name["compressed"].cell.volume < by_name["bulk_300K"].cell.volume < by_name["expanded"].cell.volume
    )
    for atoms in test:
        assert atoms.info["origin"] == "test" and atoms.info["generation"] == -1
        check = atoms.copy()
        check.calc = EMT()
        assert atoms.get_potential_energy() == pytest.approx(check.get_potential_energy(), abs=1e-6)
        np.testing.assert_allclose(atoms.get_forces(), check.get_forces(), atol=1e-6)


def test_rmse_by_category_and_worst_category() -> None:
    parent, composition = alloy_parent()
    images = []
    for category, shift in (("a", 0.0), ("b", 0.1)):
        atoms = parent.copy()
        atoms.positions += np.random.default_rng(len(images)).normal(scale=shift + 0.01, size=(32, 3))
        atoms.calc = EMT()
        atoms.get_forces()
        atoms.info["category"] = category
        images.append(atoms)

    def model(atoms: Atoms) -> tuple[float, np.ndarray]:
        # oracle forces plus 0.2 eV/A on every component of category b, energy off by 32 meV
        forces = atoms.get_forces() + (0.2 if atoms.info["category"] == "b" else 0.0)
        return atoms.get_potential_energy() + 0.032, forces

    scores = testsets.rmse_by_category(model, images, lambda atoms: atoms.get_potential_energy())
    assert scores["a"]["force_rmse_ev_per_a"] == pytest.approx(0.0)
    assert scores["b"]["force_rmse_ev_per_a"] == pytest.approx(0.2)
    assert scores["a"]["energy_rmse_mev_per_atom"] == pytest.approx(1.0)
    assert scores["b"]["frames"] == 1 and scores["b"]["atoms"] == 32
    assert testsets.worst_category(scores) == ("b", pytest.approx(0.2))
