"""pw.x wall time on an 8-atom Si-Ge cell: serial vs `mpirun -np 2 pw.x -nk 2` (k-point pools).

Runs through the project's qe oracle with the default config's DFT settings, so it measures
what a label job costs. Prints a Markdown table row for benchmarks/README.md and writes JSON.

    python benchmarks/qe_parallel.py [--repeats 1] [--json benchmarks/results/qe_parallel.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lib"))

from mlip_autopipe.config import load_yaml, with_defaults  # noqa: E402
from mlip_autopipe.oracles import oracle_from_config  # noqa: E402

SERIAL = ["pw.x"]


def pools_command() -> list[str]:
    """`mpirun -np {cores} pw.x -nk {cores}` with the mpirun installed beside pw.x.

    Debian's pw.x is built against Debian's Open MPI; another mpirun earlier on PATH (the
    mpich wheel of a virtual environment) would start independent serial copies.
    """
    pw = shutil.which("pw.x")
    beside = Path(pw).parent / "mpirun" if pw else None
    mpirun = str(beside) if beside is not None and beside.exists() else "mpirun"
    flags = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    return [mpirun, "-np", "{cores}", *flags, "pw.x", "-nk", "{cores}"]


def sige_cell(seed: int = 0):
    """8-atom conventional diamond cell, Si4Ge4, rattled (no symmetry: all k-points count)."""
    atoms = bulk("Si", "diamond", a=5.54, cubic=True)
    atoms.set_chemical_symbols(["Si", "Ge"] * 4)
    atoms.positions += np.random.default_rng(seed).normal(scale=0.05, size=atoms.positions.shape)
    return atoms


def wall_seconds(command: list[str], cores: int, qe: dict) -> tuple[float, float]:
    """(wall seconds, energy) of one pw.x label."""
    config = with_defaults(
        {"elements": ["Si", "Ge"], "oracle": {"kind": "qe", "qe": {**qe, "command": command}}}
    )
    oracle = oracle_from_config(config, cores=cores)
    started = time.perf_counter()
    labelled = oracle.label(sige_cell())
    return time.perf_counter() - started, labelled.get_potential_energy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "qe_parallel.json")
    args = parser.parse_args()
    qe = load_yaml(REPO / "config" / "config.yaml")["oracle"]["qe"]
    qe = {key: qe[key] for key in ("ecutwfc", "ecutrho", "kspacing") if key in qe}
    serial, pools = [], []
    for _ in range(args.repeats):
        seconds, serial_energy = wall_seconds(SERIAL, 1, qe)
        serial.append(seconds)
        seconds, pools_energy = wall_seconds(pools_command(), 2, qe)
        pools.append(seconds)
    result = {
        "cell": "Si4Ge4 diamond, rattled 0.05 A",
        "settings": qe,
        "serial_s": min(serial),
        "mpirun_np2_nk2_s": min(pools),
        "speed_up": min(serial) / min(pools),
        "energy_difference_ev": abs(serial_energy - pools_energy),
        "load_average_1min": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))
    print(
        f"| pw.x 8-atom SiGe, {qe.get('ecutwfc')} Ry, kspacing {qe.get('kspacing')}/A | "
        f"serial {result['serial_s']:.1f} s | mpirun -np 2 -nk 2 {result['mpirun_np2_nk2_s']:.1f} s | "
        f"{result['speed_up']:.2f}x |"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
