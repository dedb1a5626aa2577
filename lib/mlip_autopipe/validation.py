"""Validation of the final potential against the oracle: is it physically right?

For each validation material (the pure elements and one alloy cell by default) the potential
and the oracle, with the run's own oracle settings, each give:

- an equation of state: energies on an isotropic volume scan fitted by ASE's
  Birch-Murnaghan form, reported as the equilibrium volume per atom, the lattice constant
  ``a0`` of the parent lattice and the bulk modulus ``B0``;
- elastic constants at that method's own equilibrium volume: the 6x6 Voigt matrix from
  stress-strain finite differences (a least-squares slope over +-strains), and for cubic
  lattices the cubic averages C11, C12, C44 (ions clamped on their lattice sites: an alloy
  cell is not relaxed internally, for either method, so the comparison is like for like);
- phonon dispersion (pure elements; phonopy finite displacements) along a band path.

An MD run with the potential at a temperature above the exploration range checks it stays
physical (no lost atoms, no pair closer than a minimum distance). Every quantity is a plain
dict so the result is one JSON file; a comparison is ``{potential, oracle, relative_error}``.

Both methods are seen through one interface, a *labeller*: ``Atoms -> Atoms`` returning a
labelled copy (energy, forces, stress), which is what an oracle's ``label`` already is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms, units

from mlip_autopipe.data import attach_labels
from mlip_autopipe.errors import LabellingError, ValidationError
from mlip_autopipe.explore import langevin_md
from mlip_autopipe.lattice import CUBIC_LATTICES, composition_name, element_cell, parent_lattice
from mlip_autopipe.oracles import Oracle

#: Labels one structure: returns a copy carrying energy, forces and Voigt stress (eV/A^3).
Labeller = Callable[[Atoms], Atoms]


#: Oracles cheap enough to compute phonons with when ``phonons.with_oracle`` is null.
CHEAP_ORACLES = frozenset({"emt"})

#: Largest deviation (in units of the composition's atoms) for a pool cell to match a composition.
COMPOSITION_MATCH_TOLERANCE = 1e-6


@dataclass
class Material:
    """One validation target: a cell on the parent lattice and its lattice constant."""

    name: str
    composition: dict[str, float]
    atoms: Atoms
    lattice: str
    lattice_constant: float
    is_element: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_element = len(self.composition) == 1


def default_compositions(elements: Sequence[str], structures: Mapping[str, Any]) -> list[dict[str, float]]:
    """Every pure element, then the first configured composition if it is an alloy."""
    found = [{element: 1.0} for element in elements]
    if structures["compositions"]:
        first = {el: float(x) for el, x in structures["compositions"][0].items() if x > 0}
        if len(first) > 1:
            found.append(first)
    return found


def _same_composition(atoms: Atoms, composition: Mapping[str, float]) -> bool:
    symbols = atoms.get_chemical_symbols()
    if set(symbols) != set(composition):
        return False
    return all(
        abs(symbols.count(element) / len(symbols) - fraction) < COMPOSITION_MATCH_TOLERANCE
        for element, fraction in composition.items()
    )


def alloy_cell(
    composition: Mapping[str, float], structures: Mapping[str, Any], pool: Sequence[Atoms], seed: int
) -> tuple[Atoms, str, float]:
    """An SQS cell of ``composition``: the pool's first, or a new one built with the run's settings."""
    for atoms in pool:
        if atoms.info.get("origin") == "sqs" and _same_composition(atoms, composition):
            break
    else:
        from mlip_autopipe.structures import sqs_cells

        atoms = sqs_cells(composition, {**structures, "cells_per_composition": 1}, (seed, 999))[0]
    lattice = str(atoms.info.get("lattice", structures["lattice"]))
    if "lattice_constant" in atoms.info:
        a = float(atoms.info["lattice_constant"])
    else:  # a lattice file: its own first cell length
        a = float(parent_lattice(structures).cell.lengths()[0])
        lattice = "file"
    return atoms.copy(), lattice, a


def validation_materials(
    elements: Sequence[str],
    structures: Mapping[str, Any],
    validation: Mapping[str, Any],
    pool: Sequence[Atoms],
    seed: int,
) -> list[Material]:
    """The materials of ``validation.compositions`` (null: pure elements + first alloy)."""
    compositions = validation["compositions"] or default_compositions(elements, structures)
    materials = []
    for composition in compositions:
        cleaned = {el: float(x) for el, x in composition.items() if x > 0}
        if len(cleaned) == 1:
            atoms, lattice, a = element_cell(next(iter(cleaned)), structures)
        else:
            atoms, lattice, a = alloy_cell(cleaned, structures, pool, seed)
        atoms.calc = None
        materials.append(Material(composition_name(cleaned), cleaned, atoms, lattice, a))
    return materials


# --- the two methods -----------------------------------------------------------------------


def potential_labeller(potential_yaml: str | os.PathLike[str]) -> Labeller:
    """Energy, forces and stress of the fitted ACE potential (pyace's ``PyACECalculator``)."""
    from pyace import PyACECalculator

    calculator = PyACECalculator(str(potential_yaml))

    def label(atoms: Atoms) -> Atoms:
        work = atoms.copy()
        work.calc = calculator
        return attach_labels(
            atoms,
            energy=work.get_potential_energy(),
            forces=work.get_forces(),
            stress=work.get_stress(voigt=True),
        )

    return label


def oracle_labeller(oracle: Oracle) -> Labeller:
    """The oracle's own ``label``, its failure turned into a :class:`ValidationError`."""

    def label(atoms: Atoms) -> Atoms:
        try:
            return oracle.label(atoms)
        except LabellingError as error:
            raise ValidationError(f"the {oracle.name} oracle failed on a validation cell: {error}") from error

    return label


def compare(potential: float, oracle: float) -> dict[str, float]:
    """A potential value beside the oracle's, with the relative error (potential - oracle) / |oracle|."""
    error = (potential - oracle) / abs(oracle) if oracle != 0 else float("inf")
    return {"potential": float(potential), "oracle": float(oracle), "relative_error": float(error)}


# --- equation of state ---------------------------------------------------------------------


def scaled_to_volume(atoms: Atoms, volume_per_atom: float) -> Atoms:
    """A copy of ``atoms`` isotropically scaled (atoms move with the cell) to a volume per atom."""
    factor = (volume_per_atom * len(atoms) / atoms.get_volume()) ** (1 / 3)
    scaled = atoms.copy()
    scaled.set_cell(atoms.cell * factor, scale_atoms=True)
    return scaled


def equation_of_state(
    atoms: Atoms, label: Labeller, lattice_constant: float, volume_range: float, points: int
) -> dict[str, Any]:
    """Birch-Murnaghan fit of energy per atom over volumes ``(1 +- volume_range) V``.

    Returns ``volumes`` and ``energies`` (per atom, A^3 and eV), ``v0`` (A^3/atom),
    ``e0`` (eV/atom), ``a0`` (A: ``lattice_constant`` scaled to ``v0``) and ``B0`` (GPa).

    Raises:
        ValidationError: when the minimum lies outside the scanned volumes.
    """
    from ase.eos import EquationOfState

    start = atoms.get_volume() / len(atoms)
    volumes = start * np.linspace(1 - volume_range, 1 + volume_range, points)
    energies = [label(scaled_to_volume(atoms, v)).get_potential_energy() / len(atoms) for v in volumes]
    lowest = int(np.argmin(energies))
    if lowest in (0, points - 1):
        raise ValidationError(
            f"energy minimum at the edge of the volume scan (+-{volume_range:g}): "
            "widen validation.eos.volume_range"
        )
    try:
        v0, e0, b0 = EquationOfState(volumes, energies, eos="birchmurnaghan").fit(warn=False)
    except (RuntimeError, ValueError) as error:
        raise ValidationError(f"equation-of-state fit failed: {error}") from error
    return {
        "volumes": [float(v) for v in volumes],
        "energies": [float(e) for e in energies],
        "v0": float(v0),
        "e0": float(e0),
        "a0": float(lattice_constant * (v0 / start) ** (1 / 3)),
        "B0": float(b0 / units.GPa),
    }


# --- elastic constants ---------------------------------------------------------------------


def strained(atoms: Atoms, voigt_strain: Sequence[float] | np.ndarray) -> Atoms:
    """A copy deformed by a small strain in Voigt form (xx, yy, zz, yz, xz, xy; engineering shears)."""
    xx, yy, zz, yz, xz, xy = voigt_strain
    tensor = np.array([[xx, xy / 2, xz / 2], [xy / 2, yy, yz / 2], [xz / 2, yz / 2, zz]])
    deformed = atoms.copy()
    deformed.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + tensor), scale_atoms=True)
    return deformed


def elastic_constants(atoms: Atoms, label: Labeller, strains: Sequence[float], cubic: bool) -> dict[str, Any]:
    """Elastic constants (GPa) from stress-strain finite differences, ions clamped.

    Each Voigt strain component is applied at +-each of ``strains``; the slope of every stress
    component (ASE sign: tensile positive) over those strains and the unstrained cell is a
    column of C. With ``cubic``, C11, C12 and C44 are the averages over the equivalent entries.
    """
    magnitudes = sorted({abs(float(s)) for s in strains if s != 0})
    amplitudes = np.array([-s for s in reversed(magnitudes)] + [0.0] + magnitudes)
    reference = label(atoms).get_stress(voigt=True)
    matrix = np.zeros((6, 6))
    for column in range(6):
        stresses = []
        for amplitude in amplitudes:
            if amplitude == 0:
                stresses.append(reference)
                continue
            strain = np.zeros(6)
            strain[column] = amplitude
            stresses.append(label(strained(atoms, strain)).get_stress(voigt=True))
        slope = np.polyfit(amplitudes, np.array(stresses), 1)[0]
        matrix[:, column] = slope / units.GPa
    matrix = (matrix + matrix.T) / 2
    result: dict[str, Any] = {"matrix": matrix.round(6).tolist()}
    if cubic:
        result["C11"] = float(np.mean(np.diag(matrix)[:3]))
        result["C12"] = float(np.mean([matrix[0, 1], matrix[0, 2], matrix[1, 2]]))
        result["C44"] = float(np.mean(np.diag(matrix)[3:]))
    return result


# --- phonons -------------------------------------------------------------------------------


def phonon_dispersion(
    unit_cell: Atoms,
    label: Labeller,
    supercell: Sequence[int],
    path: str | None,
    points: int,
    displacement: float,
) -> dict[str, Any]:
    """Phonon frequencies (THz) along a band path, by phonopy's finite displacements.

    ``unit_cell`` is a conventional cell; phonopy finds its primitive cell ("auto") and the
    path (ASE's special points; ``path`` None: ASE's default for the lattice) is taken in it.
    Force constants are not symmetrised, so near-zero acoustic modes at Gamma are a real check
    of the forces. Negative frequencies are imaginary modes (phonopy's convention).
    """
    from ase.cell import Cell
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    phonon = Phonopy(
        PhonopyAtoms(
            symbols=unit_cell.get_chemical_symbols(),
            cell=np.asarray(unit_cell.cell),
            scaled_positions=unit_cell.get_scaled_positions(),
        ),
        supercell_matrix=np.diag([int(n) for n in supercell]),
        primitive_matrix="auto",
    )
    phonon.generate_displacements(distance=displacement)
    forces = []
    for displaced in phonon.supercells_with_displacements or []:
        atoms = Atoms(
            displaced.symbols, cell=displaced.cell, scaled_positions=displaced.scaled_positions, pbc=True
        )
        forces.append(label(atoms).get_forces())
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    band_path = Cell(np.asarray(phonon.primitive.cell)).bandpath(path, npoints=points)
    phonon.run_qpoints(band_path.kpts)
    frequencies = np.asarray(phonon.get_qpoints_dict()["frequencies"])
    distance, special_distance, special_labels = band_path.get_linear_kpoint_axis()
    at_gamma = np.linalg.norm(band_path.kpts, axis=1) < 1e-9
    acoustic = np.sort(np.abs(frequencies[at_gamma]), axis=1)[:, :3] if at_gamma.any() else np.zeros((0, 3))
    return {
        "path": band_path.path,
        "distance": [float(x) for x in distance],
        "special_distance": [float(x) for x in special_distance],
        "special_labels": list(special_labels),
        "frequencies": frequencies.round(6).tolist(),
        "displaced_cells": len(forces),
        "gamma_acoustic_max_abs": float(acoustic.max()) if acoustic.size else None,
        "min_frequency": float(frequencies.min()),
        "max_frequency": float(frequencies.max()),
    }


# --- MD stability ------------------------------------------------------------------------

#: Fewest atoms of an MD stability cell: a pure element's small cell is repeated up to this.
MIN_MD_ATOMS = 32


def md_material(materials: Sequence[Material]) -> Material:
    """The MD stability cell: the first alloy, else the first material repeated to >= 32 atoms."""
    for material in materials:
        if not material.is_element:
            return material
    if not materials:
        raise ValidationError("no validation material to run MD on: check validation.compositions")
    first = materials[0]
    repeat = 1
    while len(first.atoms) * repeat**3 < MIN_MD_ATOMS:
        repeat += 1
    return Material(
        first.name, first.composition, first.atoms.repeat(repeat), first.lattice, first.lattice_constant
    )


def minimum_pair_distance(atoms: Atoms) -> float:
    """The closest pair of atoms (periodic images included), in Angstrom."""
    from ase.neighborlist import neighbor_list

    cutoff = 3.0
    while True:
        distances = neighbor_list("d", atoms, cutoff)
        if len(distances) or cutoff > max(atoms.cell.lengths()):
            return float(distances.min()) if len(distances) else float("inf")
        cutoff *= 2


def md_stability(
    start: Atoms,
    calculator: Any,
    *,
    temperature: float,
    steps: int,
    timestep_fs: float,
    friction: float,
    check_interval: int,
    min_distance: float,
    seed: int,
    temperature_tolerance: float | None = None,
) -> dict[str, Any]:
    """Langevin MD with ``calculator``; stable when no atom is lost, no pair gets closer
    than ``min_distance`` and the thermostat holds its temperature.

    An atom is lost when its position is no longer finite or it left the cell's atoms (the
    count changed). Every ``check_interval`` steps the closest pair distance, temperature
    and, where the calculator gives it, the largest extrapolation grade gamma are recorded.
    The run stops at the first failed check. After a run without one, its mean temperature must
    not exceed the thermostat's by more than ``temperature_tolerance`` (relative; None: not
    checked): a Langevin thermostat holds a crystal near its potential's minimum there, so a
    run far hotter gains energy the potential should not give (the start cell collapses into
    something far lower in energy, or forces jump where the potential extrapolates). Colder is
    not checked: a short run's mean is below its target while the lattice takes up half the
    initial kinetic energy.
    """
    atoms, dynamics = langevin_md(start, calculator, temperature, timestep_fs, friction, seed)
    n_atoms = len(atoms)
    trace: dict[str, list[float]] = {"time_fs": [], "temperature": [], "min_distance": [], "max_gamma": []}
    done, reason, lost = 0, "", 0
    while done < steps:
        chunk = min(check_interval, steps - done)
        dynamics.run(chunk)
        done += chunk
        finite = np.all(np.isfinite(atoms.positions), axis=1)
        lost = int(n_atoms - finite.sum()) + abs(n_atoms - len(atoms))
        if lost:
            reason = f"{lost} atoms lost (non-finite positions) after {done} steps"
            break
        closest = minimum_pair_distance(atoms)
        trace["time_fs"].append(done * timestep_fs)
        trace["temperature"].append(float(atoms.get_temperature()))
        trace["min_distance"].append(closest)
        gamma = getattr(calculator, "results", {}).get("gamma")
        trace["max_gamma"].append(float(np.max(gamma)) if gamma is not None else float("nan"))
        if closest < min_distance:
            reason = f"atoms {closest:.2f} A apart (< {min_distance:g} A) after {done} steps"
            break
    held = float(np.mean(trace["temperature"])) if trace["temperature"] else None
    if not reason and temperature_tolerance is not None and held is not None and temperature > 0:
        excess = held / temperature - 1.0
        if excess > temperature_tolerance:
            reason = (
                f"mean temperature {held:.0f} K is {100 * excess:.0f} % above the thermostat's "
                f"{temperature:.0f} K (> {100 * temperature_tolerance:g} %): the dynamics gain energy "
                "(the start cell is far from the potential's minimum, or forces extrapolate)"
            )
    observed = trace["min_distance"]
    gammas = [g for g in trace["max_gamma"] if np.isfinite(g)]
    return {
        "stable": not reason,
        "reason": reason or "no lost atoms, no pair below the minimum distance",
        "temperature_target": float(temperature),
        "steps_requested": int(steps),
        "steps_done": int(done),
        "n_atoms": n_atoms,
        "lost_atoms": lost,
        "min_distance_threshold": float(min_distance),
        "min_distance_observed": float(min(observed)) if observed else None,
        "mean_temperature": held,
        "temperature_tolerance": temperature_tolerance,
        "max_gamma": float(max(gammas)) if gammas else None,
        "trace": trace,
    }


# --- everything together -------------------------------------------------------------------


def phonons_with_oracle(phonons: Mapping[str, Any], oracle_kind: str) -> bool:
    """``phonons.with_oracle``, where null means: only for a cheap oracle (EMT)."""
    setting = phonons["with_oracle"]
    return oracle_kind in CHEAP_ORACLES if setting is None else bool(setting)


def validate_material(
    material: Material, methods: Mapping[str, Labeller], validation: Mapping[str, Any]
) -> dict[str, Any]:
    """EOS and elastic constants of one material for each method, and their comparison."""
    eos_settings, strains = validation["eos"], validation["elastic"]["strains"]
    cubic = material.lattice in CUBIC_LATTICES
    per_method: dict[str, dict[str, Any]] = {}
    result: dict[str, Any] = {
        "composition": material.composition,
        "lattice": material.lattice,
        "n_atoms": len(material.atoms),
        "methods": per_method,
    }
    for name, label in methods.items():
        try:
            eos = equation_of_state(
                material.atoms,
                label,
                material.lattice_constant,
                eos_settings["volume_range"],
                eos_settings["points"],
            )
        except ValidationError as error:
            if name != "potential":
                raise  # the oracle's own EOS outside the scan is a settings problem
            # a poor potential is what validation reports, not a crash
            result["failure"] = f"potential: {error}"
            return result
        # elastic constants at this method's own equilibrium volume
        equilibrium = scaled_to_volume(material.atoms, eos["v0"])
        per_method[name] = {"eos": eos, "elastic": elastic_constants(equilibrium, label, strains, cubic)}
    if "oracle" in per_method:
        potential, oracle = per_method["potential"], per_method["oracle"]
        comparison = {key: compare(potential["eos"][key], oracle["eos"][key]) for key in ("a0", "v0", "B0")}
        for key in ("C11", "C12", "C44"):
            if key in potential["elastic"]:
                comparison[key] = compare(potential["elastic"][key], oracle["elastic"][key])
        result["comparison"] = comparison
    return result


def validate_phonons(
    material: Material,
    methods: Mapping[str, Labeller],
    equilibrium_volumes: Mapping[str, float],
    phonons: Mapping[str, Any],
) -> dict[str, Any]:
    """Phonon dispersion of a pure element for each method, at its own equilibrium volume."""
    per_method = {}
    for name, label in methods.items():
        cell = scaled_to_volume(material.atoms, equilibrium_volumes[name])
        per_method[name] = phonon_dispersion(
            cell, label, phonons["supercell"], phonons["path"], phonons["points"], phonons["displacement"]
        )
    result: dict[str, Any] = {"methods": per_method}
    if "oracle" in per_method:
        potential = np.array(per_method["potential"]["frequencies"])
        oracle = np.array(per_method["oracle"]["frequencies"])
        result["comparison"] = {
            "max_frequency": compare(float(potential.max()), float(oracle.max())),
            "frequency_rmse": float(np.sqrt(np.mean((potential - oracle) ** 2))),
        }
    return result


def validate(
    materials: Sequence[Material],
    potential: Labeller,
    oracle: Labeller | None,
    validation: Mapping[str, Any],
    *,
    phonon_oracle: bool,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """EOS, elastic constants and phonons of every material, potential beside oracle.

    ``oracle`` None computes the potential alone; ``phonon_oracle`` False leaves the oracle
    out of the phonons only. Returns ``{"materials": {name: ...}, "phonons": {name: ...}}``.
    """
    methods: dict[str, Labeller] = {"potential": potential}
    if oracle is not None:
        methods["oracle"] = oracle
    results: dict[str, Any] = {"materials": {}, "phonons": {}}
    for material in materials:
        log(f"equation of state and elastic constants of {material.name} ({len(material.atoms)} atoms)")
        results["materials"][material.name] = validate_material(material, methods, validation)
    phonons = validation["phonons"]
    if phonons["enabled"]:
        phonon_methods = {k: v for k, v in methods.items() if k == "potential" or phonon_oracle}
        for material in materials:
            if not material.is_element or results["materials"][material.name].get("failure"):
                continue
            log(f"phonons of {material.name}")
            volumes = {
                name: results["materials"][material.name]["methods"][name]["eos"]["v0"]
                for name in phonon_methods
            }
            results["phonons"][material.name] = validate_phonons(material, phonon_methods, volumes, phonons)
    return results


#: Units of the numbers in validation.json.
UNITS = {"a0": "A", "v0": "A^3/atom", "B0": "GPa", "C": "GPa", "frequency": "THz", "energy": "eV/atom"}


def validate_potential(
    materials: Sequence[Material],
    potential_yaml: str | os.PathLike[str],
    active_set: str | os.PathLike[str],
    oracle: Oracle,
    validation: Mapping[str, Any],
    explore: Mapping[str, Any],
    seed: int,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """The whole validation of a potential against ``oracle`` (the validated ``validation`` and
    ``explore`` sections): EOS, elastic constants, phonons, then the MD stability run at
    ``md.temperature_factor`` times the hottest exploration temperature. Returns the summary
    that validation.json holds (units, oracle and its settings hash, per-material results, md).
    """
    from mlip_autopipe.explore import load_calculator

    results = validate(
        materials,
        potential_labeller(potential_yaml),
        oracle_labeller(oracle),
        validation,
        phonon_oracle=phonons_with_oracle(validation["phonons"], oracle.name),
        log=log,
    )
    md = None
    if validation["md"]["enabled"]:
        start_material = md_material(materials)
        temperature = validation["md"]["temperature_factor"] * max(explore["temperatures"])
        log(f"MD stability run of {start_material.name} at {temperature:.0f} K")
        md = md_stability(
            start_material.atoms,
            load_calculator(potential_yaml, active_set),
            temperature=temperature,
            steps=validation["md"]["steps"],
            timestep_fs=explore["timestep_fs"],
            friction=explore["friction"],
            check_interval=validation["md"]["check_interval"],
            min_distance=validation["md"]["min_distance"],
            seed=seed,
            temperature_tolerance=validation["md"]["temperature_tolerance"],
        )
        md["material"] = start_material.name
        log(f"MD: {md['reason']}")
    for name, material in results["materials"].items():
        if material.get("failure"):
            log(f"{name}: {material['failure']}")
            continue
        errors = {
            key: round(value["relative_error"], 4) for key, value in material.get("comparison", {}).items()
        }
        log(f"{name}: {errors}")
    return {
        "oracle": oracle.name,
        "oracle_settings_hash": oracle.settings_hash(),
        "units": UNITS,
        **results,
        "md": md,
    }
