"""Fit wall time against training-set size, linear and nonlinear modes, on EMT Cu-Ni.

Usage:
    .venv/bin/python benchmarks/fit_scaling.py [--sizes 50 200 800] [--out results.json]

Training cells: 32-atom fcc Cu-Ni, random decoration (25-75 % Cu), isotropic strain of +-3 % and
0.1 A rattle, labelled by ASE's EMT. Both modes fit the same cells on 2 threads. The nonlinear
settings are cut down (20 functions per element, 20 BFGS iterations) so that the 800-structure
fit takes minutes, not hours: production fits use more of both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lib"))

from mlip_autopipe import nonlinear_fit  # noqa: E402
from mlip_autopipe.config import section_defaults  # noqa: E402
from mlip_autopipe.training import train_potential  # noqa: E402

ELEMENTS = ["Cu", "Ni"]
COMMON = {"cutoff": 5.0, "nradmax_by_orders": [8, 3, 2], "lmax_by_orders": [0, 2, 1], "test_fraction": 0.0}
LINEAR = section_defaults(
    "fit",
    {**COMMON, "mode": "linear", "functions_per_element": 60, "ridge_alpha": 1e-6, "energy_weight": 30.0},
)
NONLINEAR = {
    **COMMON,
    "mode": "nonlinear",
    "functions_per_element": 20,
    "fs_parameters": [1, 1, 1, 0.5],
    "loss_kappa": 0.3,
    "l1_coefficient": 1e-8,
    "l2_coefficient": 1e-8,
    "maxiter": 20,
    "warm_start_maxiter": 20,
    "batch_size": 100,
    "repulsion": "auto",
}
NONLINEAR = section_defaults("fit", NONLINEAR)


def emt_cells(count: int, seed: int = 0) -> list:
    """``count`` labelled 32-atom Cu-Ni cells."""
    rng = np.random.default_rng(seed)
    cells = []
    for _ in range(count):
        atoms = bulk("Cu", "fcc", a=3.59 * (1 + rng.uniform(-0.03, 0.03)), cubic=True).repeat((2, 2, 2))
        copper = rng.uniform(0.25, 0.75)
        atoms.set_chemical_symbols(["Cu" if rng.random() < copper else "Ni" for _ in atoms])
        atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        cells.append(atoms)
    return cells


def time_fits(size: int, folder: Path) -> dict:
    train = emt_cells(size, seed=size)
    # the pipeline's recipe in both modes; the times are of the fit step alone (no active set)
    linear = train_potential(train, ELEMENTS, LINEAR, folder / f"linear_{size}").timings["fit_s"]
    fitted = train_potential(train, ELEMENTS, NONLINEAR, folder / f"nonlinear_{size}", threads=2)
    nonlinear = fitted.timings["fit_s"]
    workdir = fitted.folder / "pacemaker"
    history = nonlinear_fit.read_loss_history(workdir)
    seconds_per_iteration = _seconds_per_iteration(workdir / "log.txt")
    return {
        "nonlinear_s_per_iteration": seconds_per_iteration,
        "structures": size,
        "atoms": 32 * size,
        "linear_s": round(linear, 1),
        "nonlinear_s": round(nonlinear, 1),
        "nonlinear_iterations": history[-1][0],
        "nonlinear_final_loss": history[-1][1],
    }


def _seconds_per_iteration(log: Path) -> float | None:
    """Mean wall time of one BFGS iteration, from the timestamps of pacemaker's iteration lines
    (start-up, TensorFlow tracing and the first iteration excluded)."""
    stamps = [
        datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for line in log.read_text().splitlines()
        if " - Iteration   #" in line
    ]
    if len(stamps) < 3:
        return None
    return round((stamps[-1] - stamps[0]) / (len(stamps) - 1), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 800])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/fit_scaling.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            rows.append(time_fits(size, Path(scratch)))
            print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d"),
        "load_average_at_end": os.getloadavg(),
        "linear": LINEAR,
        "nonlinear": NONLINEAR,
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
