"""Distillation: a surrogate-labelled pool as the base of an ACE fit, corrected by the oracle's
(DFT) labels weighted up: ``surrogate pool -> base ACE -> DFT delta``.

For a linear ACE fit, fitting the base on the surrogate pool and then a correction on the DFT
residuals, regularised towards the base by the same pool, is one weighted least-squares problem
on the union; :func:`distillation_set` builds that union. The surrogate's energies are first moved
onto the oracle's energy scale by per-element offsets (:func:`align_energies`), since a
foundation model's absolute energies differ from the oracle's by a per-element constant.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

import numpy as np
from ase import Atoms

from mlip_autopipe.contract import ENERGY_WEIGHT, FORCE_WEIGHT, energy_weight, force_weights
from mlip_autopipe.data import attach_labels, has_labels, structure_uid
from mlip_autopipe.errors import LabellingError
from mlip_autopipe.oracles.base import Oracle


def align_energies(
    surrogate_data: Sequence[Atoms], oracle_references: Mapping[str, float], elements: Sequence[str]
) -> list[Atoms]:
    """Copies of ``surrogate_data`` whose energies have the surrogate's per-element least-squares
    references replaced by the oracle's (forces and stress are unchanged)."""
    from mlip_autopipe.fit import reference_energies

    if not surrogate_data:
        return []
    surrogate_references = reference_energies(surrogate_data, elements)
    aligned = []
    for atoms in surrogate_data:
        shift = sum(oracle_references[s] - surrogate_references[s] for s in atoms.get_chemical_symbols())
        calc_results = atoms.calc.results
        moved = attach_labels(
            atoms,
            energy=float(calc_results["energy"]) + shift,
            forces=calc_results["forces"],
            stress=calc_results.get("stress"),
        )
        moved.info = dict(atoms.info)
        aligned.append(moved)
    return aligned


def _weighted(atoms: Atoms, weight: float, source: str) -> Atoms:
    weighted = atoms.copy()
    weighted.calc = atoms.calc
    weighted.info[ENERGY_WEIGHT] = weight * energy_weight(atoms)
    weighted.arrays[FORCE_WEIGHT] = weight * force_weights(atoms)
    weighted.info["label_source"] = source
    return weighted


def distillation_set(
    oracle_train: Sequence[Atoms],
    surrogate_data: Sequence[Atoms],
    references: Mapping[str, float],
    elements: Sequence[str],
    *,
    oracle_weight: float,
    surrogate_weight: float = 1.0,
    exclude_uids: Collection[str] = (),
) -> list[Atoms]:
    """The training set of a distilled fit: oracle labels weighted by ``oracle_weight`` and the
    surrogate pool (energies aligned to ``references``) by ``surrogate_weight``.

    Surrogate structures whose uid is in ``exclude_uids`` (held-out test structures) or already
    has an oracle label are left out, so nothing is fitted twice or leaks into the test set.
    """
    oracle_uids = {atoms.info.get("uid") for atoms in oracle_train}
    pool = [
        atoms
        for atoms in surrogate_data
        if has_labels(atoms)
        and atoms.info.get("uid") not in oracle_uids
        and atoms.info.get("uid") not in exclude_uids
    ]
    aligned = align_energies(pool, references, elements)
    return [_weighted(atoms, oracle_weight, "oracle") for atoms in oracle_train] + [
        _weighted(atoms, surrogate_weight, "surrogate") for atoms in aligned
    ]


def pick_pool(structures: Sequence[Atoms], max_structures: int, seed: int) -> list[Atoms]:
    """Unique structures (by ``uid``) in their given order, or a seeded random subset of
    ``max_structures`` of them (kept in that order) when there are more."""
    unique = list({atoms.info["uid"]: atoms for atoms in structures}.values())
    if len(unique) <= max_structures:
        return unique
    picked = np.sort(np.random.default_rng(seed).choice(len(unique), size=max_structures, replace=False))
    return [unique[index] for index in picked]


def surrogate_pool(
    structures: Sequence[Atoms],
    surrogate: Oracle,
    max_structures: int,
    seed: int,
    log: Callable[[str], None] = lambda message: None,
) -> list[Atoms]:
    """The distillation pool: up to ``max_structures`` unique ``structures`` (:func:`pick_pool`)
    labelled by ``surrogate``; a structure it cannot label is left out (and logged)."""
    for atoms in structures:
        atoms.info.setdefault("uid", structure_uid(atoms))
    labelled = []
    for atoms in pick_pool(structures, max_structures, seed):
        try:
            labelled.append(surrogate.label(atoms))
        except LabellingError as error:
            log(f"{atoms.info['uid']}: not labelled by {surrogate.name} ({error})")
    log(f"{surrogate.name} labelled {len(labelled)} of {len(structures)} pool structures")
    return labelled
