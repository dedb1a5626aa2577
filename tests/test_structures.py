"""Generation-0 pool: exact compositions, recorded origins, reproducible from the seed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlip_autopipe.structures import alloy_lattice_constant, build_pool, pick_initial


def test_pool_has_exact_compositions_and_origins(emt_config: dict[str, Any]) -> None:
    structures = emt_config["structures"]
    pool = build_pool(structures, seed=3)
    per_cell = 1 + len(structures["strains"]) + len(structures["rattle_amplitudes"])
    assert len(pool) == len(structures["compositions"]) * structures["cells_per_composition"] * per_cell
    alloys = [atoms for atoms in pool if atoms.info["origin"] == "alloy"]
    for atoms, composition in zip(alloys[::2], structures["compositions"], strict=True):
        symbols = atoms.get_chemical_symbols()
        for element, fraction in composition.items():
            assert symbols.count(element) == round(fraction * len(atoms))
    uids = {atoms.info["uid"] for atoms in alloys}
    for atoms in pool:
        assert atoms.info["generation"] == 0
        if atoms.info["origin"] != "alloy":
            assert atoms.info["parent_uid"] in uids


def test_strained_variant_scales_the_cell(emt_config: dict[str, Any]) -> None:
    pool = build_pool(emt_config["structures"], seed=3)
    parent = pool[0]
    strained = next(
        a for a in pool if a.info["origin"] == "strain" and a.info["parent_uid"] == parent.info["uid"]
    )
    ratio = strained.cell.lengths() / parent.cell.lengths()
    np.testing.assert_allclose(ratio, 1 + strained.info["strain"])


def test_same_seed_same_pool_other_seed_other_pool(emt_config: dict[str, Any]) -> None:
    uids = lambda seed: [a.info["uid"] for a in build_pool(emt_config["structures"], seed)]  # noqa: E731
    assert uids(5) == uids(5)
    assert uids(5) != uids(6)


def test_vegard_lattice_constant_is_the_fraction_weighted_mean() -> None:
    assert alloy_lattice_constant({"Cu": 0.5, "Ni": 0.5}, "fcc") == pytest.approx((3.61 + 3.52) / 2)


def test_initial_pick_keeps_every_alloy_cell_first(emt_config: dict[str, Any]) -> None:
    pool = build_pool(emt_config["structures"], seed=3)
    picked = pick_initial(pool, 10, seed=3)
    assert len(picked) == 10
    n_alloys = sum(a.info["origin"] == "alloy" for a in pool)
    assert all(a.info["origin"] == "alloy" for a in picked[:n_alloys])
    assert len({a.info["uid"] for a in picked}) == 10
