"""MD speed: LAMMPS + this project's pace plugin vs ASE MD with pyace's PyACECalculator.

One ACE potential (linear fit on EMT Cu-Ni, the schema's default basis size) drives both
engines on random Cu-Ni fcc cells of 108, 500 and 4000 atoms. Reported: atom-steps per
second and microseconds per atom per step of the MD loop (set-up excluded), serial, one thread.

    .venv/bin/python benchmarks/md_speed.py [--quick] [--json benchmarks/results/md_speed.json]

Needs the plugin (`make plugin`). Columns:
  ASE engine     Langevin + PyACECalculator with the active set (gamma every step), as `ase` runs
  LAMMPS engine  NVT, pair_style pace/extrapolation, `fix pair` gamma every 10 steps, as `lammps` runs
  ASE, no gamma  Langevin + PyACECalculator on the .yace (energies and forces only)
  LAMMPS pace    NVT, pair_style pace (energies and forces only)
Each case is timed --repeats times and the fastest counts (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.io import write

# this checkout's library, not another installed copy
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from mlip_autopipe.config import section_defaults, with_defaults  # noqa: E402
from mlip_autopipe.explore import load_calculator  # noqa: E402
from mlip_autopipe.labelling import label_candidate  # noqa: E402
from mlip_autopipe.lammps import built_plugin_dir, lammps_command  # noqa: E402
from mlip_autopipe.oracles import oracle_from_config  # noqa: E402
from mlip_autopipe.structures import build_pool  # noqa: E402
from mlip_autopipe.training import train_potential  # noqa: E402

ELEMENTS = ["Cu", "Ni"]
SIZES = {108: 3, 500: 5, 4000: 10}  # atoms: fcc conventional-cell repeats


def make_potential(folder: Path, functions_per_element: int) -> dict[str, Path]:
    """A linear ACE fit on EMT Cu-Ni with the schema's basis shape and this many functions."""
    structures = section_defaults(
        "structures",
        {
            "lattice": "fcc",
            "supercell": [2, 2, 2],
            "compositions": [{"Cu": 0.5, "Ni": 0.5}, {"Cu": 0.25, "Ni": 0.75}],
            "cells_per_composition": 3,
            "strains": [-0.03, 0.03],
            "shear_strains": [],
            "rattle_amplitudes": [0.05, 0.1, 0.2],
            "defects": {"vacancies": 0, "antisites": 0, "interstitials": 0},
        },
    )
    emt = oracle_from_config(with_defaults({"oracle": {"kind": "emt"}}))
    data = [label_candidate(atoms, emt) for atoms in build_pool(structures, seed=1)]
    settings = {
        "mode": "linear",
        "cutoff": 5.0,
        "functions_per_element": functions_per_element,
        "nradmax_by_orders": [12, 4, 3, 2],
        "lmax_by_orders": [0, 3, 2, 1],
        "ridge_alpha": 1e-6,
        "energy_weight": 30.0,
        "test_fraction": 0.0,
    }
    fitted = train_potential(data, ELEMENTS, section_defaults("fit", settings), folder)
    return {"yaml": fitted.yaml, "yace": fitted.yace, "asi": fitted.asi}


def random_alloy(repeat: int) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((repeat, repeat, repeat))
    rng = np.random.default_rng(0)
    atoms.set_chemical_symbols(list(rng.choice(ELEMENTS, size=len(atoms))))
    atoms.positions += rng.normal(scale=0.03, size=atoms.positions.shape)
    return atoms


def time_ase(atoms: Atoms, potential: dict[str, Path], steps: int, active_set: bool) -> float:
    """Seconds per MD step of Langevin with PyACECalculator (+ active set: gamma every step)."""
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    atoms = atoms.copy()
    if active_set:
        atoms.calc = load_calculator(potential["yaml"], potential["asi"])
    else:
        from pyace import PyACECalculator

        atoms.calc = PyACECalculator(str(potential["yace"]))
    atoms.set_constraint(FixCom())
    rng = np.random.default_rng(0)
    thermalize_momenta(atoms, 600, rng=rng)
    dynamics = Langevin(
        atoms, timestep=2 * units.fs, temperature_K=600, friction=0.02 / units.fs, fixcm=False, rng=rng
    )
    dynamics.run(1)  # set-up: neighbour list and first forces
    start = time.perf_counter()
    dynamics.run(steps)
    return (time.perf_counter() - start) / steps


def time_lammps(atoms: Atoms, potential: dict[str, Path], steps: int, gamma_every: int | None) -> float:
    """Seconds per MD step (LAMMPS's own loop time) of NVT with pace or pace/extrapolation."""
    plugin = built_plugin_dir()
    if plugin is None:
        raise SystemExit("the pace plugin is not built: run `make plugin`")
    with tempfile.TemporaryDirectory() as folder:
        write(Path(folder) / "cell.data", atoms, format="lammps-data", specorder=ELEMENTS, masses=True)
        if gamma_every is None:
            pair = ["pair_style pace", f"pair_coeff * * {potential['yace']} Cu Ni", "neighbor 1.0 bin"]
        else:
            pair = [
                "pair_style pace/extrapolation",
                f"pair_coeff * * {potential['yaml']} {potential['asi']} Cu Ni",
                f"fix gamma all pair {gamma_every} pace/extrapolation gamma 1",
                "neighbor 1.0 bin",
            ]
        deck = "\n".join(
            [
                "units metal",
                "read_data cell.data",
                *pair,
                "velocity all create 600 1 mom yes rot no",
                "timestep 0.002",
                "fix md all nvt temp 600 600 0.1",
                f"thermo {steps}",
                f"run {steps}",
            ]
        )
        (Path(folder) / "in.lammps").write_text(deck)
        environment = dict(os.environ, LAMMPS_PLUGIN_PATH=str(plugin), OMP_NUM_THREADS="1")
        result = subprocess.run(
            [*lammps_command({}), "-in", "in.lammps", "-log", "none", "-nocite"],
            cwd=folder,
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
    loop = re.search(r"Loop time of ([0-9.eE+-]+) on", result.stdout)
    assert loop is not None, result.stdout[-2000:]
    return float(loop.group(1)) / steps


def best_of(repeats: int, measure: Callable[[], float]) -> float:
    """The fastest of several timings: the least disturbed by other work on a shared machine."""
    return min(measure() for _ in range(repeats))


def benchmark(potential: dict[str, Path], scale: float, repeats: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n_atoms, repeat in SIZES.items():
        atoms = random_alloy(repeat)
        ase_steps = max(2, int(scale * 10800 / n_atoms))
        lammps_steps = max(10, int(scale * 216000 / n_atoms) // 10 * 10)
        timings = {
            "ase": best_of(repeats, partial(time_ase, atoms, potential, ase_steps, True)),
            "ase_no_gamma": best_of(repeats, partial(time_ase, atoms, potential, ase_steps, False)),
            "lammps": best_of(repeats, partial(time_lammps, atoms, potential, lammps_steps, None)),
            "lammps_g10": best_of(repeats, partial(time_lammps, atoms, potential, lammps_steps, 10)),
        }
        row: dict[str, Any] = {"atoms": n_atoms, "ase_steps": ase_steps, "lammps_steps": lammps_steps}
        for name, seconds in timings.items():
            row[f"{name}_us_per_atom_step"] = seconds / n_atoms * 1e6
            row[f"{name}_atom_steps_per_s"] = n_atoms / seconds
        row["ratio_engines"] = timings["ase"] / timings["lammps_g10"]
        row["ratio_energy_forces"] = timings["ase_no_gamma"] / timings["lammps"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(functions: int, rows: list[dict[str, Any]]) -> str:
    lines = [
        f"functions per element: {functions}",
        "",
        "| atoms | ASE engine: Langevin + PyACECalculator, gamma every step | LAMMPS engine: "
        "pace/extrapolation, gamma every 10 steps | ratio | ASE, no gamma | LAMMPS pace | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['atoms']} | {row['ase_us_per_atom_step']:.1f} us ({row['ase_atom_steps_per_s']:.0f}/s) "
            f"| {row['lammps_g10_us_per_atom_step']:.1f} us ({row['lammps_g10_atom_steps_per_s']:.0f}/s) "
            f"| {row['ratio_engines']:.1f} | {row['ase_no_gamma_us_per_atom_step']:.1f} us "
            f"| {row['lammps_us_per_atom_step']:.1f} us | {row['ratio_energy_forces']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer steps (noisier numbers)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per case; the fastest counts")
    parser.add_argument(
        "--functions",
        type=int,
        nargs="+",
        default=[120, 60],
        help="ACE functions per element (one table each)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(__file__).parent / "results" / "md_speed.json",
        help="numbers go here",
    )
    arguments = parser.parse_args()
    scale = 0.25 if arguments.quick else 1.0
    results: dict[int, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for functions in arguments.functions:
            potential = make_potential(Path(folder) / str(functions), functions)
            results[functions] = benchmark(potential, scale, arguments.repeats)
    for functions, rows in results.items():
        print()
        print(table(functions, rows))
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
