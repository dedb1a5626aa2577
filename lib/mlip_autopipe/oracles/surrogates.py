"""Surrogate models: MACE (user-supplied model files, a committee gives variances) and CHGNet
(pretrained weights shipped inside its wheel) as cheap oracles.

They label like any :class:`~mlip_autopipe.oracles.base.Oracle`; on top, a surrogate label carries its
committee spread in ``atoms.info``: ``surrogate_energy_std`` (eV/atom) and ``surrogate_force_std``
(eV/A, the largest over atoms of the norm of the per-atom force standard deviation; 0 for a
single model). Nothing is fetched from a model hub: MACE needs files, CHGNet uses its wheel's.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipe.data import attach_labels
from mlip_autopipe.errors import ConfigError, LabellingError
from mlip_autopipe.oracles.base import hash_settings

#: Oracle kinds served by this module.
SURROGATE_KINDS = ("mace", "chgnet")

#: Pretrained CHGNet models inside the chgnet wheel (folder chgnet/pretrained/<name>).
CHGNET_MODELS = ("0.3.0", "0.2.0", "r2scan")


def set_torch_threads(threads: int) -> None:
    """One process, ``threads`` torch threads: torch's default (all cores) is several times
    slower on a shared machine and oversubscribes parallel Snakemake jobs."""
    import torch

    threads = max(1, int(threads))
    torch.set_num_threads(threads)
    # the inter-op pool can be sized only before any parallel work in this process
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def check_model_files(model_paths: Sequence[str | os.PathLike[str]], key: str) -> list[Path]:
    """The MACE model files as paths; ConfigError naming ``key`` when none or one is missing."""
    paths = [Path(path) for path in model_paths]
    if not paths:
        raise ConfigError(key, "give at least one MACE model file (mace has no built-in weights offline)")
    for path in paths:
        if not path.is_file():
            raise ConfigError(key, f"MACE model file '{path}' not found")
    return paths


def _surrogate_labels(atoms: Atoms, calc: Any, name: str) -> Atoms:
    """Evaluate ``calc`` on a copy of ``atoms``; a labelled copy with the committee spread."""
    work = atoms.copy()
    work.calc = calc
    try:
        energy = float(work.get_potential_energy())
        forces = np.asarray(work.get_forces(), dtype=float)
        stress = np.asarray(work.get_stress(voigt=True), dtype=float) if work.pbc.all() else None
    except (RuntimeError, ValueError, IndexError) as error:
        raise LabellingError(f"{name} cannot evaluate this structure: {error}") from error
    if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
        raise LabellingError(f"{name} returned a non-finite energy or force")
    labelled = attach_labels(atoms, energy=energy, forces=forces, stress=stress)
    results = calc.results
    energy_var = float(np.asarray(results.get("energy_var", 0.0)))
    forces_var = np.asarray(results.get("forces_var", np.zeros_like(forces)), dtype=float)
    labelled.info["surrogate_energy_std"] = float(np.sqrt(max(energy_var, 0.0)) / max(len(atoms), 1))
    labelled.info["surrogate_force_std"] = float(np.sqrt(np.clip(forces_var, 0, None).sum(axis=1)).max())
    return labelled


class MACEOracle:
    """One MACE model, or a committee of them (mean labels, spread in ``atoms.info``)."""

    name = "mace"

    def __init__(
        self,
        model_paths: Sequence[str | os.PathLike[str]],
        *,
        default_dtype: str = "float64",
        threads: int = 1,
        key: str = "oracle.mace.model_paths",
    ) -> None:
        self.model_paths = check_model_files(model_paths, key)
        self.default_dtype = default_dtype
        self.threads = threads
        self._calculator: Any = None

    def settings_hash(self) -> str:
        return hash_settings(
            {
                "oracle": "mace",
                "models": [_file_digest(path) for path in self.model_paths],
                "dtype": self.default_dtype,
            }
        )

    def calculator(self) -> Any:
        """The (cached) MACECalculator on the CPU."""
        if self._calculator is None:
            set_torch_threads(self.threads)
            from mace.calculators import MACECalculator

            self._calculator = MACECalculator(
                model_paths=[str(path) for path in self.model_paths],
                device="cpu",
                default_dtype=self.default_dtype,
            )
        return self._calculator

    def label(self, atoms: Atoms) -> Atoms:
        return _surrogate_labels(atoms, self.calculator(), "MACE")


class CHGNetOracle:
    """CHGNet's pretrained universal potential, loaded from the weights in its wheel."""

    name = "chgnet"

    def __init__(
        self, model: str = "0.3.0", *, model_file: str | os.PathLike[str] | None = None, threads: int = 1
    ) -> None:
        if model not in CHGNET_MODELS:
            raise ConfigError("oracle.chgnet.model", f"'{model}' is not one of {', '.join(CHGNET_MODELS)}")
        self.model = model
        #: a fine-tuned CHGNet (``CHGNet.from_file``) in place of the shipped weights
        self.model_file = Path(model_file) if model_file is not None else None
        self.threads = threads
        self._calculator: Any = None

    def settings_hash(self) -> str:
        from importlib.metadata import version

        settings = {"oracle": "chgnet", "model": self.model, "chgnet": version("chgnet")}
        if self.model_file is not None:
            settings["model_file"] = _file_digest(self.model_file)
        return hash_settings(settings)

    def calculator(self) -> Any:
        """The (cached) CHGNetCalculator on the CPU; no download (weights ship in the wheel, or
        the fine-tuned model's file)."""
        if self._calculator is None:
            set_torch_threads(self.threads)
            from chgnet.model import CHGNet
            from chgnet.model.dynamics import CHGNetCalculator

            if self.model_file is not None:
                model = CHGNet.from_file(str(self.model_file))
            else:
                model = CHGNet.load(
                    model_name=self.model, use_device="cpu", verbose=False, check_cuda_mem=False
                )
            self._calculator = CHGNetCalculator(model=model, use_device="cpu")
        return self._calculator

    def label(self, atoms: Atoms) -> Atoms:
        return _surrogate_labels(atoms, self.calculator(), "CHGNet")


def make_surrogate(
    kind: str, settings: Mapping[str, Any], *, threads: int = 1, key: str = "oracle"
) -> MACEOracle | CHGNetOracle:
    """Surrogate of ``kind`` from its validated settings section (``mace``: model_paths,
    default_dtype; ``chgnet``: model); ``key`` is the config section named in errors. Callers
    use :func:`mlip_autopipe.oracles.oracle_from_config`."""
    if kind == "mace":
        return MACEOracle(
            settings["model_paths"],
            default_dtype=settings["default_dtype"],
            threads=threads,
            key=f"{key}.mace.model_paths",
        )
    if kind == "chgnet":
        return CHGNetOracle(settings["model"], threads=threads)
    raise ConfigError(f"{key}.kind", f"unknown surrogate '{kind}' (one of {', '.join(SURROGATE_KINDS)})")
