"""Selection of extrapolative MD environments for the next generation's labelling.

``d_optimal`` (the default) is pacemaker's pace_select algorithm: MaxVol over the ACE
B-projections of every atom of every extrapolative frame together with the current active
set; the atoms that enter the active set are the picks (D-optimality: they enlarge the volume
spanned by the training environments most). ``max_gamma`` ranks frames by their largest
extrapolation grade; it is also the fallback when the D-optimal selection cannot run.
``random`` (a baseline) picks uniformly among every frame the MD sampled, gamma ignored.

Every scenario (``atoms.info['scenario']``) that produced extrapolative frames gets at least
``select.scenario_floor`` picks (when it has that many), so a rare scenario is not starved by a
frequent one.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipe.data import unique_by_uid
from mlip_autopipe.errors import SelectionError

log = logging.getLogger(__name__)


def _priority(frame: Atoms, gamma_hi: float) -> tuple[int, float]:
    """Trustworthy frames (max gamma <= gamma_hi) by descending gamma, then wilder ones ascending."""
    gamma = float(frame.info["max_gamma"])
    return (0, -gamma) if gamma <= gamma_hi else (1, gamma)


def select_by_gamma(frames: Sequence[Atoms], cap: int, gamma_hi: float) -> list[Atoms]:
    """Pick up to ``cap`` frames, taking turns between MD runs so one run cannot fill the cap.

    Within a run, frames still inside ``gamma_hi`` come first, highest gamma first; frames
    past ``gamma_hi`` (where a run halted, possibly unphysical) are a fallback.
    """
    by_run: dict[str, list[Atoms]] = defaultdict(list)
    for frame in unique_by_uid(frames):
        by_run[str(frame.info.get("run", ""))].append(frame)
    ranked = [sorted(group, key=lambda f: _priority(f, gamma_hi)) for group in by_run.values()]
    ranked.sort(key=lambda group: _priority(group[0], gamma_hi))
    interleaved = [frame for turn in zip_longest(*ranked) for frame in turn if frame is not None]
    return interleaved[:cap]


#: Default MaxVol tolerance, pace_select's own default (``--gamma_tolerance 1.01``).
MAXVOL_TOLERANCE = 1.01
#: Default relative distance of two environments' B-projections below which they are duplicates.
DUPLICATE_TOLERANCE = 0.01


@dataclass(frozen=True)
class Environment:
    """One atom of one frame: the unit the D-optimal selection picks."""

    frame: int
    atom: int
    species: int
    projection: np.ndarray


def _environment_rows(
    frames: Sequence[Atoms], elements_to_index: Mapping[str, int]
) -> dict[int, list[tuple[int, int]]]:
    """(frame, atom) of every projection row per species type, in pyace's row order."""
    rows: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for frame_index, frame in enumerate(frames):
        for atom_index, symbol in enumerate(frame.get_chemical_symbols()):
            rows[elements_to_index[symbol]].append((frame_index, atom_index))
    return rows


def maxvol_environments(
    frames: Sequence[Atoms],
    potential_yaml: str | os.PathLike[str],
    active_set: str | os.PathLike[str],
    tolerance: float = MAXVOL_TOLERANCE,
    max_iterations: int = 300,
) -> tuple[list[Environment], dict[int, np.ndarray]]:
    """Atoms of ``frames`` that enter the active set: pace_select's D-optimal MaxVol.

    Returns those environments and the updated active set (per species type: the matrix of
    B-projection rows MaxVol chose among the frames' atoms and the current active set).


    As ``pace_select -p potential.yaml -a potential.asi`` does (single-shot mode), the
    B-projections of every atom of every frame are stacked with the current active set and
    MaxVol picks the rows of largest volume; the frame atoms among them are returned.

    Raises:
        SelectionError: when pyace cannot compute projections or the active set.
    """
    from pyace import ACEBBasisSet, BBasisConfiguration
    from pyace.activelearning import (
        compute_A_active_inverse,
        compute_active_set,
        compute_B_projections,
        load_active_inverse_set,
    )

    try:
        basis = ACEBBasisSet(BBasisConfiguration(str(potential_yaml)))
        old_active_set = compute_A_active_inverse(load_active_inverse_set(str(active_set)))
        projections = compute_B_projections(basis, list(frames))
        row_ids = {species: np.arange(len(block)) for species, block in projections.items()}
        stacked = {species: block.copy() for species, block in projections.items()}
        new_active_set, chosen = compute_active_set(
            stacked,
            row_ids,
            tol=tolerance,
            max_iters=max_iterations,
            extra_A0_projections_dict=old_active_set,
        )
    except (RuntimeError, ValueError, KeyError, OSError, np.linalg.LinAlgError) as error:
        raise SelectionError(f"D-optimal (MaxVol) selection failed: {error}") from error
    rows = _environment_rows(frames, basis.elements_to_index_map)
    environments = []
    for species, ids in chosen.items():
        for row in sorted(int(i) for i in ids if i >= 0):  # -1: rows of the old active set
            frame_index, atom_index = rows[species][row]
            environments.append(Environment(frame_index, atom_index, species, projections[species][row]))
    return environments, new_active_set


def _atom_gamma(frame: Atoms, atom: int) -> float:
    gamma = frame.arrays.get("gamma")
    return float(gamma[atom]) if gamma is not None else 0.0


def _is_duplicate(environment: Environment, kept: Sequence[Environment], tolerance: float) -> bool:
    """Same species and B-projections within ``tolerance`` (relative) of a kept environment."""
    for other in kept:
        if other.species != environment.species:
            continue
        scale = max(float(np.linalg.norm(other.projection)), 1e-12)
        if np.linalg.norm(environment.projection - other.projection) <= tolerance * scale:
            return True
    return False


def _selected_copy(frame: Atoms, core: int, method: str, score: int) -> Atoms:
    picked = frame.copy()
    picked.info.update(
        core_atom=int(core), core_gamma=_atom_gamma(frame, core), selection=method, selection_score=int(score)
    )
    return picked


def select_d_optimal(
    frames: Sequence[Atoms],
    potential_yaml: str | os.PathLike[str],
    active_set: str | os.PathLike[str],
    *,
    cap: int,
    whole_frame_atoms: int,
    tolerance: float = MAXVOL_TOLERANCE,
    duplicate_tolerance: float = DUPLICATE_TOLERANCE,
) -> list[Atoms]:
    """Up to ``cap`` (frame, core atom) picks from the environments MaxVol adds to the active set.

    Frames are ranked as pace_select ranks structures, by how many of their atoms enter the
    active set (then by max gamma). A frame of at most ``whole_frame_atoms`` atoms is one pick
    (it is labelled whole; its core is its highest-gamma new environment); a larger frame gives
    one pick per new environment, highest gamma first, for embedding. Picks are taken in turns
    between frames, and an environment whose B-projections are within ``duplicate_tolerance``
    of an already picked one (same species) is a near-duplicate and skipped. Each returned
    frame copy carries ``core_atom``, ``core_gamma``, ``selection``, ``selection_score``.
    """
    frames = unique_by_uid(frames)
    if not frames:
        return []
    by_frame: dict[int, list[Environment]] = defaultdict(list)
    for environment in maxvol_environments(frames, potential_yaml, active_set, tolerance)[0]:
        by_frame[environment.frame].append(environment)
    queues = []
    for index, found in by_frame.items():
        found.sort(key=lambda env: -_atom_gamma(frames[index], env.atom))
        queues.append(found[:1] if len(frames[index]) <= whole_frame_atoms else found)
    queues.sort(
        key=lambda q: (-len(by_frame[q[0].frame]), -float(frames[q[0].frame].info.get("max_gamma", 0)))
    )
    kept: list[Environment] = []
    for turn in zip_longest(*queues):
        for environment in turn:
            if environment is None or _is_duplicate(environment, kept, duplicate_tolerance):
                continue
            kept.append(environment)
    return [
        _selected_copy(frames[env.frame], env.atom, "d_optimal", len(by_frame[env.frame]))
        for env in kept[:cap]
    ]


def scenario_of(frame: Atoms) -> str:
    """The exploration scenario that produced ``frame`` (``bulk`` when not recorded)."""
    return str(frame.info.get("scenario") or "bulk")


def with_scenario_floor(
    ranked: Sequence[Atoms], frames: Sequence[Atoms], cap: int, floor: int
) -> list[Atoms]:
    """``cap`` picks from ``ranked`` (best first), every scenario of ``frames`` getting at least
    ``floor`` of them first: its best ranked picks, else its highest-gamma frames (core: the
    highest-gamma atom), for a scenario whose frames the ranking left out entirely."""
    scenarios = list(dict.fromkeys(scenario_of(frame) for frame in frames))
    chosen: list[Atoms] = []
    taken: set[int] = set()
    for scenario in scenarios:
        own = [index for index, pick in enumerate(ranked) if scenario_of(pick) == scenario][:floor]
        taken.update(own)
        chosen += [ranked[index] for index in own]
        missing = floor - len(own)
        if missing > 0:
            spare = [frame for frame in frames if scenario_of(frame) == scenario]
            spare.sort(key=lambda frame: -float(frame.info.get("max_gamma", 0.0)))
            picked_uids = {pick.info.get("uid") for pick in chosen}
            spare = [frame for frame in spare if frame.info.get("uid") not in picked_uids][:missing]
            chosen += [
                _selected_copy(frame, _highest_gamma_atom(frame), "scenario_floor", 0) for frame in spare
            ]
    chosen = chosen[:cap]
    chosen += [pick for index, pick in enumerate(ranked) if index not in taken][: cap - len(chosen)]
    return chosen


def _highest_gamma_atom(frame: Atoms) -> int:
    return int(np.argmax(frame.arrays.get("gamma", np.zeros(len(frame)))))


def select_random(frames: Sequence[Atoms], cap: int, seed: int) -> list[Atoms]:
    """Up to ``cap`` frames drawn uniformly (seeded) among all distinct ``frames``, gamma
    ignored; the core atom (for embedding a large frame) is drawn uniformly too."""
    frames = unique_by_uid(frames)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(frames))[:cap]
    return [_selected_copy(frames[i], int(rng.integers(len(frames[i]))), "random", 0) for i in order]


def select_max_gamma(frames: Sequence[Atoms], cap: int, gamma_hi: float) -> list[Atoms]:
    """The fallback: :func:`select_by_gamma`, each frame's core being its highest-gamma atom."""
    picked = select_by_gamma(frames, cap, gamma_hi)
    return [
        _selected_copy(frame, int(np.argmax(frame.arrays.get("gamma", np.zeros(len(frame))))), "max_gamma", 0)
        for frame in picked
    ]


def grade_frames(
    frames: Sequence[Atoms], potential_yaml: str | os.PathLike[str], active_set: str | os.PathLike[str]
) -> list[Atoms]:
    """Copies of ``frames`` (from elsewhere than the ACE's own MD, e.g. surrogate MD) carrying the
    ACE's per-atom extrapolation grade (``arrays['gamma']``, ``info['max_gamma']``), as MD
    frames do, so every selection method can rank them."""
    from mlip_autopipe.explore.ase_md import load_calculator

    calculator = load_calculator(potential_yaml, active_set)
    graded = []
    for frame in frames:
        work = frame.copy()
        work.calc = calculator
        work.get_potential_energy()
        gamma = np.asarray(calculator.results["gamma"], dtype=float)
        copy = frame.copy()
        copy.arrays["gamma"] = gamma
        copy.info["max_gamma"] = float(gamma.max())
        graded.append(copy)
    return graded


def select_environments(
    frames: Sequence[Atoms],
    select: Mapping[str, Any],
    *,
    potential_yaml: str | os.PathLike[str],
    active_set: str | os.PathLike[str],
    gamma_hi: float,
    whole_frame_atoms: int,
    seed: int = 0,
) -> tuple[list[Atoms], str]:
    """The generation's picks by ``select.method``; returns them and the method actually used.

    ``d_optimal`` falls back to ``max_gamma`` (with a logged warning) when MaxVol cannot run.
    Both rank all candidates and keep ``select.scenario_floor`` picks per scenario first;
    ``random`` draws uniformly (``seed``) among all frames.
    """
    cap = int(select["max_per_generation"])
    floor = int(select["scenario_floor"])
    if select["method"] == "random":
        return select_random(frames, cap, seed), "random"
    if select["method"] == "d_optimal":
        try:
            ranked = select_d_optimal(
                frames,
                potential_yaml,
                active_set,
                cap=len(frames) * max(1, max((len(frame) for frame in frames), default=1)),
                whole_frame_atoms=whole_frame_atoms,
                tolerance=float(select["maxvol_tolerance"]),
                duplicate_tolerance=float(select["duplicate_tolerance"]),
            )
            return with_scenario_floor(ranked, frames, cap, floor), "d_optimal"
        except SelectionError as error:
            log.warning("%s; falling back to max_gamma ranking", error)
    ranked = select_max_gamma(frames, len(frames), gamma_hi)
    return with_scenario_floor(ranked, frames, cap, floor), "max_gamma"
