"""The workflow's command line as tests and benchmarks run it: this Python's Snakemake, our Snakefile."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
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


#: Set-up outputs `make run` must not rebuild from a test: the tests are about the run (`make
#: test` has just done the set-up), and a worktree sharing another checkout's venv and plugin
#: build would otherwise reinstall or recompile them.
SETUP_OUTPUTS = [".venv/.setup-done", "build/pace_plugin/autopipe_paceplugin.so"]


def make_run_command(run_dir: Path, configfile: Path, *variables: str) -> list[str]:
    """The README's resumable run command, `make run RUN_DIR=... CONFIG=...`, set-up kept as is."""
    keep = [option for output in SETUP_OUTPUTS for option in ("-o", output)]
    return ["make", "-C", str(REPO), *keep, "run", f"RUN_DIR={run_dir}", f"CONFIG={configfile}", *variables]


def start_make_run(run_dir: Path, configfile: Path) -> subprocess.Popen[bytes]:
    """`make run` in its own process group, so that the whole tree can be killed."""
    command = make_run_command(run_dir, configfile)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def finish_make_run(run_dir: Path, configfile: Path) -> str:
    """`make run` to its end; fails the test unless it succeeds. Returns its output."""
    process = start_make_run(run_dir, configfile)
    output, _ = process.communicate(timeout=900)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-4000:]
    return text


def kill_workflow(process: subprocess.Popen[bytes], run_dir: Path) -> None:
    """SIGKILL the run's process group and every process working inside the run directory.

    Snakemake starts some job processes in sessions of their own; a node failure or
    `scancel` takes them down too, so the tests do as well.
    """
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    target = run_dir.resolve()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = (entry / "cwd").resolve()
        except OSError:
            continue
        if cwd == target or target in cwd.parents:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
    time.sleep(0.5)
