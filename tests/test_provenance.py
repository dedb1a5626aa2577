"""The provenance database: one row per candidate (labelled or failed), keyed by (uid, oracle
settings hash), idempotent re-export, fits in the metadata; SQLite and a real PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.db import connect
from postgres_server import postgres_server

from mlip_autopipe.data import structure_uid, write_structures
from mlip_autopipe.errors import LabellingError
from mlip_autopipe.labelling import gather_labels, label_candidate
from mlip_autopipe.oracles import EMTOracle
from mlip_autopipe.provenance import count_rows, update_database


class FailingOracle(EMTOracle):
    """EMT that fails the way pw.x does after a recovery ladder (history of two attempts)."""

    def label(self, atoms: Atoms) -> Atoms:
        history = [{"rung": 0, "reason": "SCF not converged", "seconds": 1.5}, {"rung": 1, "seconds": 2.0}]
        raise LabellingError(
            "SCF did not converge after 2 attempts", category="scf_not_converged", history=history
        )


def make_generation(run_dir: Path, generation: int, cells: list[Atoms], failing: int = 0) -> list[dict]:
    """A gathered generation as the workflow writes it: label files, ledger, fit metrics."""
    folder = run_dir / "results" / f"gen_{generation:03d}"
    paths = []
    for index, cell in enumerate(cells):
        cell.info.update(uid=structure_uid(cell), origin="rattle" if index else "sqs", generation=generation)
        oracle = FailingOracle() if index < failing else EMTOracle()
        labelled = label_candidate(cell, oracle)
        path = folder / "label" / f"{cell.info['uid']}.extxyz"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_structures(path, labelled)
        paths.append(path)
    _, ledger = gather_labels(paths)
    (folder / "ledger.json").write_text(json.dumps(ledger))
    (folder / "fit").mkdir()
    (folder / "fit" / "metrics.json").write_text(
        json.dumps({"test": {"energy_rmse_mev_per_atom": 1.0 + generation}})
    )
    (folder / "fit" / "potential.yaml").write_text(f"potential of generation {generation}\n")
    return ledger


@pytest.fixture
def run_dir(tmp_path: Path, cuni_cell: Atoms) -> Path:
    rng = np.random.default_rng(3)
    cells = []
    for _ in range(5):
        cell = cuni_cell.copy()
        cell.positions += rng.normal(0.0, 0.05, cell.positions.shape)
        cells.append(cell)
    make_generation(tmp_path, 0, cells[:3], failing=1)
    make_generation(tmp_path, 1, cells[3:])
    return tmp_path


def ledger_count(run_dir: Path, generation: int, status: str | None = None) -> int:
    ledger = json.loads((run_dir / "results" / f"gen_{generation:03d}" / "ledger.json").read_text())
    return sum(status is None or entry["status"] == status for entry in ledger)


def check_database(url: str, run_dir: Path) -> None:
    """Row counts equal ledger counts; a failure keeps its class and attempts; re-export is
    idempotent; the fits carry the potential's hash."""
    summary = update_database(url, run_dir)
    assert summary["rows"] == {"gen_000": 3, "gen_001": 2}
    for generation in (0, 1):
        for status in ("ok", "failed"):
            assert count_rows(url, generation=generation, status=status) == ledger_count(
                run_dir, generation, status
            )
    database = connect(url)
    ids_before = sorted(row.id for row in database.select())
    update_database(url, run_dir)
    update_database(url, run_dir, [1])
    assert sorted(row.id for row in connect(url).select()) == ids_before  # nothing duplicated
    failed = connect(url).get(status="failed")
    assert failed.failure == "scf_not_converged" and failed.attempts == 2
    assert [attempt["seconds"] for attempt in failed.data["history"]] == [1.5, 2.0]
    assert failed.seconds == pytest.approx(3.5)
    labelled = connect(url).get(
        generation=1,
        status="ok",
        uid=json.loads((run_dir / "results" / "gen_001" / "ledger.json").read_text())[0]["uid"],
    )
    atoms = labelled.toatoms()
    expected = EMTOracle().label(atoms.copy())
    np.testing.assert_allclose(labelled.data["forces"], expected.get_forces(), atol=1e-5)  # extxyz precision
    assert labelled.energy == pytest.approx(expected.get_potential_energy(), abs=1e-5)
    assert labelled.oracle == "emt" and labelled.settings_hash == EMTOracle().settings_hash()
    assert labelled.code_version.startswith("mlip-autopipe ")
    fits = connect(url).metadata["fits"]
    potential = run_dir / "results" / "gen_001" / "fit" / "potential.yaml"
    assert fits["001"]["potential"] == "results/gen_001/fit/potential.yaml"
    assert fits["001"]["potential_sha256"] == hashlib.sha256(potential.read_bytes()).hexdigest()
    assert fits["000"]["metrics"]["test"]["energy_rmse_mev_per_atom"] == 1.0


def test_sqlite_rows_match_the_ledgers_and_reexport_is_idempotent(run_dir: Path) -> None:
    check_database(str(run_dir / "results" / "dataset.db"), run_dir)


def test_new_oracle_settings_add_rows_instead_of_overwriting(run_dir: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "export.db")
    update_database(url, run_dir)
    label = next((run_dir / "results" / "gen_001" / "label").glob("*.extxyz"))
    label.write_text(label.read_text().replace(EMTOracle().settings_hash(), "0123456789abcdef"))
    update_database(url, run_dir)
    assert count_rows(url) == 6  # the relabelled structure is a new (uid, settings) row
    assert count_rows(url, settings_hash="0123456789abcdef") == 1


def test_postgresql_server_holds_the_same_rows(run_dir: Path) -> None:
    with postgres_server() as url:
        check_database(url, run_dir)
