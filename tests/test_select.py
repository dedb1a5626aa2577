"""D-optimal selection (pace_select's MaxVol) against ranking by gamma; the max_gamma fallback."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms

from mlip_autopipe.explore import load_calculator, run_langevin
from mlip_autopipe.select import (
    grade_frames,
    maxvol_environments,
    select_d_optimal,
    select_environments,
    select_max_gamma,
)

EXPLORE = {
    "steps": 300,
    "timestep_fs": 2.0,
    "friction": 0.02,
    "check_interval": 10,
    "gamma_lo": 1.2,
    "gamma_hi": 5.0,
}
SELECT = {
    "max_per_generation": 3,
    "method": "d_optimal",
    "maxvol_tolerance": 1.01,
    "duplicate_tolerance": 0.01,
    "scenario_floor": 1,
}


@pytest.fixture(scope="module")
def frames(small_potential: dict[str, Any]) -> list[Atoms]:
    """Extrapolative frames of six short MD runs (two 32-atom start cells, three temperatures)."""
    calculator = load_calculator(small_potential["yaml"], small_potential["asi"])
    kept: list[Atoms] = []
    for t_index, temperature in enumerate((600, 900, 1200)):
        for s_index, start in enumerate((small_potential["pool"][0], small_potential["pool"][4])):
            run_frames, _ = run_langevin(
                start,
                calculator,
                run=f"T{temperature}_s{s_index}",
                temperature=temperature,
                explore=EXPLORE,
                seed=10 * t_index + s_index,
                generation=0,
            )
            kept.extend(run_frames)
    assert len(kept) >= 8
    return kept


def basis_and_active_set(potential: dict[str, Any]) -> tuple[Any, dict[int, Any]]:
    """The potential's B-basis and its current active set (per species type)."""
    from pyace import ACEBBasisSet, BBasisConfiguration
    from pyace.activelearning import compute_A_active_inverse, load_active_inverse_set

    basis = ACEBBasisSet(BBasisConfiguration(str(potential["yaml"])))
    return basis, compute_A_active_inverse(load_active_inverse_set(str(potential["asi"])))


def updated_active_set(potential: dict[str, Any], picked: Sequence[Atoms]) -> dict[int, Any]:
    """MaxVol over the current active set plus every atom of ``picked``."""
    from pyace.activelearning import compute_active_set, compute_B_projections

    basis, old = basis_and_active_set(potential)
    return compute_active_set(compute_B_projections(basis, list(picked)), extra_A0_projections_dict=old)


def residual_gamma(active_set: dict[int, Any], basis: Any, frames: Sequence[Atoms]) -> float:
    """Largest gamma over all frames' atoms with respect to ``active_set``."""
    from pyace.activelearning import (
        compute_A_active_inverse,
        compute_B_projections,
        compute_extrapolation_grade,
    )

    grades = compute_extrapolation_grade(
        compute_B_projections(basis, list(frames)), compute_A_active_inverse(active_set)
    )
    return max(float(g.max()) for g in grades.values())


def log_volume(active_set: dict[int, Any]) -> float:
    return sum(float(np.linalg.slogdet(matrix)[1]) for matrix in active_set.values())


def test_maxvol_environments_span_every_frame_and_grow_the_volume(
    frames: list[Atoms], small_potential: dict[str, Any]
) -> None:
    environments, new_active_set = maxvol_environments(
        frames, small_potential["yaml"], small_potential["asi"]
    )
    basis, old_active_set = basis_and_active_set(small_potential)
    assert environments
    # MaxVol's defining property: no atom of any frame extrapolates beyond the new active set
    assert residual_gamma(new_active_set, basis, frames) <= 1.01 + 1e-6
    assert residual_gamma(old_active_set, basis, frames) > 1.2
    assert log_volume(new_active_set) > log_volume(old_active_set)
    for environment in environments:  # the picked rows are those atoms' projections
        assert any(np.allclose(row, environment.projection) for row in new_active_set[environment.species])


def test_d_optimal_picks_cover_more_than_the_top_gamma_frames(
    frames: list[Atoms], small_potential: dict[str, Any]
) -> None:
    cap = 3
    picked = select_d_optimal(
        frames, small_potential["yaml"], small_potential["asi"], cap=cap, whole_frame_atoms=100
    )
    assert len(picked) == cap
    assert len({atoms.info["uid"] for atoms in picked}) == cap  # whole frames: one pick each
    assert all(atoms.info["selection"] == "d_optimal" for atoms in picked)
    top_gamma = sorted(frames, key=lambda atoms: -atoms.info["max_gamma"])[:cap]
    assert {a.info["uid"] for a in picked} != {a.info["uid"] for a in top_gamma}
    basis, _ = basis_and_active_set(small_potential)
    d_optimal_set = updated_active_set(small_potential, picked)
    top_gamma_set = updated_active_set(small_potential, top_gamma)
    assert log_volume(d_optimal_set) > log_volume(top_gamma_set)
    assert residual_gamma(d_optimal_set, basis, frames) < residual_gamma(top_gamma_set, basis, frames)


def test_large_frames_give_one_pick_per_new_environment_without_duplicates(
    frames: list[Atoms], small_potential: dict[str, Any]
) -> None:
    environments, _ = maxvol_environments(frames, small_potential["yaml"], small_potential["asi"])
    picked = select_d_optimal(
        frames, small_potential["yaml"], small_potential["asi"], cap=10, whole_frame_atoms=8
    )
    pairs = [(atoms.info["uid"], atoms.info["core_atom"]) for atoms in picked]
    assert len(picked) == 10 and len(set(pairs)) == 10
    uids = [atoms.info["uid"] for atoms in frames]
    maxvol_pairs = {(uids[env.frame], env.atom) for env in environments}
    assert set(pairs) <= maxvol_pairs
    for atoms in picked:
        assert atoms.info["core_gamma"] == pytest.approx(atoms.arrays["gamma"][atoms.info["core_atom"]])


def test_near_duplicate_environments_are_dropped(
    frames: list[Atoms], small_potential: dict[str, Any]
) -> None:
    loose = select_d_optimal(
        frames, small_potential["yaml"], small_potential["asi"], cap=100, whole_frame_atoms=8
    )
    strict = select_d_optimal(
        frames,
        small_potential["yaml"],
        small_potential["asi"],
        cap=100,
        whole_frame_atoms=8,
        duplicate_tolerance=0.3,
    )
    assert 0 < len(strict) < len(loose)
    from pyace.activelearning import compute_B_projections

    basis, _ = basis_and_active_set(small_potential)
    cores = []
    for atoms in strict:
        projections = compute_B_projections(basis, [atoms])
        species = basis.elements_to_index_map[atoms.get_chemical_symbols()[atoms.info["core_atom"]]]
        same_species = [
            i for i, s in enumerate(atoms.get_chemical_symbols()) if basis.elements_to_index_map[s] == species
        ]
        cores.append((species, projections[species][same_species.index(atoms.info["core_atom"])]))
    for i, (species_i, row_i) in enumerate(cores):
        for species_j, row_j in cores[:i]:
            if species_i == species_j:
                assert np.linalg.norm(row_i - row_j) > 0.3 * np.linalg.norm(row_j)


def test_d_optimal_falls_back_to_max_gamma_without_an_active_set(
    frames: list[Atoms], small_potential: dict[str, Any], tmp_path: Path
) -> None:
    picked, method = select_environments(
        frames,
        SELECT,
        potential_yaml=small_potential["yaml"],
        active_set=tmp_path / "missing.asi",
        gamma_hi=EXPLORE["gamma_hi"],
        whole_frame_atoms=100,
    )
    assert method == "max_gamma"
    expected = select_max_gamma(frames, SELECT["max_per_generation"], EXPLORE["gamma_hi"])
    assert [a.info["uid"] for a in picked] == [a.info["uid"] for a in expected]
    for atoms in picked:
        assert atoms.info["core_atom"] == int(np.argmax(atoms.arrays["gamma"]))
    used, method = select_environments(
        frames,
        SELECT,
        potential_yaml=small_potential["yaml"],
        active_set=small_potential["asi"],
        gamma_hi=EXPLORE["gamma_hi"],
        whole_frame_atoms=100,
    )
    assert method == "d_optimal" and len(used) == SELECT["max_per_generation"]


def test_surrogate_md_frames_are_graded_like_md_frames_and_join_the_selection(
    small_potential: dict[str, Any], frames: list[Atoms]
) -> None:
    """Frames the surrogate committee was unsure about (no gamma of their own) get the ACE's
    gamma and compete with the MD's frames; their scenario gets its floor of picks."""
    unsure = []
    for frame in frames[:3]:
        bare = Atoms(frame.get_chemical_symbols(), positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
        bare.info.update(uid=f"unsure{len(unsure)}", scenario="surrogate_only", run="surrogate_md_x")
        unsure.append(bare)
    graded = grade_frames(unsure, small_potential["yaml"], small_potential["asi"])
    for frame, grade in zip(frames[:3], graded, strict=True):
        np.testing.assert_allclose(grade.arrays["gamma"], frame.arrays["gamma"], rtol=1e-6, atol=1e-8)
        assert grade.info["max_gamma"] == pytest.approx(frame.info["max_gamma"], rel=1e-6)
        assert grade.info["scenario"] == "surrogate_only"
    picks, method = select_environments(
        frames + graded,
        SELECT,
        potential_yaml=small_potential["yaml"],
        active_set=small_potential["asi"],
        gamma_hi=EXPLORE["gamma_hi"],
        whole_frame_atoms=64,
    )
    assert method == "d_optimal"
    assert any(pick.info["scenario"] == "surrogate_only" for pick in picks)
