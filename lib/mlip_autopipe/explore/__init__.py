"""Exploration: MD with the fitted potential, watching the extrapolation grade gamma.

One module per engine (:mod:`.ase_md`: Langevin in ASE with pyace; :mod:`.lammps`: LAMMPS
with ``pace/extrapolation``), what they share in :mod:`.common`, and :func:`run_exploration`,
the one entry point that dispatches by ``explore.engine``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ase import Atoms

from mlip_autopipe.explore.ase_md import explore_ase, langevin_md, load_calculator, run_langevin
from mlip_autopipe.explore.common import RunSummary, choose_starts

__all__ = [
    "RunSummary",
    "choose_starts",
    "explore_ase",
    "langevin_md",
    "load_calculator",
    "run_exploration",
    "run_langevin",
]


def run_exploration(
    pool: Sequence[Atoms],
    potential_yaml: str | os.PathLike[str],
    active_set: str | os.PathLike[str],
    explore: Mapping[str, Any],
    *,
    elements: Sequence[str],
    seed: int,
    generation: int,
    work_dir: str | os.PathLike[str],
) -> tuple[list[Atoms], list[dict[str, Any]]]:
    """Explore with the configured engine (``explore.engine``: ``ase`` or ``lammps``).

    Both return extrapolative frames and per-run :class:`RunSummary` dicts of the same shape;
    ``work_dir`` keeps the lammps engine's decks, logs and dumps (one folder per run).
    """
    if explore["engine"] == "lammps":
        from mlip_autopipe.explore.lammps import explore_lammps

        return explore_lammps(
            pool,
            potential_yaml,
            active_set,
            explore,
            elements=elements,
            seed=seed,
            generation=generation,
            work_dir=work_dir,
        )
    return explore_ase(pool, potential_yaml, active_set, explore, seed=seed, generation=generation)
