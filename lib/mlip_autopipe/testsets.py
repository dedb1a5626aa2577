"""Broad held-out test sets made with the oracle: bulk, defects, liquid, surfaces, strain.

A test set is a list of labelled frames of oracle MD (Langevin, NVT), each with
``atoms.info["category"]`` naming what kind of configuration it is (``bulk_300K``,
``vacancy``, ``interstitial``, ``liquid``, ``surface_111``, ``surface_100``, ``compressed``,
``expanded``, ...), ``temperature`` (K) and ``md_steps`` (oracle MD steps that produced the
frame, equilibration included: what ab initio MD would cost). The same scenario builders make
random-sampling training sets (:func:`scenario_frames` with other seeds and temperatures), so a
benchmark compares samplers on the same kinds of configurations.

Liquid frames are checked with a structural criterion: the translational order parameter
(:func:`translational_order`, the mean squared structure factor at the parent crystal's
Bragg vectors: ~1 for a crystal, ~1/N for a liquid) must be below ``MOLTEN_ORDER``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.constraints import FixCom
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from mlip_autopipe import variants
from mlip_autopipe.data import attach_labels, tag_structure
from mlip_autopipe.errors import StructureError
from mlip_autopipe.lattice import thick_surface_cell

CalculatorFactory = Callable[[], Calculator]

#: A frame whose translational order is below this counts as molten. Measured with EMT Cu-Ni,
#: 32 atoms: the crystal stays at 0.37-0.56 up to 2500 K; a liquid gives S(k) / N at the Bragg
#: vectors, ~0.05-0.1 here (the liquid's first structure-factor peak is near the (111) one).
MOLTEN_ORDER = 0.25
#: Bragg vectors of the parent crystal averaged in the translational order parameter (fcc:
#: the (111) and (200) families, 7 independent pairs, so a liquid's value fluctuates little).
BRAGG_VECTORS = 14


@dataclass(frozen=True)
class Scenario:
    """How one category's MD runs: start cell kind, thermostat temperature, cell change."""

    name: str
    start: str  # bulk | vacancy | interstitial | liquid | surface
    temperature: float
    strain: float = 0.0
    miller: tuple[int, int, int] = (1, 1, 1)


def default_scenarios() -> list[Scenario]:
    """The broad test set's categories (temperatures for a Cu-Ni-like fcc metal)."""
    return [
        Scenario("bulk_300K", "bulk", 300.0),
        Scenario("bulk_900K", "bulk", 900.0),
        Scenario("bulk_1500K", "bulk", 1500.0),
        Scenario("vacancy", "vacancy", 1200.0),
        Scenario("interstitial", "interstitial", 1200.0),
        Scenario("liquid", "liquid", 2400.0, strain=0.05),
        Scenario("surface_111", "surface", 600.0, miller=(1, 1, 1)),
        Scenario("surface_100", "surface", 600.0, miller=(1, 0, 0)),
        Scenario("compressed", "bulk", 600.0, strain=-0.06),
        Scenario("expanded", "bulk", 600.0, strain=0.06),
    ]


@dataclass(frozen=True)
class MDSettings:
    """Langevin MD of the oracle: frames every ``interval`` steps after ``equilibration``."""

    timestep_fs: float = 2.0
    friction_per_fs: float = 0.02
    equilibration: int = 200
    interval: int = 50
    melt_temperature: float = 3500.0
    melt_steps: int = 400
    melt_rattle: float = 0.4
    max_melt_rounds: int = 5


def bragg_vectors(crystal: Atoms, count: int = BRAGG_VECTORS) -> np.ndarray:
    """The ``count`` shortest integer reciprocal vectors (in the cell's reciprocal basis) at
    which the perfect ``crystal`` has a Bragg peak (squared structure factor above 0.9)."""
    fractional = crystal.get_scaled_positions()
    reciprocal = 2 * np.pi * crystal.cell.reciprocal()
    bound = 4 * int(max(1, np.ceil(len(crystal) ** (1 / 3))))
    axis = np.arange(-bound, bound + 1)
    triples = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3).astype(float)
    triples = triples[np.any(triples != 0, axis=1)]
    peaks = np.abs(np.exp(2j * np.pi * fractional @ triples.T).mean(axis=0)) ** 2
    on_peak = triples[peaks > 0.9]
    lengths = np.linalg.norm(on_peak @ reciprocal, axis=1)
    candidates = [on_peak[index] for index in np.argsort(lengths, kind="stable")]
    if not candidates:
        raise StructureError("the reference crystal has no Bragg peak (not a crystal?)")
    return np.asarray(candidates[:count], dtype=float)


def translational_order(atoms: Atoms, vectors: np.ndarray) -> float:
    """Mean squared structure factor at ``vectors`` (from :func:`bragg_vectors` of the same
    cell's perfect crystal): ~1 for the crystal, ~1/N for a liquid."""
    fractional = atoms.get_scaled_positions(wrap=False)
    factors = np.exp(2j * np.pi * fractional @ vectors.T).mean(axis=0)
    return float(np.mean(np.abs(factors) ** 2))


def decorate(cell: Atoms, composition: Mapping[str, float], rng: np.random.Generator) -> Atoms:
    """Copy of ``cell`` with its sites shuffled among the elements at the nearest whole counts."""
    elements = list(composition)
    counts = [int(round(composition[el] * len(cell))) for el in elements[:-1]]
    counts.append(len(cell) - sum(counts))
    if min(counts) < 0:
        raise StructureError(f"composition {dict(composition)} does not fit {len(cell)} sites")
    symbols = [el for el, count in zip(elements, counts, strict=True) for _ in range(count)]
    decorated = cell.copy()
    decorated.set_chemical_symbols(list(rng.permutation(symbols)))
    return decorated


def surface_slab(
    lattice: str,
    lattice_constant: float,
    miller: Sequence[int],
    composition: Mapping[str, float],
    rng: np.random.Generator,
    *,
    min_width: float = 5.0,
    min_thickness: float = 8.0,
    vacuum: float = 8.0,
) -> Atoms:
    """A randomly decorated slab with two free surfaces ``miller`` of the parent lattice, at
    least ``min_width`` wide in plane and ``min_thickness`` thick, ``vacuum`` on each side."""
    # any element: decorate() sets the species afterwards
    unit = bulk("Cu", lattice, a=lattice_constant, cubic=lattice != "hcp", orthorhombic=lattice == "hcp")
    slab = thick_surface_cell(unit, miller, min_thickness, vacuum=vacuum)
    lengths = slab.cell.lengths()
    repeat = (int(np.ceil(min_width / lengths[0])), int(np.ceil(min_width / lengths[1])), 1)
    slab = slab.repeat(repeat)
    slab.pbc = (True, True, True)  # periodic with vacuum along z, as the oracle sees a slab
    slab.info["miller"] = list(int(i) for i in miller)
    return decorate(slab, composition, rng)


def langevin_run(
    atoms: Atoms,
    calculator_factory: CalculatorFactory,
    temperature: float,
    rng: np.random.Generator,
    settings: MDSettings,
) -> Langevin:
    """Attach the oracle, thermalise, and return a Langevin integrator (centre of mass fixed)."""
    atoms.calc = calculator_factory()
    atoms.set_constraint(FixCom())
    thermalize_momenta(atoms, temperature, rng=rng)
    Stationary(atoms)
    return Langevin(
        atoms,
        timestep=settings.timestep_fs * units.fs,
        temperature_K=temperature,
        friction=settings.friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )


def labelled_frame(atoms: Atoms, *, generation: int, origin: str) -> Atoms:
    """The current MD frame, tagged, with the oracle's energy, forces and stress (no MD state).

    Tagging rounds positions to what extended XYZ stores (1e-8 A), before the labels attach.
    """
    frame = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions(), cell=atoms.cell, pbc=True)
    tag_structure(frame, generation=generation, origin=origin)
    # the oracle's forces, not the MD's (FixCom removes their mean)
    forces = atoms.get_forces(apply_constraint=False)
    stress = atoms.get_stress(voigt=True)
    return attach_labels(frame, energy=atoms.get_potential_energy(), forces=forces, stress=stress)


def melted(
    start: Atoms,
    calculator_factory: CalculatorFactory,
    temperature: float,
    rng: np.random.Generator,
    settings: MDSettings,
) -> tuple[Atoms, int]:
    """``start`` heated at ``settings.melt_temperature`` until molten, then held at
    ``temperature``; returns the liquid (with velocities) and the MD steps spent.

    The crystal is first rattled by ``settings.melt_rattle`` (Angstrom): a perfect periodic
    crystal of a few dozen atoms superheats for thousands of steps, a disordered one melts.

    Raises:
        StructureError: when it is still ordered after ``max_melt_rounds`` heating rounds.
    """
    vectors = bragg_vectors(start)
    atoms = variants.rattled(start, settings.melt_rattle, rng)
    dynamics = langevin_run(atoms, calculator_factory, settings.melt_temperature, rng, settings)
    steps = 0
    for _ in range(settings.max_melt_rounds):
        dynamics.run(settings.melt_steps)
        steps += settings.melt_steps
        if translational_order(atoms, vectors) < MOLTEN_ORDER:
            break
    else:
        raise StructureError(f"not molten after {steps} steps at {settings.melt_temperature} K")
    dynamics.set_temperature(temperature_K=temperature)
    dynamics.run(settings.equilibration)
    steps += settings.equilibration
    atoms.info["bragg_vectors"] = vectors
    return atoms, steps


def start_cell(
    scenario: Scenario,
    parent: Atoms,
    lattice: str,
    lattice_constant: float,
    composition: Mapping[str, float],
    rng: np.random.Generator,
) -> Atoms:
    """The cell a scenario's MD starts from: ``parent`` (a bulk alloy cell) changed as named."""
    if scenario.start == "surface":
        return surface_slab(lattice, lattice_constant, scenario.miller, composition, rng)
    cell = parent.copy()
    if scenario.start == "vacancy":
        cell = variants.with_vacancy(cell, int(rng.integers(len(cell))))
    elif scenario.start == "interstitial":
        elements = sorted(composition)
        cell = variants.with_interstitial(cell, elements[int(rng.integers(len(elements)))], rng)
    elif scenario.start not in ("bulk", "liquid"):
        raise StructureError(f"unknown scenario start {scenario.start!r}")
    if scenario.strain:
        cell = variants.strained(cell, scenario.strain)
    return cell


def scenario_frames(
    scenario: Scenario,
    parent: Atoms,
    lattice: str,
    lattice_constant: float,
    composition: Mapping[str, float],
    calculator_factory: CalculatorFactory,
    n_frames: int,
    rng: np.random.Generator,
    settings: MDSettings = MDSettings(),
    *,
    origin: str = "test",
    generation: int = -1,
    require_molten: bool = True,
) -> list[Atoms]:
    """``n_frames`` labelled frames of one oracle MD run of ``scenario``, tagged ``origin``.

    Every frame gets ``category`` (the scenario's name), ``temperature``, ``md_steps`` (this
    run's MD steps divided among its frames) and, for liquids, ``translational_order``.

    Liquid frames must be molten by the structural criterion (with ``require_molten``;
    otherwise their order is only recorded): a refrozen cell is melted again, its frame dropped.

    Raises:
        StructureError: the liquid refroze more than ``settings.max_melt_rounds`` times.
    """
    atoms = start_cell(scenario, parent, lattice, lattice_constant, composition, rng)
    steps = 0
    if scenario.start == "liquid":
        atoms, steps = melted(atoms, calculator_factory, scenario.temperature, rng, settings)
        vectors = atoms.info.pop("bragg_vectors")
        dynamics = Langevin(
            atoms,
            timestep=settings.timestep_fs * units.fs,
            temperature_K=scenario.temperature,
            friction=settings.friction_per_fs / units.fs,
            fixcm=False,
            rng=rng,
        )
    else:
        dynamics = langevin_run(atoms, calculator_factory, scenario.temperature, rng, settings)
        dynamics.run(settings.equilibration)
        steps += settings.equilibration
    frames: list[Atoms] = []
    remelts = 0
    while len(frames) < n_frames:
        dynamics.run(settings.interval)
        steps += settings.interval
        order = translational_order(atoms, vectors) if scenario.start == "liquid" else None
        if order is not None and require_molten and order >= MOLTEN_ORDER:
            # a liquid of a few dozen periodic atoms can refreeze into its parent crystal: the
            # frame is dropped, the cell melted again
            remelts += 1
            if remelts > settings.max_melt_rounds:
                raise StructureError(f"liquid keeps recrystallising (translational order {order:.2f})")
            dynamics.set_temperature(temperature_K=settings.melt_temperature)
            dynamics.run(settings.melt_steps)
            dynamics.set_temperature(temperature_K=scenario.temperature)
            dynamics.run(settings.equilibration)
            steps += settings.melt_steps + settings.equilibration
            continue
        frame = labelled_frame(atoms, generation=generation, origin=origin)
        if order is not None:
            frame.info["translational_order"] = order
        frames.append(frame)
    for frame in frames:
        frame.info.update(
            category=scenario.name,
            temperature=float(scenario.temperature),
            md_steps=steps / n_frames,
        )
        if scenario.strain:
            frame.info["strain"] = float(scenario.strain)
    return frames


def build_test_set(
    parents: Sequence[tuple[Atoms, Mapping[str, float]]],
    lattice: str,
    calculator_factory: CalculatorFactory,
    seed: int,
    *,
    frames_per_run: int = 3,
    scenarios: Sequence[Scenario] | None = None,
    settings: MDSettings = MDSettings(),
) -> list[Atoms]:
    """Held-out frames: for every scenario, one oracle MD run per (parent cell, composition).

    ``parents`` are bulk alloy cells (e.g. SQS) with ``info["lattice_constant"]``; frames are
    tagged ``origin: test`` with generation -1 (never part of a run).
    """
    test: list[Atoms] = []
    for number, scenario in enumerate(scenarios or default_scenarios()):
        for index, (parent, composition) in enumerate(parents):
            rng = np.random.default_rng([seed, number, index])
            a = float(parent.info["lattice_constant"])
            test.extend(
                scenario_frames(
                    scenario,
                    parent,
                    lattice,
                    a,
                    composition,
                    calculator_factory,
                    frames_per_run,
                    rng,
                    settings,
                )
            )
    return test


def categories(images: Iterable[Atoms]) -> list[str]:
    """The categories present, in first-seen order."""
    return list(dict.fromkeys(str(atoms.info["category"]) for atoms in images))


def rmse_by_category(
    predict: Callable[[Atoms], tuple[float, np.ndarray]],
    images: Sequence[Atoms],
    reference_energy: Callable[[Atoms], float],
) -> dict[str, dict[str, Any]]:
    """Per category: energy RMSE (meV/atom), force-component RMSE (eV/A), frames and atoms.

    ``predict(atoms) -> (energy, forces)`` is the model; ``reference_energy(atoms)`` the
    oracle energy on the model's scale (e.g. minus per-element reference energies).
    """
    errors: dict[str, tuple[list[float], list[np.ndarray], int]] = {}
    for atoms in images:
        energy, forces = predict(atoms)
        energy_errors, force_errors, n_atoms = errors.setdefault(str(atoms.info["category"]), ([], [], 0))
        energy_errors.append((energy - reference_energy(atoms)) / len(atoms))
        force_errors.append((np.asarray(forces) - atoms.get_forces()).ravel())
        errors[str(atoms.info["category"])] = (energy_errors, force_errors, n_atoms + len(atoms))
    return {
        category: {
            "energy_rmse_mev_per_atom": 1000 * float(np.sqrt(np.mean(np.square(energy_errors)))),
            "force_rmse_ev_per_a": float(np.sqrt(np.mean(np.square(np.concatenate(force_errors))))),
            "frames": len(energy_errors),
            "atoms": n_atoms,
        }
        for category, (energy_errors, force_errors, n_atoms) in errors.items()
    }


def worst_category(
    scores: Mapping[str, Mapping[str, Any]], key: str = "force_rmse_ev_per_a"
) -> tuple[str, float]:
    """The category with the largest ``key`` and that value."""
    if not scores:
        raise ValueError("no categories to compare")
    name = max(scores, key=lambda category: float(scores[category][key]))
    return name, float(scores[name][key])
