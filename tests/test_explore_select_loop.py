"""Exploration (gamma watch, halting), selection and the per-generation decision."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ase import Atoms

from conftest import EXPLORE_SETTINGS
from mlip_autopipe.data import tag_structure
from mlip_autopipe.explore import choose_starts, explore_ase, load_calculator, run_langevin
from mlip_autopipe.loop import decide
from mlip_autopipe.select import select_by_gamma

EXPLORE = EXPLORE_SETTINGS


@pytest.fixture
def potential(small_potential: dict[str, Any]) -> dict[str, Any]:
    """The shared small-data potential: MD leaves its training domain quickly."""
    return small_potential


def test_run_halts_at_the_first_check_above_gamma_hi(potential: dict[str, Any]) -> None:
    calculator = load_calculator(potential["yaml"], potential["asi"])
    settings = dict(EXPLORE, steps=2000, gamma_hi=1.5, gamma_lo=1.1, temperatures=[2000])
    frames, summary = run_langevin(
        potential["pool"][0],
        calculator,
        run="hot",
        temperature=2000,
        explore=settings,
        seed=1,
        generation=0,
    )
    assert summary.halted and summary.status == "halted"
    assert summary.halt_step == summary.steps_done == summary.checks * settings["check_interval"]
    assert summary.steps_done < settings["steps"]
    gammas = [frame.info["max_gamma"] for frame in frames]
    # only the last kept frame is past gamma_hi: the run stopped at the first such check
    assert gammas[-1] > settings["gamma_hi"]
    assert all(g <= settings["gamma_hi"] for g in gammas[:-1])
    assert all(g > settings["gamma_lo"] for g in gammas)
    assert frames[-1].info["md_step"] == summary.halt_step
    np.testing.assert_allclose(frames[-1].arrays["gamma"].max(), gammas[-1])


def test_exploration_is_reproducible_and_tags_frames(potential: dict[str, Any]) -> None:
    first = explore_ase(potential["pool"], potential["yaml"], potential["asi"], EXPLORE, seed=3, generation=2)
    second = explore_ase(
        potential["pool"], potential["yaml"], potential["asi"], EXPLORE, seed=3, generation=2
    )
    assert [f.info["uid"] for f in first[0]] == [f.info["uid"] for f in second[0]]
    assert first[1] == second[1]
    for frame in first[0]:
        assert frame.info["origin"] == "md" and frame.info["generation"] == 2
        assert frame.info["max_gamma"] > EXPLORE["gamma_lo"]


def test_starts_are_alloy_cells(potential: dict[str, Any]) -> None:
    starts = choose_starts(potential["pool"], 3, seed=0)
    assert len(starts) == 3 and all(s.info["origin"] == "sqs" for s in starts)


def frame(run: str, gamma: float, shift: float) -> Atoms:
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [1.8 + shift, 0, 0]], cell=[5, 5, 5], pbc=True)
    tag_structure(atoms, generation=0, origin="md")
    atoms.info.update(run=run, max_gamma=gamma)
    return atoms


def test_selection_takes_turns_between_runs_and_prefers_trustworthy_frames() -> None:
    frames = [
        frame("a", 4.0, 0.01),
        frame("a", 3.0, 0.02),
        frame("a", 9.0, 0.03),
        frame("b", 2.0, 0.04),
        frame("b", 7.0, 0.05),
    ]
    picked = select_by_gamma(frames, cap=3, gamma_hi=5.0)
    assert [f.info["max_gamma"] for f in picked] == [4.0, 2.0, 3.0]
    everything = select_by_gamma(frames + [frames[0].copy()], cap=10, gamma_hi=5.0)
    assert len(everything) == 5  # the duplicate uid is dropped
    assert [f.info["max_gamma"] for f in everything][-2:] == [7.0, 9.0]


def runs(halted: int, extrapolative: int, checks: int = 100, failed: int = 0) -> list[dict[str, Any]]:
    summaries = []
    for index in range(4):
        summaries.append(
            {
                "checks": checks // 4,
                "extrapolative_checks": extrapolative if index == 0 else 0,
                "halted": index < halted,
                "status": "failed" if index < failed else "completed",
            }
        )
    return summaries


LOOP = {"max_generations": 3, "converged_fraction": 0.05}


@pytest.mark.parametrize(
    ("generation", "run_list", "selected", "reason"),
    [
        (0, runs(halted=2, extrapolative=30), 8, "continue"),
        (0, runs(halted=0, extrapolative=0), 0, "no_extrapolation"),
        (1, runs(halted=0, extrapolative=3), 3, "converged"),
        (1, runs(halted=0, extrapolative=10), 8, "continue"),
        (2, runs(halted=1, extrapolative=10), 8, "max_generations"),
        (1, runs(halted=0, extrapolative=0, failed=4), 0, "no_extrapolation"),
    ],
)
def test_decision(generation: int, run_list: list[dict[str, Any]], selected: int, reason: str) -> None:
    decision = decide(generation, run_list, selected, {"test": {"force_rmse_ev_per_a": 0.01}}, LOOP)
    assert decision["reason"] == reason
    assert decision["continue"] == (reason == "continue")
    assert decision["counts"]["selected"] == selected
    assert decision["why"]
