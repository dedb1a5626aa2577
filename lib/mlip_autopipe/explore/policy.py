"""The exploration policy: which MD runs a generation makes, derived from the chemistry.

From the elements, the compositions and the parent lattice, :func:`plan_scenarios` derives one
run per scenario (``explore.policy``, every number overridable):

- ``bulk``: NPT at 0 bar, the thermostat ramped from ``bulk_temperatures[0]`` to
  ``bulk_temperatures[1]`` times the estimated melting point (heat until melted);
- ``melt_quench``: NPT from above the melting point down to below it (liquid, then quench);
- ``surface_hkl``: a low-index slab of the parent lattice with vacuum (NVT: the engine sees
  the vacuum), one per Miller index;
- ``vacancy``, ``interstitial``: a point defect at a high temperature (migration);
- ``compression``, ``tension``: NPT at ``pressure_fraction`` / minus ``tension_fraction`` times
  the estimated bulk modulus;
- ``ordering``: Monte Carlo atom swaps (``fix atom/swap``) at a moderate temperature, alloys only.

The melting point and the bulk modulus are composition-weighted element data from pymatgen
(averaged over ``structures.compositions``), unless ``explore.policy.melting_point`` /
``bulk_modulus`` give them. With ``explore.policy.enabled: false`` the runs are the fixed plan
of ``explore.temperatures`` x ``explore.pressures`` x ``explore.starts_per_temperature`` (all
``bulk``).

Run names are known from the config alone, so a workflow can scatter one job per run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from math import gcd
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipe.errors import ConfigError

#: 1 GPa in bar (LAMMPS ``metal`` pressure unit).
BAR_PER_GPA = 1.0e4

#: The scenarios a policy can make, in plan order (``surface`` expands to one per Miller index).
SCENARIOS = (
    "bulk",
    "melt_quench",
    "surface",
    "vacancy",
    "interstitial",
    "compression",
    "tension",
    "ordering",
)

#: Low-index surfaces per parent lattice (Miller indices of the conventional cell; hcp: its
#: 3-index hexagonal cell, so (0,0,1) is the basal plane and (1,0,0) a prismatic one).
LOW_INDEX_SURFACES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "fcc": ((1, 0, 0), (1, 1, 0), (1, 1, 1)),
    "bcc": ((1, 0, 0), (1, 1, 0), (1, 1, 1)),
    "sc": ((1, 0, 0), (1, 1, 0), (1, 1, 1)),
    "diamond": ((1, 0, 0), (1, 1, 0), (1, 1, 1)),
    "hcp": ((0, 0, 1), (1, 0, 0)),
}


@dataclass(frozen=True)
class ScenarioRun:
    """One exploration run of the plan: what to start from and how to drive it.

    ``cell`` names the start cell: ``bulk`` (an SQS cell of the pool), ``surface`` (a slab
    of it), ``vacancy`` or ``interstitial``. ``pressure_bar`` None means NVT. Temperatures
    and pressure are those of escalation level 0 (see :func:`escalated`).
    """

    run: str
    scenario: str
    cell: str
    temperature_start: float
    temperature_end: float
    pressure_bar: float | None = 0.0
    swap_interval: int = 0  # steps between Monte Carlo swap attempts; 0: none
    miller: tuple[int, int, int] | None = None
    start_index: int = 0
    replica: int = 0  # 0: the scenario's first run (named after it); k: its run "<name>_<k+1>"


def average_composition(
    compositions: Sequence[Mapping[str, float]], elements: Sequence[str]
) -> dict[str, float]:
    """Mean fraction of each element over the configured compositions (normalised)."""
    totals = dict.fromkeys(elements, 0.0)
    for composition in compositions:
        norm = sum(composition.values()) or 1.0
        for element, fraction in composition.items():
            totals[element] = totals.get(element, 0.0) + fraction / norm
    total = sum(totals.values()) or 1.0
    return {element: value / total for element, value in totals.items() if value > 0}


def _element_property(element: str, name: str) -> float | None:
    import warnings

    from pymatgen.core import Element

    with warnings.catch_warnings():  # "No data available": reported as a ConfigError instead
        warnings.simplefilter("ignore", UserWarning)
        value = getattr(Element(element), name, None)
    return None if value is None else float(value)


def _composition_weighted(composition: Mapping[str, float], name: str, what: str) -> float:
    """The composition-weighted pymatgen element property ``name``; a ConfigError naming
    ``explore.policy.<name>`` for an element without a tabulated value (``what`` says which)."""
    total = 0.0
    for element, fraction in composition.items():
        value = _element_property(element, name)
        if value is None:
            raise ConfigError(f"explore.policy.{name}", f"no tabulated {what} for {element}")
        total += fraction * value
    return total


def estimated_melting_point(composition: Mapping[str, float]) -> float:
    """Composition-weighted melting point (K) from pymatgen's element data.

    Raises:
        ConfigError: an element without a tabulated melting point.
    """
    return _composition_weighted(composition, "melting_point", "melting point")


def estimated_bulk_modulus(composition: Mapping[str, float]) -> float:
    """Composition-weighted bulk modulus (GPa) from pymatgen's element data.

    Raises:
        ConfigError: an element without a tabulated bulk modulus.
    """
    return _composition_weighted(composition, "bulk_modulus", "bulk modulus")


def planned_melting_point(
    elements: Sequence[str], structures: Mapping[str, Any], explore: Mapping[str, Any]
) -> float:
    """Tm (K) of the plan: ``explore.policy.melting_point``, else the pymatgen estimate."""
    composition = average_composition(structures["compositions"], elements)
    return float(explore["policy"]["melting_point"] or estimated_melting_point(composition))


def planned_bulk_modulus(
    elements: Sequence[str], structures: Mapping[str, Any], explore: Mapping[str, Any]
) -> float:
    """B (GPa) of the plan: ``explore.policy.bulk_modulus``, else the pymatgen estimate."""
    composition = average_composition(structures["compositions"], elements)
    return float(explore["policy"]["bulk_modulus"] or estimated_bulk_modulus(composition))


#: A melting point refined with the potential stays within these factors of the plan's.
REFINED_MELTING_BOUNDS = (0.5, 1.5)


def refined_melting_point(planned: float, previous_runs: Sequence[Mapping[str, Any]]) -> float:
    """The melting point of the current potential when the generation before found one (the
    ``bulk`` run's heating ramp melted), else the one it used, else ``planned``; bounded."""
    found = [run["melting_point_found"] for run in previous_runs if run.get("melting_point_found")]
    used = [run["melting_point"] for run in previous_runs if run.get("melting_point")]
    value = float(found[0]) if found else float(used[0]) if used else planned
    low, high = REFINED_MELTING_BOUNDS
    return min(max(value, low * planned), high * planned)


def _fixed_plan(explore: Mapping[str, Any]) -> list[ScenarioRun]:
    """The policy-free plan: every temperature x pressure x start, all ``bulk``."""
    runs = []
    for temperature in explore["temperatures"]:
        for pressure in explore["pressures"]:
            for start in range(int(explore["starts_per_temperature"])):
                runs.append(
                    ScenarioRun(
                        run=f"T{temperature:g}_P{float(pressure):g}_s{start}",
                        scenario="bulk",
                        cell="bulk",
                        temperature_start=float(temperature),
                        temperature_end=float(temperature) * float(explore["temperature_ramp"]),
                        pressure_bar=float(pressure),
                        swap_interval=int(explore["swap_interval"]),
                        start_index=start,
                    )
                )
    return runs


def miller_name(miller: Sequence[int]) -> str:
    """``surface_111``; negative indices as ``m1`` (``surface_1m10``)."""
    return "surface_" + "".join(f"m{-i}" if i < 0 else str(i) for i in miller)


def plan_scenarios(
    elements: Sequence[str], structures: Mapping[str, Any], explore: Mapping[str, Any]
) -> list[ScenarioRun]:
    """The runs of every generation (names, scenarios, level-0 temperatures and pressures)."""
    policy = explore["policy"]
    if not policy["enabled"]:
        return _fixed_plan(explore)
    composition = average_composition(structures["compositions"], elements)
    melting = planned_melting_point(elements, structures, explore)
    pressures_needed = {"compression", "tension"} & set(policy["scenarios"])
    modulus = planned_bulk_modulus(elements, structures, explore) if pressures_needed else 0.0
    lattice = str(structures.get("lattice") or "fcc")
    if structures.get("lattice_file"):
        lattice = "file"
    millers = policy["surface_millers"] or LOW_INDEX_SURFACES.get(lattice, ((0, 0, 1),))
    pressures = {
        "compression": float(policy["pressure_fraction"]) * modulus * BAR_PER_GPA,
        "tension": -float(policy["tension_fraction"]) * modulus * BAR_PER_GPA,
    }
    alloy = len(composition) >= 2

    def at(fraction: float) -> float:
        return round(float(fraction) * melting, 1)

    runs: list[ScenarioRun] = []
    for scenario in policy["scenarios"]:
        if scenario == "bulk":
            low, high = policy["bulk_temperatures"]
            runs.append(ScenarioRun("bulk", "bulk", "bulk", at(low), at(high), 0.0))
        elif scenario == "melt_quench":
            hot, cold = policy["melt_temperatures"]
            runs.append(ScenarioRun("melt_quench", "melt_quench", "bulk", at(hot), at(cold), 0.0))
        elif scenario == "surface":
            temperature = at(policy["surface_temperature"])
            for miller in millers:
                name = miller_name(miller)
                runs.append(
                    ScenarioRun(name, name, "surface", temperature, temperature, None, miller=tuple(miller))
                )
        elif scenario in ("vacancy", "interstitial"):
            temperature = at(policy["defect_temperature"])
            runs.append(ScenarioRun(scenario, scenario, scenario, temperature, temperature, 0.0))
        elif scenario in ("compression", "tension"):
            temperature = at(policy["pressure_temperature"])
            pressure = round(pressures[scenario], 1)
            runs.append(ScenarioRun(scenario, scenario, "bulk", temperature, temperature, pressure))
        elif scenario == "ordering" and alloy:
            temperature = at(policy["ordering_temperature"])
            swaps = int(policy["ordering_swap_interval"])
            runs.append(
                ScenarioRun(
                    "ordering", "ordering", "bulk", temperature, temperature, 0.0, swap_interval=swaps
                )
            )
    return with_replicas(runs, int(policy["replicas"]))


def with_replicas(runs: Sequence[ScenarioRun], replicas: int) -> list[ScenarioRun]:
    """Every run ``replicas`` times, a scenario's replicas next to each other: replica 0 keeps
    the run's name, replica k is ``<name>_<k+1>`` (its own trajectory, continued by name, and
    its own start cell: see :func:`fresh_start`)."""
    return [
        replace(run, run=run.run if k == 0 else f"{run.run}_{k + 1}", start_index=k, replica=k)
        for run in runs
        for k in range(max(1, replicas))
    ]


def check_policy(elements: Sequence[str], structures: Mapping[str, Any], explore: Mapping[str, Any]) -> None:
    """The plan can be made (element data found) and its slabs count as vacuum.

    Raises:
        ConfigError: naming the key to set or change.
    """
    policy = explore["policy"]
    slabs = policy["enabled"] and "surface" in policy["scenarios"]
    if slabs and float(policy["surface_vacuum"]) <= float(explore["vacuum_threshold"]):
        raise ConfigError(
            "explore.policy.surface_vacuum",
            f"{policy['surface_vacuum']} A must exceed explore.vacuum_threshold "
            f"({explore['vacuum_threshold']} A), or slabs would run NPT",
        )
    plan_scenarios(elements, structures, explore)


def run_names(
    elements: Sequence[str], structures: Mapping[str, Any], explore: Mapping[str, Any]
) -> list[str]:
    """The run names of a generation (one Snakemake job each)."""
    return [run.run for run in plan_scenarios(elements, structures, explore)]


def find_run(
    name: str, elements: Sequence[str], structures: Mapping[str, Any], explore: Mapping[str, Any]
) -> ScenarioRun:
    """The planned run called ``name``.

    Raises:
        ConfigError: no such run in the plan.
    """
    for run in plan_scenarios(elements, structures, explore):
        if run.run == name:
            return run
    raise ConfigError("explore.policy", f"no exploration run named {name!r} in the plan")


def melting_from_heating(
    rows: Sequence[Mapping[str, float]], temperatures: Sequence[float], min_jump: float
) -> float | None:
    """The thermostat target (K) where a heating ramp's volume jumps most, if it jumps by at
    least ``min_jump`` (relative): the melting point of the current potential; else None.

    ``rows`` are thermo rows (``Vol``) and ``temperatures`` the target at each of them. The jump
    at row i compares the mean volume of the window after i with the window before (a tenth of
    the rows each, at least 3), so steady thermal expansion does not count.
    """
    volumes = np.array([float(row["Volume"]) for row in rows])
    window = max(3, len(volumes) // 10)
    if len(volumes) < 2 * window:
        return None
    jumps = [
        (volumes[i : i + window].mean() - volumes[i - window : i].mean()) / volumes[i - window : i].mean()
        for i in range(window, len(volumes) - window + 1)
    ]
    best = int(np.argmax(jumps))
    if jumps[best] < min_jump:
        return None
    return float(temperatures[best + window])


@dataclass(frozen=True)
class Escalation:
    """How a quiet scenario is pushed at escalation level ``level`` (0: as planned)."""

    level: int
    steps_factor: float
    temperature_factor: float
    pressure_factor: float
    bigger_cell: bool


def escalation(level: int, settings: Mapping[str, Any]) -> Escalation:
    """Multipliers of level ``level``: steps x steps_factor^level, temperatures x
    temperature_factor^level, pressure x pressure_factor^level; from ``repeat_at_level`` on,
    the cell doubles once per escalation (up to ``max_atoms``)."""
    level = min(int(level), int(settings["max_level"]))
    return Escalation(
        level=level,
        steps_factor=float(settings["steps_factor"]) ** level,
        temperature_factor=float(settings["temperature_factor"]) ** level,
        pressure_factor=float(settings["pressure_factor"]) ** level,
        bigger_cell=level >= int(settings["repeat_at_level"]),
    )


def next_level(previous: Mapping[str, Any] | None, settings: Mapping[str, Any]) -> int:
    """The escalation level of a run given its previous generation's summary.

    A run that stayed quiet (completed, with at most ``quiet_fraction`` of its gamma checks
    extrapolative) goes one level up (bounded by ``max_level``); any other keeps its level.
    """
    if previous is None:
        return 0
    level = int(previous.get("escalation", 0))
    extrapolative = int(previous.get("extrapolative_checks", 0))
    quiet = previous.get("status") == "completed" and (
        extrapolative <= float(settings["quiet_fraction"]) * int(previous.get("checks", 0))
    )
    return min(level + 1, int(settings["max_level"])) if quiet else level


# --- start cells -------------------------------------------------------------------------


def supercell_miller(miller: Sequence[int], repeats: Sequence[int]) -> tuple[int, int, int]:
    """Miller indices of the parent lattice expressed in the SQS supercell's vectors.

    The supercell repeats the conventional cell ``n_i`` times along vector i, so plane
    (h, k, l) of the lattice is (h n1, k n2, l n3) of the supercell, reduced.
    """
    scaled = [int(m) * int(n) for m, n in zip(miller, repeats, strict=True)]
    divisor = gcd(gcd(abs(scaled[0]), abs(scaled[1])), abs(scaled[2])) or 1
    return (scaled[0] // divisor, scaled[1] // divisor, scaled[2] // divisor)


def slab(
    bulk_cell: Atoms, miller: Sequence[int], repeats: Sequence[int], thickness: float, vacuum: float
) -> Atoms:
    """A periodic slab of ``bulk_cell`` (the lattice repeated ``repeats`` times) normal to the
    lattice plane ``miller``, whole repeats of the cell's layers whose atoms span at least
    ``thickness`` A along the normal (the outermost planes' distance, as the test sets measure
    it), with ``vacuum`` A of empty space (total) along the cell's third vector (the normal)."""
    from mlip_autopipe.lattice import thick_surface_cell

    built = thick_surface_cell(bulk_cell, supercell_miller(miller, repeats), thickness, vacuum=vacuum / 2.0)
    built.info = {"miller": np.array(miller)}
    return built


def sqs_cells(pool: Sequence[Atoms]) -> list[Atoms]:
    """The pool's SQS cells (undistorted alloys), or the whole pool when it has none."""
    return [atoms for atoms in pool if atoms.info.get("origin") == "sqs"] or list(pool)


def fresh_start(
    run: ScenarioRun,
    pool: Sequence[Atoms],
    policy: Mapping[str, Any],
    elements: Sequence[str],
    supercell: Sequence[int],
    seed: int,
    parent_seed: int | None = None,
) -> Atoms:
    """The start cell of ``run`` built from the pool (no previous generation to continue).

    bulk: a seeded pick among the SQS cells; surface: a slab of it; vacancy: one atom removed;
    interstitial: one atom (of the pick's most abundant element) added in the largest hole.
    The pick is drawn with ``parent_seed`` (default ``seed``), which a scenario's replicas
    share: replica k takes the cell ``k * len(cells) / replicas`` places further in the
    pool, so replicas start from different cells (compositions) as far as the pool has them.
    """
    from mlip_autopipe.variants import with_interstitial, with_vacancy

    rng = np.random.default_rng(seed)
    parent_rng = np.random.default_rng(seed if parent_seed is None else parent_seed)
    cells = sqs_cells(pool)
    replicas = max(1, int(policy.get("replicas", 1)))
    offset = run.replica * max(1, len(cells) // replicas) if run.replica else run.start_index
    parent = cells[(int(parent_rng.integers(len(cells))) + offset) % len(cells)]
    if run.cell == "surface":
        assert run.miller is not None
        thickness, vacuum = float(policy["surface_thickness"]), float(policy["surface_vacuum"])
        start = slab(parent, run.miller, supercell, thickness, vacuum)
    elif run.cell == "vacancy":
        start = with_vacancy(parent, int(rng.integers(len(parent))))
    elif run.cell == "interstitial":
        symbols = parent.get_chemical_symbols()
        element = max(elements, key=symbols.count)
        start = with_interstitial(parent, element, rng)
    else:
        start = parent.copy()
    start.calc = None
    start.info = {"uid": parent.info.get("uid", ""), "scenario": run.scenario}
    return start


def bigger(atoms: Atoms, max_atoms: int, vacuum_axis: int | None) -> Atoms:
    """``atoms`` doubled along its shortest cell vector (not the vacuum direction), velocities
    included; unchanged when that would exceed ``max_atoms``."""
    if 2 * len(atoms) > max_atoms:
        return atoms
    lengths = atoms.cell.lengths().copy()
    if vacuum_axis is not None:
        lengths[vacuum_axis] = np.inf
    repeat = [1, 1, 1]
    repeat[int(np.argmin(lengths))] = 2
    doubled = atoms.repeat(repeat)
    doubled.info = dict(atoms.info)
    return doubled
