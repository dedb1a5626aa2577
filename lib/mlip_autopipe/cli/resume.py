"""Resuming after a hard kill: remove Snakemake's directory lock only when it is stale.

A killed Snakemake leaves ``.snakemake/locks`` behind and the next run refuses to start.
The lock is stale when nothing of a run works in that directory any more: no Snakemake whose
``--directory`` (relative paths taken from *that* process's working directory) or working
directory is the run folder, and no other process whose working directory is the run folder
or below it (job scripts, pw.x in its attempt folder, left running by a SIGKILLed Snakemake).
Then (and only then) ``snakemake --unlock`` is safe. This process and its ancestors (the
``make`` and shell that started it) do not count. Incomplete outputs are handled by
``--rerun-incomplete`` (set in the profiles).

    python -m mlip_autopipe.cli.resume RUN_DIR  # says what it did; exit 0 unless something still works there
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROC = Path("/proc")


def _is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _parent_pid(pid: int) -> int:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0
    # "pid (command name) state ppid ...": the name may hold spaces and parentheses
    return int(stat.rsplit(")", 1)[1].split()[1])


def _ancestors_and_self() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 0 and pid not in pids:
        pids.add(pid)
        pid = _parent_pid(pid)
    return pids


def live_processes_in(run_dir: str | os.PathLike[str]) -> list[int]:
    """PIDs of the processes that still work on the run in ``run_dir`` (see the module's doc)."""
    target = Path(run_dir).resolve()
    ignored = _ancestors_and_self()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in ignored:
            continue
        try:
            command = [
                part.decode(errors="replace") for part in (entry / "cmdline").read_bytes().split(b"\0")
            ]
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue  # gone, a zombie, or not ours to inspect
        if _is_inside(cwd, target):
            found.append(int(entry.name))
            continue
        # `.../bin/snakemake ...` or `python -m snakemake ...`, working elsewhere on this folder
        is_snakemake = any(part.endswith("snakemake") for part in command[:3])
        if is_snakemake and "--unlock" not in command:
            directory = _directory_argument(command)
            if directory is not None and (cwd / directory).resolve() == target:
                found.append(int(entry.name))
    return found


def _directory_argument(command: list[str]) -> Path | None:
    """The ``--directory``/``-d`` of a Snakemake command line, as given (maybe relative)."""
    for index, part in enumerate(command):
        if part in ("--directory", "-d") and index + 1 < len(command):
            return Path(command[index + 1])
        if part.startswith("--directory="):
            return Path(part.split("=", 1)[1])
    return None


def _describe(pid: int) -> str:
    try:
        command = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        command = "?"
    return f"pid {pid}: {command.strip()[:120]}"


def stale_lock(run_dir: str | os.PathLike[str]) -> bool:
    """True when ``run_dir`` holds Snakemake locks but no process of a run works there any more."""
    locks = Path(run_dir) / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir()) and not live_processes_in(run_dir)


def clear_stale_lock(run_dir: str | os.PathLike[str]) -> bool:
    """Remove a stale lock (what ``snakemake --unlock`` does); returns whether one was removed."""
    if not stale_lock(run_dir):
        return False
    for lock in (Path(run_dir) / ".snakemake" / "locks").iterdir():
        lock.unlink()
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mlip-autopipe-resume", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default=".")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    live = live_processes_in(run_dir) if (run_dir / ".snakemake" / "locks").is_dir() else []
    if live:
        sys.exit(
            f"a run is still working in {run_dir} ({len(live)} process(es), first {_describe(live[0])}):"
            " not unlocking; wait for it or end it"
        )
    if clear_stale_lock(run_dir):
        print(f"removed the stale Snakemake lock left in {run_dir} by a killed run")


if __name__ == "__main__":
    main()
