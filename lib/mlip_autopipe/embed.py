"""Periodic embedding: small DFT-able periodic cells around extrapolative atoms of large MD cells.

A selected (frame, core atom) becomes a candidate of the next generation. When the frame has
at most ``max_atoms`` atoms it is labelled whole (every force weight 1). Otherwise the atoms
within ``cutoff + buffer`` of the core (periodic images of the source included) are cut out
and put in a periodic cell whose lattice vectors are at least ``radius + cutoff`` long, so no
periodic image ever enters the core's cutoff sphere (:func:`image_distance`). The lattice is
fcc-like (the densest packing of the cut spheres: least vacuum). Where a sphere meets its
images, atoms closer than ``min_distance`` are dropped, farthest from the core first.

Force weights are measured, not assumed: an atom gets ``force_weight`` 1 exactly when its
neighbours within ``cutoff`` in the embedded cell (species and vectors) are those of its
source atom in the frame; every other (buffer) atom gets 0. The cell's total energy contains
the artificial boundary, so ``energy_weight`` is 0.

``atoms.info`` of an embedded cell: ``origin='embed'``, ``parent_uid`` (the MD frame),
``core_atom`` (index in the frame), ``core_gamma``, ``embed_radius``; the core is atom 0 and
``atoms.arrays['source_atom']`` maps every atom to its index in the frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from mlip_autopipe.contract import Status
from mlip_autopipe.data import tag_structure
from mlip_autopipe.errors import EmbeddingError

#: Extra length (Angstrom) of the new lattice vectors beyond ``radius + cutoff``.
IMAGE_MARGIN = 0.01
#: Largest difference (Angstrom) of a neighbour vector that still counts as reproduced.
EXACT_TOLERANCE = 1e-6
#: Unit vectors of an fcc lattice's primitive cell (all three at 60 degrees).
FCC_DIRECTIONS = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]) / math.sqrt(2.0)


@dataclass(frozen=True)
class EmbeddingSettings:
    """What an embedding needs: the ACE cutoff and the ``embed`` config section."""

    cutoff: float
    buffer: float
    max_atoms: int
    min_distance: float

    @classmethod
    def from_config(cls, cutoff: float, embed: Mapping[str, Any]) -> EmbeddingSettings:
        """Settings from ``fit.cutoff`` and the ``embed`` config section."""
        return cls(
            cutoff=float(cutoff),
            buffer=float(embed["buffer"]),
            max_atoms=int(embed["max_atoms"]),
            min_distance=float(embed["min_distance"]),
        )

    @property
    def radius(self) -> float:
        """Radius of the cut sphere around the core atom."""
        return self.cutoff + self.buffer


def minimum_embedding_atoms(radius: float, density: float) -> int:
    """Atoms in a sphere of ``radius`` (Angstrom) at ``density`` (atoms per cubic Angstrom)."""
    return math.ceil(4.0 / 3.0 * math.pi * radius**3 * density)


def _lattice_shifts(cell: np.ndarray, radius: float) -> np.ndarray:
    """Integer cell shifts reaching every image within ``radius`` of a point in the cell."""
    ranges = []
    for axis in range(3):
        # distance between the lattice planes spanned by the two other vectors
        other = np.delete(cell, axis, axis=0)
        normal = np.cross(other[0], other[1])
        spacing = abs(np.dot(cell[axis], normal)) / np.linalg.norm(normal)
        reach = math.ceil(radius / spacing) + 1
        ranges.append(np.arange(-reach, reach + 1))
    grid = np.meshgrid(*ranges, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def cut_sphere(frame: Atoms, core: int, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atoms (periodic images included) within ``radius`` of atom ``core``, nearest first.

    Returns source indices, absolute positions (source position + integer cell shift, so
    relative vectors are exactly those of the frame) and distances from the core.

    Raises:
        EmbeddingError: for a frame that is not periodic along all three axes.
    """
    if not frame.pbc.all():
        raise EmbeddingError("periodic embedding needs a frame periodic along a, b and c")
    cell = np.asarray(frame.cell)
    # MD positions are not wrapped: bring every atom to the image nearest the core first
    fractional = np.linalg.solve(cell.T, (frame.positions - frame.positions[core]).T).T
    nearest = frame.positions - np.floor(fractional + 0.5) @ cell
    offsets = _lattice_shifts(cell, radius) @ cell
    positions = nearest[None, :, :] + offsets[:, None, :]
    distances = np.linalg.norm(positions - frame.positions[core], axis=2)
    shift_index, atom_index = np.nonzero(distances < radius)
    chosen = positions[shift_index, atom_index]
    chosen_distances = distances[shift_index, atom_index]
    order = np.lexsort((atom_index, chosen_distances))
    return atom_index[order], chosen[order], chosen_distances[order]


def _environments(atoms: Atoms, cutoff: float) -> list[np.ndarray]:
    """Per atom, its neighbours within ``cutoff`` as rows (atomic number, dx, dy, dz), sorted."""
    first, second, vectors = neighbor_list("ijD", atoms, cutoff)
    rows = np.column_stack([atoms.numbers[second].astype(float), vectors])
    environments = []
    for index in range(len(atoms)):
        mine = rows[first == index]
        key = np.round(mine, 4)
        environments.append(mine[np.lexsort(key.T[::-1])])
    return environments


def reproduced_atoms(embedded: Atoms, source_index: np.ndarray, frame: Atoms, cutoff: float) -> np.ndarray:
    """True for each embedded atom whose neighbours within ``cutoff`` are its source atom's."""
    source_env = _environments(frame, cutoff)
    embedded_env = _environments(embedded, cutoff)
    exact = np.zeros(len(embedded), dtype=bool)
    for index, source in enumerate(source_index):
        mine, theirs = embedded_env[index], source_env[int(source)]
        exact[index] = mine.shape == theirs.shape and bool(np.all(np.abs(mine - theirs) <= EXACT_TOLERANCE))
    return exact


def _fcc_cell(vector_length: float) -> np.ndarray:
    """An fcc-lattice primitive cell whose shortest lattice vectors are ``vector_length`` long."""
    return FCC_DIRECTIONS * vector_length


def image_distance(radius: float, settings: EmbeddingSettings) -> float:
    """Length of the embedded cell's shortest lattice vectors for a cut sphere of ``radius``.

    Images of the sphere stay outside the core's cutoff sphere (``radius + cutoff``), and
    images of atoms of the core's cutoff sphere stay ``min_distance`` away from one another
    (``2 cutoff + min_distance``), so the close-contact repair never touches that sphere.
    """
    return max(radius, settings.cutoff + settings.min_distance) + settings.cutoff + IMAGE_MARGIN


def _drop_close_contacts(atoms: Atoms, min_distance: float) -> np.ndarray:
    """Keep-mask: nearest-to-core first, an atom is kept unless a kept atom is too close."""
    first, second = neighbor_list("ij", atoms, min_distance)
    keep = np.zeros(len(atoms), dtype=bool)
    for index in range(len(atoms)):  # atoms are ordered by distance from the core
        neighbours = second[first == index]
        keep[index] = not np.any(keep[neighbours])
    return keep


def embed_environment(frame: Atoms, core: int, settings: EmbeddingSettings) -> Atoms:
    """A periodic cell reproducing atom ``core``'s environment in ``frame`` exactly.

    Raises:
        EmbeddingError: when even the core atom's environment cannot be reproduced within
            ``max_atoms`` atoms and ``min_distance`` (too dense, or atoms already too close).
    """
    source_index, positions, distances = cut_sphere(frame, core, settings.radius)
    if len(source_index) > settings.max_atoms:
        # a dense fluctuation: trim the outermost buffer shell; the weight check below tells
        # whether the core still has its whole cutoff sphere
        source_index = source_index[: settings.max_atoms]
        positions = positions[: settings.max_atoms]
        distances = distances[: settings.max_atoms]
    radius = float(distances[-1]) if len(distances) else 0.0
    cell = _fcc_cell(image_distance(radius, settings))
    embedded = Atoms(numbers=frame.numbers[source_index], positions=positions, cell=cell, pbc=True)
    keep = _drop_close_contacts(embedded, settings.min_distance)
    embedded = embedded[keep]
    source_index = source_index[keep]
    exact = reproduced_atoms(embedded, source_index, frame, settings.cutoff)
    if not exact[0]:
        raise EmbeddingError(
            f"atom {core}: its {settings.cutoff} A environment is not reproducible within "
            f"{settings.max_atoms} atoms and min_distance {settings.min_distance} A"
        )
    embedded.arrays["force_weight"] = exact.astype(float)
    embedded.arrays["source_atom"] = source_index.astype(int)
    embedded.info["energy_weight"] = 0.0
    embedded.info["embed_radius"] = radius
    return embedded


def core_gamma(frame: Atoms, core: int) -> float:
    """The core atom's extrapolation grade in the frame (0 when the frame has none)."""
    gamma = frame.arrays.get("gamma")
    return float(gamma[core]) if gamma is not None else 0.0


def embed_selection(
    selected: Sequence[Atoms], settings: EmbeddingSettings, generation: int
) -> tuple[list[Atoms], list[dict[str, Any]]]:
    """Turn selected (frame, ``info['core_atom']``) pairs into next-generation candidates.

    Frames with at most ``max_atoms`` atoms are labelled whole (weights 1, origin unchanged);
    larger ones are embedded (``origin='embed'``). Returns the candidates (one per distinct
    structure) and one report row per selected entry, failures included with the reason.
    """
    candidates: list[Atoms] = []
    report: list[dict[str, Any]] = []
    seen: set[str] = set()
    for frame in selected:
        core = int(frame.info.get("core_atom", int(np.argmax(frame.arrays.get("gamma", [0.0])))))
        row: dict[str, Any] = {"frame_uid": frame.info.get("uid"), "core_atom": core, "n_atoms": len(frame)}
        if len(frame) <= settings.max_atoms:
            candidate = whole_frame(frame, core, generation)
            row["path"] = "whole_frame"
        else:
            try:
                candidate = embed_environment(frame, core, settings)
            except EmbeddingError as error:
                report.append(dict(row, path="embed", status=Status.FAILED, reason=str(error)))
                continue
            tag_structure(candidate, generation=generation, origin="embed", parent_uid=frame.info.get("uid"))
            candidate.info.update(core_atom=core, core_gamma=core_gamma(frame, core))
            row.update(path="embed", exact_atoms=int(candidate.arrays["force_weight"].sum()))
        row.update(uid=candidate.info["uid"], n_candidate_atoms=len(candidate), status=Status.OK, reason="")
        report.append(row)
        if candidate.info["uid"] not in seen:
            seen.add(candidate.info["uid"])
            candidates.append(candidate)
    return candidates, report


def whole_frame(frame: Atoms, core: int, generation: int) -> Atoms:
    """The frame itself as a candidate: all force weights 1, energy weight 1."""
    candidate = frame.copy()
    candidate.calc = None
    candidate.arrays["force_weight"] = np.ones(len(frame))
    candidate.info.update(
        generation=generation, energy_weight=1.0, core_atom=core, core_gamma=core_gamma(frame, core)
    )
    return candidate
