"""Linear ACE fits with pacemaker (python-ace) on EMT data: honest metrics, active set, bad data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms

from mlip_autopipe import fit
from mlip_autopipe.errors import FitError

FIT_SETTINGS = {
    "mode": "linear",
    "cutoff": 5.0,
    "functions_per_element": 40,
    "nradmax_by_orders": [12, 4, 3],
    "lmax_by_orders": [0, 3, 2],
    "ridge_alpha": 1e-6,
    "energy_weight": 30.0,
    "test_fraction": 0.25,
}


@pytest.fixture(scope="module")
def emt_data(emt_cuni_images: list[Atoms]) -> list[Atoms]:
    return emt_cuni_images


@pytest.fixture(scope="module")
def fitted(emt_data: list[Atoms], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("fit")
    train, test = fit.split_train_test(emt_data, FIT_SETTINGS["test_fraction"])
    references = fit.reference_energies(train, ["Cu", "Ni"])
    basis = fit.fit_linear(train, ["Cu", "Ni"], FIT_SETTINGS, references)
    yaml_path, yace_path = folder / "potential.yaml", folder / "potential.yace"
    fit.save_potential(basis, yaml_path, yace_path, references)
    dataset = folder / "training.pckl.gzip"
    fit.to_dataframe(train, references).to_pickle(dataset, compression="gzip")
    asi = fit.compute_active_set(yaml_path, dataset, folder / "activeset.log")
    return {
        "train": train,
        "test": test,
        "references": references,
        "yaml": yaml_path,
        "yace": yace_path,
        "asi": asi,
    }


def test_split_is_stable_as_the_set_grows(emt_data: list[Atoms]) -> None:
    _, test_small = fit.split_train_test(emt_data[:10], 0.25)
    _, test_large = fit.split_train_test(emt_data, 0.25)
    assert {a.info["uid"] for a in test_small} <= {a.info["uid"] for a in test_large}
    assert 0 < len(test_large) < len(emt_data)


def test_linear_fit_is_accurate_and_metrics_are_honest(fitted: dict[str, Any]) -> None:
    from pyace import PyACECalculator

    metrics = fit.evaluate(fitted["yaml"], fitted["test"], fitted["references"])
    # recompute independently from the saved potential
    calculator = PyACECalculator(str(fitted["yaml"]))
    energy_errors, force_errors = [], []
    for atoms in fitted["test"]:
        work = atoms.copy()
        work.calc = calculator
        reference = atoms.get_potential_energy() - sum(
            fitted["references"][s] for s in atoms.get_chemical_symbols()
        )
        energy_errors.append((work.get_potential_energy() - reference) / len(atoms))
        force_errors.append(work.get_forces() - atoms.get_forces())
    assert metrics["energy_rmse_mev_per_atom"] == pytest.approx(
        1000 * np.sqrt(np.mean(np.square(energy_errors))), rel=1e-9
    )
    assert metrics["force_rmse_ev_per_a"] == pytest.approx(
        np.sqrt(np.mean(np.square(np.concatenate(force_errors)))), rel=1e-9
    )
    # EMT Cu-Ni is easy: a 40-function linear ACE gets within tens of meV/A
    assert metrics["force_rmse_ev_per_a"] < 0.1
    assert metrics["energy_rmse_mev_per_atom"] < 20


def test_yace_gives_total_energies_and_yaml_records_the_references(fitted: dict[str, Any]) -> None:
    from pyace import PyACECalculator

    references = fitted["references"]
    assert fit.stored_reference_energies(fitted["yaml"]) == pytest.approx(references, abs=1e-12)
    for atoms in fitted["train"][:2]:
        work = atoms.copy()
        work.calc = PyACECalculator(str(fitted["yaml"]))
        corrected, forces = work.get_potential_energy(), work.get_forces()
        work.calc = PyACECalculator(str(fitted["yace"]))
        total = corrected + sum(references[symbol] for symbol in atoms.get_chemical_symbols())
        assert work.get_potential_energy() == pytest.approx(total, abs=1e-8)
        assert np.allclose(work.get_forces(), forces, atol=1e-10)


def test_an_interrupted_save_leaves_no_partial_potential(
    fitted: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyace import ACECTildeBasisSet

    basis = fit.load_basis(fitted["yaml"])
    yaml_path, yace_path = tmp_path / "potential.yaml", tmp_path / "potential.yace"
    original = ACECTildeBasisSet.save_yaml

    def save_half_then_die(self: Any, path: str) -> None:
        original(self, path)
        Path(path).write_text(Path(path).read_text()[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(ACECTildeBasisSet, "save_yaml", save_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit.save_potential(basis, yaml_path, yace_path, fitted["references"])
    # the .yaml was complete and is in place; nothing of the .yace, not even a temporary file
    assert sorted(path.name for path in tmp_path.iterdir()) == ["potential.yaml"]
    assert fit.stored_reference_energies(yaml_path) == pytest.approx(fitted["references"])


def test_active_set_marks_training_data_as_interpolation(fitted: dict[str, Any]) -> None:
    from mlip_autopipe.explore import load_calculator

    calculator = load_calculator(fitted["yaml"], fitted["asi"])
    gammas = []
    for atoms in fitted["train"]:
        work = atoms.copy()
        work.calc = calculator
        work.get_potential_energy()
        gammas.append(calculator.results["gamma"])
    gamma = np.concatenate(gammas)
    # MaxVol (tolerance 1.01) leaves training environments at gamma ~<= 1; the active-set
    # members themselves are exactly 1.
    assert np.median(gamma) < 1.0
    assert gamma.max() < 1.2
    assert np.isclose(gamma, 1.0).sum() > 0


def test_bad_training_data_is_rejected_before_fitting(emt_data: list[Atoms]) -> None:
    with pytest.raises(FitError, match="empty"):
        fit.check_training_set([], ["Cu", "Ni"])
    with pytest.raises(FitError, match="Ni"):
        fit.check_training_set(emt_data[:2], ["Cu"])
    broken = emt_data[0].copy()
    forces = emt_data[0].get_forces().copy()
    forces[0, 0] = np.nan
    from mlip_autopipe.data import attach_labels

    broken = attach_labels(broken, energy=emt_data[0].get_potential_energy(), forces=forces)
    broken.info["uid"] = "deadbeefdeadbeef"
    with pytest.raises(FitError, match="deadbeefdeadbeef.*NaN"):
        fit.check_training_set([broken], ["Cu", "Ni"])


def testpacemaker_tool_lookup_names_a_missing_tool() -> None:
    with pytest.raises(FitError, match="no_such_pace_tool"):
        fit.pacemaker_tool("no_such_pace_tool")


def test_active_set_failure_is_a_fit_error(tmp_path: Path, fitted: dict[str, Any]) -> None:
    empty = tmp_path / "empty.pckl.gzip"
    empty.write_bytes(b"not a pickle")
    target = tmp_path / "potential.yaml"
    target.write_text(fitted["yaml"].read_text())
    with pytest.raises(FitError, match="pace_activeset failed"):
        fit.compute_active_set(target, empty, tmp_path / "log")


def test_training_set_without_any_weight_is_rejected(emt_data: list[Atoms]) -> None:
    unweighted = [atoms.copy() for atoms in emt_data[:2]]
    for copy, atoms in zip(unweighted, emt_data[:2], strict=True):
        copy.calc = atoms.calc
        copy.info["energy_weight"] = 0.0
    with pytest.raises(FitError, match="energy_weight"):
        fit.check_training_set(unweighted, ["Cu", "Ni"])
    for copy in unweighted:
        copy.info["energy_weight"] = 1.0
        copy.arrays["force_weight"] = np.zeros(len(copy))
    with pytest.raises(FitError, match="force_weight"):
        fit.check_training_set(unweighted, ["Cu", "Ni"])


def test_linear_fit_ignores_garbage_on_masked_atoms(emt_data: list[Atoms]) -> None:
    """Garbage labels on masked atoms leave the fit as it is; unmasked, they wreck it."""
    from pyace import PyACECalculator

    from mlip_autopipe.data import attach_labels

    train, test = fit.split_train_test(emt_data, FIT_SETTINGS["test_fraction"])
    references = fit.reference_energies(train, ["Cu", "Ni"])
    source = train[0]
    forces = source.get_forces().copy()
    forces[4:] = np.random.default_rng(0).normal(scale=20.0, size=forces[4:].shape)
    garbage = attach_labels(source.copy(), energy=source.get_potential_energy() + 50.0, forces=forces)
    garbage.info["uid"] = "0123456789abcdef"

    def test_forces(extra: list[Atoms]) -> np.ndarray:
        basis = fit.fit_linear([*train, *extra], ["Cu", "Ni"], FIT_SETTINGS, references)
        calculator = PyACECalculator(basis)
        predicted = []
        for atoms in test:
            work = atoms.copy()
            work.calc = calculator
            predicted.append(work.get_forces())
        return np.concatenate(predicted)

    truth = np.concatenate([atoms.get_forces() for atoms in test])
    rmse = lambda a, b: float(np.sqrt(np.mean(np.square(a - b))))  # noqa: E731
    left_out = test_forces([])
    masked = garbage.copy()
    masked.calc = garbage.calc
    masked.arrays["force_weight"] = np.where(np.arange(len(masked)) < 4, 1.0, 0.0)
    masked.info["energy_weight"] = 0.0
    assert rmse(test_forces([masked]), left_out) < 0.2 * rmse(left_out, truth)
    assert rmse(test_forces([garbage]), truth) > 3 * rmse(left_out, truth)


def test_too_few_environments_for_the_active_set_is_named(emt_data: list[Atoms], tmp_path: Path) -> None:
    # two 32-atom cells hold fewer atoms of an element than the basis has functions for it
    few = emt_data[:2]
    settings = dict(FIT_SETTINGS, test_fraction=0.0)
    references = fit.reference_energies(few, ["Cu", "Ni"])
    basis = fit.fit_linear(few, ["Cu", "Ni"], settings, references)
    fit.save_potential(basis, tmp_path / "potential.yaml", tmp_path / "potential.yace", references)
    fit.to_dataframe(few, references).to_pickle(tmp_path / "data.pckl.gzip", compression="gzip")
    with pytest.raises(FitError, match="environments as functions") as raised:
        fit.compute_active_set(tmp_path / "potential.yaml", tmp_path / "data.pckl.gzip", tmp_path / "log")
    assert "fit.functions_per_element" in str(raised.value) and "\n" not in str(raised.value)
