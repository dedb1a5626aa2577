"""Orchestration overhead: wall time outside the tools, and the dry-run time of a long run.

Usage:
    .venv/bin/python benchmarks/overhead.py --emt-run DIR [--skip-dft]

- **EMT preset** (`config/emt.yaml` as shipped, serial: `--cores 1`): the run folder of
  `learning_efficiency.py`'s first seed (seed 7 = the preset's, validation on, one core) is read,
  or the preset is run here when `--emt-run` names an empty or missing folder. Time inside
  tools is summed from the `tool_seconds` lines the scripts write into their job logs
  (oracle = one label call, EMT or pw.x; pacemaker = fit + active set + metrics + selection;
  md = exploration; validation = the validation rule's oracle and potential calls;
  structures = SQS search and SOAP pick of generation 0). Overhead =
  1 - tools / wall: Snakemake start-up and DAG work, one Python interpreter per job with its
  imports, file I/O, scripts.
- **Default DFT run, reduced** (`config/config.yaml` with `structures.initial_pick: 10` and
  `loop.max_generations: 1`, serial): the full default (3 generations, ~22 min) does not fit the
  benchmark's budget; the reduced one has the same per-job shapes (pw.x label jobs, fit,
  ASE exploration).
- **Dry run of a 10-generation results folder**: the EMT run folder is copied and extended to
  10 generations (generation 2's files copied to generations 4-9 with shifted times, decisions
  rewritten to continue until `max_generations`; Snakemake's metadata removed, so reruns are
  judged by file times only), then `snakemake -n` is timed (best of 3).

Writes `benchmarks/results/overhead.json` and `benchmarks/overhead.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lib"))

from mlip_autopipe.config import load_yaml  # noqa: E402
from mlip_autopipe.timing import tool_seconds_in  # noqa: E402

#: Tools whose time counts as "inside the tools" (the rest of the wall time is overhead).
TOOLS = ("oracle", "pacemaker", "md", "validation", "structures")
DRY_RUN_GENERATIONS = 10


def snakemake_env() -> dict[str, str]:
    """This checkout's lib first: the scripts must not import another checkout's library."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "lib"), env.get("PYTHONPATH")]))
    return env


def snakemake(run_dir: Path, config_file: Path, *extra: str, log: Path | None = None) -> float:
    """Run Snakemake on ``run_dir``; returns its wall seconds (CPU seconds: :func:`child_cpu_seconds`)."""
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(run_dir), "--configfile", str(config_file), *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    with open(log or os.devnull, "w") as out:
        subprocess.run(command, check=True, stdout=out, stderr=subprocess.STDOUT, env=snakemake_env())
    return time.perf_counter() - start


def child_cpu_seconds() -> float:
    """User + system CPU seconds of all finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_serial(config: dict[str, Any], run_dir: Path) -> float:
    """A fresh serial run of ``config`` in ``run_dir``; returns wall seconds."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "config.yaml"
    config_file.write_text(json.dumps(config))
    profile = ("--profile", str(REPO / "profiles" / "local"), "--cores", "1")
    seconds = snakemake(run_dir, config_file, *profile, log=run_dir / "snakemake.out")
    (run_dir / "wall_s.txt").write_text(f"{seconds:.3f}\n")
    return seconds


def job_count(run_dir: Path) -> dict[str, int]:
    """Jobs per rule, from Snakemake's own log of the run."""
    counts: dict[str, int] = {}
    text = (run_dir / "snakemake.out").read_text()
    for rule in re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", text, flags=re.MULTILINE):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def breakdown(run_dir: Path, wall: float) -> dict[str, Any]:
    """Wall time, time inside each tool, and the overhead fraction of a finished serial run."""
    lines = (line for log in sorted((run_dir / "logs").rglob("*.log")) for line in log.open())
    tools = tool_seconds_in(lines)
    inside = sum(tools.get(tool, 0.0) for tool in TOOLS)
    jobs = job_count(run_dir)
    return {
        "wall_s": round(wall, 1),
        "tool_s": {tool: round(tools.get(tool, 0.0), 1) for tool in TOOLS},
        "inside_tools_s": round(inside, 1),
        "overhead_s": round(wall - inside, 1),
        "overhead_fraction": round(1 - inside / wall, 3),
        "jobs": sum(jobs.values()),
        "jobs_per_rule": jobs,
        "overhead_s_per_job": round((wall - inside) / max(1, sum(jobs.values())), 2),
    }


def _shift_times(path: Path, offset: float) -> None:
    for item in [path, *path.rglob("*")]:
        stat = item.stat()
        os.utime(item, (stat.st_atime + offset, stat.st_mtime + offset), follow_symlinks=False)


def _rewrite_decision(path: Path, generation: int, last: int) -> None:
    stat = path.stat()
    decision = json.loads(path.read_text())
    final = generation == last
    decision.update(
        generation=generation,
        reason="max_generations" if final else "continue",
        why="synthesized for the dry-run benchmark",
    )
    decision["continue"] = not final
    path.write_text(json.dumps(decision, indent=2) + "\n")
    os.utime(path, (stat.st_atime, stat.st_mtime))


def synthesize_generations(source: Path, target: Path, generations: int) -> Path:
    """Copy of a finished run folder extended to ``generations`` generations; returns its config."""
    shutil.copytree(source, target, symlinks=True)
    shutil.rmtree(target / ".snakemake", ignore_errors=True)
    results = target / "results"
    existing = sorted(results.glob("gen_[0-9][0-9][0-9]"))
    template = existing[min(2, len(existing) - 1)]
    times = [item.stat().st_mtime for item in results.rglob("*")]
    span = max(times) - min(times) + 1.0
    for generation in range(len(existing), generations):
        copy = results / f"gen_{generation:03d}"
        shutil.copytree(template, copy, symlinks=True)
        _shift_times(copy, (generation - int(template.name[4:])) * span)
    for folder in ("final", "report", "validation"):
        if (results / folder).exists():
            _shift_times(results / folder, generations * span)
    for generation in range(generations):
        _rewrite_decision(results / f"gen_{generation:03d}" / "decision.json", generation, generations - 1)
    config = json.loads((source / "config.yaml").read_text())
    config["loop"]["max_generations"] = generations
    config_file = target / "config.yaml"
    config_file.write_text(json.dumps(config))
    return config_file


def time_dry_run(run_dir: Path, config_file: Path, repeats: int = 3) -> dict[str, Any]:
    """Best-of-``repeats`` wall and CPU time of ``snakemake -n``, and what it would run.

    The CPU time is the steadier number on a shared machine: wall time includes waiting for a core.
    """
    out = run_dir / "dry_run.out"
    walls, cpus = [], []
    for _ in range(repeats):
        cpu_before = child_cpu_seconds()
        walls.append(snakemake(run_dir, config_file, "-n", "--cores", "1", log=out))
        cpus.append(child_cpu_seconds() - cpu_before)
    text = out.read_text()
    nothing = "Nothing to be done" in text
    planned = re.search(r"^total\s+(\d+)", text, flags=re.MULTILINE)
    return {
        "generations": len(list((run_dir / "results").glob("gen_[0-9][0-9][0-9]"))),
        "dry_run_s": round(min(walls), 2),
        "dry_run_cpu_s": round(min(cpus), 2),
        "dry_run_s_all": [round(wall, 2) for wall in walls],
        "jobs_planned": 0 if nothing else int(planned[1]) if planned else None,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {name: result[name] for name in ("emt_preset", "dft_reduced") if result.get(name)}
    figure, axis = plt.subplots(figsize=(7, 0.9 + 1.0 * len(runs)))
    colours = {
        "oracle": "tab:blue",
        "pacemaker": "tab:green",
        "md": "tab:orange",
        "validation": "tab:purple",
        "structures": "tab:brown",
    }
    for row, run in enumerate(runs.values()):
        left = 0.0
        for tool in TOOLS:
            width = run["tool_s"][tool]
            axis.barh(row, width, left=left, color=colours[tool], label=tool if row == 0 else None)
            left += width
        axis.barh(
            row,
            run["overhead_s"],
            left=left,
            color="lightgray",
            hatch="//",
            label="overhead" if row == 0 else None,
        )
        axis.text(left + run["overhead_s"], row, f"  {run['overhead_fraction']:.0%} overhead", va="center")
    axis.set_yticks(range(len(runs)), list(runs))
    axis.set_xlabel("wall seconds, serial run (--cores 1)")
    axis.set_xlim(0, 1.3 * max(run["wall_s"] for run in runs.values()))
    axis.legend(fontsize=8, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emt-run", type=Path, help="finished serial run of the EMT preset (else run here)")
    parser.add_argument("--skip-dft", action="store_true", help="leave out the reduced DFT run")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/overhead.json")
    parser.add_argument("--plot", type=Path, default=REPO / "benchmarks/overhead.png")
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from --out")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(args.out.read_text()), args.plot)
        return
    scratch = Path(tempfile.mkdtemp(prefix="overhead_"))
    try:
        emt_run = args.emt_run
        if emt_run is None or not (emt_run / "results/final/summary.json").exists():
            emt_run = emt_run or scratch / "emt"
            config = load_yaml(REPO / "config" / "emt.yaml")
            run_serial(config, emt_run)
        wall = float((emt_run / "wall_s.txt").read_text())
        result: dict[str, Any] = {"emt_preset": breakdown(emt_run, wall)}
        print(json.dumps(result["emt_preset"]), flush=True)
        if not args.skip_dft:
            config = load_yaml(REPO / "config" / "config.yaml")
            config["structures"]["initial_pick"] = 10
            config["loop"]["max_generations"] = 1
            dft_run = scratch / "dft"
            result["dft_reduced"] = breakdown(dft_run, run_serial(config, dft_run))
            result["dft_reduced"]["changes"] = {"structures.initial_pick": 10, "loop.max_generations": 1}
            print(json.dumps(result["dft_reduced"]), flush=True)
        long_run = scratch / "ten_generations"
        config_file = synthesize_generations(emt_run, long_run, DRY_RUN_GENERATIONS)
        result["dry_run"] = time_dry_run(long_run, config_file)
        result["dry_run_source"] = time_dry_run(emt_run, emt_run / "config.yaml")
        print(json.dumps(result["dry_run"]), json.dumps(result["dry_run_source"]), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.update(
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs",
        date=time.strftime("%Y-%m-%d"),
        load_average_at_end=[round(x, 2) for x in os.getloadavg()],
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.plot)


if __name__ == "__main__":
    main()
