"""Variants of a parent cell: what each one changes, and only that."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipe import variants


def test_strain_scales_and_shear_tilts_the_cell(cuni_cell: Atoms) -> None:
    stretched = variants.strained(cuni_cell, 0.02)
    np.testing.assert_allclose(stretched.cell.lengths() / cuni_cell.cell.lengths(), 1.02)
    np.testing.assert_allclose(stretched.get_scaled_positions(), cuni_cell.get_scaled_positions())
    tilted = variants.sheared(cuni_cell, 0.04)
    assert tilted.info["shear_strain"] == 0.04
    # a small xy shear opens the angle between a and b by ~ the engineering shear strain
    assert 90.0 - tilted.cell.angles()[2] == pytest.approx(np.degrees(0.04), rel=0.01)
    assert tilted.cell.volume == pytest.approx(cuni_cell.cell.volume, rel=1e-3)
    assert "uid" not in tilted.info and cuni_cell.cell.angles()[2] == pytest.approx(90.0)


def test_rattle_amplitude_is_the_displacement_spread(cuni_cell: Atoms) -> None:
    moved = variants.rattled(cuni_cell, 0.1, np.random.default_rng(0))
    spread = np.std(moved.positions - cuni_cell.positions)
    assert spread == pytest.approx(0.1, rel=0.2)


def test_vacancy_and_antisite(cuni_cell: Atoms) -> None:
    vacant = variants.with_vacancy(cuni_cell, 5)
    assert len(vacant) == 31 and vacant.info["removed_element"] == cuni_cell[5].symbol
    exchanged = variants.with_antisite(cuni_cell, np.random.default_rng(3))
    assert exchanged is not None
    changed = np.flatnonzero(exchanged.numbers != cuni_cell.numbers)
    assert changed.tolist() == exchanged.info["exchanged"].tolist() and len(changed) == 2
    assert sorted(exchanged.numbers) == sorted(cuni_cell.numbers)
    assert variants.with_antisite(bulk("Cu", "fcc", a=3.6, cubic=True), np.random.default_rng(0)) is None


@pytest.mark.parametrize(
    ("lattice", "a", "hole_distance"),
    [("fcc", 3.6, 3.6 / 2), ("bcc", 2.9, 2.9 * np.sqrt(5) / 4), ("diamond", 5.43, 5.43 * np.sqrt(3) / 4)],
)
def test_interstitial_goes_into_the_largest_hole(lattice: str, a: float, hole_distance: float) -> None:
    # octahedral hole of fcc (a/2), tetrahedral hole of bcc (a sqrt5/4), empty tetrahedral site of diamond
    parent = bulk("Cu", lattice, a=a, cubic=True).repeat((2, 2, 2))
    crowded = variants.with_interstitial(parent, "Ni", np.random.default_rng(1))
    assert len(crowded) == len(parent) + 1 and crowded[-1].symbol == "Ni"
    distances = crowded.get_distances(len(parent), list(range(len(parent))), mic=True)
    assert distances.min() == pytest.approx(hole_distance, abs=1e-6)
