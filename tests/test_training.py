"""The fit recipe of one generation (train_potential): what the fit rule, tests and benchmarks run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from ase import Atoms

from conftest import small_fit_section
from mlip_autopipe import fit, nonlinear_fit
from mlip_autopipe.config import section_defaults
from mlip_autopipe.errors import FitError
from mlip_autopipe.training import FAILURE, WarmStart, train_potential


def test_linear_fit_writes_potential_active_set_and_honest_metrics(
    emt_cuni_images: list[Atoms], tmp_path: Path
) -> None:
    (tmp_path / FAILURE).write_text("{}")  # an earlier failed fit in this folder
    result = train_potential(emt_cuni_images, ["Cu", "Ni"], small_fit_section(test_fraction=0.25), tmp_path)
    assert all(path.is_file() for path in (result.yaml, result.yace, result.asi))
    assert not (tmp_path / FAILURE).exists()
    assert json.loads((tmp_path / "metrics.json").read_text()) == result.metrics
    train, test = fit.split_train_test(emt_cuni_images, 0.25)
    assert test and [a.info["uid"] for a in result.test] == [a.info["uid"] for a in test]
    assert result.metrics["train"]["n_structures"] == len(train)
    assert result.metrics["test"]["n_structures"] == len(test)
    assert result.references == pytest.approx(fit.reference_energies(train, ["Cu", "Ni"]))
    assert result.metrics["test"]["force_rmse_ev_per_a"] < 0.2


def test_a_warm_start_keeps_the_previous_reference_energies(
    emt_cuni_images: list[Atoms], tmp_path: Path
) -> None:
    first = train_potential(emt_cuni_images, ["Cu", "Ni"], small_fit_section(), tmp_path / "gen_000")
    shifted = {element: value + 0.5 for element, value in first.references.items()}
    metrics = tmp_path / "gen_000" / "metrics.json"
    metrics.write_text(json.dumps({**first.metrics, "reference_energies_ev": shifted}))
    warm = WarmStart.from_fit(first.yaml, metrics)
    second = train_potential(
        emt_cuni_images, ["Cu", "Ni"], small_fit_section(), tmp_path / "gen_001", warm_start=warm
    )
    assert second.references == shifted and second.metrics["reference_energies_ev"] == shifted


def test_distillation_adds_the_surrogate_pool_to_the_fit_not_to_the_metrics(
    emt_cuni_images: list[Atoms], tmp_path: Path
) -> None:
    oracle, pool = emt_cuni_images[:12], emt_cuni_images[12:]
    distillation = section_defaults("surrogate")["distillation"]
    result = train_potential(
        oracle, ["Cu", "Ni"], small_fit_section(), tmp_path, surrogate_pool=pool, distillation=distillation
    )
    frame = pd.read_pickle(tmp_path / "training.pckl.gzip", compression="gzip")
    assert len(frame) == len(oracle) + len(pool)
    weights = sorted([distillation["surrogate_weight"], distillation["oracle_weight"]])
    assert sorted(set(np.round(frame["w_energy"], 6))) == pytest.approx(weights)
    assert result.metrics["train"]["n_structures"] == len(oracle)


def test_a_failed_nonlinear_fit_is_ledgered_and_raised(
    emt_cuni_images: list[Atoms], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nonlinear_fit, "pacemaker_tool", lambda name: "false")  # exits 1 at once
    settings = section_defaults("fit", {"mode": "nonlinear", "functions_per_element": 8, "maxiter": 2})
    with pytest.raises(FitError, match="pacemaker failed"):
        train_potential(emt_cuni_images, ["Cu", "Ni"], settings, tmp_path, generation=4)
    record = json.loads((tmp_path / FAILURE).read_text())
    assert record["generation"] == 4 and record["category"] == "fit_failed"
    assert not (tmp_path / "potential.yaml").exists()


def test_active_set_coverage_says_when_gamma_cannot_tell_new_from_known(
    emt_cuni_images: list[Atoms], tmp_path: Path
) -> None:
    """metrics.json's active_set: environments per basis function, and whether gamma can be
    informative. Checked against pyace's own gamma on the training data: the square MaxVol
    active set holds one environment per function, so a basis near the data's size puts most
    training environments at gamma 1 (in the active set) and leaves no room to tell known from new."""
    from pyace import PyACECalculator

    def fraction_in_active_set(result: Any) -> float:
        calculator = PyACECalculator(str(result.yaml))
        calculator.set_active_set(str(result.asi))
        gammas = []
        for atoms in result.train:
            work = atoms.copy()
            work.calc = calculator
            work.get_potential_energy()
            gammas.append(calculator.results["gamma"])
        values = np.concatenate(gammas)
        return float(np.mean(np.abs(values - 1.0) < 1e-3))

    environments = min(
        sum(symbol == element for atoms in emt_cuni_images for symbol in atoms.get_chemical_symbols())
        for element in ("Cu", "Ni")
    )
    small = train_potential(
        emt_cuni_images, ["Cu", "Ni"], small_fit_section(functions_per_element=20), tmp_path / "s"
    )
    large = train_potential(
        emt_cuni_images,
        ["Cu", "Ni"],
        small_fit_section(functions_per_element=environments * 2 // 3, nradmax_by_orders=[15, 6, 4]),
        tmp_path / "l",
    )
    for result in (small, large):
        coverage = result.metrics["active_set"]
        assert coverage == json.loads((result.folder / "metrics.json").read_text())["active_set"]
        for element in ("Cu", "Ni"):
            row = coverage["per_element"][element]
            assert row["environments"] == sum(
                symbol == element for atoms in result.train for symbol in atoms.get_chemical_symbols()
            )
    assert small.metrics["active_set"]["gamma_informative"]
    assert small.metrics["active_set"]["lowest_environments_per_function"] >= 3
    assert not large.metrics["active_set"]["gamma_informative"]
    # measured: the large basis puts far more of the training data in the active set
    assert fraction_in_active_set(large) > 1 / 3 > fraction_in_active_set(small)


def test_environments_per_function_sizes_the_loop_basis_for_gamma_and_not_the_production_fit(
    emt_cuni_images: list[Atoms], tmp_path: Path
) -> None:
    """fit.environments_per_function caps a loop fit's basis at the scarcest element's atoms over
    the ratio (the real basis has that many functions and gamma becomes informative), lets it grow
    with the data up to fit.functions_per_element, and never reaches the production fit."""
    from mlip_autopipe.production import production_fit_settings

    scarcest = min(
        sum(symbol == element for atoms in emt_cuni_images for symbol in atoms.get_chemical_symbols())
        for element in ("Cu", "Ni")
    )
    ceiling = scarcest * 2 // 3  # gamma weakly informative at this size (test above)
    settings = small_fit_section(
        functions_per_element=ceiling, nradmax_by_orders=[15, 6, 4], environments_per_function=3.0
    )
    capped = train_potential(emt_cuni_images, ["Cu", "Ni"], settings, tmp_path / "capped")
    assert capped.metrics["functions_per_element"] == scarcest // 3 < ceiling
    coverage = capped.metrics["active_set"]
    assert {row["functions"] for row in coverage["per_element"].values()} == {scarcest // 3}
    assert coverage["gamma_informative"]
    # half the data: half the basis; a ratio the data allows more than the ceiling: the ceiling
    half = emt_cuni_images[: len(emt_cuni_images) // 2]
    assert fit.data_sized_functions_per_element(half, ["Cu", "Ni"], settings) < scarcest // 3
    assert (
        fit.data_sized_functions_per_element(
            emt_cuni_images, ["Cu", "Ni"], {**settings, "environments_per_function": 0.5}
        )
        == ceiling
    )
    assert (
        fit.data_sized_functions_per_element(
            emt_cuni_images, ["Cu", "Ni"], {**settings, "environments_per_function": None}
        )
        == ceiling
    )
    # production: the configured basis, capped only where the active set could not exist (one
    # environment per function); a basis larger than the scarcest element's atoms still ships
    # with an active set (pace_activeset failed on it before)
    production = production_fit_settings(settings, section_defaults("production")["fit"])
    assert production["environments_per_function"] == 1.0
    assert fit.data_sized_functions_per_element(emt_cuni_images, ["Cu", "Ni"], production) == min(
        300, scarcest
    )
    too_big = {**production, "mode": "linear", "functions_per_element": scarcest * 3, "test_fraction": 0.0}
    shipped = train_potential(emt_cuni_images, ["Cu", "Ni"], too_big, tmp_path / "production")
    assert shipped.asi.is_file() and shipped.metrics["functions_per_element"] == scarcest
