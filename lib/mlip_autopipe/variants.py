"""Variants of a parent cell: strain, shear, rattle, vacancy, antisite and interstitial.

Every function returns a new ``Atoms`` and leaves the parent untouched; what was done is
recorded in the copy's ``atoms.info`` (the caller adds ``origin`` and ``parent_uid``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from scipy.spatial import cKDTree

from mlip_autopipe.errors import StructureError

#: Grid points per Angstrom-ish when searching the largest hole for an interstitial; the
#: count per cell vector is a multiple of 12 so that 1/2, 1/3, 1/4 and 1/6 of it are on the grid.
HOLE_GRID_STEP = 4.0 / 12
#: Holes this close (Angstrom) to the largest one count as equally large.
HOLE_TOLERANCE = 1e-3


def strained(atoms: Atoms, strain: float) -> Atoms:
    """Isotropically strained copy (positions scale with the cell); ``info['strain']``."""
    copy = _bare_copy(atoms)
    copy.set_cell(np.asarray(atoms.cell) * (1.0 + strain), scale_atoms=True)
    copy.info["strain"] = float(strain)
    return copy


def sheared(atoms: Atoms, shear: float) -> Atoms:
    """Copy under a volume-conserving (to first order) xy shear; ``info['shear_strain']``.

    The deformation gradient is the identity plus a symmetric xy strain of ``shear / 2``,
    so ``shear`` is the engineering shear strain.
    """
    deformation = np.eye(3)
    deformation[0, 1] = deformation[1, 0] = shear / 2.0
    copy = _bare_copy(atoms)
    copy.set_cell(np.asarray(atoms.cell) @ deformation.T, scale_atoms=True)
    copy.info["shear_strain"] = float(shear)
    return copy


def rattled(atoms: Atoms, amplitude: float, rng: np.random.Generator) -> Atoms:
    """Copy with Gaussian displacements of standard deviation ``amplitude`` (Angstrom)."""
    copy = _bare_copy(atoms)
    copy.positions += rng.normal(scale=amplitude, size=copy.positions.shape)
    copy.info["rattle_amplitude"] = float(amplitude)
    return copy


def with_vacancy(atoms: Atoms, site: int) -> Atoms:
    """Copy without atom ``site``; ``info['removed_element']``."""
    if len(atoms) < 2:
        raise StructureError("a vacancy needs a cell of at least two atoms")
    copy = _bare_copy(atoms)
    copy.info["removed_element"] = copy[site].symbol
    del copy[site]
    return copy


def with_antisite(atoms: Atoms, rng: np.random.Generator) -> Atoms | None:
    """Copy with two atoms of different elements exchanged (composition kept), or None.

    None when the cell holds a single element. ``info['exchanged']`` lists the two sites.
    """
    symbols = np.array(atoms.get_chemical_symbols())
    if len(set(symbols)) < 2:
        return None
    first = int(rng.integers(len(atoms)))
    others = np.flatnonzero(symbols != symbols[first])
    second = int(others[rng.integers(len(others))])
    copy = _bare_copy(atoms)
    numbers = copy.numbers.copy()
    numbers[[first, second]] = numbers[[second, first]]
    copy.numbers = numbers
    copy.info["exchanged"] = np.array(sorted((first, second)))
    return copy


def largest_holes(atoms: Atoms) -> np.ndarray:
    """Cartesian positions of the points of a periodic cell farthest from every atom.

    Searched on a grid of the cell (so high-symmetry holes such as the octahedral site of
    fcc or the tetrahedral hole of diamond are found exactly); all points within
    ``HOLE_TOLERANCE`` of the largest distance are returned.
    """
    lengths = atoms.cell.lengths()
    counts = [12 * max(1, int(np.ceil(length / (12 * HOLE_GRID_STEP)))) for length in lengths]
    axes = [np.arange(count) / count for count in counts]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    shifts = np.stack(np.meshgrid(*([np.arange(-1, 2)] * 3), indexing="ij"), axis=-1).reshape(-1, 3)
    images = (atoms.get_scaled_positions(wrap=True)[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    tree = cKDTree(images @ np.asarray(atoms.cell))
    points = grid @ np.asarray(atoms.cell)
    distance, _ = tree.query(points)
    return np.asarray(points[distance >= distance.max() - HOLE_TOLERANCE])


def with_interstitial(atoms: Atoms, element: str, rng: np.random.Generator) -> Atoms:
    """Copy with one ``element`` atom added in the largest hole (a seeded pick among equals)."""
    holes = largest_holes(atoms)
    position = holes[int(rng.integers(len(holes)))]
    copy = _bare_copy(atoms)
    copy += Atoms(element, positions=[position])
    copy.info["added_element"] = element
    return copy


def _bare_copy(atoms: Atoms) -> Atoms:
    """A copy without the parent's metadata (uid, SQS deviations, ...) and calculator."""
    copy = atoms.copy()
    copy.info = {}
    copy.calc = None
    return copy


def pick_sites(n_atoms: int, count: int, rng: np.random.Generator) -> Sequence[int]:
    """``count`` distinct site indices (all of them if fewer), seeded."""
    return [int(site) for site in rng.choice(n_atoms, size=min(count, n_atoms), replace=False)]
