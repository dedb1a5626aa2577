"""The production potential: one fit on all labelled data of all generations, after the loop.

The loop's fits stay fast (linear, small basis); once the loop has decided to stop,
:func:`train_production` fits the potential a user receives with settings of its own
(``production.fit``, by default a nonlinear pacemaker fit with more functions, a ZBL core and a
held-out test split by structure), through the same recipe as every loop fit
(:func:`mlip_autopipe.training.train_potential`). :func:`production_summary` then says what the
potential is worth: test RMSEs per category of data (origin, MD scenario), data counts, the
oracle's cost, and, from validation, whether it is production-ready (:func:`readiness`).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ase import Atoms

from mlip_autopipe import fit
from mlip_autopipe.contract import Status
from mlip_autopipe.training import FitResult, train_potential

#: results/final/ file with the LAMMPS lines that load the production potential.
PAIR_LINES = "pair_lines.lammps"


#: The production basis has at most as many functions per element as the training data has
#: atoms of its scarcest element: MaxVol's active set (results/final/potential.asi) needs that
#: many environments, and without the cap a run whose labels are mostly one element (measured:
#: 224 Ni atoms for the EMT preset's 321 functions) failed at its very last job.
ACTIVE_SET_ENVIRONMENTS_PER_FUNCTION = 1.0


def production_fit_settings(
    fit_section: Mapping[str, Any], production_fit: Mapping[str, Any]
) -> dict[str, Any]:
    """The production fit's settings: the loop's validated ``fit`` section with the validated
    ``production.fit`` keys on top, except those left null (no warm start: the production fit
    starts cold, and its basis is production.fit's whole basis, not sized down for gamma: only
    capped at :data:`ACTIVE_SET_ENVIRONMENTS_PER_FUNCTION`, so that its active set exists)."""
    overrides = {key: value for key, value in production_fit.items() if value is not None}
    return {
        **fit_section,
        **overrides,
        "warm_start": False,
        "environments_per_function": ACTIVE_SET_ENVIRONMENTS_PER_FUNCTION,
    }


def train_production(
    training_set: Sequence[Atoms],
    elements: Sequence[str],
    settings: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    threads: int = 1,
    log: logging.Logger | None = None,
    tool_log: str | os.PathLike[str] | None = None,
    ladder: Mapping[str, Any] | None = None,
) -> FitResult:
    """Fit the production potential on ``training_set`` (every generation's labels) into ``out_dir``
    with ``settings`` (:func:`production_fit_settings`); with ``ladder`` (the validated
    ``production.ladder`` section, when enabled) the basis grows step by step while the held-out
    test error falls (:mod:`mlip_autopipe.ladder`)."""
    return train_potential(
        training_set,
        elements,
        settings,
        out_dir,
        threads=threads,
        log=log,
        tool_log=tool_log,
        ladder=ladder,
    )


def category_metrics(
    potential_yaml: str | os.PathLike[str], test: Sequence[Atoms], references: Mapping[str, float]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Test RMSEs per ``origin`` and per MD ``scenario`` (structures without one are left out of
    the scenarios), each with its structure count."""
    groups: dict[str, dict[str, list[Atoms]]] = {"origin": {}, "scenario": {}}
    for atoms in test:
        groups["origin"].setdefault(str(atoms.info.get("origin", "unknown")), []).append(atoms)
        if atoms.info.get("scenario"):
            groups["scenario"].setdefault(str(atoms.info["scenario"]), []).append(atoms)
    return {
        kind: {
            name: fit.evaluate(potential_yaml, images, references) for name, images in sorted(members.items())
        }
        for kind, members in groups.items()
    }


def oracle_cost(ledgers: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Oracle calls and seconds over every generation's ledger: a cached label costs nothing; a
    structure's calls are its attempts (recovery rungs + 1); seconds are the attempts' own
    (oracles with a history, pw.x); ``labels`` counts ok and failed structures."""
    calls, seconds = 0, 0.0
    statuses: Counter[str] = Counter()
    for ledger in ledgers:
        for entry in ledger:
            statuses[Status.OK.value if entry["status"] == Status.OK else Status.FAILED.value] += 1
            if entry.get("from_cache"):
                continue
            calls += int(entry.get("attempts", 1))
            seconds += sum(float(attempt.get("seconds", 0.0)) for attempt in entry.get("history", []))
    return {"calls": calls, "seconds": round(seconds, 3), "labels": dict(statuses)}


def pair_lines(
    elements: Sequence[str], potential_yace: str, potential_yaml: str, active_set: str
) -> list[str]:
    """LAMMPS lines (ML-PACE or this project's plugin) that load the production potential.

    ``pair_style pace`` on the .yace gives total energies (its per-element constants are the
    reference energies). A ZBL core fitted with the basis (``repulsion``) lives inside the
    potential files (pacemaker's ``inner_cutoff_type: zbl``) and is evaluated by ``pace``
    itself, so no ``hybrid/overlay`` with ``zbl`` is needed. The commented alternative adds the
    extrapolation grade; its .yaml gives energies without the reference energies.
    """
    species = " ".join(elements)
    return [
        "# MLIP-AutoPipe production potential (units metal; LAMMPS_PLUGIN_PATH or ML-PACE)",
        "pair_style pace",
        f"pair_coeff * * {potential_yace} {species}",
        "# with the extrapolation grade (energies minus the reference energies):",
        "# pair_style pace/extrapolation",
        f"# pair_coeff * * {potential_yaml} {active_set} {species}",
        "# fix gamma all pair 10 pace/extrapolation gamma 1",
    ]


def readiness(
    validation: Mapping[str, Any] | None, tolerances: Mapping[str, float]
) -> tuple[bool, list[str]]:
    """Is the potential production-ready? Every validated material's a0, B0 and elastic
    constants within ``tolerances`` (relative: ``a0``, ``B0``, ``elastic``), no material whose
    validation failed, and a stable MD run. Returns the verdict and the reasons against it;
    no validation (``None``) is not ready either."""
    if validation is None:
        return False, ["not validated (validation.enabled is false)"]
    reasons: list[str] = []
    for name, material in validation["materials"].items():
        if material.get("failure"):
            reasons.append(f"{name}: {material['failure']}")
            continue
        for key, comparison in material.get("comparison", {}).items():
            tolerance = tolerances["elastic"] if key.startswith("C") else tolerances.get(key)
            if tolerance is None:
                continue
            error = abs(float(comparison["relative_error"]))
            if not error <= tolerance:
                reasons.append(
                    f"{name}: {key} {comparison['potential']:.4g} vs oracle {comparison['oracle']:.4g} "
                    f"({100 * error:.2f} % > {100 * tolerance:g} %)"
                )
    md = validation.get("md")
    if md is not None and not md.get("stable", True):
        reasons.append(f"MD stability: {md['reason']}")
    return not reasons, reasons
