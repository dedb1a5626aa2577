"""Periodic embedding: exact environments of weight-1 atoms, the core's gamma, contacts, the cap."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

from conftest import SMALL_FIT_SETTINGS
from mlip_autopipe.config import check_config
from mlip_autopipe.data import read_structures, tag_structure, write_structures
from mlip_autopipe.embed import (
    EmbeddingSettings,
    embed_environment,
    embed_selection,
    minimum_embedding_atoms,
)
from mlip_autopipe.errors import ConfigError, EmbeddingError
from mlip_autopipe.explore import load_calculator, run_langevin
from mlip_autopipe.lattice import densest_lattice_constant
from mlip_autopipe.structures import random_alloy

SETTINGS = EmbeddingSettings(cutoff=5.0, buffer=1.0, max_atoms=100, min_distance=1.8)
MD = {
    "steps": 60,
    "timestep_fs": 2.0,
    "friction": 0.02,
    "check_interval": 20,
    "gamma_lo": 0.0,
    "gamma_hi": 1e9,
}


@pytest.fixture(scope="module")
def large_frames(small_potential: dict[str, Any]) -> list[Atoms]:
    """Last MD frame (per-atom gamma attached) of a 108-atom and a 256-atom Cu-Ni cell at 1200 K.

    The 108-atom cell (10.7 A) is smaller than the cut sphere's diameter (12 A), so the
    sphere holds several periodic images of the same source atom.
    """
    calculator = load_calculator(small_potential["yaml"], small_potential["asi"])
    frames = []
    for repeat, seed in ((3, 1), (4, 2)):
        start = random_alloy({"Cu": 0.5, "Ni": 0.5}, "fcc", 3.565, [repeat] * 3, np.random.default_rng(seed))
        tag_structure(start, generation=0, origin="sqs")
        kept, _ = run_langevin(
            start, calculator, run=f"r{repeat}", temperature=1200, explore=MD, seed=seed, generation=0
        )
        frames.append(kept[-1])
    return frames


def scrambled(frame: Atoms, seed: int) -> Atoms:
    """The same periodic structure with atoms moved by whole lattice vectors and the origin
    shifted, so that environments straddle the cell boundaries in every direction."""
    moved = frame.copy()
    rng = np.random.default_rng(seed)
    moved.positions += rng.integers(-2, 3, size=(len(frame), 3)) @ np.asarray(frame.cell)
    moved.positions -= moved.positions[int(np.argmax(frame.arrays["gamma"]))] - 0.3
    return tag_structure(moved, generation=0, origin="md")


def sorted_distances(atoms: Atoms, cutoff: float) -> list[np.ndarray]:
    first, distances = neighbor_list("id", atoms, cutoff)
    return [np.sort(distances[first == index]) for index in range(len(atoms))]


def core_atoms(frame: Atoms) -> list[int]:
    """The highest-gamma atom and the atom nearest to a corner of the cell."""
    corner = int(np.argmin(np.linalg.norm(frame.get_scaled_positions(wrap=True) - 0.999, axis=1)))
    return [int(np.argmax(frame.arrays["gamma"])), corner]


def embedded_through_file(frame: Atoms, core: int, tmp_path: Path) -> Atoms:
    """Embed, then write and read back as the workflow does (extxyz keeps 1e-8 A)."""
    (candidate,), report = embed_selection([_with_core(frame, core)], SETTINGS, generation=1)
    assert report[0]["status"] == "ok" and report[0]["path"] == "embed"
    path = tmp_path / f"{candidate.info['uid']}.extxyz"
    write_structures(path, candidate)
    (read_back,) = read_structures(path)
    return read_back


def _with_core(frame: Atoms, core: int) -> Atoms:
    picked = frame.copy()
    picked.info["core_atom"] = core
    return picked


def test_weight_one_atoms_keep_their_exact_neighbour_distances(
    large_frames: list[Atoms], tmp_path: Path
) -> None:
    for frame in [*large_frames, scrambled(large_frames[0], 3)]:
        source = sorted_distances(frame, SETTINGS.cutoff)
        for core in core_atoms(frame):
            embedded = embedded_through_file(frame, core, tmp_path)
            weights = embedded.arrays["force_weight"]
            assert weights[0] == 1.0 and embedded.arrays["source_atom"][0] == core
            mine = sorted_distances(embedded, SETTINGS.cutoff)
            for index, origin in enumerate(embedded.arrays["source_atom"]):
                same = mine[index].shape == source[origin].shape and np.allclose(
                    mine[index], source[origin], rtol=0, atol=1e-8
                )
                # weight 1 exactly where the environment is reproduced; buffer atoms are not
                assert same == (weights[index] == 1.0), (index, origin)
            assert 0 < weights.sum() < len(embedded)


def test_the_core_has_the_same_gamma_as_in_the_md_cell(
    large_frames: list[Atoms], small_potential: dict[str, Any], tmp_path: Path
) -> None:
    calculator = load_calculator(small_potential["yaml"], small_potential["asi"])
    for frame in large_frames:
        reference = frame.copy()
        reference.calc = calculator
        reference.get_potential_energy()
        frame_gamma = np.array(calculator.results["gamma"])
        np.testing.assert_allclose(frame_gamma, frame.arrays["gamma"], rtol=1e-6)
        for core in core_atoms(frame):
            embedded = embedded_through_file(frame, core, tmp_path)
            embedded.calc = calculator
            embedded.get_potential_energy()
            gamma = calculator.results["gamma"][0]
            assert gamma == pytest.approx(frame_gamma[core], rel=1e-6)
            assert embedded.info["core_gamma"] == pytest.approx(frame.arrays["gamma"][core], rel=1e-12)


def test_no_close_contacts_and_no_more_atoms_than_the_cap(large_frames: list[Atoms]) -> None:
    for max_atoms in (SETTINGS.max_atoms, 72):  # 72: below the ~80 atoms of the cut sphere
        settings = EmbeddingSettings(SETTINGS.cutoff, SETTINGS.buffer, max_atoms, SETTINGS.min_distance)
        for frame in large_frames:
            for core in core_atoms(frame):
                embedded = embed_environment(frame, core, settings)
                assert len(embedded) <= max_atoms
                first, _ = neighbor_list("id", embedded, SETTINGS.min_distance)
                assert len(first) == 0
                # images stay out of the core's sphere: every lattice vector is long enough
                assert min(embedded.cell.lengths()) > SETTINGS.cutoff + embedded.info["embed_radius"]


def test_candidates_carry_origin_parent_core_and_weights(large_frames: list[Atoms]) -> None:
    frame = large_frames[1]
    core = core_atoms(frame)[0]
    candidates, _ = embed_selection([_with_core(frame, core)], SETTINGS, generation=3)
    (candidate,) = candidates
    info = candidate.info
    assert info["origin"] == "embed" and info["generation"] == 3
    assert info["parent_uid"] == frame.info["uid"] and info["core_atom"] == core
    assert info["core_gamma"] == pytest.approx(frame.arrays["gamma"][core])
    assert info["energy_weight"] == 0.0
    assert set(np.unique(candidate.arrays["force_weight"])) == {0.0, 1.0}


def test_small_md_cells_are_labelled_whole(cuni_cell: Atoms) -> None:
    frame = tag_structure(cuni_cell.copy(), generation=0, origin="md")
    frame.arrays["gamma"] = np.linspace(1.0, 2.0, len(frame))
    candidates, report = embed_selection([_with_core(frame, 5)], SETTINGS, generation=1)
    (candidate,) = candidates
    assert report[0]["path"] == "whole_frame"
    assert candidate.info["uid"] == frame.info["uid"] and candidate.info["origin"] == "md"
    np.testing.assert_array_equal(candidate.positions, frame.positions)
    assert np.all(candidate.arrays["force_weight"] == 1.0) and candidate.info["energy_weight"] == 1.0


def test_a_core_with_a_too_close_neighbour_is_reported_not_embedded(large_frames: list[Atoms]) -> None:
    frame = large_frames[1].copy()
    core = core_atoms(frame)[0]
    distances = frame.get_distances(core, range(len(frame)), mic=True)
    distances[core] = np.inf
    neighbour = int(np.argmin(distances))
    vector = frame.get_distance(core, neighbour, mic=True, vector=True)
    frame.positions[neighbour] = frame.positions[core] + vector / np.linalg.norm(vector) * 1.5
    tag_structure(frame, generation=0, origin="md")
    with pytest.raises(EmbeddingError, match="not reproducible"):
        embed_environment(frame, core, SETTINGS)
    candidates, report = embed_selection([_with_core(frame, core)], SETTINGS, generation=1)
    assert candidates == [] and report[0]["status"] == "failed"


def test_cap_too_small_for_the_cut_sphere_is_a_config_error(emt_config: dict[str, Any]) -> None:
    densest = densest_lattice_constant(emt_config["structures"], emt_config["elements"])
    assert densest is not None
    a, _ = densest
    radius = emt_config["fit"]["cutoff"] + emt_config["embed"]["buffer"]
    minimum = minimum_embedding_atoms(radius, 4 / a**3)
    too_small = copy.deepcopy(emt_config)
    too_small["embed"]["max_atoms"] = minimum - 1
    with pytest.raises(ConfigError, match=f"the minimum is {minimum}") as raised:
        check_config(too_small)
    assert raised.value.key == "embed.max_atoms" and "\n" not in str(raised.value)
    # the minimum is enough: the densest configured crystal embeds under it, core exact
    just_enough = copy.deepcopy(emt_config)
    just_enough["embed"]["max_atoms"] = minimum
    check_config(just_enough)
    crystal = tag_structure(bulk("Ni", "fcc", a=a, cubic=True).repeat(5), generation=0, origin="md")
    settings = EmbeddingSettings.from_config(radius - emt_config["embed"]["buffer"], just_enough["embed"])
    embedded = embed_environment(crystal, 0, settings)
    assert len(embedded) <= minimum and embedded.arrays["force_weight"][0] == 1.0


def test_min_distance_above_the_bond_length_is_a_config_error(emt_config: dict[str, Any]) -> None:
    emt_config["embed"]["min_distance"] = 2.4
    with pytest.raises(ConfigError, match="embed.min_distance"):
        check_config(emt_config)


def test_weights_survive_labelling_the_label_cache_and_gathering(
    large_frames: list[Atoms], tmp_path: Path
) -> None:
    from mlip_autopipe.fit import row_weights
    from mlip_autopipe.labelling import gather_labels, label_candidate
    from mlip_autopipe.oracles import EMTOracle

    frame = large_frames[0]
    (candidate,), _ = embed_selection([_with_core(frame, core_atoms(frame)[0])], SETTINGS, generation=1)
    write_structures(tmp_path / "candidate.extxyz", candidate)
    (read_back,) = read_structures(tmp_path / "candidate.extxyz")
    for attempt in ("fresh", "cached"):
        labelled = label_candidate(read_back.copy(), EMTOracle(), cache_dir=tmp_path / "cache")
        assert labelled.info["from_cache"] == (attempt == "cached")
        write_structures(tmp_path / f"{attempt}.extxyz", labelled)
        (gathered,), _ = gather_labels([tmp_path / f"{attempt}.extxyz"])
        np.testing.assert_array_equal(gathered.arrays["force_weight"], candidate.arrays["force_weight"])
        assert gathered.info["energy_weight"] == 0.0
        weights = row_weights([gathered], energy_weight=30.0)
        assert weights[0] == 0.0 and weights[1:].sum() == 3 * candidate.arrays["force_weight"].sum()


def gammas(potential_yaml: Path, asi: Path, images: list[Atoms]) -> list[np.ndarray]:
    calculator = load_calculator(potential_yaml, asi)
    found = []
    for atoms in images:
        work = atoms.copy()
        work.calc = calculator
        work.get_potential_energy()
        found.append(np.array(calculator.results["gamma"]))
    return found


def test_buffer_atoms_stay_out_of_the_active_set(
    large_frames: list[Atoms], small_potential: dict[str, Any], tmp_path: Path
) -> None:
    from mlip_autopipe import fit
    from mlip_autopipe.labelling import label_candidate
    from mlip_autopipe.oracles import EMTOracle

    frame = large_frames[1]
    (candidate,), _ = embed_selection([_with_core(frame, core_atoms(frame)[0])], SETTINGS, generation=1)
    pool = [label_candidate(atoms, EMTOracle()) for atoms in small_potential["pool"]]
    data = [*pool, label_candidate(candidate, EMTOracle())]
    references = fit.reference_energies(data, ["Cu", "Ni"])
    fit.save_potential(
        fit.fit_linear(data, ["Cu", "Ni"], SMALL_FIT_SETTINGS, references),
        tmp_path / "p.yaml",
        tmp_path / "p.yace",
        references,
    )
    # without weight-0 atoms: the pace_activeset tool itself; the Python path is the same algorithm
    fit.to_dataframe(pool, references).to_pickle(tmp_path / "pool.pckl.gzip", compression="gzip")
    tool = fit.compute_active_set(tmp_path / "p.yaml", tmp_path / "pool.pckl.gzip", tmp_path / "log")
    tool_gamma = gammas(tmp_path / "p.yaml", tool, [candidate, *pool])
    api = fit.active_set_of_weighted_atoms(tmp_path / "p.yaml", tmp_path / "pool.pckl.gzip")
    for mine, theirs in zip(gammas(tmp_path / "p.yaml", api, [candidate, *pool]), tool_gamma, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6)
    # with the embedded cell: its core is known afterwards, its cut buffer atoms are not
    fit.to_dataframe(data, references).to_pickle(tmp_path / "data.pckl.gzip", compression="gzip")
    asi = fit.compute_active_set(tmp_path / "p.yaml", tmp_path / "data.pckl.gzip", tmp_path / "log")
    (embedded_gamma,) = gammas(tmp_path / "p.yaml", asi, [candidate])
    weights = candidate.arrays["force_weight"]
    assert np.all(embedded_gamma[weights == 1] <= 1.01 + 1e-6)
    assert embedded_gamma[weights == 0].max() > 1.01
