"""Labelling one candidate with an oracle, a label cache, and the per-generation ledger.

Every candidate yields exactly one output structure whose ``info`` says how labelling went
(``label_status`` a :class:`~mlip_autopipe.contract.Status`, ``label_reason``, ``label_failure``
category, ``label_attempts`` oracle runs, ``label_history`` JSON list of attempts), so nothing
is ever silently dropped. The keys are described in :mod:`mlip_autopipe.contract`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ase import Atoms

from mlip_autopipe.contract import Status
from mlip_autopipe.data import has_labels, read_structures, structure_uid, write_structures
from mlip_autopipe.errors import LabellingError, StructureError
from mlip_autopipe.label_attempts import AttemptRecord, killed_attempts_verdict
from mlip_autopipe.oracles import Oracle

#: Never an empty reason: ASE's extxyz writer stores "" bare, which garbles the next key.
REASON_LABELLED = "labelled"
#: Info keys an oracle sets on a label that describe how it was obtained (kept in the cache):
#: also ``recovery_rung`` (0: first attempt, k: k-th rung of the SCF recovery ladder) and the
#: ``qe_version`` that computed it.
LABEL_OUTCOME_KEYS = ("label_attempts", "label_history", "label_recovery", "recovery_rung", "qe_version")


def cache_path(cache_dir: str | os.PathLike[str], settings_hash: str, uid: str) -> Path:
    """Where the label of structure ``uid`` under oracle settings ``settings_hash`` is kept."""
    return Path(cache_dir) / settings_hash / f"{uid}.extxyz"


def _from_cache(candidate: Atoms, path: Path) -> Atoms | None:
    try:
        cached = read_structures(path)
    except StructureError:
        return None
    if len(cached) != 1 or not has_labels(cached[0]):
        return None
    labelled = cached[0]
    if structure_uid(labelled) != candidate.info["uid"]:
        return None
    # how the label was obtained (attempts, recovery history) stays with it; the rest is the candidate's
    outcome = {key: labelled.info[key] for key in LABEL_OUTCOME_KEYS if key in labelled.info}
    if "qe_version" in outcome:  # extxyz reads a version like 7.2 back as a number
        outcome["qe_version"] = str(outcome["qe_version"])
    labelled.info = {**candidate.info, **outcome}
    # per-atom metadata (force_weight, gamma, ...) is the candidate's, not the cached copy's
    for name in set(labelled.arrays) - {"numbers", "positions"}:
        del labelled.arrays[name]
    for name, values in candidate.arrays.items():
        if name not in ("numbers", "positions"):
            labelled.arrays[name] = values.copy()
    return labelled


def label_candidate(
    candidate: Atoms, oracle: Oracle, cache_dir: str | os.PathLike[str] | None = None
) -> Atoms:
    """Label ``candidate``; reuse a cached label with the same uid and oracle settings.

    Returns the labelled structure, or on failure the unlabelled structure with
    ``label_status='failed'`` and the reason. Never raises for an oracle failure.
    """
    uid = candidate.info.get("uid") or structure_uid(candidate)
    candidate.info["uid"] = uid
    settings = oracle.settings_hash()
    cached_file = cache_path(cache_dir, settings, uid) if cache_dir is not None else None
    if cached_file is not None and cached_file.exists():
        cached = _from_cache(candidate, cached_file)
        if cached is not None:
            # The outcome of the run that made the label; only from_cache tells the two apart.
            cached.info.update(
                label_status=Status.OK.value,
                label_reason=REASON_LABELLED,
                oracle=oracle.name,
                oracle_settings=settings,
                from_cache=True,
            )
            return cached
    try:
        labelled = oracle.label(candidate)
    except LabellingError as error:
        return failed_label(candidate, oracle, error)
    labelled.info.update(
        label_status=Status.OK.value,
        label_reason=REASON_LABELLED,
        oracle=oracle.name,
        oracle_settings=settings,
        from_cache=False,
    )
    if cached_file is not None:
        write_structures(cached_file, labelled)
    return labelled


def failed_label(candidate: Atoms, oracle: Oracle, error: LabellingError) -> Atoms:
    """The unlabelled ``candidate`` with the failure's status, reason, category and history."""
    failed = candidate.copy()
    failed.info.update(
        label_status=Status.FAILED.value,
        label_reason=str(error),
        label_failure=error.category,
        label_attempts=max(1, len(error.history)),
        label_history=json.dumps(error.history),
        oracle=oracle.name,
        oracle_settings=oracle.settings_hash(),
        from_cache=False,
    )
    return failed


def label_job(
    candidate: Atoms,
    build_oracle: Callable[[], Oracle],
    output: str | os.PathLike[str],
    *,
    attempts_file: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    runtime_min: float | None = None,
    max_killed_attempts: int = 2,
) -> Atoms:
    """One label job: label ``candidate`` (:func:`label_candidate`) and write ``output``.

    The job is recorded in ``attempts_file`` from before the oracle is built until the output
    is written. Earlier runs of the job that were killed from outside (at its runtime
    ``runtime_min``, or ``max_killed_attempts`` times otherwise) make the output a
    ``walltime``/``killed`` failure instead of one more run
    (:mod:`mlip_autopipe.label_attempts`), so a generation always gathers.
    """
    verdict = killed_attempts_verdict(attempts_file, runtime_min, max_killed_attempts)
    if verdict is not None:
        labelled = failed_label(candidate, build_oracle(), verdict)
        write_structures(output, labelled)
        return labelled
    with AttemptRecord(attempts_file, runtime_min):
        labelled = label_candidate(candidate, build_oracle(), cache_dir)
        write_structures(output, labelled)
    return labelled


def ledger_entry(atoms: Atoms) -> dict[str, Any]:
    """One ledger row: what happened to one candidate."""
    info = atoms.info
    return {
        "uid": info.get("uid"),
        "origin": info.get("origin"),
        "parent_uid": info.get("parent_uid"),
        "status": info.get("label_status", Status.FAILED),
        "reason": info.get("label_reason", "no label status recorded"),
        "failure": info.get("label_failure") if info.get("label_status") != Status.OK else None,
        "attempts": int(info.get("label_attempts", 1)),
        "recovery_rung": _recovery_rung(info),
        "history": _history(info),
        "oracle": info.get("oracle"),
        "from_cache": bool(info.get("from_cache", False)),
        "n_atoms": len(atoms),
    }


def _recovery_rung(info: dict[str, Any]) -> int | None:
    """The ladder rung that produced an ok label (0: the first attempt); None for a failure or an
    oracle without a ladder."""
    if info.get("label_status") != Status.OK or info.get("recovery_rung") is None:
        return None
    return int(info["recovery_rung"])


def _history(info: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        history = json.loads(str(info.get("label_history") or "[]"))
    except json.JSONDecodeError:
        return []
    return history if isinstance(history, list) else []


def gather_labels(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Atoms], list[dict[str, Any]]]:
    """Collect per-structure label files into the labelled set and the ledger."""
    labelled: list[Atoms] = []
    ledger: list[dict[str, Any]] = []
    for path in sorted(str(p) for p in paths):
        for atoms in read_structures(path):
            entry = ledger_entry(atoms)
            if entry["status"] == Status.OK and not has_labels(atoms):
                entry.update(status=Status.FAILED, reason=f"'{path}' has no energy/forces")
            ledger.append(entry)
            if entry["status"] == Status.OK:
                labelled.append(atoms)
    return labelled, ledger
