"""Nonlinear ACE fits through the ``pacemaker`` command with its TensorFlow backend.

The training data travel as the pickled DataFrame of :func:`mlip_autopipe.fit.to_dataframe`
(``energy_corrected``, ``forces``, ``w_energy``, ``w_forces``); the per-structure energy weights and
per-atom force weights (0 on embedding buffers) reach the loss through pacemaker's
``ExternalWeightingPolicy``. The pickle is written and read in the same environment.
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ase import Atoms

from mlip_autopipe.contract import Status
from mlip_autopipe.errors import FitDiverged, FitError
from mlip_autopipe.fit import pacemaker_tool, potential_settings, to_dataframe

#: Distance (Angstrom) within which closest pairs are searched for a warm start's ZBL core.
ZBL_SEARCH_RADIUS = 4.0


def pacemaker_input(
    elements: Sequence[str],
    fit: Mapping[str, Any],
    dataset: str,
    maxiter: int,
    initial_potential: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``input.yaml`` mapping of a pacemaker fit (TensorFlow backend, BFGS).

    Args:
        elements: chemical symbols of the potential.
        fit: the ``fit`` config section (``cutoff``, ``functions_per_element``, ``nradmax_by_orders``,
            ``lmax_by_orders``, ``fs_parameters``, ``loss_kappa``, ``l1_coefficient``,
            ``l2_coefficient``, ``batch_size``, ``repulsion``).
        dataset: training DataFrame file, relative to the fit folder; also the external weights.
        maxiter: BFGS iterations.
        initial_potential: a previous potential (B-basis YAML) whose basis and coefficients the
            fit starts from (warm start); the basis settings of ``fit`` are then not used.
        seed: seed of pacemaker's random initial coefficients.
    """
    fit_section: dict[str, Any] = {
        "loss": {
            "kappa": float(fit["loss_kappa"]),
            "L1_coeffs": float(fit["l1_coefficient"]),
            "L2_coeffs": float(fit["l2_coefficient"]),
        },
        "weighting": {"type": "ExternalWeightingPolicy", "filename_or_df": dataset},
        "optimizer": "BFGS",
        "maxiter": int(maxiter),
    }
    if fit["repulsion"] == "auto":
        fit_section["repulsion"] = "auto"
    potential = potential_settings(elements, fit, linear=False)
    return {
        "cutoff": float(fit["cutoff"]),
        "seed": int(seed),
        "metadata": {"origin": "mlip-autopipe"},
        # w_energy/w_forces columns are in the data too: ignore them so the policy applies
        "data": {"filename": dataset, "ignore_weights": True},
        # a warm start refits every coefficient of the given potential (pacemaker's
        # `initial_potential` would instead grow it towards `functions` in a ladder, or stop)
        "potential": potential if initial_potential is None else initial_potential,
        "fit": fit_section,
        "backend": {
            "evaluator": "tensorpot",
            "batch_size": int(fit["batch_size"]),
            "display_step": 10,
        },
    }


def quiet_thread_environment(threads: int) -> dict[str, str]:
    """Environment of a pacemaker run: TensorFlow on ``threads`` threads, no C++ log noise."""
    environment = dict(os.environ)
    environment.update(
        {
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TF_NUM_INTRAOP_THREADS": str(threads),
            "TF_NUM_INTEROP_THREADS": "1",
            "OMP_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
        }
    )
    return environment


def fit_nonlinear(
    train: Sequence[Atoms],
    elements: Sequence[str],
    fit: Mapping[str, Any],
    references: Mapping[str, float],
    workdir: str | os.PathLike[str],
    threads: int = 1,
    initial_potential: str | os.PathLike[str] | None = None,
    generation: int | None = None,
    maxiter: int | None = None,
) -> Path:
    """Run ``pacemaker`` in ``workdir`` on ``train``; returns the fitted B-basis YAML.

    A warm start (``initial_potential`` given) runs ``fit.warm_start_maxiter`` iterations, a cold
    start ``fit.maxiter``; ``maxiter`` overrides both (a ladder step refits a grown basis). The
    command's output goes to ``workdir/pacemaker.log``; its loss history
    is read back with :func:`read_loss_history`.

    Raises:
        FitDiverged: when the loss or the written coefficients are NaN or infinite (the message
            names ``generation`` and what to change).
        FitError: when the warm-start potential is missing, or pacemaker fails or writes no potential.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    dataset = "pacemaker_data.pckl.gzip"
    to_dataframe(train, references).to_pickle(workdir / dataset, compression="gzip")
    if maxiter is None:
        maxiter = fit["maxiter"] if initial_potential is None else fit["warm_start_maxiter"]
    start = None
    if initial_potential is not None:
        if not Path(initial_potential).is_file():
            raise FitError(f"warm start: previous potential {initial_potential} not found")
        start = "initial_potential.yaml"
        warm_start_potential(initial_potential, train, fit["repulsion"] == "auto", workdir / start)
    settings = pacemaker_input(elements, fit, dataset, maxiter, start)
    (workdir / "input.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    output = workdir / "output_potential.yaml"
    output.unlink(missing_ok=True)
    command = [pacemaker_tool("pacemaker"), "--no-predict", "input.yaml"]
    with open(workdir / "pacemaker.log", "w") as log:
        completed = subprocess.run(
            command,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=quiet_thread_environment(threads),
            check=False,
        )
    reason = divergence(workdir, output)
    if reason is not None:
        raise FitDiverged(diverged_message(generation, reason), reason=reason)
    if completed.returncode != 0 or not output.exists():
        raise FitError(f"pacemaker failed (exit {completed.returncode}); see {workdir / 'log.txt'}")
    return output


def closest_distance_per_bond(
    images: Sequence[Atoms], elements: Sequence[str]
) -> dict[tuple[int, int], float]:
    """Shortest interatomic distance per element pair, keyed by indices into sorted ``elements``
    (both orders), as pacemaker's ZBL core set-up expects."""
    from ase.neighborlist import neighbor_list

    index = {element: i for i, element in enumerate(sorted(elements))}
    closest: dict[tuple[int, int], float] = {}
    for atoms in images:
        first, second, distances = neighbor_list("ijd", atoms, ZBL_SEARCH_RADIUS)
        species = [index[symbol] for symbol in atoms.get_chemical_symbols()]
        for i, j, distance in zip(first, second, distances, strict=True):
            key = (species[i], species[j])
            closest[key] = min(closest.get(key, np.inf), float(distance))
    return closest


def warm_start_potential(
    previous: str | os.PathLike[str], train: Sequence[Atoms], auto_core: bool, output: Path
) -> None:
    """Copy ``previous`` to ``output``; with ``auto_core``, move its ZBL core below the closest
    pairs of ``train``: new data may come closer than the previous generation's did, and a
    pair inside the old core would start the fit with huge forces."""
    from pyace import BBasisConfiguration
    from pyace.generalfit import setup_zbl_inner_core_repulsion

    configuration = BBasisConfiguration(str(previous))
    if auto_core:
        elements = sorted(
            {element for block in configuration.funcspecs_blocks for element in block.elements_vec}
        )
        closest = closest_distance_per_bond(train, elements)
        for i in range(len(elements)):  # pairs absent from the data keep a distance of the search radius
            for j in range(len(elements)):
                closest.setdefault((i, j), ZBL_SEARCH_RADIUS)
        setup_zbl_inner_core_repulsion(configuration, closest)
    configuration.save(str(output))


def read_loss_history(workdir: str | os.PathLike[str]) -> list[tuple[int, float]]:
    """(iteration, total training loss) pairs from pacemaker's ``metrics.txt``, in order."""
    metrics = Path(workdir) / "metrics.txt"
    if not metrics.exists():
        return []
    lines = metrics.read_text().split("\n")
    header = lines[0].split()
    iteration, loss = header.index("iter_num"), header.index("loss")
    rows = [line.split() for line in lines[1:] if line.strip()]
    return [(int(row[iteration]), float(row[loss])) for row in rows]


#: Words a YAML reader may leave as strings for non-finite numbers.
_NON_FINITE_WORDS = frozenset({"nan", ".nan", "inf", ".inf", "-inf", "-.inf", "+inf", "+.inf", "infinity"})


def _first_non_finite(node: Any, where: str = "") -> str | None:
    """Path of the first NaN/infinite number in a loaded YAML document, or None."""
    if isinstance(node, bool):
        return None
    if isinstance(node, float) and not math.isfinite(node):
        return where or "<root>"
    if isinstance(node, str) and node.strip().lower() in _NON_FINITE_WORDS:
        return where or "<root>"
    if isinstance(node, dict):
        items: list[tuple[Any, Any]] = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return None
    for key, value in items:
        found = _first_non_finite(value, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def divergence(
    workdir: str | os.PathLike[str], potential: str | os.PathLike[str] | None = None
) -> str | None:
    """Why a pacemaker fit diverged: the first non-finite loss in ``metrics.txt`` or non-finite
    number in the written ``potential``; None when both are finite (or absent)."""
    for iteration, loss in read_loss_history(workdir):
        if not math.isfinite(loss):
            return f"loss {loss} at iteration {iteration}"
    if potential is not None and Path(potential).is_file():
        with open(potential) as handle:
            where = _first_non_finite(yaml.safe_load(handle))
        if where is not None:
            return f"non-finite value in {Path(potential).name} at {where}"
    return None


def diverged_message(generation: int | None, reason: str) -> str:
    """One line: which fit diverged, why, what is kept and what to change."""
    which = f"generation {generation}" if generation is not None else "the fit"
    return (
        f"{which}: pacemaker fit diverged ({reason}); labelled data and earlier generations are kept; "
        "refit with more weight regularisation (raise fit.l2_coefficient, e.g. x10), fewer functions "
        "(fit.functions_per_element) or a cold start (fit.warm_start: false)"
    )


def fit_failure_record(generation: int, error: FitError, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ledger entry of a failed fit (written to ``fit/failure.json``): category, reason, message
    and the loss history pacemaker had written."""
    return {
        "generation": generation,
        "status": Status.FAILED,
        "category": "fit_diverged" if isinstance(error, FitDiverged) else "fit_failed",
        "reason": error.reason if isinstance(error, FitDiverged) else str(error),
        "message": str(error),
        "loss_history": [[iteration, repr(loss)] for iteration, loss in read_loss_history(workdir)],
    }
