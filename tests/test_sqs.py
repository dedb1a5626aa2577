"""SQS cells: random-alloy pair correlations on the first shells, measured independently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

from mlip_autopipe.data import read_structures, write_structures
from mlip_autopipe.errors import StructureError
from mlip_autopipe.sqs import cluster_geometry, correlation_deviation, generate_sqs

SETTINGS = {"iterations": 100000, "pair_shells": 3, "triplet_shells": 2}


def sqs(lattice: str, a: float, counts: dict[str, int], seed: int = 1, n: int = 1) -> list[Atoms]:
    template = bulk(next(iter(counts)), lattice, a=a, cubic=True).repeat((2, 2, 2))
    return generate_sqs(template, counts, n_structures=n, seed=seed, **SETTINGS)


def spin_pair_correlation(atoms: Atoms, radius: float) -> float:
    """<s_i s_j> over the ordered pairs at ``radius`` (spins +1/-1), written out plainly."""
    first, second, distance = neighbor_list("ijd", atoms, radius + 0.01)
    shell = np.abs(distance - radius) < 1e-3
    spins = np.where(atoms.numbers == atoms.numbers.max(), 1.0, -1.0)
    return float(np.mean(spins[first[shell]] * spins[second[shell]]))


@pytest.mark.parametrize(
    ("lattice", "a", "counts"),
    [("fcc", 3.6, {"Cu": 16, "Ni": 16}), ("diamond", 5.5, {"Si": 32, "Ge": 32})],
    ids=["fcc-32-atoms", "diamond-64-atoms"],
)
def test_50_50_sqs_has_zero_pair_deviation_on_the_first_shells(
    lattice: str, a: float, counts: dict[str, int], tmp_path: Path
) -> None:
    (cell,) = sqs(lattice, a, counts)
    assert len(cell) == sum(counts.values())
    assert sorted(cell.get_chemical_symbols()) == sorted(e for e, n in counts.items() for _ in range(n))
    # written and read back like every pool structure
    write_structures(tmp_path / "sqs.extxyz", cell)
    (back,) = read_structures(tmp_path / "sqs.extxyz")
    assert back.info["sqs_pair_shells"] == 3
    assert back.info["sqs_pair_deviation"] == 0.0
    np.testing.assert_array_equal(back.info["sqs_pair_deviation_by_shell"], [0.0, 0.0, 0.0])
    assert 0.0 <= back.info["sqs_triplet_deviation"] < 0.05
    # independent check: the spin pair correlation of a 50/50 random alloy is 0 on every shell
    for radius in cluster_geometry(cell, 3, 0).shell_radii:
        assert spin_pair_correlation(cell, radius) == pytest.approx(0.0, abs=1e-12)


def test_a_random_decoration_is_measurably_not_random_like(cuni_cell: Atoms) -> None:
    ideal = bulk("Cu", "fcc", a=3.58, cubic=True).repeat((2, 2, 2))
    geometry = cluster_geometry(ideal, 3, 2)
    deviation = correlation_deviation(geometry, cuni_cell.numbers)
    assert deviation.pair > 0.005 and deviation.triplet > 0.005
    # for a binary the spin correlation deviates by four times the pair-frequency deviation
    ideal.numbers = cuni_cell.numbers
    for shell, radius in enumerate(geometry.shell_radii):
        spin = spin_pair_correlation(ideal, radius)
        assert abs(spin) == pytest.approx(4 * deviation.pair_by_shell[shell], abs=1e-9)


def test_triangles_of_nearest_neighbours_in_fcc() -> None:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    geometry = cluster_geometry(atoms, 1, 1)
    assert len(geometry.pair_i) == 12 * len(atoms)
    # each fcc site is a corner of 24 nearest-neighbour triangles, counted in both orders
    assert len(geometry.triplet_sites) == 48 * len(atoms)
    assert geometry.n_shapes == 1


def test_same_seed_same_sqs_other_seed_other_sqs() -> None:
    counts = {"Cu": 16, "Ni": 16}
    first = [cell.numbers.tolist() for cell in sqs("fcc", 3.6, counts, seed=4, n=2)]
    again = [cell.numbers.tolist() for cell in sqs("fcc", 3.6, counts, seed=4, n=2)]
    other = [cell.numbers.tolist() for cell in sqs("fcc", 3.6, counts, seed=5, n=2)]
    assert first == again
    assert first[0] != first[1]
    assert first[0] not in other


def test_counts_that_do_not_fill_the_cell_are_refused() -> None:
    template = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    with pytest.raises(StructureError, match="33 atoms requested for a 32-site cell"):
        generate_sqs(template, {"Cu": 17, "Ni": 16}, n_structures=1, seed=0, **SETTINGS)


def test_ordered_l10_alloy_has_the_textbook_deviations() -> None:
    # CuAu L1_0: alternating (001) layers. Each atom has 4 like and 8 unlike nearest neighbours,
    # so P(Cu, Cu) = 1/2 * 4/12 = 1/6 against 1/4 in the random alloy; every nearest-neighbour
    # triangle spans two layers, so no triangle is all-Cu: 0 against 1/8.
    ordered = bulk("Cu", "fcc", a=3.8, cubic=True).repeat((2, 2, 2))
    layer = np.round(ordered.positions[:, 2] / (3.8 / 2)).astype(int) % 2
    ordered.numbers = np.where(layer == 0, 29, 79)
    deviation = correlation_deviation(cluster_geometry(ordered, 1, 1), ordered.numbers)
    assert deviation.pair_by_shell == pytest.approx((1 / 4 - 1 / 6,))
    assert deviation.triplet == pytest.approx(1 / 8)
