"""Surrogate MD for the distillation pool (distillation step 4): ASE Langevin with the
surrogate's calculator from the exploration policy's start cells; a tiny MACE committee trained
from scratch on EMT labels is the surrogate, so frames have a committee spread to route on."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipe.config import section_defaults
from mlip_autopipe.data import structure_uid
from mlip_autopipe.finetune import train_mace
from mlip_autopipe.oracles import EMTOracle
from mlip_autopipe.oracles.surrogates import MACEOracle
from mlip_autopipe.surrogate_md import surrogate_md, surrogate_md_starts

ELEMENTS = ["Cu", "Ni"]


def cuni_cell(seed: int, rattle: float = 0.0) -> Atoms:
    """An 8-atom fcc Cu-Ni cell (random decoration, marked as an SQS cell of the pool)."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.58, cubic=True).repeat((2, 1, 1))
    atoms.set_chemical_symbols(list(np.where(rng.random(len(atoms)) < 0.5, "Cu", "Ni")))
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    atoms.info.update(uid=structure_uid(atoms), origin="sqs")
    return atoms


@pytest.fixture(scope="module")
def committee(tmp_path_factory: pytest.TempPathFactory) -> MACEOracle:
    """Two tiny MACE models (seeds 0 and 1) trained for a few epochs on 12 EMT-labelled cells."""
    folder = tmp_path_factory.mktemp("committee")
    labels = [EMTOracle().label(cuni_cell(seed, rattle=0.1)) for seed in range(12)]
    settings = {"max_num_epochs": 3, "num_channels": 8, "r_max": 4.0, "batch_size": 4, "lr": 0.01}
    models = [train_mace(labels, folder / f"m{seed}", settings=settings, seed=seed) for seed in (0, 1)]
    return MACEOracle(models, key="surrogate.mace.model_paths")


def md_settings(**values: Any) -> dict[str, Any]:
    return {**section_defaults("surrogate")["distillation"]["md"], **values}


def explore_section() -> dict[str, Any]:
    explore = section_defaults("explore")
    explore["policy"] = {**explore["policy"], "scenarios": ["bulk", "vacancy", "compression"]}
    return explore


@pytest.mark.slow
def test_surrogate_md_samples_the_policys_scenarios_and_routes_uncertain_frames(
    committee: MACEOracle,
) -> None:
    structures = section_defaults(
        "structures", {"compositions": [{"Cu": 0.5, "Ni": 0.5}], "supercell": [2, 1, 1]}
    )
    explore = explore_section()
    pool = [cuni_cell(seed) for seed in (100, 101)]
    starts = surrogate_md_starts(ELEMENTS, structures, explore, pool, seed=3)
    assert [run.scenario for run, _ in starts] == ["bulk", "vacancy", "compression"]
    assert len(starts[1][1]) == len(pool[0]) - 1  # one atom removed
    assert starts[2][1].get_volume() < 0.99 * pool[0].get_volume()  # strained by -P/B
    md = md_settings(steps=40, sample_interval=10, max_force_std=1e9, max_uncertain=100)
    trusted = surrogate_md(starts, committee, md, explore, seed=0, generation=1)
    # 3 runs x 4 samples, all pseudo-labelled: nothing is above an infinite spread
    assert len(trusted.pool) == 12 and not trusted.uncertain
    assert {frame.info["scenario"] for frame in trusted.pool} == {"bulk", "vacancy", "compression"}
    assert {frame.info["md_step"] for frame in trusted.pool} == {10, 20, 30, 40}
    assert trusted.summary()["pool_per_scenario"] == {"bulk": 4, "vacancy": 4, "compression": 4}
    emt = EMTOracle()
    for frame in trusted.pool:
        # the labels are the committee's (mean) on the MD frame (stored positions rounded to
        # 1e-8 A), not the oracle's
        again = committee.label(frame)
        assert frame.get_potential_energy() == pytest.approx(again.get_potential_energy(), abs=1e-5)
        np.testing.assert_allclose(frame.get_forces(), again.get_forces(), atol=1e-5)
        assert frame.info["surrogate_force_std"] == pytest.approx(again.info["surrogate_force_std"], abs=1e-5)
        assert np.abs(frame.get_forces() - emt.label(frame).get_forces()).max() > 1e-3
    # tagged as surrogate MD frames of this generation
    assert all(frame.info["origin"] == "surrogate_md" for frame in trusted.pool)
    assert all(frame.info["generation"] == 1 for frame in trusted.pool)
    # the same runs (same seeds) with the threshold at the median spread: the frames above it
    # go to the oracle queue unlabelled, the rest to the pool
    spreads = {frame.info["uid"]: float(frame.info["surrogate_force_std"]) for frame in trusted.pool}
    threshold = float(np.median(list(spreads.values())))
    routed = surrogate_md(
        starts, committee, md_settings(**{**md, "max_force_std": threshold}), explore, seed=0, generation=1
    )
    above = {uid for uid, spread in spreads.items() if spread > threshold}
    assert above and {frame.info["uid"] for frame in routed.uncertain} == above
    assert {frame.info["uid"] for frame in routed.pool} == set(spreads) - above
    assert all(frame.calc is None for frame in routed.uncertain)
    assert routed.summary()["n_uncertain"] == len(above)
    # at most max_uncertain go to the oracle, the largest spread first
    capped = surrogate_md(
        starts,
        committee,
        md_settings(**{**md, "max_force_std": threshold, "max_uncertain": 2}),
        explore,
        seed=0,
        generation=1,
    )
    largest = sorted(above, key=lambda uid: -spreads[uid])[:2]
    assert [frame.info["uid"] for frame in capped.uncertain] == largest
