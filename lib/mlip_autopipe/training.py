"""Training a potential: the whole fit recipe of one generation, from labelled structures to
potential files, active set and metrics.

:func:`train_potential` is what the ``fit`` rule, the tests and the benchmarks call:

1. check the training set; hold out a test part by uid hash (``fit.test_fraction``);
2. per-element reference energies: least squares on the training part, or the previous
   generation's on a warm start (its potential represents energies on those references);
3. with a surrogate pool, the distillation set (surrogate pool -> base ACE -> oracle delta as
   one weighted fit, :mod:`mlip_autopipe.distillation`);
4. the fit: linear (``pyace.linearacefit``) or nonlinear (the ``pacemaker`` command, warm-started
   from the previous potential when given, or grown step by step while the test error falls
   with ``ladder``, :mod:`mlip_autopipe.ladder`); a failed nonlinear fit is ledgered in
   ``failure.json`` before the error is raised;
5. ``potential.yaml``/``.yace`` (both record the reference energies; the .yace adds them back,
   see :func:`mlip_autopipe.fit.save_potential`), the training DataFrame, the active set
   (``potential.asi``) and ``metrics.json`` (train/test RMSE on oracle labels only, references,
   optimizer history), each written to a temporary name and renamed; a linear distilled fit
   with a held-out part adds ``distillation``: the test RMSE of the base ACE (surrogate pool
   alone), the distilled ACE and the oracle-only ACE (:func:`distillation_comparison`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ase import Atoms

from mlip_autopipe import fit, nonlinear_fit
from mlip_autopipe.data import atomic_output, write_text_atomic
from mlip_autopipe.distillation import distillation_set
from mlip_autopipe.errors import FitError
from mlip_autopipe.ladder import LADDER_DIR, fit_ladder
from mlip_autopipe.timing import tool_time

#: Files a fit writes into its folder (the ``fit`` rule's outputs).
POTENTIAL_YAML = "potential.yaml"
POTENTIAL_YACE = "potential.yace"
ACTIVE_SET = "potential.asi"
METRICS = "metrics.json"
DATASET = "training.pckl.gzip"
FAILURE = "failure.json"
PACEMAKER_DIR = "pacemaker"
COMPARISON_DIR = "comparison"


@dataclass(frozen=True)
class WarmStart:
    """A previous generation's potential and the reference energies it was fitted on."""

    potential: Path
    reference_energies: dict[str, float]

    @classmethod
    def from_fit(cls, potential: str | os.PathLike[str], metrics: str | os.PathLike[str]) -> WarmStart:
        """The warm start of a previous fit's ``potential.yaml`` and ``metrics.json``."""
        with open(metrics) as handle:
            references = json.load(handle)["reference_energies_ev"]
        return cls(Path(potential), {element: float(value) for element, value in references.items()})


@dataclass(frozen=True)
class FitResult:
    """What :func:`train_potential` wrote and measured."""

    folder: Path
    metrics: dict[str, Any]
    references: dict[str, float]
    train: list[Atoms]
    test: list[Atoms]
    #: wall seconds of the fit itself (``fit_s``) and of active set + metrics (``after_fit_s``)
    timings: dict[str, float]

    @property
    def yaml(self) -> Path:
        return self.folder / POTENTIAL_YAML

    @property
    def yace(self) -> Path:
        return self.folder / POTENTIAL_YACE

    @property
    def asi(self) -> Path:
        return self.folder / ACTIVE_SET


def train_potential(
    training_set: Sequence[Atoms],
    elements: Sequence[str],
    fit_settings: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    warm_start: WarmStart | None = None,
    surrogate_pool: Sequence[Atoms] | None = None,
    distillation: Mapping[str, Any] | None = None,
    generation: int | None = None,
    threads: int = 1,
    log: logging.Logger | None = None,
    tool_log: str | os.PathLike[str] | None = None,
    active_set: bool = True,
    ladder: Mapping[str, Any] | None = None,
) -> FitResult:
    """Fit a potential on ``training_set`` (oracle labels) into ``out_dir``; see the module doc.

    Args:
        training_set: labelled structures (energy, forces; optional ``energy_weight`` and
            ``force_weight``).
        elements: the potential's elements, in the run's order.
        fit_settings: the validated ``fit`` config section.
        out_dir: the fit folder (created); file names are this module's constants.
        warm_start: the previous potential (nonlinear mode) and its reference energies.
        surrogate_pool: surrogate-labelled structures for distillation; ``distillation`` (the
            validated ``surrogate.distillation`` section) then gives the weights.
        generation: named in the messages and the failure ledger.
        threads: pacemaker's threads (nonlinear mode).
        log: where progress and ``tool_seconds pacemaker`` lines go.
        tool_log: the file pace_activeset's output is appended to (default: in ``out_dir``).
        active_set: compute ``potential.asi`` (the fit rule always does; a benchmark that only
            scores fits on small training sets may not, as MaxVol needs more environments
            than basis functions).
        ladder: the validated ``production.ladder`` section when enabled (nonlinear mode): the
            basis grows step by step while the held-out test error falls
            (:func:`mlip_autopipe.ladder.fit_ladder`); metrics.json gets every step's numbers.

    Raises:
        FitError: unusable data, or a failed fit (nonlinear failures are in ``failure.json``).
    """
    log = log or logging.getLogger(__name__)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # a failed fit is ledgered next to its outputs; a later successful fit removes the entry
    (folder / FAILURE).unlink(missing_ok=True)
    fit.check_training_set(training_set, elements)
    oracle_train, test = fit.split_train_test(training_set, fit_settings["test_fraction"])
    if warm_start is not None:
        references = dict(warm_start.reference_energies)
    else:
        references = fit.reference_energies(oracle_train, elements)
    train = list(oracle_train)
    if surrogate_pool is not None:
        if distillation is None:
            raise ValueError("a surrogate pool needs the distillation settings (its weights)")
        train = distillation_set(
            oracle_train,
            surrogate_pool,
            references,
            elements,
            oracle_weight=distillation["oracle_weight"],
            surrogate_weight=distillation["surrogate_weight"],
            exclude_uids={atoms.info.get("uid") for atoms in test},
        )
        log.info("distillation: %d surrogate-labelled structures added", len(train) - len(oracle_train))
    mode = fit_settings["mode"]
    configured_functions = int(fit_settings["functions_per_element"])
    functions = fit.data_sized_functions_per_element(train, elements, fit_settings)
    if functions != configured_functions:
        log.info(
            "basis sized by the data: %d functions per element (functions_per_element %d, "
            "at most one per %g atoms of the scarcest element)",
            functions, configured_functions, fit_settings["environments_per_function"],
        )  # fmt: skip
        fit_settings = {**fit_settings, "functions_per_element": functions}
    log.info("fitting (%s) on %d structures (%d held out)", mode, len(train), len(test))
    history: list[tuple[int, float]] = []
    ladder_record: dict[str, Any] | None = None
    started = time.perf_counter()
    with tool_time(log, "pacemaker"):
        if mode == "nonlinear" and ladder is not None:
            basis, history, ladder_record = _fit_ladder(
                train, test, elements, fit_settings, ladder, references, folder, generation, threads, log
            )
        elif mode == "nonlinear":
            basis, history = _fit_nonlinear(
                train, elements, fit_settings, references, folder, warm_start, generation, threads
            )
        else:
            basis = fit.fit_linear(train, elements, fit_settings, references)
    fitted = time.perf_counter()
    fit.save_potential(basis, folder / POTENTIAL_YAML, folder / POTENTIAL_YACE, references)
    with atomic_output(folder / DATASET) as temporary:
        fit.to_dataframe(train, references).to_pickle(temporary, compression="gzip")
    with tool_time(log, "pacemaker"):
        if active_set:
            fit.compute_active_set(
                folder / POTENTIAL_YAML, folder / DATASET, tool_log or folder / "activeset.log"
            )
        metrics: dict[str, Any] = {
            "mode": mode,
            "functions_per_element": functions,
            "reference_energies_ev": references,
            "train": fit.evaluate(folder / POTENTIAL_YAML, oracle_train, references),
            "test": fit.evaluate(folder / POTENTIAL_YAML, test, references),
        }
    if active_set:
        coverage = fit.active_set_coverage(folder / POTENTIAL_YAML, train)
        metrics["active_set"] = coverage
        if not coverage["gamma_informative"]:
            log.warning(
                "gamma is weakly informative: %.2f training environments per basis function "
                "(under %g, the active set holds most of the training data and nearly every "
                "new environment extrapolates); label more, lower fit.functions_per_element "
                "or set fit.environments_per_function",
                coverage["lowest_environments_per_function"],
                fit.INFORMATIVE_ENVIRONMENTS_PER_FUNCTION,
            )
    if surrogate_pool is not None and mode == "linear" and test:
        metrics["distillation"] = distillation_comparison(
            oracle_train, test, surrogate_pool, references, elements, fit_settings, folder / COMPARISON_DIR
        ) | {"distilled_ace": metrics["test"]}
    if history:
        metrics["optimizer"] = {
            "warm_start": warm_start is not None,
            "iterations": history[-1][0],
            "initial_loss": history[0][1],
            "final_loss": history[-1][1],
        }
    if ladder_record is not None:
        metrics["ladder"] = ladder_record
    log.info("metrics: %s", metrics)
    write_text_atomic(folder / METRICS, json.dumps(metrics, indent=2) + "\n")
    timings = {"fit_s": fitted - started, "after_fit_s": time.perf_counter() - fitted}
    return FitResult(folder, metrics, references, oracle_train, test, timings)


def _fit_ladder(
    train: Sequence[Atoms],
    test: Sequence[Atoms],
    elements: Sequence[str],
    fit_settings: Mapping[str, Any],
    ladder_settings: Mapping[str, Any],
    references: Mapping[str, float],
    folder: Path,
    generation: int | None,
    threads: int,
    log: logging.Logger,
) -> tuple[Any, list[tuple[int, float]], dict[str, Any]]:
    """The ladder's chosen potential, its loss history and the ladder's record; a failed step
    is ledgered before it is raised."""
    try:
        result = fit_ladder(
            train,
            test,
            elements,
            fit_settings,
            ladder_settings,
            references,
            folder,
            threads=threads,
            generation=generation,
            log=log,
        )
    except FitError as error:
        steps = sorted((folder / LADDER_DIR).glob("step_*"))
        workdir = steps[-1] if steps else folder / LADDER_DIR
        record = nonlinear_fit.fit_failure_record(generation or 0, error, workdir)
        write_text_atomic(folder / FAILURE, json.dumps(record, indent=2) + "\n")
        raise
    return fit.load_basis(result.potential), result.history, result.record()


def distillation_comparison(
    oracle_train: Sequence[Atoms],
    test: Sequence[Atoms],
    surrogate_pool: Sequence[Atoms],
    references: Mapping[str, float],
    elements: Sequence[str],
    fit_settings: Mapping[str, Any],
    folder: Path,
) -> dict[str, Any]:
    """Test errors on the oracle's held-out ``test`` labels of the two fits a distilled fit is
    judged against (linear fits with the same settings, written into ``folder``): the base ACE
    on the surrogate pool alone (energies on the oracle's references, test structures left out)
    and the oracle-only ACE. The route pays when the distilled fit beats the base ACE (the
    design's success criterion) and, ideally, the oracle-only one."""
    test_uids = {atoms.info.get("uid") for atoms in test}
    base = distillation_set(
        [],
        surrogate_pool,
        references,
        elements,
        oracle_weight=1.0,
        surrogate_weight=1.0,
        exclude_uids=test_uids,
    )
    result: dict[str, Any] = {}
    for name, data in (("base_ace", base), ("oracle_only_ace", list(oracle_train))):
        if not data:
            result[name] = None
            continue
        target = folder / name
        target.mkdir(parents=True, exist_ok=True)
        basis = fit.fit_linear(data, elements, fit_settings, references)
        fit.save_potential(basis, target / POTENTIAL_YAML, target / POTENTIAL_YACE, references)
        result[name] = fit.evaluate(target / POTENTIAL_YAML, test, references)
    return result


def _fit_nonlinear(
    train: Sequence[Atoms],
    elements: Sequence[str],
    fit_settings: Mapping[str, Any],
    references: Mapping[str, float],
    folder: Path,
    warm_start: WarmStart | None,
    generation: int | None,
    threads: int,
) -> tuple[Any, list[tuple[int, float]]]:
    """The pacemaker fit and its loss history; a failure is ledgered before it is raised."""
    workdir = folder / PACEMAKER_DIR
    try:
        fitted = nonlinear_fit.fit_nonlinear(
            train,
            elements,
            fit_settings,
            references,
            workdir,
            threads=threads,
            initial_potential=warm_start.potential if warm_start is not None else None,
            generation=generation,
        )
    except FitError as error:
        record = nonlinear_fit.fit_failure_record(generation or 0, error, workdir)
        write_text_atomic(folder / FAILURE, json.dumps(record, indent=2) + "\n")
        raise
    return fit.load_basis(fitted), nonlinear_fit.read_loss_history(workdir)
