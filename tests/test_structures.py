"""Generation-0 pool: SQS cells at exact composition, recorded variants, reproducible files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from conftest import structures_section
from mlip_autopipe.data import write_structures
from mlip_autopipe.lattice import IDEAL_C_OVER_A, all_compositions, alloy_c_over_a, alloy_lattice_constant
from mlip_autopipe.structures import POOL_ORIGINS, build_pool, pick_initial


@pytest.fixture(scope="module")
def preset_pool(request: pytest.FixtureRequest) -> tuple[dict[str, Any], list[Atoms]]:
    from mlip_autopipe.config import load_config

    repo = Path(request.config.rootpath)
    config = load_config(repo / "config" / "emt.yaml", repo / "config" / "schema.yaml")
    # the preset's alloy compositions: a pure element (from its composition grid) has one
    # decoration only, so no distinct SQS cells and no other cell for another seed
    config["structures"]["composition_step"] = None
    return config, build_pool(config["structures"], seed=3, elements=config["elements"])


def test_pool_has_sqs_cells_at_exact_composition_and_tagged_variants(
    preset_pool: tuple[dict[str, Any], list[Atoms]],
) -> None:
    config, pool = preset_pool
    structures = config["structures"]
    parents = [atoms for atoms in pool if atoms.info["origin"] == "sqs"]
    assert len(parents) == len(structures["compositions"]) * structures["cells_per_composition"]
    for atoms, composition in zip(parents[::2], structures["compositions"], strict=True):
        symbols = atoms.get_chemical_symbols()
        for element, fraction in composition.items():
            assert symbols.count(element) == round(fraction * len(atoms))
        assert atoms.info["sqs_pair_deviation"] == 0.0
    defects = structures["defects"]
    per_parent = {
        "strain": len(structures["strains"]),
        "shear": len(structures["shear_strains"]),
        "rattle": len(structures["rattle_amplitudes"]),
        "vacancy": defects["vacancies"],
        "antisite": defects["antisites"],
        "interstitial": defects["interstitials"],
    }
    for parent in parents:
        children = [a for a in pool if a.info.get("parent_uid") == parent.info["uid"]]
        for origin, count in per_parent.items():
            assert sum(a.info["origin"] == origin for a in children) == count, origin
    assert len(pool) == len(parents) * (1 + sum(per_parent.values()))
    assert all(a.info["generation"] == 0 and a.info["origin"] in POOL_ORIGINS for a in pool)
    assert len({a.info["uid"] for a in pool}) == len(pool)


def test_same_seed_same_files_other_seed_other_sqs(
    preset_pool: tuple[dict[str, Any], list[Atoms]], tmp_path: Path
) -> None:
    config, pool = preset_pool
    again = build_pool(config["structures"], seed=3, elements=config["elements"])
    other = build_pool(config["structures"], seed=4, elements=config["elements"])
    for name, images in (("first", pool), ("again", again), ("other", other)):
        write_structures(tmp_path / f"{name}.extxyz", images)
    assert (tmp_path / "first.extxyz").read_bytes() == (tmp_path / "again.extxyz").read_bytes()
    for name, images in (("first", pool), ("again", again)):
        write_structures(tmp_path / f"{name}-pick.extxyz", pick_initial(images, 12, config["elements"]))
    assert (tmp_path / "first-pick.extxyz").read_bytes() == (tmp_path / "again-pick.extxyz").read_bytes()
    sqs_of = lambda images: [a.numbers.tolist() for a in images if a.info["origin"] == "sqs"]  # noqa: E731
    assert all(cell not in sqs_of(other) for cell in sqs_of(pool))


def test_vegard_lattice_constants() -> None:
    assert alloy_lattice_constant({"Cu": 0.5, "Ni": 0.5}, "fcc") == pytest.approx((3.61 + 3.52) / 2)
    # hcp: Mg and Zn carry their reference a and c/a; fcc Cu enters at equal volume, ideal c/a
    assert alloy_lattice_constant({"Mg": 0.5, "Zn": 0.5}, "hcp") == pytest.approx((3.21 + 2.66) / 2)
    assert alloy_c_over_a({"Mg": 0.5, "Zn": 0.5}) == pytest.approx((1.624 + 1.856) / 2)
    a_cu = alloy_lattice_constant({"Cu": 1.0}, "hcp")
    hcp_volume_per_atom = np.sqrt(3) / 4 * a_cu**3 * IDEAL_C_OVER_A
    assert hcp_volume_per_atom == pytest.approx(3.61**3 / 4)


def test_hcp_and_bcc_sqs_cells() -> None:
    for lattice, composition in (("hcp", {"Mg": 0.5, "Zn": 0.5}), ("bcc", {"Cu": 0.5, "Ni": 0.5})):
        structures = structures_section(
            lattice=lattice, supercell=[2, 2, 2], compositions=[composition], cells_per_composition=1
        )
        (cell,) = build_pool(structures, seed=0)
        assert len(cell) == 16 and cell.info["origin"] == "sqs"
        assert cell.get_chemical_symbols().count(next(iter(composition))) == 8
        assert cell.info["sqs_pair_deviation"] == 0.0
        if lattice == "hcp":
            assert cell.cell.lengths()[2] / cell.cell.lengths()[0] == pytest.approx((1.624 + 1.856) / 2)


def test_composition_grid_joins_the_explicit_list() -> None:
    structures = structures_section(compositions=[{"Cu": 0.5, "Ni": 0.5}], composition_step=0.25)
    found = all_compositions(structures, ["Cu", "Ni"])
    assert found == [
        {"Cu": 0.5, "Ni": 0.5},
        {"Cu": 1.0},
        {"Cu": 0.75, "Ni": 0.25},
        {"Cu": 0.25, "Ni": 0.75},
        {"Ni": 1.0},
    ]
    ternary = all_compositions(structures_section(compositions=[], composition_step=0.5), ["A", "B", "C"])
    assert len(ternary) == 6 and all(sum(c.values()) == pytest.approx(1.0) for c in ternary)


def test_user_structures_join_the_pool(tmp_path: Path) -> None:
    write(tmp_path / "POSCAR", bulk("Cu", "fcc", a=3.6, cubic=True), format="vasp")
    frames = [bulk("Ni", "fcc", a=3.5, cubic=True), bulk("Cu", "bcc", a=2.9, cubic=True)]
    write(tmp_path / "mine.extxyz", frames)
    write(tmp_path / "mine.cif", bulk("Ni", "fcc", a=3.52))
    structures = structures_section(
        lattice="fcc",
        supercell=[2, 2, 2],
        compositions=[{"Cu": 0.5, "Ni": 0.5}],
        cells_per_composition=1,
        user_files=[str(tmp_path / name) for name in ("POSCAR", "mine.extxyz", "mine.cif")],
    )
    pool = build_pool(structures, seed=0, elements=["Cu", "Ni"])
    users = [a for a in pool if a.info["origin"] == "user"]
    assert [a.info["source_file"] for a in users] == ["POSCAR", "mine.extxyz", "mine.extxyz", "mine.cif"]
    assert [len(a) for a in users] == [4, 4, 2, 1]
    assert all("uid" in a.info and a.pbc.all() for a in users)


def test_initial_pick_is_a_farthest_point_sample(preset_pool: tuple[dict[str, Any], list[Atoms]]) -> None:
    config, pool = preset_pool
    picked = pick_initial(pool, 10, config["elements"], config["structures"]["soap"])
    assert [a.info["pick_rank"] for a in picked] == list(range(10))
    assert picked[0].info["uid"] == pool[0].info["uid"]
    assert len({a.info["uid"] for a in picked}) == 10
    everything = pick_initial(pool[:5], 10, config["elements"])
    assert len(everything) == 5
    assert "pick_rank" not in pool[0].info  # the pool itself is left as it was
    assert copy.deepcopy(picked[1].info)["origin"] in POOL_ORIGINS


def test_a_lattice_file_gives_the_parent_sites(tmp_path: Path) -> None:
    # a rock-salt-like 8-site cell given by the user; its species are placeholders
    sites = bulk("NaCl", "rocksalt", a=4.0, cubic=True)
    write(tmp_path / "sites.cif", sites)
    structures = structures_section(
        lattice="fcc",
        lattice_file=str(tmp_path / "sites.cif"),
        supercell=[2, 2, 1],
        compositions=[{"Cu": 0.5, "Ni": 0.5}],
        cells_per_composition=1,
    )
    (cell,) = build_pool(structures, seed=0)
    assert len(cell) == 32 and sorted(set(cell.get_chemical_symbols())) == ["Cu", "Ni"]
    np.testing.assert_allclose(cell.cell.lengths(), [8.0, 8.0, 4.0])
    assert cell.info["lattice"] == "file:sites.cif" and "lattice_constant" not in cell.info
    assert cell.info["sqs_pair_deviation"] < 0.05
