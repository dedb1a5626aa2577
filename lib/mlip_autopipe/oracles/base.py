"""What every oracle is: the :class:`Oracle` protocol, :func:`hash_settings`, and the EMT oracle
(Quantum ESPRESSO is in :mod:`mlip_autopipe.oracles.qe`, MACE and CHGNet in
:mod:`mlip_autopipe.oracles.surrogates`).

An oracle has a ``name``, a ``settings_hash`` (what a cached label is keyed by, with the
structure uid) and ``label(atoms) -> Atoms`` returning a labelled copy or raising
:class:`LabellingError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
from ase import Atoms

from mlip_autopipe.data import attach_labels
from mlip_autopipe.errors import LabellingError


class Oracle(Protocol):
    """What the labelling stage needs from a reference method."""

    name: str

    def settings_hash(self) -> str:
        """Hash of everything that changes the labels (method, parameters, pseudos)."""
        ...

    def label(self, atoms: Atoms) -> Atoms:
        """Return a labelled copy of ``atoms`` (energy, forces, stress)."""
        ...


def hash_settings(settings: Mapping[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable settings mapping."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class EMTOracle:
    """ASE's effective-medium theory: fast, deterministic, physically sensible for fcc metals."""

    name = "emt"

    def settings_hash(self) -> str:
        import ase

        return hash_settings({"oracle": "emt", "ase": ase.__version__})

    def label(self, atoms: Atoms) -> Atoms:
        from ase.calculators.emt import EMT

        work = atoms.copy()
        work.calc = EMT()
        try:
            energy = work.get_potential_energy()
            forces = work.get_forces()
            stress = work.get_stress(voigt=True) if work.pbc.all() else None
        except (NotImplementedError, KeyError) as error:
            raise LabellingError(f"EMT cannot evaluate this structure: {error}") from error
        if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
            raise LabellingError("EMT returned a non-finite energy or force")
        return attach_labels(atoms, energy=energy, forces=forces, stress=stress)
