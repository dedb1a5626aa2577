"""Surrogate MD for the distillation pool (step 4 of the distillation route).

Short Langevin runs driven by the (fine-tuned) surrogate's own calculator, started from the
exploration policy's start cells (:func:`~mlip_autopipe.explore.policy.plan_scenarios` and
:func:`~mlip_autopipe.explore.policy.fresh_start`: bulk ramps, melt-quench, surface slabs,
vacancy, compression, ...), so the pool covers the same scenarios as exploration. LAMMPS cannot
run CHGNet or MACE, so this is ASE MD on the CPU (or the GPU torch sees).

Every ``sample_interval`` steps a frame is labelled by the surrogate (``atoms.info``: ``run``,
``scenario``, ``md_step``, ``temperature``, ``surrogate_force_std``): the labels are those of the
MD step itself (no second evaluation), at the unrounded positions (the stored ones are rounded
to 1e-8 A, as every structure's are). A frame whose committee
force spread exceeds ``max_force_std`` (only a MACE committee has a spread; a single model's is
0) is not pseudo-labelled: it goes to the oracle queue instead, as a candidate of the next
selection (``select`` reads it next to the exploration frames).

Pressure is not controlled (Langevin is NVT): a run with a target pressure (compression,
tension) starts from the cell scaled by the volume strain ``-P/B`` that pressure would give.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipe.data import attach_labels, tag_structure
from mlip_autopipe.errors import LabellingError
from mlip_autopipe.explore.ase_md import _collapsed, langevin_md
from mlip_autopipe.explore.policy import (
    BAR_PER_GPA,
    ScenarioRun,
    fresh_start,
    plan_scenarios,
    planned_bulk_modulus,
)
from mlip_autopipe.oracles.surrogates import CHGNetOracle, MACEOracle

#: ``atoms.info['origin']`` of a surrogate MD frame.
ORIGIN = "surrogate_md"

#: Largest volume strain a target pressure may impose on a start cell.
MAX_VOLUME_STRAIN = 0.3


@dataclass
class SurrogateMDResult:
    """What :func:`surrogate_md` sampled: the pseudo-labelled pool, the unlabelled frames for
    the oracle, and one summary per run (plus totals) for the metrics."""

    pool: list[Atoms] = field(default_factory=list)
    uncertain: list[Atoms] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Totals over runs: frames per scenario in the pool and routed to the oracle, seconds."""
        return {
            "n_pool": len(self.pool),
            "n_uncertain": len(self.uncertain),
            "pool_per_scenario": dict(Counter(str(a.info["scenario"]) for a in self.pool)),
            "uncertain_per_scenario": dict(Counter(str(a.info["scenario"]) for a in self.uncertain)),
            "md_steps": sum(run["steps_done"] for run in self.runs),
            "wall_seconds": sum(run["wall_seconds"] for run in self.runs),
            "runs": self.runs,
        }


def surrogate_md_starts(
    elements: Sequence[str],
    structures: Mapping[str, Any],
    explore: Mapping[str, Any],
    pool: Sequence[Atoms],
    seed: int,
) -> list[tuple[ScenarioRun, Atoms]]:
    """One start cell per run of the exploration policy's plan (as a fresh exploration start),
    a cell with a target pressure strained by ``-P/B`` (bulk modulus of the policy)."""
    runs = plan_scenarios(elements, structures, explore)
    modulus = (
        planned_bulk_modulus(elements, structures, explore) if any(run.pressure_bar for run in runs) else 0.0
    )
    starts = []
    for index, run in enumerate(runs):
        start = fresh_start(run, pool, explore["policy"], elements, structures["supercell"], seed + index)
        if run.pressure_bar and modulus > 0:
            strain = float(
                np.clip(-run.pressure_bar / (modulus * BAR_PER_GPA), -MAX_VOLUME_STRAIN, MAX_VOLUME_STRAIN)
            )
            start.set_cell(start.cell * (1.0 + strain) ** (1.0 / 3.0), scale_atoms=True)
        starts.append((run, start))
    return starts


def _frame(
    atoms: Atoms, run: ScenarioRun, start: Atoms, step: int, temperature: float, generation: int
) -> Atoms:
    frame = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    tag_structure(
        frame, generation=generation, origin=ORIGIN, parent_uid=str(start.info.get("uid", "")) or None
    )
    frame.info.update(
        run=f"{ORIGIN}_{run.run}", scenario=run.scenario, md_step=step, temperature=float(temperature)
    )
    return frame


def run_surrogate_md(
    start: Atoms,
    run: ScenarioRun,
    surrogate: MACEOracle | CHGNetOracle,
    md: Mapping[str, Any],
    explore: Mapping[str, Any],
    *,
    seed: int,
    generation: int,
) -> tuple[list[Atoms], list[Atoms], dict[str, Any]]:
    """One Langevin run of ``md['steps']`` steps, the thermostat ramped linearly from the run's
    start to its end temperature (times ``md['temperature_scale']``); returns the labelled
    frames, the frames routed to the oracle and the run's summary."""
    scale = float(md["temperature_scale"])
    first, last = scale * run.temperature_start, scale * run.temperature_end
    steps, interval = int(md["steps"]), int(md["sample_interval"])
    started = time.perf_counter()
    atoms, dynamics = langevin_md(
        start, surrogate.calculator(), first, explore["timestep_fs"], explore["friction"], seed
    )
    labelled: list[Atoms] = []
    uncertain: list[Atoms] = []
    summary: dict[str, Any] = {"run": run.run, "scenario": run.scenario, "n_atoms": len(start)}
    summary.update(temperature_start=first, temperature_end=last, status="completed", reason="")
    done = 0
    while done < steps:
        temperature = first + (last - first) * done / steps
        dynamics.set_temperature(temperature_K=temperature)
        chunk = min(interval, steps - done)
        dynamics.run(chunk)
        done += chunk
        if _collapsed(atoms):
            summary.update(status="failed", reason="atoms collapsed or positions diverged")
            break
        # the exact MD state: its labels are the calculator's cached results of the last step
        snapshot = Atoms(
            atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc
        )
        try:
            label = surrogate.label(snapshot)
        except LabellingError as error:
            summary.update(status="failed", reason=str(error))
            break
        frame = _frame(atoms, run, start, done, temperature, generation)
        spread = float(label.info["surrogate_force_std"])
        frame.info.update(surrogate_force_std=spread, surrogate_energy_std=label.info["surrogate_energy_std"])
        if spread > float(md["max_force_std"]):
            uncertain.append(frame)
        else:
            results = label.calc.results
            pseudo = attach_labels(
                frame, energy=results["energy"], forces=results["forces"], stress=results.get("stress")
            )
            pseudo.info = dict(frame.info)
            labelled.append(pseudo)
    summary.update(
        steps_done=done,
        n_labelled=len(labelled),
        n_uncertain=len(uncertain),
        wall_seconds=time.perf_counter() - started,
    )
    return labelled, uncertain, summary


def surrogate_md(
    starts: Sequence[tuple[ScenarioRun, Atoms]],
    surrogate: MACEOracle | CHGNetOracle,
    md: Mapping[str, Any],
    explore: Mapping[str, Any],
    *,
    seed: int,
    generation: int,
    log: Callable[[str], None] = lambda message: None,
) -> SurrogateMDResult:
    """Surrogate MD from every start (:func:`surrogate_md_starts`); at most
    ``md['max_uncertain']`` frames go to the oracle, those of the largest spread (the rest of
    the uncertain ones are dropped: neither labelled nor queued)."""
    result = SurrogateMDResult()
    for index, (run, start) in enumerate(starts):
        labelled, uncertain, summary = run_surrogate_md(
            start, run, surrogate, md, explore, seed=seed + 1000 * generation + index, generation=generation
        )
        log(
            f"{run.run}: {summary['steps_done']} steps, {len(labelled)} frames labelled by "
            f"{surrogate.name}, {len(uncertain)} uncertain "
            f"({summary['status']}, {summary['wall_seconds']:.1f} s)"
        )
        result.pool += labelled
        result.uncertain += uncertain
        result.runs.append(summary)
    result.uncertain.sort(key=lambda frame: -float(frame.info["surrogate_force_std"]))
    result.uncertain = result.uncertain[: int(md["max_uncertain"])]
    return result
