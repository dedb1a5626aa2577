"""Fitting ACE potentials with pacemaker (python-ace): linear mode, active set, metrics.

The nonlinear mode (the pacemaker command) is in :mod:`mlip_autopipe.nonlinear_fit`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipe.contract import energy_weight as structure_energy_weight
from mlip_autopipe.contract import force_weights
from mlip_autopipe.data import atomic_output, has_labels, structure_uid
from mlip_autopipe.errors import FitError, ToolNotFoundError
from mlip_autopipe.tools import find_tool


def check_training_set(images: Sequence[Atoms], elements: Sequence[str]) -> None:
    """Reject data a fit cannot use, before any fitting starts."""
    if not images:
        raise FitError("the training set is empty: no structure was labelled successfully")
    allowed = set(elements)
    for atoms in images:
        uid = atoms.info.get("uid", "?")
        if not has_labels(atoms):
            raise FitError(f"structure {uid} has no energy/forces")
        unknown = set(atoms.get_chemical_symbols()) - allowed
        if unknown:
            raise FitError(
                f"structure {uid} contains {', '.join(sorted(unknown))}, "
                f"not in the configured elements {list(elements)}"
            )
        if not np.isfinite(atoms.get_potential_energy()) or not np.all(np.isfinite(atoms.get_forces())):
            raise FitError(f"structure {uid} has NaN or infinite energy/forces")
    if not any(has_energy_weight(atoms) for atoms in images):
        raise FitError("no structure has a nonzero energy_weight: energies cannot be fitted")
    if not any(np.any(force_weights(atoms) > 0) for atoms in images):
        raise FitError("no atom has a nonzero force_weight: forces cannot be fitted")


def is_test_structure(atoms: Atoms, test_fraction: float) -> bool:
    """Held-out membership from the uid hash: stable when the training set grows."""
    uid = atoms.info.get("uid") or structure_uid(atoms)
    return (int(uid[:8], 16) % 10_000) < test_fraction * 10_000


def split_train_test(images: Sequence[Atoms], test_fraction: float) -> tuple[list[Atoms], list[Atoms]]:
    """Split by uid hash; the training part is never empty."""
    train = [atoms for atoms in images if not is_test_structure(atoms, test_fraction)]
    test = [atoms for atoms in images if is_test_structure(atoms, test_fraction)]
    if not train:
        return list(images), []
    return train, test


def has_energy_weight(atoms: Atoms) -> bool:
    """False for structures whose total energy is not used (embedded cells: energy_weight 0)."""
    return structure_energy_weight(atoms) > 0


def reference_energies(images: Sequence[Atoms], elements: Sequence[str]) -> dict[str, float]:
    """Per-element energies from a least-squares fit of total energies to element counts.

    Structures with ``energy_weight`` 0 (embedded cells, whose energy includes an artificial
    boundary) are left out unless no other structure is available.
    """
    images = [atoms for atoms in images if has_energy_weight(atoms)] or list(images)
    counts = np.array([[atoms.get_chemical_symbols().count(el) for el in elements] for atoms in images])
    energies = np.array([atoms.get_potential_energy() for atoms in images])
    solution, *_ = np.linalg.lstsq(counts.astype(float), energies, rcond=None)
    return {element: float(value) for element, value in zip(elements, solution, strict=True)}


def corrected_energy(atoms: Atoms, references: Mapping[str, float]) -> float:
    """Energy minus the per-element references: what the ACE potential represents."""
    return float(atoms.get_potential_energy() - sum(references[s] for s in atoms.get_chemical_symbols()))


#: Radial basis and cutoff smoothing of every fit, linear and nonlinear.
RADIAL_BASIS = {"radbase": "SBessel", "radparameters": [5.25], "dcut": 0.01}

#: Finnis-Sinclair parameters of a linear embedding, F(rho) = rho: what a linear fit's
#: coefficients multiply directly.
LINEAR_FS_PARAMETERS = [1.0, 1.0]

#: ZBL core constants pacemaker's ``repulsion: auto`` uses, for an explicit inner radius.
ZBL_CORE = {"delta_in": 0.1, "core-repulsion": [1.0, 1.0], "inner_cutoff_type": "zbl"}
ZBL_EMBEDDING_CUT = {"rho_core_cut": 1.0, "drho_core_cut": 1.0}


def potential_settings(elements: Sequence[str], fit: Mapping[str, Any], *, linear: bool) -> dict[str, Any]:
    """The ``potential`` mapping of a pacemaker basis, the one builder of both fit modes.

    Both use the ``fit`` section's cutoff and function counts; a ``linear`` basis has a linear
    embedding and no ZBL core, a nonlinear one the section's ``fs_parameters`` and, when
    ``fit.repulsion`` is a number, a ZBL core inside that radius (``auto`` is set on the fit).
    """
    fs_parameters = LINEAR_FS_PARAMETERS if linear else [float(value) for value in fit["fs_parameters"]]
    embedding: dict[str, Any] = {
        "npot": "FinnisSinclairShiftedScaled",
        "fs_parameters": list(fs_parameters),
        "ndensity": len(fs_parameters) // 2,
    }
    bond: dict[str, Any] = {**RADIAL_BASIS, "rcut": float(fit["cutoff"])}
    if not linear and fit["repulsion"] not in ("auto", "none"):
        bond.update(ZBL_CORE, r_in=float(fit["repulsion"]))
        embedding.update(ZBL_EMBEDDING_CUT)
    return {
        "deltaSplineBins": 0.001,
        "elements": list(elements),
        "embeddings": {"ALL": embedding},
        "bonds": {"ALL": bond},
        "functions": {
            "number_of_functions_per_element": int(fit["functions_per_element"]),
            "ALL": {
                "nradmax_by_orders": list(fit["nradmax_by_orders"]),
                "lmax_by_orders": list(fit["lmax_by_orders"]),
            },
        },
    }


def basis_configuration(elements: Sequence[str], fit: Mapping[str, Any]) -> Any:
    """A pacemaker ``BBasisConfiguration`` for a linear-embedding ACE basis."""
    from pyace import create_multispecies_basis_config

    return create_multispecies_basis_config(potential_settings(elements, fit, linear=True))


def to_dataframe(images: Sequence[Atoms], references: Mapping[str, float]) -> Any:
    """The pandas DataFrame pacemaker tools read (``ase_atoms``, ``energy_corrected``, ``forces``)."""
    import pandas as pd

    rows = []
    for atoms in images:
        bare = atoms.copy()
        bare.calc = None
        rows.append(
            {
                "name": str(atoms.info.get("uid", "")),
                "ase_atoms": bare,
                "energy": float(atoms.get_potential_energy()),
                "energy_corrected": corrected_energy(atoms, references),
                "forces": np.asarray(atoms.get_forces()),
                "NUMBER_OF_ATOMS": len(atoms),
                "w_energy": structure_energy_weight(atoms),
                "w_forces": force_weights(atoms),
            }
        )
    return pd.DataFrame(rows)


def row_weights(images: Sequence[Atoms], energy_weight: float) -> np.ndarray:
    """Sample weights of the linear design matrix: energy rows first, then 3 rows per atom."""
    energy_rows = [energy_weight * structure_energy_weight(atoms) for atoms in images]
    force_rows = [np.repeat(force_weights(atoms), 3) for atoms in images]
    return np.concatenate([np.asarray(energy_rows), *force_rows])


def fit_linear(
    train: Sequence[Atoms],
    elements: Sequence[str],
    fit: Mapping[str, Any],
    references: Mapping[str, float],
) -> Any:
    """Ridge-regress ACE coefficients on energies and forces; returns an ``ACEBBasisSet``."""
    from pyace.linearacefit import LinearACEDataset, LinearACEFit
    from sklearn.linear_model import Ridge

    dataset = LinearACEDataset(basis_configuration(elements, fit), to_dataframe(train, references))
    dataset.construct_design_matrix(max_workers=1)
    model = Ridge(alpha=float(fit["ridge_alpha"]), fit_intercept=False, random_state=0)
    linear_fit = LinearACEFit(model=model, train_dataset=dataset)
    linear_fit.fit(sample_weight=row_weights(train, float(fit["energy_weight"])))
    if not np.all(np.isfinite(model.coef_)):
        raise FitError("the linear fit produced non-finite coefficients")
    return linear_fit.get_bbasis()


def load_basis(yaml_path: str | os.PathLike[str]) -> Any:
    """An ``ACEBBasisSet`` read from a B-basis YAML (pacemaker's output_potential.yaml)."""
    from pyace import ACEBBasisSet, BBasisConfiguration

    return ACEBBasisSet(BBasisConfiguration(str(yaml_path)))


#: Metadata key of the per-element reference energies in a B-basis YAML: pacemaker's own
#: (``pyace.const.REFERENCE_ENERGY``; the value is a JSON object, as pacemaker writes it).
REFERENCE_ENERGY_KEY = "reference_energy"


def save_potential(
    bbasis: Any,
    yaml_path: str | os.PathLike[str],
    yace_path: str | os.PathLike[str],
    references: Mapping[str, float],
) -> None:
    """Write the B-basis (.yaml, for pacemaker and gamma) and the C-tilde basis (.yace, for LAMMPS).

    Both carry the per-element reference energies. The .yaml, like pacemaker's own output,
    predicts energy minus the references and lists them in its metadata
    (``reference_energy``): pacemaker's B-basis format has no per-element constant. The .yace
    holds them as its per-element constant ``E0``, which the ACE evaluator (pyace's
    calculator, LAMMPS ``pair_style pace``) adds to every atom's energy: it predicts total
    energies, on the oracle's scale.
    """
    bbasis.metadata[REFERENCE_ENERGY_KEY] = json.dumps(
        {el: float(references[el]) for el in bbasis.elements_name}
    )
    with atomic_output(yaml_path) as temporary:
        bbasis.save(str(temporary))
    ctilde = bbasis.to_ACECTildeBasisSet()
    with atomic_output(yace_path) as temporary:
        ctilde.save_yaml(str(temporary))
        set_reference_constants(temporary, [references[element] for element in ctilde.elements_name])


#: The per-element constants of a C-tilde (.yace) file: one top-level flow-style line.
_E0_LINE = re.compile(r"^E0: \[[^\]\n]*\]$", re.MULTILINE)


def set_reference_constants(yace_path: str | os.PathLike[str], values: Sequence[float]) -> None:
    """Set the ``E0`` line of a .yace file (values in the order of its ``elements``).

    The file is edited as text: pyace exposes ``E0`` only through pickling, which crashes on
    bases with a ZBL core (nonlinear fits); ``repr`` keeps every bit of each value.
    """
    path = Path(yace_path)
    text = path.read_text()
    if len(_E0_LINE.findall(text)) != 1:
        raise FitError(f"'{path}' has no single 'E0: [...]' line to hold the reference energies")
    line = "E0: [" + ", ".join(repr(float(value)) for value in values) + "]"
    path.write_text(_E0_LINE.sub(line, text))


def stored_reference_energies(yaml_path: str | os.PathLike[str]) -> dict[str, float]:
    """The reference energies a potential .yaml records in its metadata (pacemaker's key)."""
    from pyace import BBasisConfiguration

    metadata = BBasisConfiguration(str(yaml_path)).metadata
    if REFERENCE_ENERGY_KEY not in metadata:
        raise FitError(f"potential '{yaml_path}' records no reference energies ({REFERENCE_ENERGY_KEY})")
    return {element: float(value) for element, value in json.loads(metadata[REFERENCE_ENERGY_KEY]).items()}


def pacemaker_tool(name: str) -> str:
    """Path of a python-ace command (pacemaker, pace_activeset), preferring this environment's."""
    try:
        return find_tool(name)
    except ToolNotFoundError as error:
        raise FitError(f"pacemaker tool '{name}' not found; is python-ace installed? ({error})") from error


def compute_active_set(
    yaml_path: str | os.PathLike[str], dataset_path: str | os.PathLike[str], log_path: str | os.PathLike[str]
) -> Path:
    """Run ``pace_activeset`` on the training data; returns the ``.asi`` written beside the yaml.

    When some atoms carry ``w_forces`` 0 (buffer atoms of embedded cells, whose environments
    are cut and not fitted), the same single-shot MaxVol runs through pyace's Python API on
    the weighted atoms only (:func:`active_set_of_weighted_atoms`), so untrained environments
    never count as known.
    """
    yaml_path = Path(yaml_path)
    if _has_unweighted_atoms(dataset_path):
        with open(log_path, "a") as log:
            try:
                asi = active_set_of_weighted_atoms(yaml_path, dataset_path)
                log.write("active set: MaxVol on atoms with w_forces > 0 (buffer atoms left out)\n")
                return asi
            except ValueError as error:  # too few weighted environments for a species' basis
                log.write(f"active set of weighted atoms impossible ({error}); using all atoms\n")
    # --all-atoms: every training environment is known data. pace_activeset's default drops
    # atoms with large force errors, which then show gamma > 1 on the very training set.
    # pace_activeset writes its .asi beside the yaml it reads (its name with every ".yaml"
    # replaced): it runs on a plain-named copy in a private folder, and the result is renamed
    # into place, so a run cut short leaves no partial .asi.
    asi = yaml_path.with_suffix(".asi")
    scratch = Path(tempfile.mkdtemp(dir=yaml_path.parent, prefix=".activeset."))
    try:
        shutil.copyfile(yaml_path, scratch / "potential.yaml")
        command = [
            pacemaker_tool("pace_activeset"),
            "--all-atoms",
            "-d",
            str(Path(dataset_path).resolve()),
            "potential.yaml",
        ]
        with open(log_path, "a") as log:
            completed = subprocess.run(
                command, cwd=scratch, stdout=log, stderr=subprocess.STDOUT, check=False
            )
        written = scratch / "potential.asi"
        if completed.returncode != 0 or not written.exists():
            short = too_few_environments(yaml_path, dataset_path)
            reason = f": {short}" if short else ""
            raise FitError(f"pace_activeset failed (exit {completed.returncode}){reason}; see {log_path}")
        with atomic_output(asi) as temporary:
            os.replace(written, temporary)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return asi


def atoms_per_element(images: Sequence[Atoms]) -> Counter[str]:
    """Atoms (atomic environments) of each element over ``images``."""
    return Counter(symbol for atoms in images for symbol in atoms.get_chemical_symbols())


def environments_and_functions(
    yaml_path: str | os.PathLike[str], images: Sequence[Atoms]
) -> dict[str, tuple[int, int]]:
    """Per element of the basis: (atomic environments in ``images``, basis functions)."""
    from pyace import ACEBBasisSet

    basis = ACEBBasisSet(str(yaml_path))
    counts = atoms_per_element(images)
    return {
        str(element): (counts.get(str(element), 0), len(basis.basis_rank1[index]) + len(basis.basis[index]))
        for index, element in enumerate(basis.elements_name)
    }


#: Below this many training environments per basis function, the active set (a square MaxVol
#: pick, one environment per function) holds most of the training data, and gamma flags nearly
#: every new environment, known kinds included (measured on the EMT preset: 350 functions for
#: ~480 environments per element put 84 % of them in the active set, and held-out cells of the
#: training pool reached gamma 205).
INFORMATIVE_ENVIRONMENTS_PER_FUNCTION = 3.0


def data_sized_functions_per_element(
    images: Sequence[Atoms], elements: Sequence[str], fit_settings: Mapping[str, Any]
) -> int:
    """Functions per element of a fit on ``images``: ``functions_per_element``, capped with
    ``environments_per_function`` (when set) at the scarcest element's atoms over that ratio,
    never below one function. The loop sets the ratio for gamma (``fit.environments_per_function``:
    the basis grows with the data and the active set stays a small part of it); the production
    fit sets 1, the least its active set needs."""
    ceiling = int(fit_settings["functions_per_element"])
    ratio = fit_settings.get("environments_per_function")
    if ratio is None:
        return ceiling
    counts = atoms_per_element(images)
    scarcest = min(counts[element] for element in elements)
    return max(1, min(ceiling, int(scarcest / float(ratio))))


def active_set_coverage(yaml_path: str | os.PathLike[str], train: Sequence[Atoms]) -> dict[str, Any]:
    """How well the training data can define gamma, per element: environments, functions, their
    ratio, and whether it reaches :data:`INFORMATIVE_ENVIRONMENTS_PER_FUNCTION`."""
    per_element = {
        element: {
            "environments": environments,
            "functions": functions,
            "environments_per_function": round(environments / functions, 3) if functions else None,
        }
        for element, (environments, functions) in environments_and_functions(yaml_path, train).items()
    }
    ratios = [row["environments_per_function"] for row in per_element.values()]
    lowest = min((ratio for ratio in ratios if ratio is not None), default=None)
    return {
        "per_element": per_element,
        "lowest_environments_per_function": lowest,
        "gamma_informative": lowest is not None and lowest >= INFORMATIVE_ENVIRONMENTS_PER_FUNCTION,
    }


def too_few_environments(
    yaml_path: str | os.PathLike[str], dataset_path: str | os.PathLike[str]
) -> str | None:
    """Why an active set cannot exist, if that is the reason: MaxVol needs at least as many
    atomic environments of each element as the element has basis functions."""
    import pandas as pd

    try:
        frame = pd.read_pickle(dataset_path, compression="gzip")
        rows = environments_and_functions(yaml_path, list(frame["ase_atoms"]))
    except Exception:  # unreadable files: pace_activeset's own log says more
        return None
    for element, (environments, functions) in rows.items():
        if environments < functions:
            return (
                f"the training set has {environments} {element} atoms for {functions} basis "
                f"functions of {element}; the active set needs at least as many environments as "
                "functions: label more structures (structures.initial_pick) or lower "
                "fit.functions_per_element"
            )
    return None


def predict(
    yaml_path: str | os.PathLike[str], images: Sequence[Atoms], references: Mapping[str, float]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(reference, predicted) energies per atom (corrected) and force components.

    Structures with zero energy weight (embedded cells) give no energy; atoms with zero
    force weight (embedding buffers) give no forces: their labels are not meaningful.
    """
    from pyace import PyACECalculator

    calculator = PyACECalculator(str(yaml_path))
    energies: tuple[list[float], list[float]] = ([], [])
    forces: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    for atoms in images:
        work = atoms.copy()
        work.calc = calculator
        if has_energy_weight(atoms):
            energies[0].append(corrected_energy(atoms, references) / len(atoms))
            energies[1].append(work.get_potential_energy() / len(atoms))
        weights = force_weights(atoms) > 0
        forces[0].append(atoms.get_forces()[weights].ravel())
        forces[1].append(work.get_forces()[weights].ravel())
    concat = lambda arrays: np.concatenate(arrays) if arrays else np.zeros(0)  # noqa: E731
    return {
        "energy": (np.asarray(energies[0]), np.asarray(energies[1])),
        "forces": (concat(forces[0]), concat(forces[1])),
    }


def _has_unweighted_atoms(dataset_path: str | os.PathLike[str]) -> bool:
    import pickle

    import pandas as pd

    try:
        frame = pd.read_pickle(dataset_path, compression="gzip")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError):
        return False  # unreadable: pace_activeset reports it
    if "w_forces" not in frame.columns:
        return False
    return any(np.any(np.asarray(weights) <= 0) for weights in frame["w_forces"])


#: pace_activeset's defaults: MaxVol gamma tolerance and iterations.
ACTIVE_SET_TOLERANCE = 1.01
ACTIVE_SET_ITERATIONS = 300


def active_set_of_weighted_atoms(
    yaml_path: str | os.PathLike[str], dataset_path: str | os.PathLike[str]
) -> Path:
    """``pace_activeset --all-atoms`` (single shot) restricted to atoms with ``w_forces`` > 0.

    Raises:
        ValueError: when a species has fewer weighted environments than basis functions.
    """
    import pandas as pd
    from pyace import ACEBBasisSet, BBasisConfiguration
    from pyace.activelearning import (
        compute_A_active_inverse,
        compute_active_set,
        compute_B_projections,
        save_active_inverse_set,
    )

    yaml_path = Path(yaml_path)
    frame = pd.read_pickle(dataset_path, compression="gzip")
    basis = ACEBBasisSet(BBasisConfiguration(str(yaml_path)))
    projections = compute_B_projections(basis, list(frame["ase_atoms"]))
    index = basis.elements_to_index_map
    masks: dict[int, list[bool]] = {species: [] for species in projections}
    for atoms, weights in zip(frame["ase_atoms"], frame["w_forces"], strict=True):
        for symbol, weight in zip(atoms.get_chemical_symbols(), np.asarray(weights), strict=True):
            masks[index[symbol]].append(bool(weight > 0))
    weighted = {species: rows[np.asarray(masks[species], bool)] for species, rows in projections.items()}
    active = compute_active_set(weighted, tol=ACTIVE_SET_TOLERANCE, max_iters=ACTIVE_SET_ITERATIONS)
    asi = yaml_path.with_suffix(".asi")
    with atomic_output(asi) as temporary:
        save_active_inverse_set(str(temporary), compute_A_active_inverse(active), basis.elements_name)
    return asi


def evaluate(
    yaml_path: str | os.PathLike[str], images: Sequence[Atoms], references: Mapping[str, float]
) -> dict[str, Any]:
    """Energy (meV/atom) and force-component (eV/A) RMSE of a saved potential on ``images``."""
    result: dict[str, Any] = {
        "n_structures": len(images),
        "n_atoms": int(sum(len(atoms) for atoms in images)),
        "energy_rmse_mev_per_atom": None,
        "force_rmse_ev_per_a": None,
    }
    if not images:
        return result
    parity = predict(yaml_path, images, references)
    rmse = lambda pair: float(np.sqrt(np.mean(np.square(pair[1] - pair[0]))))  # noqa: E731
    if parity["energy"][0].size:
        result["energy_rmse_mev_per_atom"] = 1000 * rmse(parity["energy"])
    if parity["forces"][0].size:
        result["force_rmse_ev_per_a"] = rmse(parity["forces"])
    return result
