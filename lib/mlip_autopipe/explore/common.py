"""What every exploration engine shares: the run summary, the start choice, frame tagging, seeds.

Engines (:mod:`.ase_md`, :mod:`.lammps`) import this module; it imports neither of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from mlip_autopipe.data import tag_structure

#: LAMMPS random seeds must be positive and below 2**30; run seeds are mapped into 1..this.
LAMMPS_SEED_RANGE = 900_000_000


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
    scenario: str = ""
    escalation: int = 0
    start: str = "fresh"  # fresh (built from the pool), last (previous generation's last frame), halt
    temperature_end: float = 0.0
    temperature_reached: float = 0.0  # thermostat target at the last step done
    pressure_bar: float | None = None  # None: NVT
    n_atoms: int = 0
    melting_point: float | None = None  # Tm (K) the temperatures were scaled by
    melting_point_found: float | None = None  # Tm where this heating run melted (current potential)


def run_seed(
    seed: int, generation: int, temperature_index: int, pressure_index: int, start_index: int
) -> int:
    """The one seed rule of a run: distinct per generation, temperature, pressure and start."""
    return seed + 1000 * generation + 100 * temperature_index + 10 * pressure_index + start_index


def lammps_seed(seed: int) -> int:
    """A run seed mapped into the range LAMMPS accepts (positive, below 2**30)."""
    return 1 + seed % LAMMPS_SEED_RANGE


def choose_starts(pool: Sequence[Atoms], count: int, seed: int) -> list[Atoms]:
    """Seeded choice of MD starting cells among the pool's SQS cells (undistorted alloys)."""
    alloys = [atoms for atoms in pool if atoms.info.get("origin") == "sqs"] or list(pool)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(alloys))
    return [alloys[order[index % len(alloys)]] for index in range(count)]


def tag_md_frame(frame: Atoms, gamma: np.ndarray, summary: RunSummary, step: int, generation: int) -> Atoms:
    """Tag an MD frame in place: uid/generation/origin ``md``/parent, per-atom ``gamma``, and
    ``run``, ``scenario``, ``md_step``, ``temperature``, ``max_gamma`` in ``atoms.info``."""
    frame.arrays["gamma"] = np.asarray(gamma, dtype=float)
    tag_structure(frame, generation=generation, origin="md", parent_uid=summary.start_uid)
    frame.info.update(
        run=summary.run,
        scenario=summary.scenario or "bulk",
        md_step=step,
        temperature=summary.temperature,
        max_gamma=float(np.max(gamma)),
    )
    return frame


def ramp_temperature(summary: RunSummary) -> float:
    """The thermostat target at the last step done (linear ramp from start to end)."""
    if summary.steps_requested <= 0:
        return summary.temperature
    progress = min(1.0, summary.steps_done / summary.steps_requested)
    return summary.temperature + (summary.temperature_end - summary.temperature) * progress
