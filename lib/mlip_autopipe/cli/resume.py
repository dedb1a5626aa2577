"""Resuming after a hard kill: remove Snakemake's directory lock only when it is stale.

A killed Snakemake leaves ``.snakemake/locks`` behind and the next run refuses to start.
The lock is stale when no live Snakemake process works in that directory; then (and only
then) ``snakemake --unlock`` is safe. Incomplete outputs are handled by
``--rerun-incomplete`` (set in the profiles).

    python -m mlip_autopipe.cli.resume RUN_DIR   # prints what it did; exit 0 unless locked by a live run
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _live_snakemake_in(run_dir: Path) -> list[int]:
    """PIDs of running Snakemake processes whose working directory is ``run_dir``."""
    found = []
    target = run_dir.resolve()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = (entry / "cwd").resolve()
        except (OSError, RuntimeError):
            continue  # gone, or not ours to inspect
        # `.../bin/snakemake ...` or `python -m snakemake ...`
        is_snakemake = any(part.endswith(b"snakemake") for part in command[:3])
        if is_snakemake and "--unlock" not in [part.decode(errors="replace") for part in command]:
            directory = _directory_argument(command) or cwd
            if directory.resolve() == target:
                found.append(int(entry.name))
    return found


def _directory_argument(command: list[bytes]) -> Path | None:
    parts = [part.decode(errors="replace") for part in command]
    for flag in ("--directory", "-d"):
        if flag in parts and parts.index(flag) + 1 < len(parts):
            return Path(parts[parts.index(flag) + 1])
    return None


def stale_lock(run_dir: str | os.PathLike[str]) -> bool:
    """True when ``run_dir`` holds Snakemake locks but no Snakemake runs there."""
    locks = Path(run_dir) / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir()) and not _live_snakemake_in(Path(run_dir))


def clear_stale_lock(run_dir: str | os.PathLike[str]) -> bool:
    """Remove a stale lock (what ``snakemake --unlock`` does); returns whether one was removed."""
    if not stale_lock(run_dir):
        return False
    for lock in (Path(run_dir) / ".snakemake" / "locks").iterdir():
        lock.unlink()
    return True


def live_snakemake_in(run_dir: str | os.PathLike[str]) -> list[int]:
    """PIDs of running Snakemake processes working in ``run_dir`` (none: its lock is stale)."""
    return _live_snakemake_in(Path(run_dir))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mlip-autopipe-resume", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default=".")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    live = _live_snakemake_in(run_dir) if (run_dir / ".snakemake" / "locks").is_dir() else []
    if live:
        sys.exit(f"a Snakemake run is still working in {run_dir} (pid {live[0]}): not unlocking")
    if clear_stale_lock(run_dir):
        print(f"removed the stale Snakemake lock left in {run_dir} by a killed run")


if __name__ == "__main__":
    main()
