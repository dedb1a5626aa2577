"""Exploration: MD with the fitted ACE potential, watching the extrapolation grade gamma.

The ``ase`` engine runs Langevin dynamics with pyace's ``PyACECalculator`` and the active
set. Every ``check_interval`` steps the per-atom gamma is read; frames whose maximum exceeds
``gamma_lo`` are kept, and a run halts as soon as it exceeds ``gamma_hi``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from ase import Atoms, units

from mlip_autopipe.data import tag_structure

#: Two atoms closer than this (Angstrom) mean the dynamics has collapsed.
MIN_PHYSICAL_DISTANCE = 0.5


@dataclass
class RunSummary:
    """What one MD run did."""

    run: str
    start_uid: str
    temperature: float
    steps_requested: int
    steps_done: int = 0
    checks: int = 0
    extrapolative_checks: int = 0
    max_gamma: float = 0.0
    halted: bool = False
    halt_step: int | None = None
    status: str = "completed"
    reason: str = ""


def load_calculator(potential_yaml: str | os.PathLike[str], active_set: str | os.PathLike[str]) -> Any:
    """A ``PyACECalculator`` that also returns per-atom ``gamma``."""
    from pyace import PyACECalculator

    calculator = PyACECalculator(str(potential_yaml))
    calculator.set_active_set(str(active_set))
    return calculator


def _collapsed(atoms: Atoms) -> bool:
    if not np.all(np.isfinite(atoms.positions)):
        return True
    distances = atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    return bool(distances.min() < MIN_PHYSICAL_DISTANCE)


def _frame(atoms: Atoms, gamma: np.ndarray, summary: RunSummary, step: int, generation: int) -> Atoms:
    frame = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    frame.arrays["gamma"] = np.asarray(gamma, dtype=float)
    tag_structure(frame, generation=generation, origin="md", parent_uid=summary.start_uid)
    frame.info.update(
        run=summary.run, md_step=step, temperature=summary.temperature, max_gamma=float(np.max(gamma))
    )
    return frame


def langevin_md(
    start: Atoms, calculator: Any, temperature: float, timestep_fs: float, friction: float, seed: int
) -> tuple[Atoms, Any]:
    """A copy of ``start`` with ``calculator``, seeded Maxwell-Boltzmann velocities (centre of
    mass fixed) and its Langevin integrator; ``friction`` in 1/fs."""
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    atoms = Atoms(start.get_chemical_symbols(), positions=start.positions, cell=start.cell, pbc=start.pbc)
    atoms.calc = calculator
    atoms.set_constraint(FixCom())
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature, rng=rng)
    dynamics = Langevin(
        atoms,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature,
        friction=friction / units.fs,
        fixcm=False,
        rng=rng,
    )
    return atoms, dynamics


def run_langevin(
    start: Atoms,
    calculator: Any,
    *,
    run: str,
    temperature: float,
    explore: Mapping[str, Any],
    seed: int,
    generation: int,
) -> tuple[list[Atoms], RunSummary]:
    """One Langevin run; returns the extrapolative frames and the run summary."""
    summary = RunSummary(
        run=run,
        start_uid=str(start.info.get("uid", "")),
        temperature=float(temperature),
        steps_requested=int(explore["steps"]),
    )
    atoms, dynamics = langevin_md(
        start, calculator, temperature, explore["timestep_fs"], explore["friction"], seed
    )
    frames: list[Atoms] = []
    interval = int(explore["check_interval"])
    while summary.steps_done < summary.steps_requested:
        chunk = min(interval, summary.steps_requested - summary.steps_done)
        dynamics.run(chunk)
        summary.steps_done += chunk
        if _collapsed(atoms):
            summary.status, summary.reason = "failed", "atoms collapsed or positions diverged"
            break
        gamma = np.asarray(calculator.results["gamma"], dtype=float)
        max_gamma = float(gamma.max())
        summary.checks += 1
        summary.max_gamma = max(summary.max_gamma, max_gamma)
        if max_gamma > explore["gamma_lo"]:
            summary.extrapolative_checks += 1
            frames.append(_frame(atoms, gamma, summary, summary.steps_done, generation))
        if max_gamma > explore["gamma_hi"]:
            summary.halted, summary.halt_step = True, summary.steps_done
            summary.status, summary.reason = "halted", f"max gamma {max_gamma:.2f} > gamma_hi"
            break
    return frames, summary


def choose_starts(pool: Sequence[Atoms], count: int, seed: int) -> list[Atoms]:
    """Seeded choice of MD starting cells among the pool's SQS cells (undistorted alloys)."""
    alloys = [atoms for atoms in pool if atoms.info.get("origin") == "sqs"] or list(pool)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(alloys))
    return [alloys[order[index % len(alloys)]] for index in range(count)]


def explore_ase(
    pool: Sequence[Atoms],
    potential_yaml: str | os.PathLike[str],
    active_set: str | os.PathLike[str],
    explore: Mapping[str, Any],
    *,
    seed: int,
    generation: int,
) -> tuple[list[Atoms], list[dict[str, Any]]]:
    """Every temperature from each start cell; returns frames and per-run summaries."""
    calculator = load_calculator(potential_yaml, active_set)
    frames: list[Atoms] = []
    summaries: list[dict[str, Any]] = []
    starts = choose_starts(pool, int(explore["starts_per_temperature"]), seed + 1000 * generation)
    for t_index, temperature in enumerate(explore["temperatures"]):
        for s_index, start in enumerate(starts):
            run = f"T{temperature:g}_s{s_index}"
            run_seed = seed + 1000 * generation + 100 * t_index + s_index
            run_frames, summary = run_langevin(
                start,
                calculator,
                run=run,
                temperature=temperature,
                explore=explore,
                seed=run_seed,
                generation=generation,
            )
            frames.extend(run_frames)
            summaries.append(asdict(summary))
    return frames, summaries


def run_exploration(
    pool: Sequence[Atoms],
    potential_yaml: str | os.PathLike[str],
    active_set: str | os.PathLike[str],
    explore: Mapping[str, Any],
    *,
    elements: Sequence[str],
    seed: int,
    generation: int,
    work_dir: str | os.PathLike[str],
) -> tuple[list[Atoms], list[dict[str, Any]]]:
    """Explore with the configured engine (``explore.engine``: ``ase`` or ``lammps``).

    Both return extrapolative frames and per-run :class:`RunSummary` dicts of the same shape;
    ``work_dir`` keeps the lammps engine's decks, logs and dumps (one folder per run).
    """
    if explore["engine"] == "lammps":
        from mlip_autopipe.lammps import explore_lammps

        return explore_lammps(
            pool,
            potential_yaml,
            active_set,
            explore,
            elements=elements,
            seed=seed,
            generation=generation,
            work_dir=work_dir,
        )
    return explore_ase(pool, potential_yaml, active_set, explore, seed=seed, generation=generation)
