"""One exploration run of one generation: start (fresh or continued), escalate, run, summarise.

Continuation: a run's last frame (positions and velocities; after a halt, the halt frame) is an
output of its generation and the start of the same run in the next one, under the refitted
potential. A halted run resumes at the thermostat target it had reached; a run that stayed quiet
(no extrapolative check) escalates (:func:`~mlip_autopipe.explore.policy.escalation`); a failed
run starts afresh from the pool.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipe.data import tag_structure
from mlip_autopipe.explore.common import lammps_seed, run_seed
from mlip_autopipe.explore.policy import (
    ScenarioRun,
    bigger,
    escalation,
    fresh_start,
    melting_from_heating,
    next_level,
    plan_scenarios,
    planned_melting_point,
    refined_melting_point,
)

#: Continue from these previous outcomes; a failed run starts afresh.
CONTINUABLE = ("completed", "halted")


def whole_checks(steps: float, interval: int) -> int:
    """``steps`` rounded down to whole checks (at least one)."""
    return max(interval, int(steps) // interval * interval)


def continued_start(
    run: ScenarioRun,
    previous_last: Atoms | None,
    previous: Mapping[str, Any] | None,
    level: int,
    settings: Mapping[str, Any],
    vacuum_threshold: float,
) -> tuple[Atoms, str] | None:
    """The previous generation's last frame as this run's start (made bigger when the run
    escalates to a level that asks for it), and how it was reached; None: start afresh."""
    from mlip_autopipe.explore.lammps import has_vacuum

    if previous_last is None or previous is None or previous.get("status") not in CONTINUABLE:
        return None
    start = previous_last.copy()
    start.info = {"uid": str(previous_last.info.get("uid", "")), "scenario": run.scenario}
    kind = "halt" if previous.get("halted") else "last"
    grew = level > int(previous.get("escalation", 0))
    if grew and escalation(level, settings).bigger_cell:
        vacuum_axis = None
        if has_vacuum(start, vacuum_threshold):
            vacuum_axis = int(np.argmax(start.cell.lengths())) if run.cell == "surface" else 2
        start = bigger(start, int(settings["max_atoms"]), vacuum_axis)
    return start, kind


def explore_run(
    name: str,
    *,
    pool: Sequence[Atoms],
    previous_last: Atoms | None,
    previous: Mapping[str, Any] | None,
    potential_yaml: str | os.PathLike[str],
    active_set: str | os.PathLike[str],
    explore: Mapping[str, Any],
    elements: Sequence[str],
    structures: Mapping[str, Any],
    seed: int,
    generation: int,
    work_dir: str | os.PathLike[str],
    previous_runs: Sequence[Mapping[str, Any]] = (),
) -> tuple[list[Atoms], dict[str, Any], Atoms]:
    """Run ``name`` of the plan in generation ``generation``.

    Args:
        previous_last, previous: the same run's last frame and summary in the generation
            before (None in generation 0).
        previous_runs: every run summary of the generation before: where its ``bulk`` heating
            ramp melted refines the melting point all temperatures scale with
            (``explore.policy.refine_melting_point``).

    Returns:
        The extrapolative frames (``scenario`` in their info), the run summary (a
        :class:`~mlip_autopipe.explore.common.RunSummary` dict) and the last frame, with
        velocities, that the next generation continues from.
    """
    from mlip_autopipe.explore.lammps import has_vacuum

    plan = plan_scenarios(elements, structures, explore)
    index = [run.run for run in plan].index(name)
    run = plan[index]
    settings = explore["policy"]["escalation"]
    level = next_level(previous, settings) if explore["policy"]["enabled"] else 0
    push = escalation(level, settings)
    this_seed = run_seed(seed, generation, index, 0, run.start_index)
    vacuum_threshold = float(explore["vacuum_threshold"])

    policy = explore["policy"]
    melting, scale = None, 1.0
    if policy["enabled"]:
        planned = planned_melting_point(elements, structures, explore)
        melting = refined_melting_point(planned, previous_runs) if policy["refine_melting_point"] else planned
        scale = melting / planned
    temperature_start = run.temperature_start * scale * push.temperature_factor
    temperature_end = run.temperature_end * scale * push.temperature_factor
    continued = continued_start(run, previous_last, previous, level, settings, vacuum_threshold)
    if continued is None:
        parent_seed = run_seed(seed, generation, index - run.replica, 0, 0)
        start = fresh_start(
            run, pool, explore["policy"], elements, structures["supercell"], this_seed, parent_seed
        )
        kind = "fresh"
    else:
        start, kind = continued
        if kind == "halt" and previous is not None:
            temperature_start = float(previous.get("temperature_reached") or temperature_start)
    pressure = None if run.pressure_bar is None else run.pressure_bar * push.pressure_factor
    if has_vacuum(start, vacuum_threshold):
        pressure = None  # a slab (or a cell that opened up): NVT
    interval = int(explore["check_interval"])
    steps = whole_checks(int(explore["steps"]) * push.steps_factor, interval)
    scenario_settings = dict(explore, steps=steps)

    if explore["engine"] == "lammps":
        frames, summary, last = _run_in_lammps(
            start,
            replace(
                run,
                temperature_start=temperature_start,
                temperature_end=temperature_end,
                pressure_bar=pressure,
            ),
            potential_yaml,
            active_set,
            scenario_settings,
            elements=elements,
            seed=this_seed,
            generation=generation,
            folder=Path(work_dir),
        )
    else:
        from mlip_autopipe.explore.ase_md import langevin_run, load_calculator

        frames, run_summary, last = langevin_run(
            start,
            load_calculator(potential_yaml, active_set),
            run=name,
            temperature=temperature_start,
            explore=scenario_settings,
            seed=this_seed,
            generation=generation,
        )
        summary = asdict(run_summary)
    summary.update(scenario=run.scenario, escalation=level, start=kind, melting_point=melting)
    if run.scenario == "bulk" and explore["engine"] == "lammps" and temperature_end > temperature_start:
        summary["melting_point_found"] = _melted_at(Path(work_dir), summary, policy)
    last.info = {"run": name, "scenario": run.scenario, "halted": bool(summary["halted"])}
    tag_structure(last, generation=generation, origin="md", parent_uid=str(start.info.get("uid", "")))
    return frames, summary, last


def _run_in_lammps(
    start: Atoms,
    run: ScenarioRun,
    potential_yaml: str | os.PathLike[str],
    active_set: str | os.PathLike[str],
    explore: Mapping[str, Any],
    *,
    elements: Sequence[str],
    seed: int,
    generation: int,
    folder: Path,
) -> tuple[list[Atoms], dict[str, Any], Atoms]:
    from mlip_autopipe.explore.lammps import RunPlan, has_velocities, read_last_frame, run_lammps

    present = sorted({elements.index(symbol) + 1 for symbol in start.get_chemical_symbols()})
    plan = RunPlan(
        run=run.run,
        elements=tuple(elements),
        temperature_start=float(run.temperature_start),
        temperature_end=float(run.temperature_end),
        pressure_bar=run.pressure_bar,
        steps=int(explore["steps"]),
        timestep_fs=float(explore["timestep_fs"]),
        check_interval=int(explore["check_interval"]),
        gamma_lo=float(explore["gamma_lo"]),
        gamma_hi=float(explore["gamma_hi"]),
        seed=lammps_seed(seed),
        thermostat_damping_fs=float(explore["thermostat_damping_fs"]),
        barostat_damping_fs=float(explore["barostat_damping_fs"]),
        swap_interval=run.swap_interval,
        swap_attempts=int(explore["swap_attempts"]),
        swap_types=tuple(present),
        periodic=(bool(start.pbc[0]), bool(start.pbc[1]), bool(start.pbc[2])),
        velocities=has_velocities(start),
        keep_every_check=bool(explore.get("keep_every_check", False)),
    )
    frames, summary = run_lammps(
        start, plan, potential_yaml, active_set, folder, explore, generation=generation
    )
    last = read_last_frame(folder, elements, start.pbc) if summary.status != "failed" else None
    if last is None:  # LAMMPS died: the next generation starts afresh
        last = start.copy()
    return frames, asdict(summary), last


def _melted_at(folder: Path, summary: Mapping[str, Any], policy: Mapping[str, Any]) -> float | None:
    """Where the bulk run's heating ramp melted, from its LAMMPS log (None: it did not)."""
    from mlip_autopipe.explore.lammps import LOG_FILE, read_thermo

    rows = [row for row in read_thermo(folder / LOG_FILE) if row["Step"] > 0 and "Volume" in row]
    start, end = float(summary["temperature"]), float(summary["temperature_end"])
    steps = max(1, int(summary["steps_requested"]))
    targets = [start + (end - start) * min(1.0, row["Step"] / steps) for row in rows]
    return melting_from_heating(rows, targets, float(policy["melt_volume_jump"]))
