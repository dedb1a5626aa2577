"""Surrogates: a tiny MACE committee trained here on EMT data, CHGNet offline, pre-screening and
the distillation training set."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipe.config import check_config, section_defaults, with_defaults
from mlip_autopipe.distillation import align_energies, distillation_set
from mlip_autopipe.errors import ConfigError
from mlip_autopipe.finetune import train_mace
from mlip_autopipe.fit import reference_energies
from mlip_autopipe.labelling import label_candidate
from mlip_autopipe.oracles import EMTOracle, oracle_from_config
from mlip_autopipe.oracles.surrogates import MACEOracle
from mlip_autopipe.prescreen import screen_candidates

#: The schema's pre-screen thresholds.
SCREEN = section_defaults("surrogate")["prescreen"]


def cuni_cell(seed: int, rattle: float, strain: float = 0.0) -> Atoms:
    """An 8-atom fcc Cu-Ni cell (random decoration), strained and rattled."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.58 * (1 + strain), cubic=True).repeat((2, 1, 1))
    symbols = np.where(rng.random(len(atoms)) < 0.5, "Cu", "Ni")
    atoms.set_chemical_symbols(list(symbols))
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    return atoms


@pytest.fixture(scope="session")
def mace_committee(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two tiny MACE models (seeds 1, 2) trained with mace_run_train on 40 EMT Cu-Ni cells."""
    rng = np.random.default_rng(0)
    data = [
        EMTOracle().label(cuni_cell(seed, rng.choice([0.03, 0.08, 0.15]), rng.uniform(-0.03, 0.03)))
        for seed in range(40)
    ]
    folder = tmp_path_factory.mktemp("mace")
    return [train_mace(data, folder, name=f"model{seed}", seed=seed) for seed in (1, 2)]


def force_rmse(atoms: Atoms, reference: Atoms) -> float:
    return float(np.sqrt(np.mean((atoms.get_forces() - reference.get_forces()) ** 2)))


def test_tiny_mace_labels_like_emt_as_an_oracle(mace_committee: list[Path], tmp_path: Path) -> None:
    oracle = oracle_from_config(
        with_defaults({"oracle": {"kind": "mace", "mace": {"model_paths": [str(mace_committee[0])]}}})
    )
    cell = cuni_cell(100, 0.1)
    labelled = label_candidate(cell, oracle, cache_dir=tmp_path)
    emt = EMTOracle().label(cell)
    assert labelled.info["label_status"] == "ok" and labelled.info["oracle"] == "mace"
    assert labelled.get_stress().shape == (6,)
    # the model learnt EMT: far closer than the forces themselves (an untrained model is not)
    assert force_rmse(labelled, emt) < 0.5 * float(np.sqrt(np.mean(emt.get_forces() ** 2)))
    assert labelled.info["surrogate_force_std"] == 0.0  # one model: no committee spread
    again = label_candidate(cell, oracle, cache_dir=tmp_path)
    assert again.info["from_cache"] and np.allclose(again.get_forces(), labelled.get_forces())
    other = MACEOracle([mace_committee[1]])
    assert other.settings_hash() != oracle.settings_hash()  # the cache key follows the model file


def test_committee_spread_is_larger_far_from_equilibrium(mace_committee: list[Path]) -> None:
    committee = MACEOracle(mace_committee)
    near = [committee.label(cuni_cell(200 + seed, 0.02)) for seed in range(3)]
    far = [committee.label(cuni_cell(200 + seed, 0.3)) for seed in range(3)]
    near_spread = max(atoms.info["surrogate_force_std"] for atoms in near)
    far_spread = min(atoms.info["surrogate_force_std"] for atoms in far)
    assert 0 < near_spread < far_spread
    assert all(atoms.info["surrogate_energy_std"] >= 0 for atoms in near + far)


def test_mace_prescreen_rejects_close_pairs_duplicates_and_absurd_forces(mace_committee: list[Path]) -> None:
    committee = MACEOracle(mace_committee)
    good = cuni_cell(300, 0.05)
    shifted = good.copy()
    shifted.positions += 1e-5  # another uid, the same structure to any model
    close = cuni_cell(301, 0.05)
    close.positions[1] = close.positions[0] + [0.9, 0.0, 0.0]
    hot = cuni_cell(302, 0.25)  # no pair below 1.5 A, forces of ~10-20 eV/A (EMT)
    candidates = [good, shifted, close, hot]
    for index, atoms in enumerate(candidates):
        atoms.info["uid"] = f"{index:016x}"
    kept, ledger = screen_candidates(candidates, committee, {**SCREEN, "max_force": 3.0, "min_distance": 1.5})
    checks = {row["uid"]: row["check"] for row in ledger}
    assert [atoms.info["uid"] for atoms in kept] == [good.info["uid"]]
    assert checks[shifted.info["uid"]] == "duplicate"
    assert checks[close.info["uid"]] == "too_close"
    assert checks[hot.info["uid"]] == "surrogate_force"
    assert all(row["reason"] for row in ledger) and kept[0].info["surrogate_force_std"] > 0


def test_prescreen_rejects_absurd_energy_and_keeps_distinct_cells() -> None:
    # any oracle can screen: EMT here makes the energy scale exact
    distinct = [cuni_cell(seed, 0.05) for seed in range(6)]
    squeezed = cuni_cell(9, 0.0, strain=-0.22)  # ~4 eV/atom above equilibrium (EMT)
    kept, ledger = screen_candidates(distinct + [squeezed], EMTOracle(), {**SCREEN, "min_distance": 1.5})
    assert len(kept) == 6
    rejected = [row for row in ledger if row["status"] == "rejected"]
    assert [row["check"] for row in rejected] == ["surrogate_energy"]
    assert "above the batch median" in rejected[0]["reason"]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_chgnet_labels_a_cell_offline(no_network: None) -> None:
    oracle = oracle_from_config(with_defaults({"oracle": {"kind": "chgnet", "chgnet": {"model": "0.3.0"}}}))
    cell = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    cell.positions += np.random.default_rng(0).normal(scale=0.1, size=cell.positions.shape)
    labelled = oracle.label(cell)
    emt = EMTOracle().label(cell)
    assert np.isfinite(labelled.get_potential_energy()) and labelled.get_stress().shape == (6,)
    # a universal potential sees the same physics: forces point the way EMT's do
    a, b = labelled.get_forces().ravel(), emt.get_forces().ravel()
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.7


def test_missing_mace_model_file_is_a_config_error(emt_config: dict[str, Any]) -> None:
    emt_config["oracle"] = {**emt_config["oracle"], "kind": "mace"}
    emt_config["oracle"]["mace"] = {"model_paths": ["nowhere/model.model"], "default_dtype": "float64"}
    with pytest.raises(ConfigError, match=r"oracle\.mace\.model_paths.*nowhere/model\.model"):
        check_config(emt_config)
    emt_config["oracle"]["kind"] = "emt"
    emt_config["surrogate"]["kind"] = "mace"
    check_config(emt_config)  # an unused surrogate needs no model
    emt_config["surrogate"]["prescreen"]["enabled"] = True
    with pytest.raises(ConfigError, match=r"surrogate\.mace\.model_paths"):
        check_config(emt_config)


def test_distillation_moves_surrogate_energies_onto_the_oracle_scale() -> None:
    strains = [-0.02, 0.0, 0.02]
    oracle_data = [EMTOracle().label(cuni_cell(seed, 0.05, strain)) for seed, strain in enumerate(strains)]
    pool = [EMTOracle().label(cuni_cell(10 + seed, 0.1)) for seed in range(6)]
    offsets = {"Cu": 3.0, "Ni": -5.0}  # a surrogate whose per-element energies are off
    shifted = []
    for atoms in pool:
        moved = atoms.copy()
        moved.calc = atoms.calc
        moved.calc.results["energy"] += sum(offsets[s] for s in atoms.get_chemical_symbols())
        shifted.append(moved)
    references = reference_energies(pool, ["Cu", "Ni"])
    aligned = align_energies(shifted, references, ["Cu", "Ni"])
    for atoms, truth in zip(aligned, pool, strict=True):
        assert atoms.get_potential_energy() == pytest.approx(truth.get_potential_energy(), abs=1e-9)
    for index, atoms in enumerate(oracle_data + shifted):
        atoms.info["uid"] = f"{index:016x}"
    shifted[0].info["uid"] = oracle_data[0].info["uid"]  # already labelled by the oracle
    held_out = {shifted[1].info["uid"]}
    training = distillation_set(
        oracle_data, shifted, references, ["Cu", "Ni"], oracle_weight=10.0, exclude_uids=held_out
    )
    sources = [atoms.info["label_source"] for atoms in training]
    assert sources == ["oracle"] * 3 + ["surrogate"] * 4
    assert [atoms.info["energy_weight"] for atoms in training] == [10.0] * 3 + [1.0] * 4
    assert np.all(training[0].arrays["force_weight"] == 10.0)
