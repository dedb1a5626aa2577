"""Training a small MACE model for the surrogate tests (no rule trains MACE: the workflow takes
user-supplied model files or CHGNet's shipped weights, so this helper lives with its only user)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

#: A small MACE (one interaction, scalar features) that trains on a few dozen cells in a minute.
SMALL_MACE = {
    "num_interactions": 1,
    "num_channels": 8,
    "max_L": 0,
    "correlation": 2,
    "r_max": 4.0,
    "num_radial_basis": 6,
    "batch_size": 5,
    "max_num_epochs": 20,
    "valid_fraction": 0.1,
}


def train_mace(
    labelled: Sequence[Atoms],
    folder: str | os.PathLike[str],
    *,
    name: str = "surrogate",
    settings: Mapping[str, Any] | None = None,
    seed: int = 0,
    threads: int = 1,
) -> Path:
    """Train a MACE model on ``labelled`` structures with ``mace_run_train``; returns the model file.

    ``settings`` (over :data:`SMALL_MACE`) are mace_run_train options. Runs on the CPU in
    float64 with ``threads`` torch threads; the log is ``folder/<name>.log``.
    """
    import subprocess
    import sys

    from ase.io import write

    from mlip_autopipe.errors import FitError

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for atoms in labelled:
        frame = atoms.copy()
        frame.calc = None
        frame.info = {"REF_energy": float(atoms.get_potential_energy())}
        frame.arrays["REF_forces"] = np.asarray(atoms.get_forces(), dtype=float)
        frames.append(frame)
    train_file = folder / f"{name}_train.xyz"
    write(train_file, frames, format="extxyz")
    options = {**SMALL_MACE, **(settings or {})}
    command = [
        str(Path(sys.executable).with_name("mace_run_train")),
        f"--name={name}",
        f"--train_file={train_file}",
        "--E0s=average",
        "--model=MACE",
        "--device=cpu",
        "--default_dtype=float64",
        f"--seed={seed}",
        "--energy_key=REF_energy",
        "--forces_key=REF_forces",
        f"--work_dir={folder}",
        *(f"--{key}={value}" for key, value in options.items()),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(folder / f"{name}.log", "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    model = folder / f"{name}.model"
    if result.returncode != 0 or not model.is_file():
        raise FitError(f"mace_run_train failed (exit {result.returncode}); see {folder / f'{name}.log'}")
    return model
