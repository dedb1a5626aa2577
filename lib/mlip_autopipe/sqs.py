"""Special quasirandom structures (SQS) and their cluster correlations.

sqsgenerator searches decorations of a lattice whose pair short-range order vanishes on the
first coordination shells; this module checks every result independently and records how far
its pair and triplet statistics are from those of the ideal random alloy.

Correlations are measured as cluster decoration frequencies over the infinite periodic crystal
(every periodic image counts): for the ordered pairs of shell ``s`` the frequency of species
``(a, b)`` is compared with ``x_a x_b`` of the random alloy, and for the ordered triangles of
one shape (edge shells) the frequency of ``(a, b, c)`` with ``x_a x_b x_c``. The deviation is
the largest absolute difference. For a binary alloy with spins +-1 the usual pair correlation
function deviates by exactly four times the pair deviation here, so both vanish together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.neighborlist import neighbor_list

from mlip_autopipe.errors import StructureError

#: Distances closer than this (Angstrom) belong to the same coordination shell.
SHELL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ClusterGeometry:
    """The pairs and triangles of a lattice, independent of its decoration.

    Attributes:
        shell_radii: distance of each coordination shell, nearest first.
        pair_i, pair_j: site indices of every ordered pair (all periodic images).
        pair_shell: shell index (0 = nearest neighbours) of each pair.
        triplet_sites: (n, 3) site indices of every ordered triangle.
        triplet_shape: shape index of each triangle (its three edge shells).
    """

    shell_radii: np.ndarray
    pair_i: np.ndarray
    pair_j: np.ndarray
    pair_shell: np.ndarray
    triplet_sites: np.ndarray
    triplet_shape: np.ndarray

    @property
    def n_shapes(self) -> int:
        """Number of distinct triangle shapes."""
        return int(self.triplet_shape.max()) + 1 if len(self.triplet_shape) else 0


def coordination_shells(atoms: Atoms, n_shells: int) -> np.ndarray:
    """Radii of the first ``n_shells`` coordination shells of a periodic lattice."""
    cutoff = 1.5 * _nearest_distance(atoms)
    while True:
        distances = np.sort(neighbor_list("d", atoms, cutoff))
        radii = _cluster_distances(distances)
        # the last shell found might be cut in half by the cutoff: ask for one more
        if len(radii) > n_shells:
            return radii[:n_shells]
        cutoff *= 1.5


def _nearest_distance(atoms: Atoms) -> float:
    volume_per_atom = abs(atoms.cell.volume) / len(atoms)
    cutoff = 2.0 * volume_per_atom ** (1 / 3)
    while True:
        distances = neighbor_list("d", atoms, cutoff)
        if len(distances):
            return float(distances.min())
        cutoff *= 1.5


def _cluster_distances(sorted_distances: np.ndarray) -> np.ndarray:
    if not len(sorted_distances):
        return np.empty(0)
    breaks = np.flatnonzero(np.diff(sorted_distances) > SHELL_TOLERANCE) + 1
    return np.array([group[0] for group in np.split(sorted_distances, breaks)])


def cluster_geometry(atoms: Atoms, pair_shells: int, triplet_shells: int) -> ClusterGeometry:
    """Enumerate the pairs up to ``pair_shells`` and triangles with edges up to ``triplet_shells``."""
    radii = coordination_shells(atoms, max(pair_shells, triplet_shells))
    cutoff = radii[-1] + SHELL_TOLERANCE
    first, second, vectors = neighbor_list("ijD", atoms, cutoff)
    lengths = np.linalg.norm(vectors, axis=1)
    shells = np.searchsorted(radii + SHELL_TOLERANCE, lengths)
    in_pairs = shells < pair_shells
    sites, shapes = _triangles(first, second, vectors, shells, triplet_shells, radii)
    return ClusterGeometry(
        shell_radii=radii[:pair_shells],
        pair_i=first[in_pairs],
        pair_j=second[in_pairs],
        pair_shell=shells[in_pairs],
        triplet_sites=sites,
        triplet_shape=shapes,
    )


def _triangles(
    first: np.ndarray,
    second: np.ndarray,
    vectors: np.ndarray,
    shells: np.ndarray,
    triplet_shells: int,
    radii: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Ordered triangles (i, j, k) whose three edges lie within the first ``triplet_shells``."""
    if triplet_shells < 1:
        return np.empty((0, 3), dtype=int), np.empty(0, dtype=int)
    keep = shells < triplet_shells
    first, second, vectors, shells = first[keep], second[keep], vectors[keep], shells[keep]
    rows: list[np.ndarray] = []
    for site in np.unique(first):
        mine = np.flatnonzero(first == site)
        edge = vectors[mine][None, :, :] - vectors[mine][:, None, :]
        lengths = np.linalg.norm(edge, axis=2)
        edge_shell = np.searchsorted(radii + SHELL_TOLERANCE, lengths)
        a, b = np.nonzero((edge_shell < triplet_shells) & (lengths > SHELL_TOLERANCE))
        rows.append(
            np.column_stack(
                [
                    np.full(len(a), site),
                    second[mine[a]],
                    second[mine[b]],
                    shells[mine[a]],
                    shells[mine[b]],
                    edge_shell[a, b],
                ]
            )
        )
    table = np.concatenate(rows) if rows else np.empty((0, 6), dtype=int)
    _, shapes = np.unique(table[:, 3:], axis=0, return_inverse=True)
    return table[:, :3].astype(int), shapes.reshape(-1).astype(int)


@dataclass(frozen=True)
class CorrelationDeviation:
    """How far a decoration is from the random alloy (see the module docstring)."""

    pair_by_shell: tuple[float, ...]
    triplet: float

    @property
    def pair(self) -> float:
        """Largest pair deviation over the shells considered."""
        return max(self.pair_by_shell, default=0.0)


def correlation_deviation(
    geometry: ClusterGeometry, numbers: Sequence[int] | np.ndarray
) -> CorrelationDeviation:
    """Pair (per shell) and triplet deviations of a decoration from the random alloy."""
    species, codes = np.unique(np.asarray(numbers), return_inverse=True)
    codes = codes.reshape(-1)
    n_species = len(species)
    fractions = np.bincount(codes, minlength=n_species) / len(codes)

    n_shells = len(geometry.shell_radii)
    pair_codes = codes[geometry.pair_i] * n_species + codes[geometry.pair_j]
    pair_counts = np.bincount(
        geometry.pair_shell * n_species**2 + pair_codes, minlength=n_shells * n_species**2
    ).reshape(n_shells, n_species**2)
    pair_random = np.outer(fractions, fractions).reshape(-1)
    pair_by_shell = _max_frequency_deviation(pair_counts, pair_random)

    triplet = 0.0
    if geometry.n_shapes:
        sites = codes[geometry.triplet_sites]
        triplet_codes = (sites[:, 0] * n_species + sites[:, 1]) * n_species + sites[:, 2]
        triplet_counts = np.bincount(
            geometry.triplet_shape * n_species**3 + triplet_codes,
            minlength=geometry.n_shapes * n_species**3,
        ).reshape(geometry.n_shapes, n_species**3)
        triplet_random = np.einsum("a,b,c->abc", fractions, fractions, fractions).reshape(-1)
        triplet = max(_max_frequency_deviation(triplet_counts, triplet_random), default=0.0)
    return CorrelationDeviation(pair_by_shell=tuple(pair_by_shell), triplet=float(triplet))


def _max_frequency_deviation(counts: np.ndarray, random: np.ndarray) -> list[float]:
    totals = counts.sum(axis=1, keepdims=True)
    frequencies = counts / np.maximum(totals, 1)
    # round away float noise so a perfect shell reads exactly 0
    return [float(round(value, 12)) for value in np.abs(frequencies - random).max(axis=1)]


def generate_sqs(
    template: Atoms,
    counts: Mapping[str, int],
    *,
    n_structures: int,
    seed: int,
    iterations: int,
    pair_shells: int,
    triplet_shells: int,
) -> list[Atoms]:
    """Decorate ``template`` with exactly ``counts`` atoms per element, as SQS.

    sqsgenerator (one thread, seeded, so the search is reproducible) finds the decorations
    of lowest pair short-range order on the first ``pair_shells`` shells; among them, those
    with the smallest pair and then triplet deviations (measured here) are kept, distinct
    decorations only. Each returned cell records ``sqs_pair_deviation``,
    ``sqs_pair_deviation_by_shell``, ``sqs_triplet_deviation`` and the shells considered in
    ``atoms.info``.

    Raises:
        StructureError: sqsgenerator rejects the set-up or returns nothing.
    """
    present = {element: count for element, count in counts.items() if count > 0}
    if sum(present.values()) != len(template):
        raise StructureError(f"{sum(present.values())} atoms requested for a {len(template)}-site cell")
    geometry = cluster_geometry(template, pair_shells, triplet_shells)
    if len(present) == 1:
        decorations = [np.full(len(template), atomic_numbers[next(iter(present))])]
    else:
        decorations = _search_decorations(template, present, seed, iterations, pair_shells, n_structures)

    # sqsgenerator's set of results is reproducible but not its order within one objective
    # value: rank by the deviations measured here, then by a seeded hash of the decoration
    scored = {}
    for numbers in decorations:
        key = np.asarray(numbers, dtype=np.int64).tobytes()
        if key not in scored:
            deviation = correlation_deviation(geometry, numbers)
            tie_break = hashlib.sha256(str(seed).encode() + key).hexdigest()
            scored[key] = (deviation.pair, deviation.triplet, tie_break, numbers, deviation)

    chosen: list[Atoms] = []
    for _, _, _, numbers, deviation in sorted(scored.values(), key=lambda item: item[:3]):
        atoms = template.copy()
        atoms.numbers = np.asarray(numbers)
        atoms.info.update(
            sqs_pair_deviation=deviation.pair,
            sqs_pair_deviation_by_shell=np.array(deviation.pair_by_shell),
            sqs_triplet_deviation=deviation.triplet,
            sqs_pair_shells=int(pair_shells),
            sqs_triplet_shells=int(triplet_shells),
        )
        chosen.append(atoms)
        if len(chosen) == n_structures:
            break
    return chosen


def _search_decorations(
    template: Atoms,
    counts: Mapping[str, int],
    seed: int,
    iterations: int,
    pair_shells: int,
    n_structures: int,
) -> list[np.ndarray]:
    """Decorations of sqsgenerator's best objective values, at least ``n_structures`` if found."""
    import sqsgenerator

    parsed = _parse_setup(template, counts, seed, iterations, pair_shells)
    pack = sqsgenerator.optimize(parsed)
    decorations: list[np.ndarray] = []
    for _, results in sorted(pack, key=lambda group: group[0]):
        decorations.extend(_numbers_on_template(template, result.structure()) for result in results)
        if len(decorations) >= n_structures:
            break
    if not decorations:
        raise StructureError("sqsgenerator returned no structure")
    return decorations


def check_setup(template: Atoms, counts: Mapping[str, int], pair_shells: int) -> None:
    """Let sqsgenerator parse the SQS set-up of ``template`` without searching (milliseconds).

    Raises:
        StructureError: the cell is too small for ``pair_shells`` shells, or another set-up error.
    """
    present = {element: count for element, count in counts.items() if count > 0}
    if len(present) > 1:
        _parse_setup(template, present, 0, 1, pair_shells)


def _parse_setup(
    template: Atoms, counts: Mapping[str, int], seed: int, iterations: int, pair_shells: int
) -> Any:
    """sqsgenerator's parsed configuration; its set-up errors as :class:`StructureError`."""
    import sqsgenerator

    settings = {
        "structure": {
            "lattice": np.asarray(template.cell).tolist(),
            "coords": template.get_scaled_positions(wrap=True).tolist(),
            "species": [int(number) for number in template.numbers],
        },
        "composition": {element: int(count) for element, count in counts.items()},
        "iterations": int(iterations),
        # sqsgenerator requires integer shell keys; weights fall off with distance
        "shell_weights": {shell: 1.0 / shell for shell in range(1, pair_shells + 1)},
        "seed": [int(seed)],
        "thread_config": [1],
    }
    try:
        parsed = sqsgenerator.parse_config(settings)
    except ValueError as error:  # e.g. a cell too small for any shell histogram
        raise StructureError(f"sqsgenerator rejected the SQS set-up: {error}") from error
    # a bad set-up comes back as a ParseError object rather than an exception
    if type(parsed).__name__ == "ParseError":
        raise StructureError(f"sqsgenerator rejected the SQS set-up: {parsed.key}: {parsed.msg}")
    return parsed


def _numbers_on_template(template: Atoms, structure: object) -> np.ndarray:
    """Atomic numbers of an sqsgenerator result, in the template's site order."""
    species = np.asarray(structure.species)  # type: ignore[attr-defined]
    coords = np.asarray(structure.frac_coords)  # type: ignore[attr-defined]
    if len(species) == len(template):
        reference = template.get_scaled_positions(wrap=True)
        if np.allclose(coords, reference, atol=1e-6):
            return species
    # sqsgenerator may reorder sites: match them by fractional position
    reference = template.get_scaled_positions(wrap=True)
    difference = coords[None, :, :] - reference[:, None, :]
    difference -= np.round(difference)
    match = np.argmin(np.linalg.norm(difference, axis=2), axis=1)
    if len(set(match.tolist())) != len(template):
        raise StructureError("sqsgenerator returned sites that do not match the lattice")
    return species[match]
