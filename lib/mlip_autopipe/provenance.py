"""The provenance database: a projection of a run's results folder into ``ase.db``.

Every candidate of every generation is one row, labelled or failed, keyed by (``uid``,
``settings_hash``): writing the same run again updates rows in place and never duplicates
them. The files under ``results/`` stay the source of truth; the database is a queryable
view of them (``ase db results/dataset.db generation=2,status=ok``), SQLite by default and any
URL ``ase.db.connect`` takes (``postgresql://...``) on a cluster.

Row key-value pairs: ``uid``, ``generation``, ``origin``, ``scenario`` (when the candidate has
one), ``parent_uid``, ``status`` (ok|failed), ``failure`` (the failure class), ``recovery_rung``,
``oracle`` (kind), ``settings_hash`` (the oracle settings that made the label), ``code_version``,
``seconds`` (oracle wall time), ``max_gamma`` (extrapolation grade of the MD frame it came from),
``attempts``, ``from_cache``. Row data: ``forces``, ``stress``, ``force_weights``, ``reason``,
``history`` (the attempts of a failure or a recovered label) and ``info`` (every other
``atoms.info`` entry: why it was picked, the DFT settings, ...). Fits live in the database's
metadata under ``fits``: per generation its metrics and the potential's path and SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.db import connect
from ase.io import read

from mlip_autopipe.timing import tool_seconds_in


def _code_version() -> str:
    """The installed package's version (the package's own __init__ is not imported from here)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlip-autopipe")
    except PackageNotFoundError:
        return "unknown"


#: The SQLite database the workflow keeps current, relative to the run folder.
DATABASE_PATH = "results/dataset.db"

#: ``atoms.info`` entries that become columns (or are the label itself) and so stay out of
#: ``data["info"]``.
_COLUMN_INFO = {
    "uid",
    "generation",
    "origin",
    "scenario",
    "parent_uid",
    "label_status",
    "label_reason",
    "label_failure",
    "label_history",
    "label_attempts",
    "recovery_rung",
    "oracle",
    "oracle_settings",
    "from_cache",
    "max_gamma",
    "energy",
    "free_energy",
    "stress",
}


@dataclass
class CandidateRow:
    """One candidate as the database stores it."""

    atoms: Atoms
    key_value_pairs: dict[str, Any]
    data: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return str(self.key_value_pairs["uid"]), str(self.key_value_pairs["settings_hash"])


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _json_safe(value: Any) -> Any:
    """``value`` as JSON can hold it (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def generation_folders(run_dir: str | os.PathLike[str]) -> list[Path]:
    """``results/gen_NNN`` folders of a run, in order."""
    results = Path(run_dir) / "results"
    return sorted(path for path in results.glob("gen_[0-9][0-9][0-9]") if path.is_dir())


def _oracle_seconds(run_dir: Path, generation: int, uid: str, history: list[dict[str, Any]]) -> float | None:
    """Wall seconds the oracle took: the label job's ``tool_seconds`` line, else the attempts'."""
    log = run_dir / "logs" / f"gen_{generation:03d}" / "label" / f"{uid}.log"
    try:
        seconds = tool_seconds_in(log.read_text().splitlines()).get("oracle")
    except OSError:
        seconds = None
    if seconds is None and history:
        seconds = sum(float(attempt.get("seconds", 0.0)) for attempt in history)
    return seconds


def candidate_row(atoms: Atoms, entry: dict[str, Any], generation: int, run_dir: Path) -> CandidateRow:
    """The database row of one candidate from its label file and its ledger entry."""
    info = atoms.info
    uid = str(entry["uid"])
    pairs: dict[str, Any] = {
        "uid": uid,
        "generation": generation,
        "origin": entry.get("origin") or info.get("origin"),
        "scenario": entry.get("scenario") or info.get("scenario"),
        "parent_uid": entry.get("parent_uid") or info.get("parent_uid"),
        "status": entry["status"],
        "failure": entry.get("failure"),
        "recovery_rung": entry.get("recovery_rung"),
        "oracle": entry.get("oracle") or info.get("oracle"),
        "settings_hash": str(info.get("oracle_settings") or "unknown"),
        "code_version": f"mlip-autopipe {_code_version()}",
        "seconds": _oracle_seconds(run_dir, generation, uid, entry.get("history") or []),
        "max_gamma": info.get("max_gamma"),
        "attempts": int(entry.get("attempts", 1)),
        "from_cache": bool(entry.get("from_cache", False)),
    }
    if info.get("qe_version"):
        pairs["code_version"] += f"; pw.x {info['qe_version']}"
    pairs = {key: _json_safe(value) for key, value in pairs.items() if value is not None}
    data: dict[str, Any] = {"reason": entry.get("reason", "")}
    calculator = atoms.calc
    if entry["status"] == "ok" and calculator is not None:
        results = calculator.results
        if "forces" in results:
            data["forces"] = np.asarray(results["forces"], dtype=float)
        if "stress" in results:
            data["stress"] = np.asarray(results["stress"], dtype=float)
    if "force_weight" in atoms.arrays:
        data["force_weights"] = np.asarray(atoms.arrays["force_weight"], dtype=float)
    if entry.get("history"):
        data["history"] = _json_safe(entry["history"])
    extra = {key: _json_safe(value) for key, value in info.items() if key not in _COLUMN_INFO}
    data["info"] = extra
    stored = atoms.copy()
    stored.calc = calculator if entry["status"] == "ok" else None
    stored.info = {}
    return CandidateRow(stored, pairs, data)


def generation_rows(generation_dir: Path) -> list[CandidateRow]:
    """Rows of every candidate in a gathered generation (its ledger); none before the gather."""
    ledger = _read_json(generation_dir / "ledger.json")
    if not isinstance(ledger, list):
        return []
    generation = int(generation_dir.name.split("_")[1])
    run_dir = generation_dir.parent.parent
    rows = []
    for entry in ledger:
        label_file = generation_dir / "label" / f"{entry['uid']}.extxyz"
        if not label_file.exists():
            label_file = generation_dir / "candidates" / f"{entry['uid']}.extxyz"
        atoms = read(label_file, index=0, format="extxyz")  # no format sniffing: ~10 ms a file
        assert isinstance(atoms, Atoms)
        rows.append(candidate_row(atoms, entry, generation, run_dir))
    return rows


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def fit_record(generation_dir: Path) -> dict[str, Any] | None:
    """A generation's fit: its metrics and the potential's path (relative to the run) and hash."""
    metrics = _read_json(generation_dir / "fit" / "metrics.json")
    if not isinstance(metrics, dict):
        return None
    potential = generation_dir / "fit" / "potential.yaml"
    return {
        "metrics": metrics,
        "potential": str(potential.relative_to(generation_dir.parent.parent)),
        "potential_sha256": _sha256(potential),
    }


@contextmanager
def open_database(url: str | os.PathLike[str]) -> Iterator[Any]:
    """An ``ase.db`` connection to a file path or URL (SQLite unless the URL says otherwise)."""
    name = str(url)
    if "://" not in name:
        Path(name).parent.mkdir(parents=True, exist_ok=True)
    database = connect(name, type="db" if "://" not in name else "extract_from_name")
    database.count()  # connects now: an unreachable server fails here, before any work
    yield database


def _existing_ids(database: Any) -> dict[tuple[str, str], int]:
    ids: dict[tuple[str, str], int] = {}
    for row in database.select(include_data=False, columns=["id", "key_value_pairs"]):
        pairs = row.key_value_pairs
        if "uid" in pairs:
            ids[(str(pairs["uid"]), str(pairs.get("settings_hash", "unknown")))] = row.id
    return ids


def write_rows(database: Any, rows: Iterable[CandidateRow]) -> int:
    """Insert or update ``rows`` keyed by (uid, settings hash); returns how many were written."""
    ids = _existing_ids(database)
    written = 0
    with database:  # one transaction (SQLite): milliseconds per row instead of a commit each
        for row in rows:
            new_id = database.write(row.atoms, row.key_value_pairs, row.data, id=ids.get(row.key))
            ids[row.key] = new_id
            written += 1
    return written


def write_fits(database: Any, fits: dict[int, dict[str, Any]]) -> None:
    """Merge per-generation fit records into the database's metadata under ``fits``."""
    metadata = dict(database.metadata)
    stored = dict(metadata.get("fits", {}))
    stored.update({f"{generation:03d}": record for generation, record in fits.items()})
    metadata["fits"] = stored
    database.metadata = metadata


def update_database(
    url: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    generations: Iterable[int] | None = None,
    *,
    rows: bool = True,
    fits: bool = True,
) -> dict[str, Any]:
    """Project the run (or the given generations) into the database at ``url``.

    Returns a summary: rows written per generation, fits recorded, seconds taken.
    """
    started = time.perf_counter()
    folders = generation_folders(run_dir)
    if generations is not None:
        wanted = set(generations)
        folders = [folder for folder in folders if int(folder.name.split("_")[1]) in wanted]
    written: dict[str, int] = {}
    records: dict[int, dict[str, Any]] = {}
    with open_database(url) as database:
        if rows:
            for folder in folders:
                written[folder.name] = write_rows(database, generation_rows(folder))
        if fits:
            for folder in folders:
                record = fit_record(folder)
                if record is not None:
                    records[int(folder.name.split("_")[1])] = record
            if records:
                write_fits(database, records)
    return {
        "rows": written,
        "fits": sorted(f"{generation:03d}" for generation in records),
        "seconds": round(time.perf_counter() - started, 4),
    }


def count_rows(url: str | os.PathLike[str], **selection: Any) -> int:
    """Rows of the database matching ``selection`` (key=value pairs)."""
    with open_database(url) as database:
        return int(database.count(**selection))
