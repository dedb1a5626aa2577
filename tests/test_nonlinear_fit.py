"""Nonlinear ACE fits through the real pacemaker command (TensorFlow backend) on EMT Cu-Ni.

Each fit is tiny (about 14 functions per element, tens of BFGS iterations): the tests check the
plumbing (honest metrics, force masks, ZBL core, warm start), not the accuracy of a production fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms

from conftest import NONLINEAR_FIT_SETTINGS
from independent_metrics import recompute_rmse
from mlip_autopipe import fit, nonlinear_fit
from mlip_autopipe.errors import FitError

ELEMENTS = ["Cu", "Ni"]
SETTINGS: dict[str, Any] = dict(NONLINEAR_FIT_SETTINGS)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(emt_cuni_images: list[Atoms]) -> dict[str, Any]:
    images = emt_cuni_images
    train, test = fit.split_train_test(images, SETTINGS["test_fraction"])
    return {"train": train, "test": test, "references": fit.reference_energies(train, ELEMENTS)}


def run_fit(
    workdir: Path, train: list[Atoms], references: dict[str, float], initial: Path | None = None
) -> dict[str, Any]:
    output = nonlinear_fit.fit_nonlinear(
        train, ELEMENTS, SETTINGS, references, workdir, threads=2, initial_potential=initial
    )
    yaml_path, yace_path = workdir / "potential.yaml", workdir / "potential.yace"
    fit.save_potential(fit.load_basis(output), yaml_path, yace_path, references)
    return {"yaml": yaml_path, "yace": yace_path, "history": nonlinear_fit.read_loss_history(workdir)}


@pytest.fixture(scope="module")
def cold(data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_fit(tmp_path_factory.mktemp("cold"), data["train"], data["references"])


def test_input_yaml_carries_the_config(tmp_path: Path) -> None:
    settings = nonlinear_fit.pacemaker_input(ELEMENTS, SETTINGS, "data.pckl.gzip", 7, "previous.yaml")
    assert settings["fit"]["maxiter"] == 7 and settings["fit"]["repulsion"] == "auto"
    assert settings["fit"]["loss"] == {"kappa": 0.3, "L1_coeffs": 1e-8, "L2_coeffs": 1e-8}
    assert settings["fit"]["weighting"]["type"] == "ExternalWeightingPolicy"
    assert settings["potential"] == "previous.yaml"
    cold = nonlinear_fit.pacemaker_input(ELEMENTS, SETTINGS, "data.pckl.gzip", 7)
    assert cold["potential"]["embeddings"]["ALL"]["ndensity"] == 2
    assert settings["backend"] == {"evaluator": "tensorpot", "batch_size": 100, "display_step": 10}
    explicit = nonlinear_fit.pacemaker_input(ELEMENTS, {**SETTINGS, "repulsion": 1.2}, "d", 7)
    assert "repulsion" not in explicit["fit"]
    assert explicit["potential"]["bonds"]["ALL"]["r_in"] == 1.2
    assert explicit["potential"]["bonds"]["ALL"]["inner_cutoff_type"] == "zbl"
    none = nonlinear_fit.pacemaker_input(ELEMENTS, {**SETTINGS, "repulsion": "none"}, "d", 7)
    assert "repulsion" not in none["fit"] and "r_in" not in none["potential"]["bonds"]["ALL"]


def test_nonlinear_fit_learns_and_its_metrics_are_honest(data: dict[str, Any], cold: dict[str, Any]) -> None:
    history = cold["history"]
    assert history[0][0] == 0 and history[-1][0] == SETTINGS["maxiter"]
    assert history[-1][1] < 0.05 * history[0][1]
    for images in (data["train"], data["test"]):
        metrics = fit.evaluate(cold["yaml"], images, data["references"])
        energy, forces = recompute_rmse(cold["yaml"], images, data["references"])
        assert metrics["energy_rmse_mev_per_atom"] == pytest.approx(energy, rel=1e-9)
        assert metrics["force_rmse_ev_per_a"] == pytest.approx(forces, rel=1e-9)
    # a 60-iteration, 30-function fit: far from converged, far better than zero (forces ~1 eV/A)
    assert fit.evaluate(cold["yaml"], data["test"], data["references"])["force_rmse_ev_per_a"] < 0.3


def test_nonlinear_potential_has_a_zbl_core_and_yace_adds_the_references(
    data: dict[str, Any], cold: dict[str, Any]
) -> None:
    from pyace import PyACECalculator

    assert "inner_cutoff_type: zbl" in cold["yaml"].read_text()
    atoms = data["train"][0].copy()
    atoms.calc = PyACECalculator(str(cold["yaml"]))
    from_yaml = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = PyACECalculator(str(cold["yace"]))
    # the .yace adds the reference energies (its E0); the .yaml records them (pacemaker's metadata)
    total = from_yaml[0] + sum(data["references"][symbol] for symbol in atoms.get_chemical_symbols())
    assert atoms.get_potential_energy() == pytest.approx(total, abs=1e-6)
    assert fit.stored_reference_energies(cold["yaml"]) == pytest.approx(data["references"], abs=1e-12)
    assert np.allclose(atoms.get_forces(), from_yaml[1], atol=1e-6)
    # the core repels: two atoms pushed to 1 A apart gain energy steeply
    dimer = Atoms("CuNi", positions=[[0, 0, 0], [0, 0, 1.0]], cell=[20, 20, 20], pbc=False)
    dimer.calc = PyACECalculator(str(cold["yaml"]))
    close = dimer.get_potential_energy()
    dimer.positions[1, 2] = 1.6
    assert close - dimer.get_potential_energy() > 5.0


def embedded_like(atoms: Atoms, garbage: bool) -> Atoms:
    """A copy of ``atoms`` shaped like an embedded cell: 4 core atoms weighted, energy unweighted;
    with ``garbage``, the 28 masked atoms carry 20 eV/A random forces and the energy is off by 50 eV."""
    from mlip_autopipe.data import attach_labels

    forces = atoms.get_forces().copy()
    energy = atoms.get_potential_energy()
    if garbage:
        forces[4:] = np.random.default_rng(0).normal(scale=20.0, size=forces[4:].shape)
        energy += 50.0
    copy = attach_labels(atoms.copy(), energy=energy, forces=forces)
    copy.arrays["force_weight"] = np.where(np.arange(len(atoms)) < 4, 1.0, 0.0)
    copy.info.update(uid="0123456789abcdef", energy_weight=0.0)
    return copy


def test_masked_garbage_forces_do_not_change_the_fit(
    data: dict[str, Any], cold: dict[str, Any], tmp_path: Path
) -> None:
    train, test, references = data["train"], data["test"], data["references"]
    fits = {
        garbage: run_fit(tmp_path / str(garbage), [*train, embedded_like(train[0], garbage)], references)
        for garbage in (True, False)
    }
    with_garbage = fit.predict(fits[True]["yaml"], test, references)["forces"]
    with_truth = fit.predict(fits[False]["yaml"], test, references)["forces"]
    left_out = fit.predict(cold["yaml"], test, references)["forces"]
    # the masked labels do not enter the loss at all: same fit, garbage or not (pacemaker is
    # deterministic for a given input)
    assert fits[True]["history"] == fits[False]["history"]
    assert np.allclose(with_garbage[1], with_truth[1], atol=1e-8)
    # compared with leaving the structure out, only its 4 weighted atoms add information: the
    # short fit moves by less than its own error and does not get worse
    rmse = lambda a, b: float(np.sqrt(np.mean(np.square(a - b))))  # noqa: E731
    error_left_out = rmse(left_out[1], left_out[0])
    assert rmse(with_garbage[1], left_out[1]) < 0.5 * error_left_out
    assert rmse(with_garbage[1], with_garbage[0]) < 1.1 * error_left_out


def test_warm_start_reaches_the_cold_loss_in_fewer_iterations(
    data: dict[str, Any], cold: dict[str, Any], tmp_path: Path
) -> None:
    # generation g-1 saw every other structure; generation g fits all of them
    train = data["train"]
    previous = run_fit(tmp_path / "previous", train[::2], data["references"])
    warm = run_fit(tmp_path / "warm", train, data["references"], initial=previous["yaml"])
    cold_final = cold["history"][-1][1]
    reached = [iteration for iteration, loss in warm["history"] if loss <= cold_final]
    assert reached, (warm["history"][-1], cold_final)
    assert reached[0] < SETTINGS["maxiter"], (reached[0], SETTINGS["maxiter"])
    assert warm["history"][0][1] < 0.1 * cold["history"][0][1]
    assert warm["history"][-1][1] < cold_final


def test_missing_warm_start_potential_is_a_fit_error(data: dict[str, Any], tmp_path: Path) -> None:
    missing = tmp_path / "no_such_potential.yaml"
    with pytest.raises(FitError, match="no_such_potential.yaml not found"):
        nonlinear_fit.fit_nonlinear(
            data["train"][:3], ELEMENTS, SETTINGS, data["references"], tmp_path, initial_potential=missing
        )
