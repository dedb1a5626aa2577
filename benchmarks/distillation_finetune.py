"""Distillation with a fine-tuned surrogate: test errors against the oracle for the surrogate
before/after fine-tuning and for three ACE fits (oracle-only, distilled with off-the-shelf
CHGNet, distilled with CHGNet fine-tuned on the same oracle labels), per number of oracle calls.

Ground truth: ASE's EMT on the 32-atom fcc Cu-Ni cells of ``surrogate_oracle_calls.py`` (near-
equilibrium ones only); a separate held-out test set. Per seed and number of oracle calls N: the
oracle labels N cells, CHGNet is fine-tuned on them (``finetune.finetune_surrogate``, the rule's
recipe), both CHGNets label the same pool, and the fit rule's recipe (``training.train_potential``
and ``training.distillation_comparison``) fits and scores. Also timed: fine-tuning, surrogate
labels and oracle labels.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/distillation_finetune.py --quick  # ~3 min
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/distillation_finetune.py          # not run here

Writes benchmarks/results/distillation_finetune.json (``--quick``: a temporary file unless ``--out``).
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

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS.parent / "lib"))
sys.path.insert(0, str(BENCHMARKS))

from surrogate_oracle_calls import ELEMENTS, FIT, cell  # noqa: E402

from mlip_autopipe import fit  # noqa: E402
from mlip_autopipe.config import with_defaults  # noqa: E402
from mlip_autopipe.finetune import (  # noqa: E402
    element_offsets,
    finetune_surrogate,
    finetuned_surrogate,
    surrogate_errors,
)
from mlip_autopipe.oracles import oracle_from_config  # noqa: E402
from mlip_autopipe.training import distillation_comparison, train_potential  # noqa: E402

RESULTS = BENCHMARKS / "results" / "distillation_finetune.json"


def force_rmse(result: dict[str, Any] | None) -> float | None:
    return None if result is None else result["force_rmse_ev_per_a"]


def run(
    calls: int, seed: int, args: argparse.Namespace, config: dict[str, Any], folder: Path
) -> dict[str, Any]:
    """One seed and number of oracle calls: surrogate errors and the three ACE fits' test errors."""
    emt = oracle_from_config(config)
    shipped = oracle_from_config(config, section="surrogate", cores=1)
    test_rng, rng = np.random.default_rng(2026), np.random.default_rng(seed)
    test = [emt.label(cell(test_rng, "good")) for _ in range(args.test)]
    start = time.perf_counter()
    oracle = [emt.label(cell(rng, "good")) for _ in range(calls)]
    oracle_s = time.perf_counter() - start
    pool_cells = [cell(rng, "good") for _ in range(args.pool)]
    surrogate = dict(
        config["surrogate"], finetuning=dict(config["surrogate"]["finetuning"], epochs=args.epochs)
    )
    tuned = finetune_surrogate(oracle, ELEMENTS, surrogate, folder / "surrogate", seed=seed)
    model = finetuned_surrogate(surrogate, tuned.model)
    row: dict[str, Any] = {"calls": calls, "seed": seed, "finetune_s": tuned.metrics["train_seconds"]}
    row["oracle_labels_s"] = oracle_s
    for name, surrogate_model in (("shipped", shipped), ("finetuned", model)):
        start = time.perf_counter()
        pool = [surrogate_model.label(atoms) for atoms in pool_cells]
        row[f"{name}_pool_labels_s"] = time.perf_counter() - start
        # per-element offsets of the surrogate against the oracle, from the oracle's own labels
        offsets = element_offsets([surrogate_model.label(atoms) for atoms in oracle], oracle, ELEMENTS)
        row[f"surrogate_{name}"] = surrogate_errors([surrogate_model.label(a) for a in test], test, offsets)
        fitted = train_potential(
            oracle, ELEMENTS, FIT, folder / name, surrogate_pool=pool, distillation=args.distillation
        )
        comparison = distillation_comparison(
            oracle, test, pool, fitted.references, ELEMENTS, FIT, folder / name / "comparison"
        )
        row[f"ace_distilled_{name}"] = fit.evaluate(fitted.yaml, test, fitted.references)
        row[f"ace_base_{name}"] = comparison["base_ace"]
        row["ace_oracle_only"] = comparison["oracle_only_ace"]
    print(
        f"seed {seed} {calls:3d} calls: surrogate {force_rmse(row['surrogate_shipped']):.3f} -> "
        f"{force_rmse(row['surrogate_finetuned']):.3f} eV/A; "
        f"ACE oracle-only {force_rmse(row['ace_oracle_only']):.4f}, "
        f"distilled shipped {force_rmse(row['ace_distilled_shipped']):.4f}, "
        f"distilled fine-tuned {force_rmse(row['ace_distilled_finetuned']):.4f}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, nargs="+", help="oracle calls (default 4 8 16 32; --quick: 8)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1; --quick: 0)")
    parser.add_argument("--pool", type=int, help="surrogate pool cells (default 170; --quick: 30)")
    parser.add_argument("--test", type=int, default=20)
    parser.add_argument("--epochs", type=int, help="fine-tuning epochs (default 10; --quick: 3)")
    parser.add_argument("--quick", action="store_true", help="one seed, 8 calls, a small pool: a smoke run")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.calls = args.calls or ([8] if args.quick else [4, 8, 16, 32])
    args.seeds = args.seeds or ([0] if args.quick else [0, 1])
    args.pool = args.pool or (30 if args.quick else 170)
    args.epochs = args.epochs or (3 if args.quick else 10)
    config = with_defaults(
        {
            "oracle": {"kind": "emt"},
            # nothing held out inside: the benchmark scores on its own test set
            "fit": {"test_fraction": 0.0},
            "surrogate": {
                "kind": "chgnet",
                "distillation": {"enabled": True, "finetune": True},
                "finetuning": {"test_fraction": 0.0},
            },
        }
    )
    args.distillation = config["surrogate"]["distillation"]
    rows = []
    for seed in args.seeds:
        for calls in args.calls:
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(run(calls, seed, args, config, Path(tmp)))
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, one thread",
        "quick": args.quick,
        "oracle": "EMT (ground truth)",
        "surrogate": "CHGNet 0.3.0: shipped weights and fine-tuned on the oracle calls",
        "pool": args.pool,
        "test_structures": args.test,
        "epochs": args.epochs,
        "fit": FIT,
        "runs": rows,
    }
    out = args.out or (
        Path(tempfile.gettempdir()) / "distillation_finetune_quick.json" if args.quick else RESULTS
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
