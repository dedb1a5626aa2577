"""Labelling: EMT labels, the label cache, and failures kept in the ledger."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT

from mlip_autopipe.config import with_defaults
from mlip_autopipe.data import read_structures, tag_structure, write_structures
from mlip_autopipe.errors import LabellingError
from mlip_autopipe.labelling import gather_labels, label_candidate
from mlip_autopipe.oracles import EMTOracle, oracle_from_config


class CountingOracle:
    """EMT that counts its calls and can be told to fail."""

    name = "counting-emt"

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def settings_hash(self) -> str:
        return "counting"

    def label(self, atoms: Atoms) -> Atoms:
        self.calls += 1
        if self.fail:
            raise LabellingError("SCF did not converge (simulated)")
        return EMTOracle().label(atoms)


def test_emt_oracle_equals_a_direct_emt_calculation(cuni_cell: Atoms) -> None:
    labelled = oracle_from_config(with_defaults()).label(cuni_cell)
    direct = cuni_cell.copy()
    direct.calc = EMT()
    assert labelled.get_potential_energy() == pytest.approx(direct.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(labelled.get_forces(), direct.get_forces(), atol=1e-10)
    np.testing.assert_allclose(labelled.get_stress(), direct.get_stress(), atol=1e-12)
    assert np.abs(labelled.get_forces()).max() > 1e-3


def test_cache_reuses_labels_with_same_uid_and_settings(tmp_path: Path, cuni_cell: Atoms) -> None:
    oracle = CountingOracle()
    first = label_candidate(tag_structure(cuni_cell.copy(), generation=0, origin="alloy"), oracle, tmp_path)
    again = label_candidate(tag_structure(cuni_cell.copy(), generation=4, origin="md"), oracle, tmp_path)
    assert oracle.calls == 1
    assert again.info["from_cache"] and not first.info["from_cache"]
    assert again.info["generation"] == 4
    assert again.get_potential_energy() == pytest.approx(first.get_potential_energy())
    moved = cuni_cell.copy()
    moved.positions[0] += 0.01
    label_candidate(tag_structure(moved, generation=0, origin="rattle"), oracle, tmp_path)
    assert oracle.calls == 2


def test_failures_are_ledgered_not_dropped(tmp_path: Path, cuni_cell: Atoms) -> None:
    good = label_candidate(tag_structure(cuni_cell.copy(), generation=0, origin="alloy"), CountingOracle())
    bad_input = cuni_cell.copy()
    bad_input.positions[0] += 0.2
    bad = label_candidate(tag_structure(bad_input, generation=0, origin="rattle"), CountingOracle(fail=True))
    assert bad.info["label_status"] == "failed" and bad.calc is None
    write_structures(tmp_path / "a.extxyz", good)
    write_structures(tmp_path / "b.extxyz", bad)
    labelled, ledger = gather_labels([tmp_path / "a.extxyz", tmp_path / "b.extxyz"])
    assert len(labelled) == 1 and len(ledger) == 2
    failed = [entry for entry in ledger if entry["status"] == "failed"]
    assert failed[0]["uid"] == bad.info["uid"]
    assert "SCF did not converge" in failed[0]["reason"]


class VersionedOracle(CountingOracle):
    """EMT labels that say which build and ladder rung made them, as the pw.x oracle's do."""

    def label(self, atoms: Atoms) -> Atoms:
        labelled = super().label(atoms)
        labelled.info.update(qe_version="7.2", recovery_rung=3)
        return labelled


def test_a_cache_hit_keeps_the_version_and_rung_of_the_run_that_made_the_label(
    tmp_path: Path, cuni_cell: Atoms
) -> None:
    oracle = VersionedOracle()
    label_candidate(tag_structure(cuni_cell.copy(), generation=0, origin="alloy"), oracle, tmp_path)
    again = label_candidate(tag_structure(cuni_cell.copy(), generation=1, origin="md"), oracle, tmp_path)
    assert oracle.calls == 1 and again.info["from_cache"]
    # a version stays a string through the extxyz round trip ("7.2" must not become 7.2)
    assert again.info["qe_version"] == "7.2" and again.info["recovery_rung"] == 3
    write_structures(tmp_path / "label.extxyz", again)
    _, (row,) = gather_labels([tmp_path / "label.extxyz"])
    assert row["recovery_rung"] == 3


def test_gather_labels_with_an_all_digit_parent_uid_writes_a_json_ledger(
    tmp_path: Path, cuni_cell: Atoms
) -> None:
    candidate = tag_structure(cuni_cell.copy(), generation=1, origin="md", parent_uid="0123456789012345")
    candidate.info["uid"] = "9876543210123456"
    write_structures(tmp_path / "candidate.extxyz", candidate)
    (read_back,) = read_structures(tmp_path / "candidate.extxyz")
    labelled = label_candidate(read_back, CountingOracle(), tmp_path / "cache")
    write_structures(tmp_path / "label.extxyz", labelled)
    structures, ledger = gather_labels([tmp_path / "label.extxyz"])
    row = json.loads(json.dumps(ledger))[0]
    assert (row["uid"], row["parent_uid"], row["status"]) == ("9876543210123456", "0123456789012345", "ok")
    assert structures[0].info["parent_uid"] == "0123456789012345"
