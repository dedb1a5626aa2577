"""Structures a user brings (extxyz, POSCAR, cif, ... through ``ase.io``) to join the pool.

Each file is checked before any job: readable, periodic cell, only the run's elements, no
two atoms closer than ``OVERLAP_FRACTION`` of the sum of their covalent radii.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.io import read
from ase.neighborlist import neighbor_list

from mlip_autopipe.errors import ConfigError

#: Two atoms closer than this fraction of their covalent radii sum overlap.
OVERLAP_FRACTION = 0.5


def read_user_structures(
    path: str | os.PathLike[str], elements: Sequence[str] | None, key: str
) -> list[Atoms]:
    """Every frame of a user structure file, checked; periodic in all three directions.

    ``elements`` None accepts any species (a file that only gives a lattice's sites).

    Raises:
        ConfigError: under ``key``, naming the file and what is wrong with it.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise ConfigError(key, f"structure file '{name}' does not exist")
    try:
        images = read(name, index=":")
    except Exception as error:  # ase.io raises many types for files it cannot parse
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(key, f"structure file '{name}' is unreadable by ase.io: {reason}") from error
    frames = list(images) if isinstance(images, list) else [images]
    if not frames:
        raise ConfigError(key, f"structure file '{name}' holds no structure")
    for index, atoms in enumerate(frames):
        where = f"structure file '{name}' frame {index}"
        _check_frame(atoms, elements, key, where)
        atoms.pbc = True
        atoms.calc = None
        atoms.info = {"source_file": os.path.basename(name), "source_frame": index}
    return frames


def _check_frame(atoms: Atoms, elements: Sequence[str] | None, key: str, where: str) -> None:
    if len(atoms) == 0:
        raise ConfigError(key, f"{where} has no atoms")
    if atoms.cell.rank < 3 or abs(atoms.cell.volume) < 1e-6:
        raise ConfigError(key, f"{where} has no periodic cell (a 3D cell is needed)")
    foreign = sorted(set(atoms.get_chemical_symbols()) - set(elements or atoms.get_chemical_symbols()))
    if foreign:
        raise ConfigError(key, f"{where} holds {', '.join(foreign)}, not listed in 'elements'")
    periodic = atoms.copy()
    periodic.pbc = True
    radii = covalent_radii[periodic.numbers]
    first, second, distance = neighbor_list("ijd", periodic, 2 * OVERLAP_FRACTION * radii.max())
    limit = OVERLAP_FRACTION * (radii[first] + radii[second])
    close = np.flatnonzero(distance < limit)
    if len(close):
        pair = close[np.argmin(distance[close])]
        raise ConfigError(
            key,
            f"{where} has overlapping atoms {first[pair]} and {second[pair]} ({distance[pair]:.2f} A apart)",
        )
