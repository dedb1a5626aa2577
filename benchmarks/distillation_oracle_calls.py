"""Oracle calls to a target force error on the broad test set: oracle-only against distillation
with off-the-shelf and with fine-tuned CHGNet, the distillation pool made by surrogate MD.

Ground truth: ASE's EMT, the EMT preset (Cu-Ni fcc). Scored as ``exploration.py`` scores: its
broad held-out test set (``testsets.build_test_set``: bulk at three temperatures, vacancy,
interstitial, liquid, two surfaces, compressed, expanded), worst category and per category.

Per number of oracle calls N (the first N structures of the exploration benchmark's random
oracle dataset: half EMT-MD snapshots of random scenarios, half strained + rattled cells):

- (i) oracle-only: the fit rule's recipe (``training.train_potential``) on the N labels;
- (ii) distillation, off-the-shelf CHGNet: surrogate MD (``surrogate_md.surrogate_md``, the
  rule's recipe) from the exploration policy's start cells with CHGNet's shipped weights, its
  frames pseudo-labelled by it, fitted with the N oracle labels weighted up
  (``surrogate.distillation`` defaults);
- (iii) distillation, fine-tuned CHGNet: CHGNet fine-tuned on the N labels
  (``finetune.finetune_surrogate``), then surrogate MD with it and the same fit.

Also: the surrogate's test error per category before and after fine-tuning, and wall times of
fine-tuning and surrogate MD against the oracle's: EMT measured here, DFT from the pw.x seconds
per label of the reduced default run (``results/overhead.json``: tool seconds in its label logs).

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/distillation_oracle_calls.py --quick

Writes benchmarks/results/distillation_oracle_calls.json (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS.parent / "lib"))
sys.path.insert(0, str(BENCHMARKS))

from exploration import (  # noqa: E402
    BASELINE_SEED_OFFSET,
    EMT,
    PRESET,
    SCHEMA,
    TEST_SEED,
    Scorer,
    build_random_pool,
    calls_to_reach,
    parent_cells,
)

from mlip_autopipe import testsets  # noqa: E402
from mlip_autopipe.config import load_config, section_defaults  # noqa: E402
from mlip_autopipe.finetune import element_offsets, finetune_surrogate, finetuned_surrogate  # noqa: E402
from mlip_autopipe.oracles.surrogates import CHGNetOracle, MACEOracle  # noqa: E402
from mlip_autopipe.surrogate_md import surrogate_md, surrogate_md_starts  # noqa: E402
from mlip_autopipe.training import train_potential  # noqa: E402

RESULTS = BENCHMARKS / "results" / "distillation_oracle_calls.json"
OVERHEAD = BENCHMARKS / "results" / "overhead.json"


def surrogate_scores(surrogate: CHGNetOracle | MACEOracle, oracle: list[Atoms], test: list[Atoms]) -> dict:
    """The surrogate's test error per category against the oracle (energies after per-element
    offsets fitted on the oracle's training labels), worst category first."""
    elements = sorted({symbol for atoms in oracle for symbol in atoms.get_chemical_symbols()})
    offsets = element_offsets([surrogate.label(atoms) for atoms in oracle], oracle, elements)

    def predict(atoms: Atoms) -> tuple[float, np.ndarray]:
        labelled = surrogate.label(atoms)
        return labelled.get_potential_energy(), labelled.get_forces()

    scores = testsets.rmse_by_category(
        predict,
        test,
        lambda atoms: atoms.get_potential_energy() + sum(offsets[s] for s in atoms.get_chemical_symbols()),
    )
    worst, value = testsets.worst_category(scores)
    forces = np.concatenate(
        [(predict(atoms)[1] - atoms.get_forces()).ravel() for atoms in test]
    )  # one pass more: cheap next to the rest
    return {
        "worst_category": worst,
        "worst_force_rmse_ev_per_a": value,
        "force_rmse_ev_per_a": float(np.sqrt(np.mean(forces**2))),
        "by_category": {name: round(row["force_rmse_ev_per_a"], 4) for name, row in scores.items()},
    }


def fitted_score(
    oracle: list[Atoms],
    pool: list[Atoms] | None,
    preset: dict[str, Any],
    distillation: dict[str, Any],
    score: Scorer,
    folder: Path,
) -> dict[str, Any]:
    start = time.perf_counter()
    result = train_potential(
        oracle,
        list(preset["elements"]),
        preset["fit"],
        folder,
        surrogate_pool=pool,
        distillation=distillation if pool else None,
        active_set=False,
    )
    return {"fit_s": round(time.perf_counter() - start, 1), **score(result.yaml, result.references)}


METHODS = ("oracle_only", "distilled_shipped", "distilled_finetuned")


def calls_to_targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Oracle calls each method needs to reach, in worst-category force RMSE, what the
    oracle-only fit reached at each budget (log-log interpolation between budgets; None: not
    within the budgets)."""

    def curve(method: str) -> list[dict[str, Any]]:
        return [{"oracle_calls": row["oracle_calls"], **row[method]} for row in rows]

    targets = [row["oracle_only"]["worst_force_rmse_ev_per_a"] for row in rows]
    return {
        "targets_worst_force_rmse_ev_per_a": targets,
        "targets_are": "the oracle-only fit's worst-category force RMSE at each budget",
        "calls_to_target": [
            {"target": target, **{method: calls_to_reach(curve(method), target) for method in METHODS}}
            for target in targets
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--budgets", type=int, nargs="+", help="oracle calls (default 8 24 72; --quick: 8 24)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--md-steps", type=int, help="surrogate MD steps per run (default 200; --quick: 24)")
    parser.add_argument("--sample-interval", type=int, help="steps between frames (default 10; --quick: 3)")
    parser.add_argument("--epochs", type=int, help="fine-tuning epochs (default 10; --quick: 3)")
    parser.add_argument("--quick", action="store_true", help="two budgets, short MD, a small test set")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--summarise", action="store_true", help="only recompute the calls to target of --out's rows"
    )
    args = parser.parse_args()
    if args.summarise:
        saved = json.loads(args.out.read_text())
        saved.update(calls_to_targets(saved["rows"]))
        args.out.write_text(json.dumps(saved, indent=2, default=float) + "\n")
        print(json.dumps(saved["calls_to_target"], indent=2))
        return
    args.budgets = args.budgets or ([8, 24] if args.quick else [8, 24, 72])
    args.md_steps = args.md_steps or (24 if args.quick else 200)
    args.sample_interval = args.sample_interval or (3 if args.quick else 10)
    args.epochs = args.epochs or (3 if args.quick else 10)
    started = time.perf_counter()
    preset = load_config(PRESET, SCHEMA)
    preset["fit"] = {**preset["fit"], "test_fraction": 0.0}  # scored on the broad test set only
    elements, structures, explore = list(preset["elements"]), preset["structures"], preset["explore"]
    test_md = testsets.MDSettings(equilibration=60, interval=20, melt_steps=300) if args.quick else None
    parents = parent_cells(preset, TEST_SEED, 1)[: 1 if args.quick else None]
    test = testsets.build_test_set(
        parents,
        structures["lattice"],
        EMT,
        TEST_SEED,
        frames_per_run=1 if args.quick else 3,
        settings=test_md or testsets.MDSettings(),
    )
    print(f"test set: {len(test)} frames, {time.perf_counter() - started:.0f} s", flush=True)
    oracle_data = build_random_pool(preset, max(args.budgets), args.seed + BASELINE_SEED_OFFSET)
    # the oracle's cost per call, EMT here (the MD snapshots' own MD steps are not counted)
    emt_start = time.perf_counter()
    for atoms in oracle_data:
        work = atoms.copy()
        work.calc = EMT()
        work.get_forces()
    emt_per_call = (time.perf_counter() - emt_start) / len(oracle_data)
    md_cells = [cell for cell, _ in parent_cells(preset, args.seed, 1)]
    starts = surrogate_md_starts(elements, structures, explore, md_cells, args.seed)
    md = {
        **section_defaults("surrogate")["distillation"]["md"],
        "enabled": True,
        "steps": args.md_steps,
        "sample_interval": args.sample_interval,
    }
    distillation = {**section_defaults("surrogate")["distillation"], "enabled": True}
    score = Scorer(test)
    shipped = CHGNetOracle()
    shipped_md = surrogate_md(starts, shipped, md, explore, seed=args.seed, generation=0, log=print)
    print(f"shipped CHGNet MD: {shipped_md.summary()['n_pool']} frames", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="distillation_oracle_calls_"))
    rows = []
    try:
        for budget in args.budgets:
            oracle = oracle_data[:budget]
            folder = scratch / f"n{budget}"
            row: dict[str, Any] = {"oracle_calls": budget}
            row["oracle_only"] = fitted_score(oracle, None, preset, distillation, score, folder / "oracle")
            row["distilled_shipped"] = fitted_score(
                oracle, shipped_md.pool, preset, distillation, score, folder / "shipped"
            )
            settings = section_defaults(
                "surrogate", {"kind": "chgnet", "finetuning": {"test_fraction": 0.0, "epochs": args.epochs}}
            )
            tuned_result = finetune_surrogate(
                oracle, elements, settings, folder / "surrogate", seed=args.seed
            )
            tuned = finetuned_surrogate(settings, tuned_result.model)
            tuned_md = surrogate_md(starts, tuned, md, explore, seed=args.seed, generation=0)
            row["distilled_finetuned"] = fitted_score(
                oracle, tuned_md.pool, preset, distillation, score, folder / "finetuned"
            )
            row["surrogate_shipped"] = surrogate_scores(shipped, oracle, test)
            row["surrogate_finetuned"] = surrogate_scores(tuned, oracle, test)
            row["finetune_s"] = round(tuned_result.metrics["train_seconds"], 1)
            row["surrogate_md_s"] = round(tuned_md.summary()["wall_seconds"], 1)
            row["surrogate_md_frames"] = tuned_md.summary()["n_pool"]
            row["surrogate_md_uncertain"] = tuned_md.summary()["n_uncertain"]
            rows.append(row)
            print(
                f"{budget} calls: worst-category force RMSE oracle-only "
                f"{row['oracle_only']['worst_force_rmse_ev_per_a']:.3f}, distilled shipped "
                f"{row['distilled_shipped']['worst_force_rmse_ev_per_a']:.3f}, distilled fine-tuned "
                f"{row['distilled_finetuned']['worst_force_rmse_ev_per_a']:.3f} eV/A; surrogate "
                f"{row['surrogate_shipped']['force_rmse_ev_per_a']:.3f} -> "
                f"{row['surrogate_finetuned']['force_rmse_ev_per_a']:.3f} eV/A; fine-tune "
                f"{row['finetune_s']} s, surrogate MD {row['surrogate_md_s']} s",
                flush=True,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    dft = json.loads(OVERHEAD.read_text())["dft_reduced"]
    pw_per_call = dft["tool_s"]["oracle"] / dft["jobs_per_rule"]["label"]
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, one thread, shared",
        "quick": args.quick,
        "oracle": "EMT (ground truth), EMT preset (Cu-Ni fcc)",
        "surrogate": "CHGNet 0.3.0: shipped weights, and fine-tuned on the oracle calls",
        "seed": args.seed,
        "test_frames": len(test),
        "test_categories": testsets.categories(test),
        "surrogate_md": {
            **md,
            "runs": [run.run for run, _ in starts],
            "shipped_frames": len(shipped_md.pool),
        },
        "shipped_md_s": round(shipped_md.summary()["wall_seconds"], 1),
        "epochs": args.epochs,
        "fit": preset["fit"],
        **calls_to_targets(rows),
        "emt_s_per_call": emt_per_call,
        "pw_x_s_per_call": pw_per_call,
        "pw_x_s_per_call_source": "results/overhead.json dft_reduced: pw.x tool seconds / label jobs",
        "rows": rows,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result["calls_to_target"]), flush=True)
    print(f"wrote {args.out} in {result['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
