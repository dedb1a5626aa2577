"""Exploration engine ``ase``: MD with the fitted ACE potential, watching the extrapolation grade.

The ``ase`` engine runs Langevin dynamics with pyace's ``PyACECalculator`` and the active
set. Every ``check_interval`` steps the per-atom gamma is read; frames whose maximum exceeds
``gamma_lo`` are kept, and a run halts as soon as it exceeds ``gamma_hi``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
from ase import Atoms, units

from mlip_autopipe.explore.common import RunSummary, choose_starts, run_seed, tag_md_frame

#: Two atoms closer than this (Angstrom) mean the dynamics has collapsed.
MIN_PHYSICAL_DISTANCE = 0.5


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


def langevin_md(
    start: Atoms, calculator: Any, temperature: float, timestep_fs: float, friction: float, seed: int
) -> tuple[Atoms, Any]:
    """A copy of ``start`` with ``calculator``, seeded Maxwell-Boltzmann velocities (centre of
    mass fixed) and its Langevin integrator; ``friction`` in 1/fs. A start that carries
    momenta (a continued run) keeps them."""
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    atoms = Atoms(start.get_chemical_symbols(), positions=start.positions, cell=start.cell, pbc=start.pbc)
    atoms.calc = calculator
    atoms.set_constraint(FixCom())
    rng = np.random.default_rng(seed)
    momenta = start.arrays.get("momenta")
    if momenta is not None and np.any(momenta):
        atoms.set_momenta(np.array(momenta))
    else:
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
    frames, summary, _ = langevin_run(
        start, calculator, run=run, temperature=temperature, explore=explore, seed=seed, generation=generation
    )
    return frames, summary


def langevin_run(
    start: Atoms,
    calculator: Any,
    *,
    run: str,
    temperature: float,
    explore: Mapping[str, Any],
    seed: int,
    generation: int,
) -> tuple[list[Atoms], RunSummary, Atoms]:
    """One Langevin run at constant ``temperature`` (no barostat, no swaps); returns the
    extrapolative frames, the run summary and the last frame (with its momenta)."""
    summary = RunSummary(
        run=run,
        start_uid=str(start.info.get("uid", "")),
        temperature=float(temperature),
        steps_requested=int(explore["steps"]),
        scenario=str(start.info.get("scenario", "")),
        temperature_end=float(temperature),
        temperature_reached=float(temperature),
        n_atoms=len(start),
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
        if max_gamma > explore["gamma_lo"] or explore.get("keep_every_check", False):
            symbols = atoms.get_chemical_symbols()
            frame = Atoms(symbols, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            frames.append(tag_md_frame(frame, gamma, summary, summary.steps_done, generation))
        if max_gamma > explore["gamma_hi"]:
            summary.halted, summary.halt_step = True, summary.steps_done
            summary.status, summary.reason = "halted", f"max gamma {max_gamma:.2f} > gamma_hi"
            break
    last = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    last.set_momenta(atoms.get_momenta())
    return frames, summary, last


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
            seed_of_run = run_seed(seed, generation, t_index, 0, s_index)
            run_frames, summary = run_langevin(
                start,
                calculator,
                run=run,
                temperature=temperature,
                explore=explore,
                seed=seed_of_run,
                generation=generation,
            )
            frames.extend(run_frames)
            summaries.append(asdict(summary))
    return frames, summaries
