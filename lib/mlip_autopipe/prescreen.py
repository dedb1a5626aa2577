"""Pre-screening of candidates by a surrogate before they reach the (expensive) oracle.

A candidate is rejected, with the reason in a ledger row, when it is unphysical or redundant:
``too_close`` (a pair closer than ``min_distance``), ``surrogate_force`` (a surrogate force above
``max_force`` on an atom with force weight), ``surrogate_energy`` (surrogate energy per atom, after
per-element references fitted on the batch, more than ``max_relative_energy`` above the batch
median, or non-finite) or ``duplicate`` (same formula as an earlier kept candidate, surrogate
energy and sorted force magnitudes within tolerance, and the surrogate confident: committee force
spread below ``confident_force_std`` for both). A surrogate that cannot evaluate a candidate
keeps it: the oracle decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from mlip_autopipe.contract import energy_weight, force_weights
from mlip_autopipe.errors import LabellingError
from mlip_autopipe.oracles import Oracle

KEPT = "kept"
REJECTED = "rejected"


def shortest_distance(atoms: Atoms, cutoff: float) -> tuple[float, int, int]:
    """Shortest interatomic distance below ``cutoff`` (periodic images included) and its pair;
    ``(inf, -1, -1)`` when no pair is that close."""
    first, second, distances = neighbor_list("ijd", atoms, cutoff)
    if len(distances) == 0:
        return float("inf"), -1, -1
    index = int(np.argmin(distances))
    return float(distances[index]), int(first[index]), int(second[index])


def _weighted_forces(atoms: Atoms) -> np.ndarray:
    forces = atoms.get_forces()
    weights = force_weights(atoms)
    return forces[weights > 0] if np.any(weights > 0) else forces


def _relative_energies(labelled: Sequence[Atoms], threshold: float) -> np.ndarray:
    """Per-atom energy after per-element references fitted on the batch, minus the median.

    The references are refitted without the structures above ``threshold`` until nothing
    changes, so one absurd energy cannot pull them towards itself.
    """
    elements = sorted({symbol for atoms in labelled for symbol in atoms.get_chemical_symbols()})
    symbols = [atoms.get_chemical_symbols() for atoms in labelled]
    counts = np.array([[row.count(element) for element in elements] for row in symbols], float)
    energies = np.array([atoms.get_potential_energy() for atoms in labelled])
    residual = np.full(len(labelled), np.inf)
    trusted = np.isfinite(energies)
    for _ in range(len(labelled)):
        if not trusted.any():
            break
        references, *_ = np.linalg.lstsq(counts[trusted], energies[trusted], rcond=None)
        finite = np.isfinite(energies)
        residual[finite] = (energies[finite] - counts[finite] @ references) / counts[finite].sum(axis=1)
        residual[finite] -= np.median(residual[trusted])
        below = finite & (residual <= threshold)
        if np.array_equal(below, trusted):
            break
        trusted = below
    return residual


def _is_duplicate(atoms: Atoms, other: Atoms, settings: Mapping[str, Any]) -> tuple[bool, str]:
    if atoms.get_chemical_formula() != other.get_chemical_formula():
        return False, ""
    confident = settings["confident_force_std"]
    spread = max(atoms.info.get("surrogate_force_std", 0.0), other.info.get("surrogate_force_std", 0.0))
    if spread >= confident:
        return False, ""
    energy_gap = abs(atoms.get_potential_energy() - other.get_potential_energy()) / len(atoms)
    norms = np.sort(np.linalg.norm(atoms.get_forces(), axis=1))
    other_norms = np.sort(np.linalg.norm(other.get_forces(), axis=1))
    force_gap = float(np.sqrt(np.mean((norms - other_norms) ** 2)))
    same = (
        energy_gap < settings["duplicate_energy_tolerance"]
        and force_gap < settings["duplicate_force_tolerance"]
    )
    reason = (
        f"duplicate of {other.info.get('uid')} by the surrogate "
        f"(energy {energy_gap * 1000:.2f} meV/atom, force magnitudes {force_gap:.3f} eV/A apart)"
    )
    return same, reason


def screen_candidates(
    candidates: Sequence[Atoms], surrogate: Oracle, settings: Mapping[str, Any]
) -> tuple[list[Atoms], list[dict[str, Any]]]:
    """Split ``candidates`` into those worth an oracle call and a ledger row for every candidate.

    The kept structures are the candidates themselves (unlabelled), with the surrogate's spread
    (``surrogate_force_std``, ``surrogate_energy_std``) added to ``info`` where it evaluated them.
    """
    rows: list[dict[str, Any]] = []
    verdicts: list[tuple[str, str]] = []
    evaluated: list[Atoms | None] = []
    for atoms in candidates:
        distance, first, second = shortest_distance(atoms, settings["min_distance"])
        row: dict[str, Any] = {
            "uid": atoms.info.get("uid"),
            "origin": atoms.info.get("origin"),
            "n_atoms": len(atoms),
            "min_distance": None if np.isinf(distance) else distance,
        }
        rows.append(row)
        if distance < settings["min_distance"]:
            verdicts.append(
                (
                    "too_close",
                    f"atoms {first} and {second} are {distance:.3f} A apart "
                    f"(< min_distance {settings['min_distance']} A)",
                )
            )
            evaluated.append(None)
            continue
        try:
            labelled = surrogate.label(atoms)
        except LabellingError as error:
            verdicts.append((KEPT, f"surrogate failed ({error}); left to the oracle"))
            evaluated.append(None)
            continue
        max_force = float(np.linalg.norm(_weighted_forces(labelled), axis=1).max())
        row.update(
            surrogate_energy_per_atom=labelled.get_potential_energy() / len(labelled),
            surrogate_max_force=max_force,
            surrogate_force_std=labelled.info.get("surrogate_force_std"),
        )
        evaluated.append(labelled)
        if max_force > settings["max_force"]:
            verdicts.append(
                (
                    "surrogate_force",
                    f"surrogate force {max_force:.2f} eV/A > max_force {settings['max_force']} eV/A",
                )
            )
        else:
            verdicts.append((KEPT, ""))
    _screen_energies(evaluated, candidates, verdicts, settings)
    _screen_duplicates(evaluated, verdicts, settings)
    kept: list[Atoms] = []
    for atoms, surrogate_label, row, (verdict, reason) in zip(
        candidates, evaluated, rows, verdicts, strict=True
    ):
        row.update(status=KEPT if verdict == KEPT else REJECTED, reason=reason or "passed", check=verdict)
        if verdict == KEPT:
            screened = atoms.copy()
            if surrogate_label is not None:
                for key in ("surrogate_force_std", "surrogate_energy_std"):
                    if key in surrogate_label.info:
                        screened.info[key] = surrogate_label.info[key]
            kept.append(screened)
    return kept, rows


def _screen_energies(
    evaluated: Sequence[Atoms | None],
    candidates: Sequence[Atoms],
    verdicts: list[tuple[str, str]],
    settings: Mapping[str, Any],
) -> None:
    # embedded cells (energy_weight 0) carry an artificial boundary energy: not judged by energy
    judged = [
        index
        for index, labelled in enumerate(evaluated)
        if labelled is not None and energy_weight(candidates[index]) > 0
    ]
    if not judged:
        return
    judged_atoms = [atoms for atoms in (evaluated[index] for index in judged) if atoms is not None]
    relative = _relative_energies(judged_atoms, settings["max_relative_energy"])
    for index, excess in zip(judged, relative, strict=True):
        if verdicts[index][0] == KEPT and not excess <= settings["max_relative_energy"]:
            verdicts[index] = (
                "surrogate_energy",
                f"surrogate energy {excess:.3f} eV/atom above the batch median "
                f"(> max_relative_energy {settings['max_relative_energy']} eV/atom)",
            )


def _screen_duplicates(
    evaluated: Sequence[Atoms | None], verdicts: list[tuple[str, str]], settings: Mapping[str, Any]
) -> None:
    kept: list[Atoms] = []
    for index, labelled in enumerate(evaluated):
        if labelled is None or verdicts[index][0] != KEPT:
            continue
        for other in kept:
            same, reason = _is_duplicate(labelled, other, settings)
            if same:
                verdicts[index] = ("duplicate", reason)
                break
        else:
            kept.append(labelled)
