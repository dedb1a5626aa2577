"""A private PostgreSQL server for tests: initdb + pg_ctl on a Unix socket in a temp folder.

PostgreSQL refuses to run as root, so as root the cluster belongs to `nobody` (runuser);
otherwise to the current user. Debian's `postgresql` package provides the binaries
(the Makefile's apt list installs it).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Where Debian puts the server binaries (initdb and pg_ctl are not on PATH there).
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    candidates = sorted(glob.glob(PG_BIN_GLOB), key=lambda path: int(Path(path).parent.name))
    return Path(candidates[-1]) if candidates else None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throw-away cluster; yields an ase.db URL of its `postgres` database."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql; `make system`)")
    root = Path(tempfile.mkdtemp(prefix="mlip-autopipe-pg-"))
    data, socket_dir = root / "data", root / "socket"
    socket_dir.mkdir()
    as_user: list[str] = []
    user = os.environ.get("USER") or "postgres"
    if os.geteuid() == 0:
        user = "nobody"
        as_user = ["runuser", "-u", user, "--"]
        shutil.chown(root, user)
        shutil.chown(socket_dir, user)
        os.chmod(root, 0o755)  # traversable, so root's client reaches the socket
    run = lambda *args: subprocess.run([*as_user, *args], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", user, "--no-sync")
        options = f"-k {socket_dir} -c listen_addresses='' -c fsync=off"
        log = str(root / "server.log")
        run(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start")
        try:
            yield f"postgresql://{user}@/postgres?host={socket_dir}"
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
