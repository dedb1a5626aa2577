"""The initial pick: farthest-point sampling in averaged-SOAP space beats a random pick."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlip_autopipe.config import load_config
from mlip_autopipe.diversity import (
    farthest_point_sampling,
    mean_nearest_neighbour_distance,
    soap_descriptors,
)
from mlip_autopipe.structures import build_pool


@pytest.fixture(scope="module")
def pool_descriptors(request: pytest.FixtureRequest) -> np.ndarray:
    repo = Path(request.config.rootpath)
    config = load_config(repo / "config" / "emt.yaml", repo / "config" / "schema.yaml")
    # the 60-structure pool of the preset's three alloy compositions (the measured ratios
    # below are for it; the preset itself now adds pure elements and more strains)
    config["structures"].update(composition_step=None, strains=[-0.03, 0.03])
    pool = build_pool(config["structures"], seed=7, elements=config["elements"])
    assert len(pool) == 60
    descriptors = soap_descriptors(pool, config["elements"], config["structures"]["soap"])
    assert descriptors.shape[0] == len(pool)
    return descriptors


def test_soap_rows_are_unit_vectors_and_tell_structures_apart(pool_descriptors: np.ndarray) -> None:
    n_pool = pool_descriptors.shape[0]
    np.testing.assert_allclose(np.linalg.norm(pool_descriptors, axis=1), 1.0)
    distances = np.linalg.norm(pool_descriptors[:, None] - pool_descriptors[None], axis=2)
    assert np.all(distances[np.triu_indices(n_pool, k=1)] > 0)


def nearest_neighbour_distances(descriptors: np.ndarray) -> np.ndarray:
    distances = np.linalg.norm(descriptors[:, None] - descriptors[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    return distances.min(axis=1)


def test_farthest_point_pick_is_more_diverse_than_random_picks(pool_descriptors: np.ndarray) -> None:
    size = 12  # the EMT preset's initial pick
    picked = farthest_point_sampling(pool_descriptors, size)
    assert len(set(picked)) == size and picked[0] == 0
    fps_score = mean_nearest_neighbour_distance(pool_descriptors[picked])
    assert fps_score == pytest.approx(nearest_neighbour_distances(pool_descriptors[picked]).mean())
    rng = np.random.default_rng(0)
    n_pool = len(pool_descriptors)
    random_picks = [pool_descriptors[rng.choice(n_pool, size=size, replace=False)] for _ in range(100)]
    random_scores = [mean_nearest_neighbour_distance(pick) for pick in random_picks]
    # measurably: the mean nearest-neighbour SOAP distance is nearly twice that of a random
    # pick on average, and the closest pair is farther apart than in any of 100 random picks
    assert fps_score > 1.8 * float(np.mean(random_scores))
    closest = nearest_neighbour_distances(pool_descriptors[picked]).min()
    assert closest > max(nearest_neighbour_distances(pick).min() for pick in random_picks)


def test_farthest_point_sampling_is_the_greedy_max_min_rule() -> None:
    points = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [5.0, 0.1], [9.0, 0.0]])
    assert farthest_point_sampling(points, 3) == [0, 2, 3]
    assert farthest_point_sampling(points, 9) == [0, 2, 3, 1, 4]
    assert mean_nearest_neighbour_distance(points[[0, 1]]) == pytest.approx(1.0)
