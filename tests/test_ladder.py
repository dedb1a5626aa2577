"""production.ladder: pacemaker's hierarchical basis extension, grown while the held-out test error
falls; every step's numbers recorded, the best step shipped."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from ase import Atoms

from conftest import NONLINEAR_FIT_SETTINGS, structures_section
from independent_metrics import recompute_rmse
from mlip_autopipe import fit, nonlinear_fit
from mlip_autopipe.config import check_config, section_defaults
from mlip_autopipe.errors import ConfigError, FitError
from mlip_autopipe.ladder import held_out_error, ladder_decision, pacemaker_ladder_step
from mlip_autopipe.production import train_production
from mlip_autopipe.training import FAILURE, FitResult

ELEMENTS = ["Cu", "Ni"]
#: A small nonlinear basis of 16 functions per element, grown by 4 functions per basis block
#: (8 per element: a Cu-Ni basis has 4 blocks), so at most 2 steps. pacemaker's iterations are
#: cheap here (~0.15 s); each step's cost is TensorFlow's start-up and graph build (~40 s).
#: Every step runs maxiter iterations (not the loop's warm_start_maxiter, though it starts warm).
FIT = {**NONLINEAR_FIT_SETTINGS, "functions_per_element": 16, "maxiter": 60, "warm_start_maxiter": 5}
LADDER = {"enabled": True, "ladder_step": 4}


@pytest.fixture(scope="module")
def small_cells() -> list[Atoms]:
    """36 EMT-labelled 8-atom fcc Cu-Ni cells (two compositions, strained and rattled)."""
    from mlip_autopipe.labelling import label_candidate
    from mlip_autopipe.oracles import EMTOracle
    from mlip_autopipe.structures import build_pool

    structures = structures_section(
        lattice="fcc",
        supercell=[2, 1, 1],
        compositions=[{"Cu": 0.5, "Ni": 0.5}, {"Cu": 0.75, "Ni": 0.25}],
        cells_per_composition=3,
        strains=[-0.02, 0.02],
        rattle_amplitudes=[0.05, 0.1, 0.15],
    )
    return [label_candidate(atoms, EMTOracle()) for atoms in build_pool(structures, seed=11)]


@pytest.fixture(scope="module")
def laddered(small_cells: list[Atoms], tmp_path_factory: pytest.TempPathFactory) -> FitResult:
    settings = section_defaults("fit", FIT)
    ladder = section_defaults("production", {"ladder": LADDER})["ladder"]
    return train_production(
        small_cells, ELEMENTS, settings, tmp_path_factory.mktemp("ladder"), threads=2, ladder=ladder
    )


@pytest.mark.slow
def test_the_basis_grows_step_by_step_and_the_best_step_is_shipped(laddered: FitResult) -> None:
    from pyace import BBasisConfiguration

    record = laddered.metrics["ladder"]
    steps = record["steps"]
    functions = [step["functions"] for step in steps]
    print(
        "ladder: "
        + "; ".join(
            f"{step['functions']} functions: test {step['test']['energy_rmse_mev_per_atom']:.2f} meV/atom, "
            f"{step['test']['force_rmse_ev_per_a']:.4f} eV/A "
            f"(train {step['train']['force_rmse_ev_per_a']:.4f})"
            for step in steps
        )
        + f"; chose step {record['chosen_step']}: {record['stopped_because']}"
    )
    assert len(steps) >= 2 and functions == sorted(set(functions))  # grew at every step
    for step in steps:  # the recorded size is the saved potential's
        basis = BBasisConfiguration(str(laddered.folder / step["potential"]))
        assert basis.total_number_of_functions == step["functions"]
        assert sum(step["functions_per_element"].values()) == step["functions"]
    assert functions[-1] <= FIT["functions_per_element"] * len(ELEMENTS)
    errors = [step["test_error"] for step in steps]
    assert record["chosen_step"] == errors.index(min(errors))
    chosen = steps[record["chosen_step"]]
    # the shipped potential is the chosen step's: the same test metrics from the final files
    assert laddered.metrics["test"] == pytest.approx(chosen["test"])
    assert record["chosen_functions"] == chosen["functions"]
    # why it stopped is true of the steps
    if record["stopped_because"].startswith("the test error stopped falling"):
        assert errors[-1] >= min(errors[:-1])
    else:
        assert record["stopped_because"].startswith("the basis is complete")
        assert errors == sorted(errors, reverse=True)
        assert functions[-1] == FIT["functions_per_element"] * len(ELEMENTS)
    assert json.loads((laddered.folder / "metrics.json").read_text())["ladder"] == record


@pytest.mark.slow
def test_every_steps_metrics_are_honest(laddered: FitResult) -> None:
    references = laddered.references
    for step in laddered.metrics["ladder"]["steps"]:
        potential = laddered.folder / step["potential"]
        for split, images in (("train", laddered.train), ("test", laddered.test)):
            energy, forces = recompute_rmse(potential, images, references)
            assert step[split]["n_structures"] == len(images) > 0
            assert step[split]["energy_rmse_mev_per_atom"] == pytest.approx(energy, rel=1e-9)
            assert step[split]["force_rmse_ev_per_a"] == pytest.approx(forces, rel=1e-9)
        kappa = FIT["loss_kappa"]
        expected = (1 - kappa) * (step["test"]["energy_rmse_mev_per_atom"] / 1000) ** 2 + kappa * step[
            "test"
        ]["force_rmse_ev_per_a"] ** 2
        assert step["test_error"] == pytest.approx(expected, rel=1e-12)
        assert step["iterations"] == FIT["maxiter"]
    # the held-out structures are the fit's own split, never trained on
    _, test = fit.split_train_test(laddered.train + laddered.test, FIT["test_fraction"])
    assert {atoms.info["uid"] for atoms in test} == {atoms.info["uid"] for atoms in laddered.test}


def test_a_failed_ladder_step_is_ledgered_and_raised(
    small_cells: list[Atoms], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nonlinear_fit, "pacemaker_tool", lambda name: "false")  # exits 1 at once
    settings = section_defaults("fit", FIT)
    ladder = section_defaults("production", {"ladder": LADDER})["ladder"]
    with pytest.raises(FitError, match="pacemaker failed"):
        train_production(small_cells, ELEMENTS, settings, tmp_path, ladder=ladder)
    record = json.loads((tmp_path / FAILURE).read_text())
    assert record["category"] == "fit_failed" and "pacemaker failed" in record["message"]
    assert (tmp_path / "ladder" / "step_00" / "extended_basis.yaml").is_file()
    assert not (tmp_path / "potential.yaml").exists()


def test_held_out_error_weighs_energy_and_forces_like_the_loss() -> None:
    metrics = {"energy_rmse_mev_per_atom": 2.0, "force_rmse_ev_per_a": 0.1}
    assert held_out_error(metrics, 0.3) == pytest.approx(0.7 * 0.002**2 + 0.3 * 0.01)
    assert held_out_error(
        {"energy_rmse_mev_per_atom": None, "force_rmse_ev_per_a": 0.1}, 1.0
    ) == pytest.approx(0.01)


def steps_with(errors: list[float]) -> list[dict[str, Any]]:
    return [{"test_error": error, "functions": 10 * (index + 1)} for index, error in enumerate(errors)]


def test_the_ladder_stops_when_the_test_error_stops_falling() -> None:
    assert ladder_decision(steps_with([3.0]), 1, 0.0) == (0, None)
    assert ladder_decision(steps_with([3.0, 2.0, 1.5]), 1, 0.0) == (2, None)
    best, reason = ladder_decision(steps_with([3.0, 2.0, 2.5]), 1, 0.0)
    assert best == 1 and reason is not None
    assert "stopped falling" in reason and "step 1's (2, 20 functions)" in reason and "up to step 2" in reason
    # patience 2: one worse step is forgiven, and a later fall counts
    assert ladder_decision(steps_with([3.0, 2.0, 2.5]), 2, 0.0) == (1, None)
    assert ladder_decision(steps_with([3.0, 2.0, 2.5, 1.0]), 2, 0.0) == (3, None)
    assert ladder_decision(steps_with([3.0, 2.0, 2.5, 2.1]), 2, 0.0)[0] == 1
    assert ladder_decision(steps_with([3.0, 2.0, 2.5, 2.1]), 2, 0.0)[1] is not None
    # a fall smaller than min_relative_improvement is no fall: 2.9 is not 10 % below 3.0
    best, reason = ladder_decision(steps_with([3.0, 2.9]), 1, 0.1)
    assert best == 0 and reason is not None
    assert ladder_decision(steps_with([3.0, 2.6]), 1, 0.1) == (1, None)


def test_ladder_step_keeps_pacemakers_integer_and_fraction_types() -> None:
    assert pacemaker_ladder_step(4.0) == 4 and isinstance(pacemaker_ladder_step(4.0), int)
    assert pacemaker_ladder_step([10.0, 0.2]) == [10, 0.2]
    assert isinstance(pacemaker_ladder_step(0.25), float)


@pytest.mark.parametrize(
    ("production", "key"),
    [
        ({"ladder": {"enabled": True}}, "production.ladder.enabled"),
        (
            {"enabled": True, "ladder": {"enabled": True}, "fit": {"mode": "linear"}},
            "production.ladder.enabled",
        ),
        (
            {"enabled": True, "ladder": {"enabled": True}, "fit": {"test_fraction": 0.0}},
            "production.fit.test_fraction",
        ),
        (
            {"enabled": True, "ladder": {"enabled": True, "ladder_step": 300}},
            "production.ladder.ladder_step",
        ),
        (
            {
                "enabled": True,
                "ladder": {"enabled": True, "ladder_step": [40, 0.1]},
                "fit": {"functions_per_element": 40},
            },
            "production.ladder.ladder_step",
        ),
    ],
)
def test_unusable_ladder_settings_are_one_line_config_errors(
    emt_config: dict[str, Any], production: dict[str, Any], key: str
) -> None:
    config = copy.deepcopy(emt_config)
    config["production"] = section_defaults("production", production)
    with pytest.raises(ConfigError) as raised:
        check_config(config)
    assert raised.value.key == key and "\n" not in str(raised.value)


@pytest.mark.parametrize("step", [0, 1.5, [0.2, 10], [10], "fast", -0.5])
def test_a_ladder_step_pacemaker_cannot_read_is_a_schema_error(step: Any) -> None:
    with pytest.raises(ConfigError) as raised:
        section_defaults("production", {"ladder": {"enabled": True, "ladder_step": step}})
    assert raised.value.key == "production.ladder.ladder_step"


def test_the_ladder_is_off_by_default_and_a_valid_one_passes(emt_config: dict[str, Any]) -> None:
    assert emt_config["production"]["ladder"]["enabled"] is False
    config = copy.deepcopy(emt_config)
    config["production"] = section_defaults(
        "production", {"enabled": True, "ladder": {"enabled": True, "ladder_step": [10, 0.2]}}
    )
    check_config(config)
