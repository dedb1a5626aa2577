"""pw.x at the default run's demo cutoffs against the pseudopotentials' suggested cutoffs.

The default config labels with ecutwfc 30 / ecutrho 120 Ry to fit its time budget, below the
suggested minimum cutoffs in the headers of Debian's PBE pseudopotentials. This benchmark labels
the same few structures of the default run's generation-0 pool (8-atom Si-Ge cells: SQS,
strained, sheared, rattled, antisite) at both settings, through the project's qe oracle with the
default config's other settings (k-spacing, smearing), and reports what the lower cutoffs cost in
accuracy and what they save in time:

- energy per atom: the raw difference (mean and largest), and the RMSE left after removing one
  constant shift per element (least squares of the total-energy difference on the element counts;
  that part cancels in every energy difference at fixed composition and is absorbed by the fit's
  reference energies);
- forces: RMSE of the force-component differences, and the largest;
- stress: RMSE of the Voigt-component differences, and the largest (GPa);
- pw.x wall time: the summed seconds of pw.x at each setting, and their ratio.

    python benchmarks/qe_cutoffs.py [--structures 5] [--json benchmarks/results/qe_cutoffs.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import GPa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lib"))

from mlip_autopipe.config import load_yaml, with_defaults  # noqa: E402
from mlip_autopipe.oracles import oracle_from_config  # noqa: E402
from mlip_autopipe.oracles.qe import resolve_settings  # noqa: E402
from mlip_autopipe.structures import build_pool  # noqa: E402


def pick_structures(pool: Sequence[Atoms], count: int) -> list[Atoms]:
    """``count`` structures of ``pool`` covering its kinds of distortion and its compositions:
    the k-th pick is the first unused structure of the k-th origin (sqs, strain, shear, rattle,
    antisite, ... in pool order, cycled) with the k-th formula (cycled), or of that origin with any
    formula when none is left."""
    origins = list(dict.fromkeys(str(atoms.info.get("origin", "unknown")) for atoms in pool))
    formulas = list(dict.fromkeys(atoms.get_chemical_formula() for atoms in pool))
    used: set[int] = set()
    picked: list[Atoms] = []
    for k in range(min(count, len(pool))):
        origin, formula = origins[k % len(origins)], formulas[k % len(formulas)]
        candidates = [
            i
            for i, atoms in enumerate(pool)
            if i not in used and atoms.info.get("origin", "unknown") == origin
        ]
        if not candidates:
            candidates = [i for i in range(len(pool)) if i not in used]
        matching = [i for i in candidates if pool[i].get_chemical_formula() == formula]
        index = (matching or candidates)[0]
        used.add(index)
        picked.append(pool[index])
    return picked


def element_shifts(
    counts: Sequence[Mapping[str, int]], differences: Sequence[float], elements: Sequence[str]
) -> dict[str, float]:
    """Per-element constant shifts (eV/atom) that best explain the total-energy ``differences``
    (least squares on the element ``counts``); the minimum-norm solution when the counts do not
    determine them all."""
    matrix = np.array([[count.get(element, 0) for element in elements] for count in counts], dtype=float)
    shifts, *_ = np.linalg.lstsq(matrix, np.asarray(differences, dtype=float), rcond=None)
    return {element: float(shift) for element, shift in zip(elements, shifts, strict=True)}


def compare(low: Sequence[Atoms], high: Sequence[Atoms], elements: Sequence[str]) -> dict[str, Any]:
    """Differences of the ``low``-cutoff labels from the ``high``-cutoff labels of the same
    structures: energy per atom (raw and after per-element shifts, meV/atom), forces (eV/A) and
    stress (GPa)."""
    counts = [{e: a.get_chemical_symbols().count(e) for e in elements} for a in high]
    totals = [lo.get_potential_energy() - hi.get_potential_energy() for lo, hi in zip(low, high, strict=True)]
    per_atom = np.array([d / len(a) for d, a in zip(totals, high, strict=True)])
    shifts = element_shifts(counts, totals, elements)
    residual = np.array(
        [
            (d - sum(shifts[e] * n for e, n in c.items())) / len(a)
            for d, c, a in zip(totals, counts, high, strict=True)
        ]
    )
    forces = np.concatenate(
        [(lo.get_forces() - hi.get_forces()).ravel() for lo, hi in zip(low, high, strict=True)]
    )
    stress = np.concatenate(
        [
            (lo.get_stress(voigt=True) - hi.get_stress(voigt=True)) / GPa
            for lo, hi in zip(low, high, strict=True)
        ]
    )
    return {
        "energy_mev_per_atom": {
            "mean": 1000 * float(per_atom.mean()),
            "max_abs": 1000 * float(np.abs(per_atom).max()),
            "rmse_after_element_shifts": 1000 * float(np.sqrt(np.mean(residual**2))),
            "element_shifts_mev": {e: 1000 * s for e, s in shifts.items()},
            "per_structure": [1000 * float(x) for x in per_atom],
        },
        "force_ev_per_a": {
            "rmse": float(np.sqrt(np.mean(forces**2))),
            "max_abs": float(np.abs(forces).max()),
        },
        "stress_gpa": {
            "rmse": float(np.sqrt(np.mean(stress**2))),
            "max_abs": float(np.abs(stress).max()),
        },
    }


def pw_seconds(labelled: Atoms) -> float:
    """pw.x seconds of a label: its attempts' own (the oracle's label history)."""
    return sum(float(attempt.get("seconds", 0.0)) for attempt in json.loads(labelled.info["label_history"]))


def label_all(structures: Sequence[Atoms], config: Mapping[str, Any]) -> tuple[list[Atoms], float, float]:
    """Label ``structures`` with the qe oracle of ``config``: labels, pw.x seconds, wall seconds."""
    oracle = oracle_from_config(config, cores=1)
    started = time.perf_counter()
    labelled = [oracle.label(atoms) for atoms in structures]
    return labelled, sum(pw_seconds(a) for a in labelled), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--structures", type=int, default=5)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "qe_cutoffs.json")
    args = parser.parse_args()
    config = with_defaults(load_yaml(args.config))
    elements = config["elements"]
    structures = pick_structures(build_pool(config["structures"], config["seed"], elements), args.structures)
    demo = config
    suggested = {
        **config,
        "oracle": {**config["oracle"], "qe": {**config["oracle"]["qe"], "ecutwfc": None, "ecutrho": None}},
    }
    settings = {
        name: resolve_settings(c["oracle"]["qe"], elements)
        for name, c in (("demo", demo), ("suggested", suggested))
    }
    load = os.getloadavg()[0]
    low, low_pw, low_wall = label_all(structures, demo)
    high, high_pw, high_wall = label_all(structures, suggested)
    result = {
        "structures": [
            {"formula": a.get_chemical_formula(), "origin": a.info.get("origin"), "atoms": len(a)}
            for a in structures
        ],
        "settings": {
            name: {"ecutwfc": s.ecutwfc, "ecutrho": s.ecutrho, "kspacing": config["oracle"]["qe"]["kspacing"]}
            for name, s in settings.items()
        },
        "pseudopotentials": {e: p.path.name for e, p in settings["suggested"].pseudopotentials.items()},
        "difference_demo_minus_suggested": compare(low, high, elements),
        "pw_seconds": {"demo": round(low_pw, 2), "suggested": round(high_pw, 2)},
        "wall_seconds": {"demo": round(low_wall, 2), "suggested": round(high_wall, 2)},
        "time_ratio_suggested_over_demo": round(high_pw / low_pw, 3),
        "load_average_1min_at_start": load,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))
    d = result["difference_demo_minus_suggested"]
    print(
        f"| {len(structures)} x 8-atom Si-Ge | {d['energy_mev_per_atom']['mean']:.1f} "
        f"({d['energy_mev_per_atom']['rmse_after_element_shifts']:.2f} after shifts) | "
        f"{d['force_ev_per_a']['rmse']:.4f} | {d['stress_gpa']['rmse']:.3f} | "
        f"{result['time_ratio_suggested_over_demo']:.2f}x |"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
