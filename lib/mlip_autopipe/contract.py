"""The data contract: the ``atoms.info`` / ``atoms.arrays`` keys the pipeline reads and writes.

Structures travel as extended XYZ between stages; these keys are their metadata. Accessors here
give every reader the same default for a key that is absent.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

#: ``atoms.arrays`` key: per-atom weight of the force rows in a fit (1 core atom, 0 buffer atom of
#: an embedded cell; dimensionless, absent means 1).
FORCE_WEIGHT = "force_weight"

#: ``atoms.info`` key: weight of the structure's total energy in a fit (0 for embedded cells,
#: whose energy includes an artificial boundary; dimensionless, absent means 1).
ENERGY_WEIGHT = "energy_weight"


def force_weights(atoms: Atoms) -> np.ndarray:
    """Per-atom force weights of ``atoms`` (ones when the structure carries none)."""
    return np.asarray(atoms.arrays.get(FORCE_WEIGHT, np.ones(len(atoms))), dtype=float)


def energy_weight(atoms: Atoms) -> float:
    """The structure's energy weight (1 when it carries none)."""
    return float(atoms.info.get(ENERGY_WEIGHT, 1.0))
