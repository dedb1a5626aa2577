"""Oracle calls needed for a target test force RMSE, with and without a surrogate (CHGNet).

Ground truth: ASE's EMT on 32-atom fcc Cu-Ni cells. The candidate pool mimics an exploration
pool: near-equilibrium cells (random decoration, strain, rattle) plus a share of unphysical ones
(pairs pushed together, hot rattles) that an unscreened loop would pay an oracle call for.

- baseline: the oracle labels the first N candidates of a seeded random order; linear ACE fit.
- prescreen: the same order, but candidates rejected by CHGNet pre-screening (close pairs,
  absurd forces/energies, confident duplicates) cost no call; the first N kept ones are labelled.
- prescreen + distillation: as prescreen, plus the whole pool labelled by CHGNet (energies moved
  onto the oracle's per-element scale) in the fit, oracle labels weighted up.

The target is the best test force RMSE the baseline reaches at any N (and, for distillation's own effect,
pre-screening's RMSE at its largest N); for each route the calls needed
are interpolated (log-log) on its RMSE-vs-N curve. Writes benchmarks/results/surrogate_oracle_calls.json.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/surrogate_oracle_calls.py   # ~5-10 min
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from mlip_autopipe import fit  # noqa: E402
from mlip_autopipe.config import section_defaults, with_defaults  # noqa: E402
from mlip_autopipe.data import structure_uid  # noqa: E402
from mlip_autopipe.oracles import oracle_from_config  # noqa: E402
from mlip_autopipe.prescreen import screen_candidates  # noqa: E402
from mlip_autopipe.training import train_potential  # noqa: E402

ELEMENTS = ["Cu", "Ni"]
FIT = section_defaults(
    "fit",
    {
        "mode": "linear",
        "cutoff": 5.0,
        "functions_per_element": 150,
        "nradmax_by_orders": [10, 3, 2],
        "lmax_by_orders": [0, 2, 1],
        "ridge_alpha": 1e-6,
        "energy_weight": 30.0,
        "test_fraction": 0.0,  # scored on a separate test set
    },
)
#: Distillation weights: oracle labels 10, surrogate pool 1 (the schema's defaults).
DISTILLATION = section_defaults(
    "surrogate", {"distillation": {"oracle_weight": 10.0, "surrogate_weight": 1.0}}
)["distillation"]
RESULTS = Path(__file__).resolve().parent / "results" / "surrogate_oracle_calls.json"


def cell(rng: np.random.Generator, kind: str) -> Atoms:
    """A 32-atom Cu-Ni fcc cell: 'good' (strain +-3 %, rattle 0.02-0.15 A) or an unphysical
    'bad' one (two atoms 0.8-1.3 A apart, or a 0.45 A rattle)."""
    strain = rng.uniform(-0.03, 0.03)
    atoms = bulk("Cu", "fcc", a=3.59 * (1 + strain), cubic=True).repeat((2, 2, 2))
    fraction = rng.choice([0.25, 0.5, 0.75])
    atoms.set_chemical_symbols(list(np.where(rng.random(len(atoms)) < fraction, "Ni", "Cu")))
    amplitude = rng.uniform(0.02, 0.15) if kind == "good" else 0.45
    atoms.positions += rng.normal(scale=amplitude, size=atoms.positions.shape)
    if kind == "bad" and rng.random() < 0.5:
        direction = rng.normal(size=3)
        atoms.positions[1] = atoms.positions[0] + rng.uniform(0.8, 1.3) * direction / np.linalg.norm(
            direction
        )
    atoms.wrap()
    atoms.info["uid"] = structure_uid(atoms)
    return atoms


def fit_rmse(train: list[Atoms], test: list[Atoms], folder: Path, pool: list[Atoms] | None = None) -> float:
    """Test force RMSE of the pipeline's fit on oracle labels ``train`` (plus a distilled
    surrogate ``pool``)."""
    fitted = train_potential(
        train, ELEMENTS, FIT, folder, surrogate_pool=pool, distillation=DISTILLATION if pool else None
    )
    return float(fit.evaluate(fitted.yaml, test, fitted.references)["force_rmse_ev_per_a"])


def calls_for(target: float, calls: list[int], rmse: list[float]) -> float | None:
    """Calls at which the RMSE curve first reaches ``target`` (log-log interpolation)."""
    for index, value in enumerate(rmse):
        if value <= target:
            if index == 0:
                return float(calls[0])
            x0, x1 = np.log(calls[index - 1]), np.log(calls[index])
            y0, y1 = np.log(rmse[index - 1]), np.log(value)
            return float(np.exp(x0 + (np.log(target) - y0) * (x1 - x0) / (y1 - y0)))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", type=int, default=200)
    parser.add_argument("--bad-fraction", type=float, default=0.15)
    parser.add_argument("--test", type=int, default=30)
    parser.add_argument("--calls", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()

    config = with_defaults(
        {"oracle": {"kind": "emt"}, "surrogate": {"kind": "chgnet", "chgnet": {"model": "0.3.0"}}}
    )
    emt = oracle_from_config(config)
    rng = np.random.default_rng(2026)
    test = [emt.label(cell(rng, "good")) for _ in range(args.test)]
    surrogate = oracle_from_config(config, section="surrogate", cores=1)
    runs: dict[str, dict[str, list[list[float]]]] = {"baseline": {}, "prescreen": {}, "distillation": {}}
    timing: dict[str, float] = {"screen_s": 0.0, "surrogate_labels_s": 0.0, "oracle_labels_s": 0.0}
    screen_counts = []
    for seed in args.seeds:
        pool_rng = np.random.default_rng(seed)
        pool = [
            cell(pool_rng, "bad" if pool_rng.random() < args.bad_fraction else "good")
            for _ in range(args.pool)
        ]
        start = time.perf_counter()
        kept, ledger = screen_candidates(pool, surrogate, section_defaults("surrogate")["prescreen"])
        timing["screen_s"] += time.perf_counter() - start
        screen_counts.append(
            {row["check"]: sum(r["check"] == row["check"] for r in ledger) for row in ledger}
        )
        start = time.perf_counter()
        surrogate_pool = [surrogate.label(atoms) for atoms in kept]
        timing["surrogate_labels_s"] += time.perf_counter() - start
        start = time.perf_counter()
        labels = {atoms.info["uid"]: emt.label(atoms) for atoms in pool}
        timing["oracle_labels_s"] += time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for route, order in (("baseline", pool), ("prescreen", kept), ("distillation", kept)):
                curve = []
                for calls in args.calls:
                    train = [labels[atoms.info["uid"]] for atoms in order[:calls]]
                    pool = surrogate_pool if route == "distillation" else None
                    curve.append(fit_rmse(train, test, folder, pool))
                    print(
                        f"seed {seed} {route:12s} {calls:4d} calls: test force RMSE {curve[-1]:.4f} eV/A",
                        flush=True,
                    )
                runs[route].setdefault("rmse", []).append(curve)
    mean = {
        route: np.exp(np.mean(np.log(np.array(run["rmse"])), axis=0)).tolist() for route, run in runs.items()
    }
    # the best the baseline reaches: its curve is not monotone (unphysical labels poison the fit)
    target = min(mean["baseline"])
    needed = {route: calls_for(target, args.calls, curve) for route, curve in mean.items()}
    result: dict[str, Any] = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, one thread",
        "oracle": "EMT (ground truth)",
        "surrogate": "CHGNet 0.3.0 (shipped weights)",
        "pool": args.pool,
        "bad_fraction": args.bad_fraction,
        "test_structures": args.test,
        "seeds": args.seeds,
        "calls": args.calls,
        "fit": FIT,
        "prescreen_checks_per_seed": screen_counts,
        "test_force_rmse_ev_per_a_geometric_mean": mean,
        "target_force_rmse_ev_per_a": target,
        "oracle_calls_to_target": needed,
        # distillation's own effect: calls to reach what pre-screening alone reaches at most calls
        "distillation_calls_to_prescreen_final": calls_for(
            mean["prescreen"][-1], args.calls, mean["distillation"]
        ),
        "ratio_to_baseline": {
            route: (needed["baseline"] / value if value and needed["baseline"] else None)
            for route, value in needed.items()
        },
        "seconds": timing,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("oracle_calls_to_target", "ratio_to_baseline")}, indent=2))


if __name__ == "__main__":
    main()
