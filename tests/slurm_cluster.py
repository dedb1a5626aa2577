"""A real single-node Slurm (Debian slurm-wlm + munge) on localhost, for tests and benchmarks.

Writes /etc/slurm/slurm.conf (Slurm's job steps look there even when SLURM_CONF is set),
starts munged, slurmctld and slurmd, and waits until the node is idle. Only a config this
module wrote itself is ever overwritten.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

MARKER = "# written by MLIP-AutoPipe tests/slurm_cluster.py"
SLURM_CONF = Path("/etc/slurm/slurm.conf")
NODE = "autopipe1"
REPO = Path(__file__).resolve().parent.parent
#: `snakemake` arguments for the Slurm profile on this one-node cluster: no account, and group
#: jobs that fit in the node's 2 CPUs.
PROFILE_ARGS = [
    "--profile",
    str(REPO / "profiles" / "slurm"),
    "--slurm-no-account",
    "--resources",
    "cpus_per_task=2",
    "mem_mb=8000",
]


def slurm_available() -> str | None:
    """None when a local Slurm can be started here, else the reason it cannot."""
    for tool in ("slurmctld", "slurmd", "munged", "sbatch", "squeue"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd needs root"
    if SLURM_CONF.exists() and MARKER not in SLURM_CONF.read_text():
        return f"{SLURM_CONF} exists and was not written by these tests"
    return None


def _node_resources() -> tuple[int, int]:
    output = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(item.split("=", 1) for item in output.split() if "=" in item)
    return int(fields["CPUs"]), int(int(fields["RealMemory"]) * 0.9)


def write_config(state: Path) -> None:
    cpus, memory = _node_resources()
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SLURM_CONF.write_text(
        f"""{MARKER}
ClusterName=autopipe
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/slurmd
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={state}/jobcomp.txt
MinJobAge=600
ReturnToService=2
MpiDefault=none
DefMemPerCPU=1000
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
NodeName={NODE} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""
    )


def _start_munge() -> None:
    check = subprocess.run("munge -n | unmunge", shell=True, capture_output=True, check=False)
    if check.returncode == 0:
        return
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)


def stop() -> None:
    """Stop slurmd and slurmctld started by these tests (munged may keep running)."""
    for daemon in ("slurmd", "slurmctld"):
        subprocess.run(["pkill", "-x", daemon], check=False)
    for _ in range(50):
        alive = subprocess.run(["pgrep", "-x", "slurmd|slurmctld"], capture_output=True, check=False)
        if alive.returncode != 0:
            return
        time.sleep(0.2)


def start(state: Path, timeout: float = 60.0) -> Path:
    """Start a one-node cluster keeping its state in ``state``; returns the jobcomp file."""
    reason = slurm_available()
    if reason:
        raise RuntimeError(reason)
    stop()
    for sub in ("ctld", "slurmd"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    write_config(state)
    _start_munge()
    subprocess.run(["/usr/sbin/slurmctld", "-c"], check=True)
    subprocess.run(["/usr/sbin/slurmd", "-N", NODE], check=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, check=False
        ).stdout.split()
        if states and all(s.rstrip("*") == "idle" for s in states):
            return state / "jobcomp.txt"
        time.sleep(0.5)
    raise RuntimeError(f"local Slurm did not become idle in {timeout:.0f} s; see {state}/slurmctld.log")
