"""A diverse subset of structures: averaged SOAP descriptors and farthest-point sampling.

Distances are Euclidean between unit-normalised averaged SOAP vectors, i.e. the usual SOAP
kernel distance ``sqrt(2 - 2 k)`` with ``k`` the cosine similarity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms

#: SOAP settings when the config gives none (dscribe's names).
DEFAULT_SOAP = {"r_cut": 5.0, "n_max": 6, "l_max": 4, "sigma": 0.5}


def soap_descriptors(
    images: Sequence[Atoms], species: Sequence[str], settings: Mapping[str, Any] | None = None
) -> np.ndarray:
    """Averaged (``inner``) periodic SOAP of each structure, unit-normalised, one row each."""
    from dscribe.descriptors import SOAP

    options = {**DEFAULT_SOAP, **(settings or {})}
    soap = SOAP(
        species=sorted(set(species)),
        periodic=True,
        r_cut=float(options["r_cut"]),
        n_max=int(options["n_max"]),
        l_max=int(options["l_max"]),
        sigma=float(options["sigma"]),
        average="inner",
    )
    vectors = np.atleast_2d(np.asarray(soap.create(list(images), n_jobs=1), dtype=float))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.where(norms > 0, norms, 1.0))


def farthest_point_sampling(descriptors: np.ndarray, count: int, start: int = 0) -> list[int]:
    """Greedy max-min selection of ``count`` rows, beginning at row ``start``.

    Each next pick is the row farthest from everything picked so far; ties go to the
    lower index, so the result is deterministic.
    """
    n_rows = len(descriptors)
    count = min(count, n_rows)
    if count <= 0:
        return []
    picked = [start]
    nearest = np.linalg.norm(descriptors - descriptors[start], axis=1)
    while len(picked) < count:
        candidate = int(np.argmax(nearest))
        picked.append(candidate)
        nearest = np.minimum(nearest, np.linalg.norm(descriptors - descriptors[candidate], axis=1))
    return picked


def mean_nearest_neighbour_distance(descriptors: np.ndarray) -> float:
    """Mean over rows of the distance to the closest other row: a diversity score."""
    if len(descriptors) < 2:
        return 0.0
    difference = descriptors[:, None, :] - descriptors[None, :, :]
    distances = np.linalg.norm(difference, axis=2)
    np.fill_diagonal(distances, np.inf)
    return float(distances.min(axis=1).mean())
