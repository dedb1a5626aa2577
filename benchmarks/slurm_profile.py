"""Wall time of the EMT preset: local executor vs a real local Slurm, with and without grouping.

Usage (as root, Debian slurm-wlm + munge installed; `make setup` does both):
    .venv/bin/python benchmarks/slurm_profile.py [--out benchmarks/results/slurm_profile.json]

The three runs happen one after another in the same invocation, so they share the machine's
state; ratios against the local run are what to compare across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import slurm_cluster  # noqa: E402
from snakemake_cli import snakemake_command, snakemake_env  # noqa: E402


def snakemake(run_dir: Path, *args: str) -> tuple[float, int, str]:
    command = snakemake_command(run_dir, REPO / "config" / "emt.yaml", *args, cores=None)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=snakemake_env(), check=False)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"run in {run_dir} failed:\n{result.stderr[-3000:]}")
    return wall, result.stderr.count("has been submitted with SLURM jobid"), result.stderr


def job_seconds(jobcomp: Path, run_dir: Path) -> float:
    """Seconds the run's Slurm jobs spent running (StartTime to EndTime in the jobcomp records)."""
    from datetime import datetime

    total = 0.0
    for line in jobcomp.read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("WorkDir") == str(run_dir):
            start, end = (datetime.fromisoformat(fields[key]) for key in ("StartTime", "EndTime"))
            total += (end - start).total_seconds()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "slurm_profile.json")
    args = parser.parse_args()
    slurm = slurm_cluster.PROFILE_ARGS
    variants = {
        "local (--cores 2)": ["--cores", "2"],
        "local Slurm, label jobs grouped by 16": slurm,
        "local Slurm, one sbatch per label job": [*slurm, "--group-components", "label_batch=1"],
    }
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        jobcomp = slurm_cluster.start(Path(scratch) / "slurm-state")
        try:
            for index, (name, extra) in enumerate(variants.items()):
                run_dir = Path(scratch) / f"run{index}"
                wall, submitted, _ = snakemake(run_dir, *extra)
                rows.append(
                    {
                        "variant": name,
                        "wall_s": round(wall, 1),
                        "sbatch_jobs": submitted,
                        # summed over jobs (jobs run side by side where the DAG allows)
                        "slurm_job_seconds": round(job_seconds(jobcomp, run_dir), 1),
                        "load_average_after": round(os.getloadavg()[0], 2),
                    }
                )
                print(f"{name:45s} {wall:7.1f} s  {submitted:3d} sbatch jobs", flush=True)
        finally:
            slurm_cluster.stop()
    baseline = rows[0]["wall_s"]
    for row in rows:
        row["ratio_to_local"] = round(row["wall_s"] / baseline, 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": rows}, indent=2)
        + "\n"
    )


if __name__ == "__main__":
    main()
