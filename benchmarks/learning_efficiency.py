"""Data efficiency: the active-learning loop against random sampling, EMT Cu-Ni as ground truth.

Usage:
    .venv/bin/python benchmarks/learning_efficiency.py [--seeds 7 8 9] [--quick]

- **Loop**: the real workflow (Snakemake, `config/emt.yaml` unchanged except `seed`, validation
  off because it does not change what is learned) in a temporary run folder per seed. Oracle
  calls per generation are read from `gen_NNN/ledger.json` (every candidate labelled, the
  fit's own held-out part included); each generation's `fit/potential.yaml` is scored on the
  test set below.
- **Random baseline**: the same oracle (EMT) on structures drawn at random: half snapshots of
  EMT Langevin MD at the loop's exploration temperatures from random alloy cells of the loop's
  compositions, half random alloy cells with a random isotropic strain (within the preset's
  strain range) and a random rattle (within its rattle range). Budgets are nested prefixes of
  one shuffled list per seed. The MD that produces the snapshots is not counted as oracle calls
  (generous to the baseline: with DFT it would be ab initio MD); `oracle_calls_with_aimd` counts
  it too (20 MD steps per snapshot plus equilibration). Fitted exactly as the fit rule
  does (`check_training_set`, uid-hash hold-out, reference energies, `fit_linear` with the
  preset's fit settings).
- **Random, fresh pool per budget** (budgets up to ``--campaign-max``): the same recipe, but a
  pool of exactly the budget, so its MD half comes from budget / 20 trajectories of 10 frames
  (as an ab initio MD campaign of that size would), instead of a prefix of one large pool whose
  snapshots come from many independent trajectories.
- **Test set**: independent EMT Langevin MD (its own seed) at 400, 800, 1200 and 1600 K of
  random Cu-Ni cells at three compositions, each perfect, with a vacancy and with an
  interstitial; frames well apart in time. Never used in training by either side.

Writes `benchmarks/results/learning_efficiency.json` and `benchmarks/learning_efficiency.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.emt import EMT
from ase.constraints import FixCom
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, thermalize_momenta

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lib"))

from mlip_autopipe import fit, variants  # noqa: E402
from mlip_autopipe.config import load_config, load_yaml  # noqa: E402
from mlip_autopipe.data import attach_labels, tag_structure  # noqa: E402
from mlip_autopipe.lattice import alloy_lattice_constant  # noqa: E402
from mlip_autopipe.structures import random_alloy  # noqa: E402
from mlip_autopipe.timing import tool_seconds_in  # noqa: E402
from mlip_autopipe.training import train_potential  # noqa: E402

PRESET = REPO / "config" / "emt.yaml"
SCHEMA = REPO / "config" / "schema.yaml"
TEST_TEMPERATURES = (400, 800, 1200, 1600)
TEST_COPPER_FRACTIONS = (0.25, 0.5, 0.75)
TEST_SEED = 20261122
BASELINE_SEED_OFFSET = 5000


def snakemake_env() -> dict[str, str]:
    """This checkout's lib first: the scripts must not import another checkout's library."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "lib"), env.get("PYTHONPATH")]))
    return env


def run_loop(seed: int, run_dir: Path, cores: int, as_shipped: bool) -> dict[str, Any]:
    """The EMT preset through Snakemake with ``seed``; returns its wall time.

    ``as_shipped``: the preset unchanged (validation included) on one core, so that
    ``overhead.py`` can read this run's timing; otherwise validation is off (it changes nothing
    that is learned) and ``cores`` cores are used.
    """
    config = load_yaml(PRESET)
    config["seed"] = seed
    if as_shipped:
        cores = 1
    else:
        config["validation"] = {"enabled": False}
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "config.yaml"
    config_file.write_text(json.dumps(config))
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(run_dir), "--configfile", str(config_file), "--cores", str(cores),
        "--profile", str(REPO / "profiles" / "local"),
    ]  # fmt: skip
    start = time.perf_counter()
    with open(run_dir / "snakemake.out", "w") as out:
        subprocess.run(command, check=True, stdout=out, stderr=subprocess.STDOUT, env=snakemake_env())
    seconds = time.perf_counter() - start
    (run_dir / "wall_s.txt").write_text(f"{seconds:.3f}\n")
    return {"wall_s": seconds, "cores": cores, "validation": as_shipped}


def loop_curve(run_dir: Path, test: Sequence[Atoms]) -> list[dict[str, Any]]:
    """Per generation: cumulative oracle calls and atoms, test RMSE of that generation's fit."""
    points = []
    calls = atoms_labelled = 0
    for generation_dir in sorted((run_dir / "results").glob("gen_[0-9][0-9][0-9]")):
        potential = generation_dir / "fit" / "potential.yaml"
        if not potential.exists():
            break
        ledger = json.loads((generation_dir / "ledger.json").read_text())
        fresh = [entry for entry in ledger if not entry["from_cache"]]
        calls += len(fresh)
        atoms_labelled += sum(int(entry["n_atoms"]) for entry in fresh)
        metrics = json.loads((generation_dir / "fit" / "metrics.json").read_text())
        points.append(
            {
                "generation": int(generation_dir.name[4:]),
                "oracle_calls": calls,
                "atoms_labelled": atoms_labelled,
                **scores_on(potential, test, metrics["reference_energies_ev"]),
            }
        )
    return points


def scores_on(potential: Path, test: Sequence[Atoms], references: dict[str, float]) -> dict[str, Any]:
    """Test RMSEs of a potential, overall and per kind of test structure."""
    scores = fit.evaluate(potential, test, references)
    by_origin = {}
    for origin in sorted({str(atoms.info["origin"]) for atoms in test}):
        subset = [atoms for atoms in test if atoms.info["origin"] == origin]
        by_origin[origin] = fit.evaluate(potential, subset, references)["force_rmse_ev_per_a"]
    return {
        "force_rmse_ev_per_a": scores["force_rmse_ev_per_a"],
        "energy_rmse_mev_per_atom": scores["energy_rmse_mev_per_atom"],
        "force_rmse_by_origin": by_origin,
    }


def loop_tool_seconds(run_dir: Path) -> dict[str, float]:
    lines = (line for log in (run_dir / "logs").rglob("*.log") for line in log.open())
    return tool_seconds_in(lines)


def label_with_emt(atoms: Atoms) -> Atoms:
    work = atoms.copy()
    work.calc = EMT()
    energy, forces = work.get_potential_energy(), work.get_forces()
    labelled = attach_labels(atoms, energy=energy, forces=forces, stress=work.get_stress(voigt=True))
    return labelled


def md_snapshots(
    start: Atoms, temperature: float, count: int, interval: int, rng: np.random.Generator, skip: int = 200
) -> list[Atoms]:
    """``count`` frames of EMT Langevin MD (2 fs), ``interval`` steps apart after ``skip`` steps."""
    atoms = start.copy()
    atoms.calc = EMT()
    atoms.set_constraint(FixCom())
    thermalize_momenta(atoms, temperature, rng=rng)
    Stationary(atoms)
    dynamics = Langevin(
        atoms,
        timestep=2 * units.fs,
        temperature_K=temperature,
        friction=0.02 / units.fs,
        fixcm=False,
        rng=rng,
    )
    dynamics.run(skip)
    frames = []
    for _ in range(count):
        dynamics.run(interval)
        frame = Atoms(
            atoms.get_chemical_symbols(), positions=atoms.get_positions(), cell=atoms.cell, pbc=True
        )
        frames.append(frame)
    return frames


def alloy(copper: float, rng: np.random.Generator, preset: dict[str, Any]) -> Atoms:
    composition = {"Cu": copper, "Ni": 1 - copper}
    composition = {element: fraction for element, fraction in composition.items() if fraction > 0}
    structures = preset["structures"]
    a = alloy_lattice_constant(composition, structures["lattice"])
    return random_alloy(composition, structures["lattice"], a, structures["supercell"], rng)


def build_test_set(preset: dict[str, Any], frames_per_run: int) -> list[Atoms]:
    """Independent EMT MD at several temperatures, perfect cells and point defects."""
    rng = np.random.default_rng(TEST_SEED)
    test = []
    for copper in TEST_COPPER_FRACTIONS:
        perfect = alloy(copper, rng, preset)
        starts = {
            "md": perfect,
            "md_vacancy": variants.with_vacancy(perfect, int(rng.integers(len(perfect)))),
            "md_interstitial": variants.with_interstitial(perfect, str(rng.choice(["Cu", "Ni"])), rng),
        }
        for origin, start in starts.items():
            for temperature in TEST_TEMPERATURES:
                for frame in md_snapshots(start, temperature, frames_per_run, 100, rng, skip=100):
                    tag_structure(frame, generation=-1, origin=f"test_{origin}")
                    frame.info["temperature"] = temperature
                    test.append(label_with_emt(frame))
    return test


def build_random_pool(preset: dict[str, Any], size: int, seed: int) -> list[Atoms]:
    """``size`` structures in random order: half MD snapshots, half strained + rattled cells."""
    rng = np.random.default_rng(seed)
    structures = preset["structures"]
    fractions = sorted({0.0, 1.0, 0.25, 0.5, 0.75})  # the preset's composition grid (step 0.25)
    temperatures = preset["explore"]["temperatures"]
    strains = structures["strains"]
    rattles = structures["rattle_amplitudes"]
    pool: list[Atoms] = []
    n_md = size // 2
    per_run, interval, skip = 10, 20, 20
    while len([a for a in pool if a.info["origin"] == "random_md"]) < n_md:
        start = alloy(float(rng.choice(fractions)), rng, preset)
        for frame in md_snapshots(start, float(rng.choice(temperatures)), per_run, interval, rng, skip=skip):
            tag_structure(frame, generation=0, origin="random_md")
            # the MD force calls behind each snapshot: what ab initio MD would cost
            frame.info["md_force_calls"] = (skip + per_run * interval) / per_run
            pool.append(frame)
    pool = pool[:n_md]
    while len(pool) < size:
        cell = alloy(float(rng.choice(fractions)), rng, preset)
        cell = variants.strained(cell, float(rng.uniform(min(strains), max(strains))))
        cell = variants.rattled(cell, float(rng.uniform(min(rattles), max(rattles))), rng)
        pool.append(tag_structure(cell, generation=0, origin="random_rattle_strain"))
    order = rng.permutation(len(pool))
    return [label_with_emt(pool[index]) for index in order]


def fit_and_score(
    images: Sequence[Atoms],
    settings: dict[str, Any],
    elements: list[str],
    test: Sequence[Atoms],
    folder: Path,
) -> dict[str, Any]:
    """What the fit rule does with ``images`` (its own recipe, hold-out included), scored on ``test``."""
    fitted = train_potential(images, elements, {**settings, "mode": "linear"}, folder)
    md_force_calls = sum(float(atoms.info.get("md_force_calls", 0.0)) for atoms in images)
    return {
        "oracle_calls": len(images),
        "md_snapshots": sum(1 for atoms in images if atoms.info.get("origin") == "random_md"),
        "oracle_calls_with_aimd": int(round(len(images) + md_force_calls)),
        "atoms_labelled": int(sum(len(atoms) for atoms in images)),
        "fit_s": round(fitted.timings["fit_s"], 2),
        **scores_on(fitted.yaml, test, fitted.references),
    }


def calls_to_reach(points: Sequence[dict[str, Any]], target: float) -> float | None:
    """Oracle calls at which a curve first reaches ``target`` force RMSE (log-log interpolation
    between budgets); None when it never does within its budgets, its smallest budget (an upper
    bound) when it starts below the target."""
    previous = None
    for point in points:
        rmse, calls = point["force_rmse_ev_per_a"], point["oracle_calls"]
        if rmse <= target:
            if previous is None:
                return float(calls)
            (calls0, rmse0) = previous
            t = (np.log(target) - np.log(rmse0)) / (np.log(rmse) - np.log(rmse0))
            return float(np.exp(np.log(calls0) + t * (np.log(calls) - np.log(calls0))))
        previous = (calls, rmse)
    return None


def efficiency_ratios(
    loop_runs: list[dict[str, Any]], random_runs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """For every loop generation: random-sampling calls to reach its test force RMSE / its calls."""
    rows = []
    for run in loop_runs:
        for point in run["curve"]:
            needed = [calls_to_reach(r["curve"], point["force_rmse_ev_per_a"]) for r in random_runs]
            reached = [n for n in needed if n is not None]
            max_budget = max(r["curve"][-1]["oracle_calls"] for r in random_runs)
            rows.append(
                {
                    "seed": run["seed"],
                    "generation": point["generation"],
                    "loop_calls": point["oracle_calls"],
                    "loop_force_rmse_ev_per_a": point["force_rmse_ev_per_a"],
                    "random_calls_per_seed": needed,
                    "random_calls_median": float(np.median(reached)) if len(reached) == len(needed) else None,
                    "ratio": (
                        float(np.median(reached)) / point["oracle_calls"]
                        if len(reached) == len(needed)
                        else None
                    ),
                    "ratio_lower_bound": (
                        None if len(reached) == len(needed) else max_budget / point["oracle_calls"]
                    ),
                }
            )
    return rows


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    figure, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for key, axis, label in (
        ("force_rmse_ev_per_a", axes[0], "test force RMSE (eV/A)"),
        ("energy_rmse_mev_per_atom", axes[1], "test energy RMSE (meV/atom)"),
    ):
        budgets = [p["oracle_calls"] for p in result["random"][0]["curve"]]
        values = np.array([[p[key] for p in run["curve"]] for run in result["random"]])
        axis.fill_between(budgets, values.min(0), values.max(0), color="tab:gray", alpha=0.3)
        axis.plot(
            budgets, np.median(values, 0), "o-", color="tab:gray", label="random sampling (median, range)"
        )
        if key == "force_rmse_ev_per_a" and "oracle_calls_with_aimd" in result["random"][0]["curve"][0]:
            aimd = np.median(
                [[p["oracle_calls_with_aimd"] for p in run["curve"]] for run in result["random"]], 0
            )
            axis.plot(
                aimd,
                np.median(values, 0),
                "o--",
                color="tab:gray",
                alpha=0.6,
                label="random sampling, its MD steps counted as calls (AIMD)",
            )
        if result.get("random_campaign"):
            campaign = [[p for p in run["curve"]] for run in result["random_campaign"]]
            axis.plot(
                [p["oracle_calls"] for p in campaign[0]],
                np.median([[p[key] for p in curve] for curve in campaign], 0),
                "^-.",
                color="tab:blue",
                alpha=0.8,
                label="random, fresh pool per budget (budget/20 MD runs; median)",
            )
        for index, run in enumerate(result["loop"]):
            calls = [p["oracle_calls"] for p in run["curve"]]
            axis.plot(
                calls,
                [p[key] for p in run["curve"]],
                "s-",
                color="tab:red",
                alpha=0.8,
                label="active-learning loop (one line per seed)" if index == 0 else None,
            )
        axis.set_xscale("log")
        axis.set_yscale("log")
        for scale in (axis.xaxis, axis.yaxis):
            scale.set_major_formatter(ScalarFormatter())
            scale.set_minor_formatter(NullFormatter())
        axis.set_xlabel("oracle calls (32-atom EMT labels)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    target = result.get("headline", {}).get("target_force_rmse_ev_per_a")
    if target:
        axes[0].axhline(
            target, color="tab:red", linestyle=":", linewidth=1, label="target: loop's final (median)"
        )
    axes[0].legend(fontsize=8)
    figure.suptitle(f"EMT Cu-Ni: held-out MD + defect test set ({result['test_set']['structures']} frames)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--budgets", type=int, nargs="+", default=[3, 5, 8, 15, 30, 60, 120, 240, 480])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--test-frames", type=int, default=2, help="frames per test MD run")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one seed, small budgets: a smoke test (output in the temp folder)",
    )
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/learning_efficiency.json")
    parser.add_argument("--plot", type=Path, help="default: benchmarks/learning_efficiency.png")
    parser.add_argument("--keep", type=Path, help="keep the loop's run folders here")
    parser.add_argument(
        "--campaign-max", type=int, default=120, help="largest budget of the fresh-pool-per-budget baseline"
    )
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from --out")
    args = parser.parse_args()
    # a smoke test never overwrites the committed results
    home = Path(tempfile.gettempdir()) if args.quick else REPO / "benchmarks"
    args.out = args.out or home / "results" / "learning_efficiency.json"
    args.plot = args.plot or home / "learning_efficiency.png"
    if args.plot_only:
        plot(json.loads(args.out.read_text()), args.plot)
        return
    if args.quick:
        args.seeds, args.budgets, args.test_frames = args.seeds[:1], [15, 30, 60], 1
    started = time.perf_counter()
    preset = load_config(PRESET, SCHEMA)
    settings, elements = preset["fit"], list(preset["elements"])
    test = build_test_set(preset, args.test_frames)
    print(f"test set: {len(test)} frames ({time.perf_counter() - started:.0f} s)", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="learning_efficiency_"))
    loop_runs: list[dict[str, Any]] = []
    random_runs: list[dict[str, Any]] = []
    campaign_runs: list[dict[str, Any]] = []
    try:
        for index, seed in enumerate(args.seeds):
            run_dir = (args.keep or scratch) / f"loop_seed{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)
            timing = run_loop(seed, run_dir, args.cores, as_shipped=index == 0 and not args.quick)
            summary = json.loads((run_dir / "results/final/summary.json").read_text())
            loop_runs.append(
                {
                    "seed": seed,
                    "wall_s": round(timing["wall_s"], 1),
                    "cores": timing["cores"],
                    "validation": timing["validation"],
                    "tool_s": {k: round(v, 1) for k, v in loop_tool_seconds(run_dir).items()},
                    "stop_reason": summary["stop_reason"],
                    "curve": loop_curve(run_dir, test),
                }
            )
            print(json.dumps(loop_runs[-1]), flush=True)
        for seed in args.seeds:
            pool = build_random_pool(preset, max(args.budgets), seed + BASELINE_SEED_OFFSET)
            curve = []
            for budget in args.budgets:
                folder = scratch / f"random_seed{seed}_{budget}"
                folder.mkdir()
                curve.append(fit_and_score(pool[:budget], settings, elements, test, folder))
                print(json.dumps({"seed": seed, **curve[-1]}), flush=True)
            random_runs.append({"seed": seed, "curve": curve})
        for seed in args.seeds:
            curve = []
            for budget in [b for b in args.budgets if b <= args.campaign_max]:
                # a campaign of its own per budget: its MD half from budget / 20 trajectories
                pool = build_random_pool(preset, budget, seed + BASELINE_SEED_OFFSET + 1000 * budget)
                folder = scratch / f"campaign_seed{seed}_{budget}"
                folder.mkdir()
                curve.append(fit_and_score(pool, settings, elements, test, folder))
                print(json.dumps({"campaign_seed": seed, **curve[-1]}), flush=True)
            campaign_runs.append({"seed": seed, "curve": curve})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ratios = efficiency_ratios(loop_runs, random_runs)
    final = [run["curve"][-1] for run in loop_runs]
    target = float(np.median([point["force_rmse_ev_per_a"] for point in final]))
    needed = [calls_to_reach(run["curve"], target) for run in random_runs]
    needed_with_aimd = [
        calls_to_reach(
            [{**point, "oracle_calls": point["oracle_calls_with_aimd"]} for point in run["curve"]], target
        )
        for run in random_runs
    ]
    loop_calls = float(np.median([point["oracle_calls"] for point in final]))
    needed_campaign = [calls_to_reach(run["curve"], target) for run in campaign_runs]
    campaign_max = max(point["oracle_calls"] for run in campaign_runs for point in run["curve"])
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or 'cpu'}",
        "date": time.strftime("%Y-%m-%d"),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "total_wall_s": round(time.perf_counter() - started, 1),
        "fit_settings": settings,
        "test_set": {
            "structures": len(test),
            "atoms": int(sum(len(atoms) for atoms in test)),
            "temperatures": list(TEST_TEMPERATURES),
            "copper_fractions": list(TEST_COPPER_FRACTIONS),
            "origins": sorted({str(atoms.info["origin"]) for atoms in test}),
        },
        "loop": loop_runs,
        "random": random_runs,
        "random_campaign": campaign_runs,
        "random_campaign_is": (
            "a fresh pool per budget: half its calls MD snapshots from budget/20 trajectories of 10 "
            "frames, 40 fs apart, half strained + rattled cells (random is a prefix of one pool "
            "whose MD half comes from max(budgets)/20 trajectories)"
        ),
        "headline": {
            "target_force_rmse_ev_per_a": target,
            "target_is": "median over seeds of the loop's final test force RMSE",
            "loop_calls_median": loop_calls,
            "random_calls_per_seed": needed,
            "random_below_target_at_smallest_budget": [
                run["curve"][0]["force_rmse_ev_per_a"] <= target for run in random_runs
            ],
            "ratio": (float(np.median(needed)) / loop_calls if None not in needed else None),
            "ratio_lower_bound": (max(args.budgets) / loop_calls if None in needed else None),
            "random_calls_with_aimd_per_seed": needed_with_aimd,
            "ratio_with_aimd": (
                float(np.median(needed_with_aimd)) / loop_calls if None not in needed_with_aimd else None
            ),
            "random_campaign_calls_per_seed": needed_campaign,
            "ratio_campaign": (
                float(np.median(needed_campaign)) / loop_calls if None not in needed_campaign else None
            ),
            "ratio_campaign_lower_bound": (campaign_max / loop_calls if None in needed_campaign else None),
        },
        "ratios_per_generation": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.plot)
    print(json.dumps(result["headline"], indent=2))


if __name__ == "__main__":
    main()
