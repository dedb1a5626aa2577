"""Oracles: the reference methods that label structures (EMT; Quantum ESPRESSO in :mod:`dft`;
the MACE and CHGNet surrogates in :mod:`surrogates`).

An oracle has a ``name``, a ``settings_hash`` (what a cached label is keyed by, with the
structure uid) and ``label(atoms) -> Atoms`` returning a labelled copy or raising
:class:`LabellingError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from ase import Atoms

from mlip_autopipe.data import attach_labels
from mlip_autopipe.errors import ConfigError, LabellingError


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


def make_oracle(
    oracle_config: Mapping[str, Any],
    elements: Sequence[str] = (),
    *,
    cores: int | None = None,
    mpi: str | None = None,
    work_dir: str | os.PathLike[str] | None = None,
) -> Oracle:
    """Build the oracle named by ``oracle.kind``.

    ``elements`` (the run's elements) and ``cores``/``mpi``/``work_dir`` (where, with which
    MPI launcher and on how many cores pw.x runs) matter only for ``qe``; ``cores`` are the
    torch threads of ``mace`` and ``chgnet`` (one when not given).
    """
    kind = oracle_config["kind"]
    if kind == "emt":
        return EMTOracle()
    if kind == "qe":
        from mlip_autopipe.dft import make_qe_oracle

        return make_qe_oracle(oracle_config, elements, cores=cores, mpi=mpi, work_dir=work_dir)
    if kind in ("mace", "chgnet"):
        from mlip_autopipe.surrogates import make_surrogate

        return make_surrogate(kind, oracle_config.get(kind) or {}, threads=cores or 1, key="oracle")
    raise ConfigError("oracle.kind", f"unknown oracle '{kind}'")
