"""The workflow's command line as tests and benchmarks run it: this Python's Snakemake, our Snakefile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "Snakefile"


def snakemake_env() -> dict[str, str]:
    """The environment with this Python's bin folder (pacemaker, lmp, mpirun) first on PATH."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def snakemake_command(run_dir: Path, configfile: Path, *args: str, cores: int | None = 2) -> list[str]:
    """`snakemake` on the repo's Snakefile, run in ``run_dir`` (no --cores when a profile sets it)."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(run_dir)]
    if cores is not None:
        command += ["--cores", str(cores)]
    return [*command, "--configfile", str(configfile), *args]


def run_snakemake(
    run_dir: Path, configfile: Path, *args: str, cores: int | None = 2, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the workflow to its end and capture its output; the exit code is the caller's to check."""
    command = snakemake_command(run_dir, configfile, *args, cores=cores)
    return subprocess.run(
        command, capture_output=True, text=True, env=snakemake_env(), check=False, timeout=timeout
    )
