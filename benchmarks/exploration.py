"""Exploration benchmark (issue 18): the loop against two random baselines on a broad test set.

Usage:
    .venv/bin/python benchmarks/exploration.py [--seeds 7 8 9] [--quick] [--override KEY=VALUE ...]

- **Test set** (`mlip_autopipe.testsets`, never trained on, its own seed): oracle (EMT) MD of
  SQS cells of the preset's compositions, one run per composition and category: bulk at 300,
  900 and 1500 K; a vacancy and an interstitial at 1200 K; liquid at 2400 K (5 % expanded,
  melted at 3500 K, every frame checked by the translational order parameter, re-melted if it
  refreezes); (111) and (100) slabs with vacuum at 600 K; cells compressed and expanded by 6 %
  (linear) at 600 K. Per category:
  energy RMSE (meV/atom) and force RMSE (eV/A); the **worst category** is the one with the
  largest force RMSE.
- **Loop**: the real workflow (Snakemake on `config/emt.yaml`, validation off, `seed` and any
  `--override` applied) in a fresh run folder per seed. Oracle calls = labels in the
  generations' `ledger.json` (fresh, not from the cache). Every generation's potential and the
  final one (`results/final/`) are scored on the test set.
- **Baseline (a)**: the same workflow with `select.method: random`, only when the schema offers
  it (otherwise recorded as not available).
- **Baseline (b)**: a standard random dataset: a shuffled list of oracle-MD snapshots of the
  same scenarios (random temperatures and strains, short trajectories) and strained + rattled
  cells; budgets are prefixes. The MD steps behind the snapshots are counted separately
  (`oracle_calls_with_aimd`: what ab initio MD would cost). Fitted with the settings of the
  potential the loop is scored on (the production fit's when the loop has production on, else
  the loop's fit section, --override included) through the library's fit recipe
  (`training.train_potential` when it exists, else the fit rule's steps from
  `mlip_autopipe.fit`). Each seed also gets one fit at exactly its loop's oracle calls (equal
  budget).

Writes `benchmarks/results/exploration.json` (``--quick``: a temporary file unless ``--out``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ase import Atoms
from ase.calculators.emt import EMT

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lib"))

from mlip_autopipe import fit, testsets, variants  # noqa: E402
from mlip_autopipe.config import load_config, load_yaml, with_defaults  # noqa: E402
from mlip_autopipe.lattice import all_compositions  # noqa: E402
from mlip_autopipe.production import production_fit_settings  # noqa: E402
from mlip_autopipe.structures import sqs_cells  # noqa: E402
from mlip_autopipe.training import train_potential  # noqa: E402

PRESET = REPO / "config" / "emt.yaml"
SCHEMA = REPO / "config" / "schema.yaml"
TEST_SEED = 20261201
BASELINE_SEED_OFFSET = 7000
#: Baseline (b): frames per MD trajectory, steps between them, equilibration steps.
POOL_MD = testsets.MDSettings(equilibration=100, interval=20)
POOL_FRAMES_PER_RUN = 8
#: Baseline (b): scenario kinds and the ranges their temperature (K) and strain are drawn from.
POOL_SCENARIOS = (
    ("bulk", (300.0, 1600.0), (0.0, 0.0)),
    ("vacancy", (600.0, 1500.0), (0.0, 0.0)),
    ("interstitial", (600.0, 1500.0), (0.0, 0.0)),
    ("liquid", (2300.0, 2700.0), (0.05, 0.05)),
    ("surface_111", (300.0, 1200.0), (0.0, 0.0)),
    ("surface_100", (300.0, 1200.0), (0.0, 0.0)),
    ("strained", (300.0, 900.0), (-0.08, 0.08)),
)
POOL_STRAIN = (-0.08, 0.08)
POOL_RATTLE = (0.05, 0.2)


def snakemake_env() -> dict[str, str]:
    """This checkout's lib first: the jobs must not import another checkout's library."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "lib"), env.get("PYTHONPATH")]))
    return env


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, nested mappings key by key."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``section.key=value`` (value in YAML) -> nested dict."""
    result: dict[str, Any] = {}
    for item in items:
        key, _, text = item.partition("=")
        if not key or not _:
            raise SystemExit(f"--override {item!r}: expected KEY=VALUE, e.g. loop.max_generations=2")
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(text)
    return result


def random_selection_available() -> bool:
    """True when the schema's ``select.method`` offers ``random`` (issue 18's baseline (a))."""
    schema = load_yaml(SCHEMA)
    method = schema["properties"]["select"]["properties"].get("method", {})
    return "random" in method.get("enum", [])


def run_loop(run_dir: Path, overrides: dict[str, Any], cores: int) -> dict[str, Any]:
    """The EMT preset with ``overrides`` through Snakemake in ``run_dir``; returns wall time."""
    config = merge(load_yaml(PRESET), merge({"validation": {"enabled": False}}, overrides))
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    config_file = run_dir / "config.yaml"
    config_file.write_text(json.dumps(config))
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(run_dir), "--configfile", str(config_file), "--cores", str(cores),
        "--profile", str(REPO / "profiles" / "local"),
    ]  # fmt: skip
    start = time.perf_counter()
    with open(run_dir / "snakemake.out", "w") as out:
        process = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=snakemake_env())
    if process.returncode != 0:
        tail = (run_dir / "snakemake.out").read_text()[-3000:]
        raise RuntimeError(f"the loop in {run_dir} failed (exit {process.returncode}):\n{tail}")
    return {"wall_s": round(time.perf_counter() - start, 1), "config_overrides": overrides}


class Scorer:
    """Scores saved potentials on the test set, per category."""

    def __init__(self, test: Sequence[Atoms]) -> None:
        self.test = list(test)

    def __call__(self, potential: Path, references: dict[str, float]) -> dict[str, Any]:
        from pyace import PyACECalculator

        calculator = PyACECalculator(str(potential))

        def predict(atoms: Atoms) -> tuple[float, np.ndarray]:
            work = atoms.copy()
            work.calc = calculator
            return float(work.get_potential_energy()), work.get_forces()

        offsets = energy_reference(predict, self.test[0], references)
        scores = testsets.rmse_by_category(
            predict, self.test, lambda atoms: atoms.get_potential_energy() - offsets(atoms)
        )
        worst, worst_force = testsets.worst_category(scores)
        worst_energy_category, worst_energy = testsets.worst_category(scores, "energy_rmse_mev_per_atom")
        return {
            "worst_category": worst,
            "worst_force_rmse_ev_per_a": worst_force,
            "worst_energy_category": worst_energy_category,
            "worst_energy_rmse_mev_per_atom": worst_energy,
            "by_category": {
                name: {
                    key: round(value, 6) if isinstance(value, float) else value for key, value in row.items()
                }
                for name, row in scores.items()
            },
        }


def energy_reference(
    predict: Callable[[Atoms], tuple[float, np.ndarray]], probe: Atoms, references: dict[str, float]
) -> Callable[[Atoms], float]:
    """What to subtract from an oracle energy to get the potential's scale.

    pacemaker potentials predict the energy minus per-element reference energies (the fit's
    metrics record them); a potential that restores total energies itself needs nothing
    subtracted. The probe frame decides (the two differ by eV per atom).
    """
    predicted = predict(probe)[0]
    total = probe.get_potential_energy()
    corrected = fit.corrected_energy(probe, references)
    if abs(predicted - total) < abs(predicted - corrected):
        return lambda atoms: 0.0
    return lambda atoms: float(sum(references[symbol] for symbol in atoms.get_chemical_symbols()))


def read_references(metrics_file: Path) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in json.loads(metrics_file.read_text())["reference_energies_ev"].items()
    }


def loop_result(run_dir: Path, score: Scorer) -> dict[str, Any]:
    """Per generation: cumulative oracle calls and atoms, test scores; then the final potential."""
    curve = []
    calls = atoms_labelled = 0
    for generation_dir in sorted((run_dir / "results").glob("gen_[0-9][0-9][0-9]")):
        potential = generation_dir / "fit" / "potential.yaml"
        ledger_file = generation_dir / "ledger.json"
        if ledger_file.exists():
            fresh = [entry for entry in json.loads(ledger_file.read_text()) if not entry.get("from_cache")]
            calls += len(fresh)
            atoms_labelled += sum(int(entry.get("n_atoms", 0)) for entry in fresh)
        if not potential.exists():
            continue
        references = read_references(generation_dir / "fit" / "metrics.json")
        curve.append(
            {
                "generation": int(generation_dir.name[4:]),
                "oracle_calls": calls,
                "atoms_labelled": atoms_labelled,
                **score(potential, references),
            }
        )
    final_dir = run_dir / "results" / "final"
    summary = json.loads((final_dir / "summary.json").read_text())
    # the production fit's metrics where there is one, else the last generation's
    final_references = summary.get("final_metrics", {}).get("reference_energies_ev")
    if (final_dir / "metrics.json").exists():
        references = read_references(final_dir / "metrics.json")
    elif final_references:
        references = {key: float(value) for key, value in final_references.items()}
    else:
        references = read_references(sorted((run_dir / "results").glob("gen_*/fit/metrics.json"))[-1])
    final = {
        "oracle_calls": calls,
        "atoms_labelled": atoms_labelled,
        **score(final_dir / "potential.yaml", references),
    }
    return {
        "generations": summary.get("generations"),
        "stop_reason": summary.get("stop_reason"),
        "curve": curve,
        "final": final,
    }


def parent_cells(
    preset: dict[str, Any], seed: int, per_composition: int
) -> list[tuple[Atoms, dict[str, float]]]:
    """SQS cells of the preset's explicit compositions (test set) with their composition."""
    structures = {**preset["structures"], "cells_per_composition": per_composition}
    parents = []
    for index, composition in enumerate(structures["compositions"]):
        for cell in sqs_cells(composition, structures, (seed, index)):
            parents.append((cell, dict(composition)))
    return parents


def build_random_pool(preset: dict[str, Any], size: int, seed: int) -> list[Atoms]:
    """``size`` labelled structures in random order: half oracle-MD snapshots of random
    scenarios (``md_steps`` on each), half strained + rattled bulk cells (one call each)."""
    rng = np.random.default_rng(seed)
    structures = {**preset["structures"], "cells_per_composition": 1}
    lattice = structures["lattice"]
    compositions = all_compositions(structures, list(preset["elements"]))
    parents = [
        sqs_cells(composition, structures, (seed, index))[0] for index, composition in enumerate(compositions)
    ]

    def random_parent() -> tuple[Atoms, dict[str, float]]:
        index = int(rng.integers(len(parents)))
        return parents[index], dict(compositions[index])

    md: list[Atoms] = []
    while len(md) < size // 2:
        kind, temperatures, strains = POOL_SCENARIOS[int(rng.integers(len(POOL_SCENARIOS)))]
        parent, composition = random_parent()
        start = "surface" if kind.startswith("surface") else ("bulk" if kind == "strained" else kind)
        miller = (1, 1, 1) if kind == "surface_111" else (1, 0, 0)
        scenario = testsets.Scenario(
            kind, start, float(rng.uniform(*temperatures)), float(rng.uniform(*strains)), miller
        )
        a = float(parent.info["lattice_constant"])
        md.extend(
            testsets.scenario_frames(
                scenario, parent, lattice, a, composition, EMT, POOL_FRAMES_PER_RUN, rng, POOL_MD,
                origin="random_md", generation=0, require_molten=False,
            )
        )  # fmt: skip
    pool = md[: size // 2]
    while len(pool) < size:
        parent, _ = random_parent()
        cell = variants.strained(parent, float(rng.uniform(*POOL_STRAIN)))
        cell = variants.rattled(cell, float(rng.uniform(*POOL_RATTLE)), rng)
        labelled = testsets.labelled_frame(_with_emt(cell), generation=0, origin="random_strain_rattle")
        labelled.info.update(category="strain_rattle", md_steps=0.0)
        pool.append(labelled)
    return [pool[index] for index in rng.permutation(len(pool))]


def _with_emt(atoms: Atoms) -> Atoms:
    atoms.calc = EMT()
    return atoms


def fit_potential(
    images: Sequence[Atoms], elements: list[str], settings: dict[str, Any], folder: Path
) -> tuple[Path, dict[str, float]]:
    """The library's fit recipe (``training.train_potential``, what the fit rule runs) on
    ``images``, its own uid-hash hold-out included; the potential and its reference energies."""
    # scoring only: no active set (MaxVol needs more environments than a small budget has)
    result = train_potential(list(images), elements, settings, folder, active_set=False)
    return result.yaml, result.references


def baseline_point(
    pool: Sequence[Atoms], budget: int, preset: dict[str, Any], score: Scorer, folder: Path
) -> dict[str, Any]:
    images = list(pool[:budget])
    start = time.perf_counter()
    potential, references = fit_potential(images, list(preset["elements"]), preset["fit"], folder)
    seconds = time.perf_counter() - start
    md_steps = sum(float(atoms.info.get("md_steps", 0.0)) for atoms in images)
    return {
        "oracle_calls": len(images),
        "md_snapshots": sum(1 for atoms in images if atoms.info["origin"] == "random_md"),
        "md_steps": int(round(md_steps)),
        "oracle_calls_with_aimd": int(round(len(images) + md_steps)),
        "atoms_labelled": int(sum(len(atoms) for atoms in images)),
        "fit_s": round(seconds, 1),
        **score(potential, references),
    }


def calls_to_reach(
    points: Sequence[dict[str, Any]], target: float, calls_key: str = "oracle_calls"
) -> float | None:
    """Calls at which a curve of worst-category force RMSE first reaches ``target`` (log-log
    interpolation between budgets); None when it never does; the first budget when it starts
    below (an upper bound)."""
    previous = None
    for point in sorted(points, key=lambda p: p[calls_key]):
        rmse, calls = point["worst_force_rmse_ev_per_a"], point[calls_key]
        if rmse <= target:
            if previous is None:
                return float(calls)
            calls0, rmse0 = previous
            t = (np.log(target) - np.log(rmse0)) / (np.log(rmse) - np.log(rmse0))
            return float(np.exp(np.log(calls0) + t * (np.log(calls) - np.log(calls0))))
        previous = (calls, rmse)
    return None


def median_or_none(values: Sequence[float | None]) -> float | None:
    """Median where None means "beyond the largest budget" (above every number): defined when
    the middle value(s) are numbers."""
    ordered = sorted(values, key=lambda value: np.inf if value is None else value)
    middle = ordered[(len(ordered) - 1) // 2 : len(ordered) // 2 + 1]
    if not ordered or any(value is None for value in middle):
        return None
    return float(np.mean([value for value in middle if value is not None]))


def headline(
    loops: list[dict[str, Any]],
    selection_random: list[dict[str, Any]] | None,
    random_runs: list[dict[str, Any]],
) -> dict[str, Any]:
    finals = [run["final"] for run in loops]
    target = float(np.median([final["worst_force_rmse_ev_per_a"] for final in finals]))
    loop_calls = float(np.median([final["oracle_calls"] for final in finals]))
    # the equal-budget fit is one more prefix of the same list
    curves = [[*run["curve"], run["equal_budget"]] for run in random_runs]
    needed = [calls_to_reach(curve, target) for curve in curves]
    needed_aimd = [calls_to_reach(curve, target, "oracle_calls_with_aimd") for curve in curves]
    floors = [min(point["worst_force_rmse_ev_per_a"] for point in curve) for curve in curves]
    equal = [
        run["equal_budget"]["worst_force_rmse_ev_per_a"] / loop["final"]["worst_force_rmse_ev_per_a"]
        for run, loop in zip(random_runs, loops, strict=True)
    ]
    result: dict[str, Any] = {
        "target_worst_force_rmse_ev_per_a": target,
        "target_is": "median over seeds of the loop's final worst-category test force RMSE",
        "loop_oracle_calls_median": loop_calls,
        "loop_worst_categories": [final["worst_category"] for final in finals],
        "random_dataset_calls_to_target_per_seed": needed,
        "ratio_random_dataset_calls": (
            median_or_none(needed) / loop_calls if median_or_none(needed) is not None else None
        ),
        "ratio_random_dataset_calls_lower_bound": (
            max(p["oracle_calls"] for curve in curves for p in curve) / loop_calls
            if median_or_none(needed) is None
            else None
        ),
        "random_dataset_calls_with_aimd_to_target_per_seed": needed_aimd,
        "ratio_random_dataset_calls_with_aimd": (
            median_or_none(needed_aimd) / loop_calls if median_or_none(needed_aimd) is not None else None
        ),
        "equal_budget_worst_ratio_random_dataset_over_loop_per_seed": equal,
        "equal_budget_worst_ratio_random_dataset_over_loop": float(np.median(equal)),
        # (b)'s floor: its best worst-category force over every budget (the fit settings' limit);
        # a loop at or below it cannot be matched by (b) at any budget measured
        "random_dataset_best_worst_force_per_seed": floors,
        "random_dataset_calls_to_reach_own_best_per_seed": [
            min(point["oracle_calls"] for point in curve if point["worst_force_rmse_ev_per_a"] <= 1.1 * best)
            for curve, best in zip(curves, floors, strict=True)
        ],
        "goal": (
            "the random baseline needs >= 10x the loop's oracle calls to reach the loop's final "
            "worst-category force RMSE"
        ),
    }
    if selection_random:
        ratios = [
            run["final"]["worst_force_rmse_ev_per_a"] / loop["final"]["worst_force_rmse_ev_per_a"]
            for run, loop in zip(selection_random, loops, strict=True)
        ]
        result["random_selection_calls_per_seed"] = [run["final"]["oracle_calls"] for run in selection_random]
        result["random_selection_worst_ratio_over_loop_per_seed"] = ratios
        result["random_selection_worst_ratio_over_loop"] = float(np.median(ratios))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="loop and baseline seeds (default: 7 8 9; --quick: 7)"
    )
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 20, 40, 80, 160, 240])
    parser.add_argument("--cores", type=int, default=2, help="Snakemake cores for the loop runs")
    parser.add_argument("--frames-per-run", type=int, default=3, help="test-set frames per MD run")
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE",
        help="config override for the loop runs (YAML value), e.g. explore.steps=500; repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one seed unless --seeds, 2 generations, budgets 10 and 30, 10-frame test set (~3 min idle)",
    )
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/exploration.json")
    parser.add_argument("--keep", type=Path, help="keep the run folders here")
    parser.add_argument("--headline-only", action="store_true", help="recompute the headline of --out")
    args = parser.parse_args()
    if args.headline_only:
        result = json.loads(args.out.read_text())
        selection = result["random_selection"] if isinstance(result["random_selection"], list) else None
        result["headline"] = headline(result["loop"], selection, result["random_dataset"])
        args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
        print(json.dumps(result["headline"], indent=2))
        return
    overrides = parse_overrides(args.override)
    args.seeds = args.seeds or ([] if args.quick else [7, 8, 9])
    test_md = testsets.MDSettings()
    test_compositions = None
    if args.quick:
        args.seeds, args.budgets, args.frames_per_run = args.seeds or [7], [10, 30], 1
        overrides = merge({"loop": {"max_generations": 2}}, overrides)
        test_md = testsets.MDSettings(equilibration=60, interval=20, melt_steps=300)
        test_compositions = 1
    args.out = args.out or (
        Path(tempfile.gettempdir()) / "exploration_quick.json"
        if args.quick
        else REPO / "benchmarks" / "results" / "exploration.json"
    )
    started = time.perf_counter()
    preset = load_config(PRESET, SCHEMA)
    # the baselines fit like the potential the loop is scored on (results/final): the production
    # fit's settings when the loop config (--override included) has production on, else the
    # loop's fit settings
    loop_config = with_defaults(merge(load_yaml(PRESET), overrides))
    preset["fit"] = (
        production_fit_settings(loop_config["fit"], loop_config["production"]["fit"])
        if loop_config["production"]["enabled"]
        else loop_config["fit"]
    )
    with_random_selection = random_selection_available()
    scratch = Path(tempfile.mkdtemp(prefix="exploration_benchmark_"))
    home = args.keep or scratch
    variants_to_run = [("loop", {})]
    if with_random_selection:
        variants_to_run.append(("random_selection", {"select": {"method": "random"}}))
    try:
        # the loop runs (one Snakemake at a time) while this process builds the test set and pools
        with ThreadPoolExecutor(max_workers=1) as executor:
            futures = {
                (name, seed): executor.submit(
                    run_loop,
                    home / f"{name}_seed{seed}",
                    merge(merge(overrides, extra), {"seed": seed}),
                    args.cores,
                )
                for name, extra in variants_to_run
                for seed in args.seeds
            }
            parents = parent_cells(preset, TEST_SEED, 1)[:test_compositions]
            test = testsets.build_test_set(
                parents, preset["structures"]["lattice"], EMT, TEST_SEED,
                frames_per_run=args.frames_per_run, settings=test_md,
            )  # fmt: skip
            test_s = time.perf_counter() - started
            print(f"test set: {len(test)} frames in {test_s:.0f} s", flush=True)
            pools = {
                seed: build_random_pool(preset, max(args.budgets), seed + BASELINE_SEED_OFFSET)
                for seed in args.seeds
            }
            print(f"random pools built at {time.perf_counter() - started:.0f} s", flush=True)
            timings = {key: future.result() for key, future in futures.items()}
        score = Scorer(test)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants_to_run}
        for (name, seed), timing in timings.items():
            runs[name].append({"seed": seed, **timing, **loop_result(home / f"{name}_seed{seed}", score)})
            print(json.dumps({name: seed, **runs[name][-1]["final"]}), flush=True)
        random_runs = []
        for seed, loop in zip(args.seeds, runs["loop"], strict=True):
            curve = [
                baseline_point(pools[seed], budget, preset, score, scratch / f"random_{seed}_{budget}")
                for budget in args.budgets
            ]
            loop_calls = loop["final"]["oracle_calls"]
            if loop_calls > len(pools[seed]):  # longer than the largest budget: the list goes on
                extra_seed = seed + 2 * BASELINE_SEED_OFFSET
                pools[seed] += build_random_pool(preset, loop_calls - len(pools[seed]), extra_seed)
            equal = baseline_point(pools[seed], loop_calls, preset, score, scratch / f"random_{seed}_equal")
            random_runs.append({"seed": seed, "curve": curve, "equal_budget": equal})
            print(
                json.dumps({"random_dataset": seed, "equal_budget": equal["worst_force_rmse_ev_per_a"]}),
                flush=True,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    counts: dict[str, int] = {}
    for atoms in test:
        counts[str(atoms.info["category"])] = counts.get(str(atoms.info["category"]), 0) + 1
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d"),
        "quick": args.quick,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "total_wall_s": round(time.perf_counter() - started, 1),
        "fit_settings": preset["fit"],
        "loop_config_overrides": overrides,
        "test_set": {
            "seed": TEST_SEED,
            "frames": len(test),
            "atoms": int(sum(len(atoms) for atoms in test)),
            "categories": testsets.categories(test),
            "frames_per_category": counts,
            "scenarios": [dataclasses.asdict(scenario) for scenario in testsets.default_scenarios()],
            "build_s": round(test_s, 1),
        },
        "loop": runs["loop"],
        "random_selection": (
            runs["random_selection"]
            if with_random_selection
            else "not available: config/schema.yaml's select.method has no 'random'"
        ),
        "random_dataset": random_runs,
        "random_dataset_is": (
            "a shuffled list per seed: half oracle-MD snapshots "
            f"({POOL_FRAMES_PER_RUN} frames per trajectory, {POOL_MD.interval} steps apart after "
            f"{POOL_MD.equilibration}; scenarios {[kind for kind, _, _ in POOL_SCENARIOS]} at random "
            "temperatures), half strained (+-8 %) and rattled (0.05-0.2 A) bulk cells; budgets are prefixes"
        ),
        "headline": headline(runs["loop"], runs.get("random_selection"), random_runs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result["headline"], indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
