"""Train/test RMSE recomputed from a saved potential with PyACECalculator alone.

Deliberately independent of ``mlip_autopipe.fit.evaluate``: the tests compare the two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms


def recompute_rmse(
    yaml_path: Path, images: Sequence[Atoms], references: Mapping[str, float]
) -> tuple[float, float]:
    """(energy RMSE in meV/atom, force-component RMSE in eV/A), both on weighted entries only."""
    from pyace import PyACECalculator

    calculator = PyACECalculator(str(yaml_path))
    energy_errors, force_errors = [], []
    for atoms in images:
        work = atoms.copy()
        work.calc = calculator
        predicted_forces = work.get_forces()
        if atoms.info.get("energy_weight", 1.0) > 0:
            reference = atoms.get_potential_energy() - sum(
                references[s] for s in atoms.get_chemical_symbols()
            )
            energy_errors.append((work.get_potential_energy() - reference) / len(atoms))
        mask = atoms.arrays.get("force_weight", np.ones(len(atoms))) > 0
        force_errors.append((predicted_forces - atoms.get_forces())[mask].ravel())
    energy = 1000 * float(np.sqrt(np.mean(np.square(energy_errors))))
    forces = float(np.sqrt(np.mean(np.square(np.concatenate(force_errors)))))
    return energy, forces
