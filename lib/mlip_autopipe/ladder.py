"""Upfitting: pacemaker's hierarchical basis extension, grown while the held-out test error falls.

pacemaker's own ladder (``fit: ladder_step / ladder_type``) extends the basis step by step up to
the target basis and refits at each step, without looking at a test set. Here the same extension
is driven one step at a time so that it can stop: each step

1. extends the previous step's fitted potential towards the target basis (the production fit's
   ``functions_per_element``) with pacemaker's own ``extend_multispecies_basis``, by pacemaker's
   step size (``get_actual_ladder_step`` of ``ladder_step``: functions added per basis block, a
   fraction of the current basis, or the larger of both) and order (``ladder_type``:
   ``body_order`` or ``power_order``);
2. refits every coefficient with the ``pacemaker`` command, starting from the previous step's
   (the new functions start at the target basis's initial coefficients, as in pacemaker's ladder);
3. measures train and held-out test RMSE of the step's potential.

The ladder stops when the test error (:func:`held_out_error`) has not fallen below the best
step's by ``min_relative_improvement`` for ``patience`` steps in a row, or when the basis is complete;
the best step's potential is the fit's result. Choosing the step on the test set makes its test
RMSE a slightly optimistic estimate; every step's numbers are recorded so a user can judge.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ase import Atoms

from mlip_autopipe import fit, nonlinear_fit
from mlip_autopipe.fit import potential_settings

#: Folder of the ladder's steps inside the fit folder (one ``step_NN`` per step).
LADDER_DIR = "ladder"


@dataclass(frozen=True)
class LadderResult:
    """The steps a ladder fitted, the one it chose and why it stopped."""

    #: fitted B-basis YAML of the chosen step
    potential: Path
    steps: list[dict[str, Any]]
    #: index into ``steps`` (and the step's number) of the chosen step
    chosen_step: int
    stopped_because: str
    #: pacemaker's (iteration, loss) history of the chosen step
    history: list[tuple[int, float]]

    def record(self) -> dict[str, Any]:
        """The ladder's entry of the fit's metrics.json."""
        chosen = self.steps[self.chosen_step]
        return {
            "chosen_step": self.chosen_step,
            "chosen_functions": chosen["functions"],
            "stopped_because": self.stopped_because,
            "steps": self.steps,
        }


def pacemaker_ladder_step(ladder_step: Any) -> int | float | list[int | float]:
    """The validated ``ladder_step`` in the types pacemaker tells apart (``int`` functions,
    ``float`` fraction): a whole number that YAML or JSON left as a float becomes an ``int``."""

    def one(value: int | float) -> int | float:
        return int(value) if float(value).is_integer() else float(value)

    if isinstance(ladder_step, (list, tuple)):
        return [one(value) for value in ladder_step]
    return one(ladder_step)


def held_out_error(metrics: Mapping[str, Any], loss_kappa: float) -> float:
    """The held-out error the ladder compares: ``(1 - kappa) E^2 + kappa F^2`` with ``E`` the
    energy RMSE in eV/atom and ``F`` the force RMSE in eV/A, the mix the fit's loss weighs
    (a missing RMSE, e.g. no energy-weighted structure, counts 0)."""
    energy = (metrics.get("energy_rmse_mev_per_atom") or 0.0) / 1000.0
    forces = metrics.get("force_rmse_ev_per_a") or 0.0
    return (1.0 - loss_kappa) * energy**2 + loss_kappa * forces**2


def ladder_decision(
    steps: Sequence[Mapping[str, Any]], patience: int, min_relative_improvement: float
) -> tuple[int, str | None]:
    """The best step so far (the first with the lowest test error, counting only falls of more
    than ``min_relative_improvement`` of the best's) and, when the last ``patience`` steps did
    not fall below it, why the ladder stops (else None). ``steps`` hold ``test_error`` and
    ``functions``."""
    best, since_best = 0, 0
    for index in range(1, len(steps)):
        if steps[index]["test_error"] < (1.0 - min_relative_improvement) * steps[best]["test_error"]:
            best, since_best = index, 0
        else:
            since_best += 1
    if since_best < patience:
        return best, None
    last = steps[-1]
    return best, (
        f"the test error stopped falling: the last {patience} step(s), up to step {len(steps) - 1} "
        f"({last['functions']} functions, {last['test_error']:.4g}), did not fall below step {best}'s "
        f"({steps[best]['test_error']:.4g}, {steps[best]['functions']} functions) by more than "
        f"min_relative_improvement {min_relative_improvement:g}"
    )


def functions_per_element(configuration: Any) -> dict[str, int]:
    """Basis functions per central element (a block's first element) of a ``BBasisConfiguration``."""
    counts: dict[str, int] = {}
    for block in configuration.funcspecs_blocks:
        element = str(block.elements_vec[0])
        counts[element] = counts.get(element, 0) + len(block.funcspecs)
    return counts


def fit_ladder(
    train: Sequence[Atoms],
    test: Sequence[Atoms],
    elements: Sequence[str],
    fit_settings: Mapping[str, Any],
    ladder: Mapping[str, Any],
    references: Mapping[str, float],
    folder: str | Path,
    *,
    threads: int = 1,
    generation: int | None = None,
    log: logging.Logger | None = None,
) -> LadderResult:
    """Grow and fit the basis step by step in ``folder/ladder`` (see the module doc).

    Args:
        train, test: the fit's training structures and its held-out test structures (not empty).
        fit_settings: the validated fit settings (nonlinear); ``functions_per_element`` is the
            target basis, ``maxiter`` the BFGS iterations of every step.
        ladder: the validated ``production.ladder`` section.

    Raises:
        FitError: a step's pacemaker run failed or diverged; ValueError: no test structures.
    """
    from pyace import BBasisConfiguration, create_multispecies_basis_config
    from pyace.basisextension import get_actual_ladder_step
    from pyace.multispecies_basisextension import clean_bbasisconfig, extend_multispecies_basis

    if not test:
        raise ValueError("the ladder stops on the held-out test error: it needs test structures")
    log = log or logging.getLogger(__name__)
    root = Path(folder) / LADDER_DIR
    if root.exists():
        shutil.rmtree(root)
    target = create_multispecies_basis_config(potential_settings(elements, fit_settings, linear=False))
    current = target.copy()
    clean_bbasisconfig(current)
    step_parameter = pacemaker_ladder_step(ladder["ladder_step"])
    kappa = float(fit_settings["loss_kappa"])
    steps: list[dict[str, Any]] = []
    histories: list[list[tuple[int, float]]] = []
    best = 0
    stopped_because = ""
    while True:
        size = get_actual_ladder_step(
            step_parameter, current.total_number_of_functions, target.total_number_of_functions
        )
        extended, grew = extend_multispecies_basis(
            current, target, str(ladder["ladder_type"]), size, return_is_extended=True
        )
        if not grew:
            stopped_because = (
                f"the basis is complete ({current.total_number_of_functions} functions, "
                "production.fit.functions_per_element reached)"
            )
            break
        workdir = root / f"step_{len(steps):02d}"
        workdir.mkdir(parents=True)
        extended.save(str(workdir / "extended_basis.yaml"))
        started = time.perf_counter()
        fitted = nonlinear_fit.fit_nonlinear(
            train,
            elements,
            fit_settings,
            references,
            workdir,
            threads=threads,
            initial_potential=workdir / "extended_basis.yaml",
            generation=generation,
            maxiter=int(fit_settings["maxiter"]),
        )
        seconds = time.perf_counter() - started
        current = BBasisConfiguration(str(fitted))
        history = nonlinear_fit.read_loss_history(workdir)
        histories.append(history)
        step: dict[str, Any] = {
            "step": len(steps),
            "functions": int(current.total_number_of_functions),
            "functions_per_element": functions_per_element(current),
            "added_per_block": int(size),
            "potential": str(Path(LADDER_DIR) / workdir.name / fitted.name),
            "iterations": history[-1][0] if history else None,
            "final_loss": history[-1][1] if history else None,
            "fit_seconds": round(seconds, 2),
            "train": fit.evaluate(fitted, train, references),
            "test": fit.evaluate(fitted, test, references),
        }
        step["test_error"] = held_out_error(step["test"], kappa)
        steps.append(step)
        log.info(
            "ladder step %d: %d functions, test energy %s meV/atom, force %s eV/A",
            step["step"],
            step["functions"],
            step["test"]["energy_rmse_mev_per_atom"],
            step["test"]["force_rmse_ev_per_a"],
        )
        best, reason = ladder_decision(
            steps, int(ladder["patience"]), float(ladder["min_relative_improvement"])
        )
        if reason is not None:
            stopped_because = reason
            break
    log.info(
        "ladder: chose step %d (%d functions); stopped: %s", best, steps[best]["functions"], stopped_because
    )
    return LadderResult(
        potential=Path(folder) / steps[best]["potential"],
        steps=steps,
        chosen_step=best,
        stopped_because=stopped_because,
        history=histories[best],
    )
