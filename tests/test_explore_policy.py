"""The exploration policy (scenarios from the chemistry), continuation across generations,
escalation of quiet runs, per-scenario selection and decisions.

The LAMMPS tests run the real LAMMPS of the environment with this project's plugin.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.io import read

from mlip_autopipe.config import load_yaml, validate_schema
from mlip_autopipe.data import read_structures, write_structures
from mlip_autopipe.errors import ConfigError
from mlip_autopipe.explore.lammps import DATA_FILE, DECK_FILE, POTENTIAL_FILE, has_vacuum, read_dump_frames
from mlip_autopipe.explore.policy import (
    escalation,
    estimated_melting_point,
    fresh_start,
    next_level,
    plan_scenarios,
    slab,
    sqs_cells,
)
from mlip_autopipe.explore.runner import explore_run
from mlip_autopipe.loop import decide
from mlip_autopipe.select import select_environments

REPO = Path(__file__).resolve().parent.parent
ALL_SCENARIOS = [
    "bulk",
    "melt_quench",
    "surface",
    "vacancy",
    "interstitial",
    "compression",
    "tension",
    "ordering",
]


def settings(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A validated config (the EMT preset's elements and structures) with ``overrides`` merged."""
    config = load_yaml(REPO / "config" / "emt.yaml")
    config["explore"]["policy"] = {"scenarios": ALL_SCENARIOS}
    for section, values in (overrides or {}).items():
        config.setdefault(section, {}).update(values)
    validate_schema(config, load_yaml(REPO / "config" / "schema.yaml"))
    return config


@pytest.mark.parametrize(
    ("lattice", "composition", "surfaces"),
    [
        ("fcc", {"Cu": 0.5, "Ni": 0.5}, ["surface_100", "surface_110", "surface_111"]),
        ("bcc", {"Mo": 0.5, "W": 0.5}, ["surface_100", "surface_110", "surface_111"]),
        ("hcp", {"Ti": 0.5, "Co": 0.5}, ["surface_001", "surface_100"]),
        ("diamond", {"Si": 0.5, "Sn": 0.5}, ["surface_100", "surface_110", "surface_111"]),
    ],
)
def test_policy_derives_the_scenarios_from_the_lattice_and_the_elements(
    lattice: str, composition: dict[str, float], surfaces: list[str]
) -> None:
    elements = list(composition)
    structures = {"lattice": lattice, "compositions": [composition], "supercell": [2, 2, 2]}
    config = settings()
    runs = {run.run: run for run in plan_scenarios(elements, structures, config["explore"])}
    expected = [
        "bulk",
        "melt_quench",
        *surfaces,
        "vacancy",
        "interstitial",
        "compression",
        "tension",
        "ordering",
    ]
    assert list(runs) == expected
    melting = estimated_melting_point(composition)
    from pymatgen.core import Element

    assert melting == pytest.approx(np.mean([float(Element(el).melting_point) for el in elements]))
    assert runs["bulk"].temperature_start == pytest.approx(0.3 * melting, abs=0.1)
    assert runs["bulk"].temperature_end == pytest.approx(1.3 * melting, abs=0.1)
    assert runs["melt_quench"].temperature_start > melting > runs["melt_quench"].temperature_end
    modulus = np.mean([float(Element(el).bulk_modulus) for el in elements])  # GPa
    assert runs["compression"].pressure_bar == pytest.approx(0.1 * modulus * 1e4, abs=0.1)
    assert runs["tension"].pressure_bar == pytest.approx(-0.05 * modulus * 1e4, abs=0.1)
    assert all(runs[name].pressure_bar is None for name in surfaces)  # slabs: NVT
    assert runs["ordering"].swap_interval > 0 and runs["bulk"].swap_interval == 0


def test_pure_elements_have_no_ordering_and_overrides_win() -> None:
    config = settings()
    config["explore"]["policy"].update(
        melting_point=1000.0, bulk_modulus=100.0, surface_millers=[[1, 1, 1]], tension_fraction=0.02
    )
    structures = {"lattice": "fcc", "compositions": [{"Cu": 1.0}], "supercell": [2, 2, 2]}
    runs = {run.run: run for run in plan_scenarios(["Cu"], structures, config["explore"])}
    assert "ordering" not in runs and [name for name in runs if name.startswith("surface")] == ["surface_111"]
    assert runs["bulk"].temperature_end == pytest.approx(1300.0)
    assert runs["compression"].pressure_bar == pytest.approx(1.0e5)  # 0.1 x 100 GPa
    assert runs["tension"].pressure_bar == pytest.approx(-2.0e4)  # -0.02 x 100 GPa


def test_an_element_without_a_melting_point_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="explore.policy.melting_point"):
        estimated_melting_point({"Og": 1.0})


def test_the_bulk_modulus_is_needed_only_by_the_pressure_scenarios() -> None:
    structures = {"lattice": "diamond", "compositions": [{"Si": 0.5, "Ge": 0.5}], "supercell": [1, 1, 1]}
    config = settings()
    with pytest.raises(ConfigError, match="explore.policy.bulk_modulus"):  # pymatgen has none for Ge
        plan_scenarios(["Si", "Ge"], structures, config["explore"])
    config["explore"]["policy"]["scenarios"] = ["bulk", "vacancy"]
    assert [run.run for run in plan_scenarios(["Si", "Ge"], structures, config["explore"])] == [
        "bulk",
        "vacancy",
    ]


def test_disabled_policy_is_the_fixed_temperature_pressure_plan() -> None:
    config = settings({"explore": {"policy": {"enabled": False}, "pressures": [0.0, 1000.0]}})
    runs = plan_scenarios(config["elements"], config["structures"], config["explore"])
    assert [run.run for run in runs][:3] == ["T800_P0_s0", "T800_P0_s1", "T800_P1000_s0"]
    assert len(runs) == 2 * 2 * 2 and {run.scenario for run in runs} == {"bulk"}


def test_quiet_runs_escalate_and_busy_ones_keep_their_level() -> None:
    rules = settings()["explore"]["policy"]["escalation"]
    quiet = {"status": "completed", "extrapolative_checks": 0, "escalation": 1}
    busy = {"status": "halted", "extrapolative_checks": 4, "escalation": 1}
    assert next_level(None, rules) == 0
    assert next_level(quiet, rules) == 2 and next_level(busy, rules) == 1
    assert next_level(dict(quiet, escalation=rules["max_level"]), rules) == rules["max_level"]  # bounded
    # a completed run with a few extrapolative checks (under quiet_fraction) is quiet too; one
    # with more, or one that halted, keeps its level
    assert rules["quiet_fraction"] == 0.05
    few = {"status": "completed", "checks": 100, "extrapolative_checks": 4, "escalation": 0}
    assert next_level(few, rules) == 1
    assert next_level(dict(few, extrapolative_checks=6), rules) == 0
    assert next_level(dict(few, status="halted"), rules) == 0
    assert next_level(few, {**rules, "quiet_fraction": 0.0}) == 0
    level_two = escalation(2, rules)
    assert level_two.steps_factor == pytest.approx(rules["steps_factor"] ** 2)
    assert level_two.temperature_factor == pytest.approx(rules["temperature_factor"] ** 2)
    assert level_two.bigger_cell and not escalation(1, rules).bigger_cell


@pytest.fixture(scope="module")
def pool(small_potential: dict[str, Any]) -> list[Atoms]:
    return small_potential["pool"]


def test_slabs_have_vacuum_and_bulk_cells_do_not(pool: list[Atoms]) -> None:
    config = settings()
    explore = config["explore"]
    for run in plan_scenarios(config["elements"], config["structures"], explore):
        start = fresh_start(run, pool, explore["policy"], config["elements"], [2, 2, 2], seed=3)
        assert start.info["scenario"] == run.scenario
        assert has_vacuum(start, explore["vacuum_threshold"]) == (run.cell == "surface"), run.run
        if run.cell == "vacancy":
            assert len(start) == len(pool[0]) - 1
        if run.cell == "interstitial":
            assert len(start) == len(pool[0]) + 1


@pytest.mark.parametrize("a", [3.5875, 3.5575, 3.5225, 3.61])
@pytest.mark.parametrize(("miller", "surface_coordination"), [((1, 1, 1), 9), ((1, 0, 0), 8), ((1, 1, 0), 7)])
def test_slabs_are_whole_planes_for_every_lattice_constant(
    a: float, miller: tuple[int, int, int], surface_coordination: int
) -> None:
    """A low-index slab of a 2x2x2 fcc supercell ends in complete planes: every atom has at least
    the ideal surface's coordination (12 in the bulk). ase.build.surface alone lifted atoms of the
    bottom plane to the top for a = 3.5875, 3.5575 and 3.5225 A (rounding at fractional height 1),
    leaving 1- and 2-coordinated adatoms in the (111) slab of a Cu0.75Ni0.25 SQS cell."""
    from ase.build import bulk
    from ase.neighborlist import neighbor_list

    cell = bulk("Cu", "fcc", a=a, cubic=True).repeat(2)
    built = slab(cell, miller, [2, 2, 2], thickness=8.0, vacuum=12.0)
    first_shell = a / np.sqrt(2) * 1.2
    coordination = np.bincount(neighbor_list("i", built, first_shell), minlength=len(built))
    assert coordination.min() == surface_coordination, np.bincount(coordination)
    heights = np.sort(np.unique(np.round(built.positions[:, 2], 3)))
    spacing = a / np.linalg.norm(miller) / (1 if miller == (1, 1, 1) else 2)
    assert np.allclose(np.diff(heights), spacing, atol=1e-3)  # planes one spacing apart, no gap
    assert built.cell.lengths()[2] - np.ptp(built.positions[:, 2]) == pytest.approx(12.0)
    # at least 8 A of atoms, not of layer period: the (111) slab of 2 periods spanned 6.2 A
    assert np.ptp(built.positions[:, 2]) >= 8.0
    assert np.ptp(built.positions[:, 2]) < 8.0 + 2 * a  # one period more at most ((100): 2a)


def test_replicas_run_every_scenario_from_different_cells(pool: list[Atoms]) -> None:
    one = settings()
    three = settings({"explore": {"policy": {"scenarios": ALL_SCENARIOS, "replicas": 3}}})
    single = plan_scenarios(one["elements"], one["structures"], one["explore"])
    runs = plan_scenarios(three["elements"], three["structures"], three["explore"])
    assert len(runs) == 3 * len(single)
    names = [run.run for run in runs]
    assert len(set(names)) == len(names)
    assert names[:3] == ["bulk", "bulk_2", "bulk_3"] and "surface_111_3" in names
    # replica 1 is the single plan's run, unchanged (same start cell for the same seed)
    assert [run.run for run in runs if run.replica == 0] == [run.run for run in single]
    policy = three["explore"]["policy"]
    starts = [
        fresh_start(run, pool, policy, three["elements"], [2, 2, 2], seed=11 + run.replica, parent_seed=11)
        for run in runs
        if run.scenario == "bulk"
    ]
    uids = [start.info["uid"] for start in starts]
    cells = len(sqs_cells(pool))
    assert cells >= 2 and len(set(uids)) == min(3, cells), uids  # as many parents as the pool has
    with pytest.raises(ConfigError, match="replicas"):
        settings({"explore": {"policy": {"replicas": 0}}})


def lammps_explore(overrides: dict[str, Any]) -> dict[str, Any]:
    config = settings({"explore": {"engine": "lammps", **overrides}})
    return config


@pytest.mark.slow
def test_slab_runs_nvt_and_bulk_npt_in_lammps(small_potential: dict[str, Any], tmp_path: Path) -> None:
    config = lammps_explore({"steps": 20, "gamma_lo": 1e-6, "gamma_hi": 1e9})
    decks = {}
    for name in ("surface_111", "compression"):
        frames, summary, last = explore_run(
            name,
            pool=small_potential["pool"],
            previous_last=None,
            previous=None,
            potential_yaml=small_potential["yaml"],
            active_set=small_potential["asi"],
            explore=config["explore"],
            elements=config["elements"],
            structures=config["structures"],
            seed=1,
            generation=0,
            work_dir=tmp_path / name,
        )
        assert summary["status"] == "completed" and summary["scenario"] == name
        assert {frame.info["scenario"] for frame in frames} == {name} and last.info["scenario"] == name
        decks[name] = (tmp_path / name / DECK_FILE).read_text()
        if name == "surface_111":
            assert summary["pressure_bar"] is None and has_vacuum(last, config["explore"]["vacuum_threshold"])
    assert "fix md all nvt temp" in decks["surface_111"] and " npt " not in decks["surface_111"]
    assert "fix md all npt temp" in decks["compression"] and "iso 160000 160000" in decks["compression"]


@pytest.mark.slow
def test_halted_run_resumes_from_its_halt_frame_under_the_new_potential(
    small_potential: dict[str, Any], emt_cuni_images: list[Atoms], tmp_path: Path
) -> None:
    from conftest import fit_small_potential

    config = lammps_explore({"steps": 2000, "gamma_lo": 1.1, "gamma_hi": 1.6})
    common = {
        "pool": small_potential["pool"],
        "explore": config["explore"],
        "elements": config["elements"],
        "structures": config["structures"],
        "seed": 2,
    }
    frames, summary, last = explore_run(
        "bulk",
        previous_last=None,
        previous=None,
        potential_yaml=small_potential["yaml"],
        active_set=small_potential["asi"],
        generation=0,
        work_dir=tmp_path / "gen0",
        **common,
    )
    assert summary["halted"] and summary["steps_done"] < 2000
    # the last frame is the halt frame: the last dumped frame, at the halt step
    assert frames[-1].info["md_step"] == summary["halt_step"]
    np.testing.assert_allclose(last.get_positions(), frames[-1].get_positions(), atol=1e-6)
    velocities = last.get_velocities()
    assert np.abs(velocities).max() > 0
    # it travels through the workflow's extxyz file with its velocities
    write_structures(tmp_path / "last.extxyz", [last])
    (continued,) = read_structures(tmp_path / "last.extxyz")
    np.testing.assert_allclose(continued.get_velocities(), velocities, rtol=1e-6)  # extxyz precision

    (tmp_path / "refit").mkdir()
    refitted = fit_small_potential(emt_cuni_images, tmp_path / "refit")  # a different potential
    _, resumed, _ = explore_run(
        "bulk",
        previous_last=continued,
        previous=summary,
        potential_yaml=refitted["yaml"],
        active_set=refitted["asi"],
        generation=1,
        work_dir=tmp_path / "gen1",
        **common,
    )
    assert resumed["start"] == "halt" and resumed["start_uid"] == last.info["uid"]
    assert resumed["temperature"] == pytest.approx(summary["temperature_reached"])
    deck = (tmp_path / "gen1" / DECK_FILE).read_text()
    assert "velocity all create" not in deck  # the velocities are the halt frame's
    assert (tmp_path / "gen1" / POTENTIAL_FILE).read_text() == Path(refitted["yaml"]).read_text()
    start = read(tmp_path / "gen1" / DATA_FILE, format="lammps-data", units="metal", atom_style="atomic")
    np.testing.assert_allclose(start.get_positions(), last.get_positions(), atol=1e-6)
    np.testing.assert_allclose(start.get_velocities(), velocities, rtol=1e-6, atol=1e-9)
    # and the first dumped step of the new generation continues from there (step 0 = the start)
    assert read_dump_frames(tmp_path / "gen1" / "last.dump", config["elements"], [True] * 3)


def picked(scenario: str, gamma: float, uid: str, n_atoms: int = 4) -> Atoms:
    atoms = Atoms(
        f"Cu{n_atoms}", positions=np.arange(3 * n_atoms).reshape(n_atoms, 3) * 0.7, cell=[9] * 3, pbc=True
    )
    atoms.arrays["gamma"] = np.linspace(1.0, gamma, n_atoms)
    atoms.info.update(scenario=scenario, max_gamma=gamma, uid=uid, run=uid)
    return atoms


def test_a_rare_scenario_keeps_its_floor_in_the_selection() -> None:
    frames = [picked("bulk", 3.0 + 0.1 * i, f"b{i}") for i in range(10)] + [picked("vacancy", 1.6, "v0")]
    select = {"method": "max_gamma", "max_per_generation": 3, "scenario_floor": 1}
    chosen, method = select_environments(
        frames, select, potential_yaml="", active_set="", gamma_hi=5.0, whole_frame_atoms=8
    )
    assert method == "max_gamma" and len(chosen) == 3
    assert [atoms.info["scenario"] for atoms in chosen].count("vacancy") == 1
    starved, _ = select_environments(
        frames,
        dict(select, scenario_floor=0),
        potential_yaml="",
        active_set="",
        gamma_hi=5.0,
        whole_frame_atoms=8,
    )
    assert all(atoms.info["scenario"] == "bulk" for atoms in starved)


def test_random_selection_is_uniform_seeded_and_ignores_gamma() -> None:
    frames = [picked("bulk", 1.0 + i, f"f{i}") for i in range(40)]
    select = {"method": "random", "max_per_generation": 5, "scenario_floor": 1}
    draws = [
        [
            atoms.info["uid"]
            for atoms in select_environments(
                frames, select, potential_yaml="", active_set="", gamma_hi=5.0, whole_frame_atoms=8, seed=seed
            )[0]
        ]
        for seed in (1, 1, 2)
    ]
    assert draws[0] == draws[1] and draws[0] != draws[2] and len(set(draws[0])) == 5
    assert draws[0] != ["f39", "f38", "f37", "f36", "f35"]  # not the highest gamma


def test_decision_converges_only_when_every_scenario_is_quiet() -> None:
    loop = {"max_generations": 5, "converged_fraction": 0.05}

    def run(scenario: str, extrapolative: int, halted: bool = False) -> dict[str, Any]:
        status = "halted" if halted else "completed"
        return {
            "scenario": scenario,
            "checks": 100,
            "extrapolative_checks": extrapolative,
            "halted": halted,
            "status": status,
        }

    # 3 % overall, but the surface alone is at 12 %: not converged
    runs = [run("bulk", 0), run("melt_quench", 0), run("vacancy", 0), run("surface_111", 12)]
    selection = [picked("surface_111", 2.0, "s0")]
    decision = decide(1, runs, selection, {}, loop)
    assert decision["counts"]["extrapolative_fraction"] == pytest.approx(0.03)
    assert decision["reason"] == "continue" and "surface_111" in decision["why"]
    table = decision["scenarios"]
    assert table["surface_111"]["extrapolative_fraction"] == pytest.approx(0.12)
    assert table["surface_111"]["selected"] == 1 and table["surface_111"]["selected_atoms"] == 4
    assert table["bulk"]["selected"] == 0 and table["bulk"]["halted_runs"] == 0
    quiet = decide(1, [*runs[:3], run("surface_111", 4)], selection, {}, loop)
    assert quiet["reason"] == "converged"
    halted = decide(1, [*runs[:3], run("surface_111", 1, halted=True)], selection, {}, loop)
    assert halted["reason"] == "continue" and halted["scenarios"]["surface_111"]["halted_runs"] == 1
    assert "gamma weakly informative" not in halted["why"]
    # a fit whose basis is about the data's size: the decision says why every run halts
    coverage = {"lowest_environments_per_function": 1.37, "gamma_informative": False}
    crowded = decide(
        1, [*runs[:3], run("surface_111", 1, halted=True)], selection, {"active_set": coverage}, loop
    )
    assert crowded["reason"] == "continue" and "gamma weakly informative (1.37 training" in crowded["why"]
    assert crowded["active_set"] == coverage


def test_emt_preset_explores_with_lammps_and_at_least_three_scenarios() -> None:
    for preset in ("emt.yaml", "config.yaml"):
        config = load_yaml(REPO / "config" / preset)
        validate_schema(config, load_yaml(REPO / "config" / "schema.yaml"))
        assert config["explore"]["engine"] == "lammps"
        runs = plan_scenarios(config["elements"], config["structures"], copy.deepcopy(config["explore"]))
        assert len({run.scenario for run in runs}) >= 3


def test_a_slab_vacuum_below_the_vacuum_threshold_is_a_config_error() -> None:
    from mlip_autopipe.explore.policy import check_policy

    config = settings({"explore": {"vacuum_threshold": 12.0}})
    with pytest.raises(ConfigError, match="explore.policy.surface_vacuum"):
        check_policy(config["elements"], config["structures"], config["explore"])
    check_policy(config["elements"], config["structures"], settings()["explore"])  # the preset passes


def test_melting_is_found_at_the_volume_jump_of_a_heating_ramp() -> None:
    from mlip_autopipe.explore.policy import melting_from_heating, refined_melting_point

    targets = np.linspace(400.0, 2000.0, 101)
    expansion = 350.0 * (1 + 2e-5 * (targets - 400.0))  # 3 % over the ramp, steady
    noise = np.random.default_rng(0).normal(scale=0.5, size=targets.size)
    solid = [{"Volume": v} for v in expansion + noise]
    melted = [
        {"Volume": v * (1.04 if t > 1500.0 else 1.0)} for v, t in zip(expansion + noise, targets, strict=True)
    ]
    assert melting_from_heating(solid, targets, 0.02) is None
    assert melting_from_heating(melted, targets, 0.02) == pytest.approx(1500.0, abs=40.0)
    # the next generation takes a found melting point, else keeps the one used, within bounds
    assert refined_melting_point(1000.0, []) == 1000.0
    assert (
        refined_melting_point(1000.0, [{"melting_point": 900.0}, {"melting_point_found": 1200.0}]) == 1200.0
    )
    assert refined_melting_point(1000.0, [{"melting_point": 900.0, "melting_point_found": None}]) == 900.0
    assert refined_melting_point(1000.0, [{"melting_point_found": 5000.0}]) == 1500.0


def test_escalated_cells_double_along_their_shortest_periodic_vector_with_velocities() -> None:
    from ase.build import bulk

    from mlip_autopipe.explore.policy import bigger

    cell = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
    cell.set_velocities(np.random.default_rng(0).normal(size=(len(cell), 3)))
    doubled = bigger(cell, max_atoms=256, vacuum_axis=None)
    assert len(doubled) == 2 * len(cell) and doubled.cell.lengths()[2] == pytest.approx(7.2)
    np.testing.assert_allclose(doubled.get_velocities()[: len(cell)], cell.get_velocities())
    slab_like = bigger(cell, max_atoms=256, vacuum_axis=2)  # never along the vacuum
    assert slab_like.cell.lengths()[2] == pytest.approx(3.6) and len(slab_like) == 2 * len(cell)
    assert bigger(cell, max_atoms=len(cell) + 1, vacuum_axis=None) is cell  # bounded


@pytest.mark.slow
def test_random_selection_runs_keep_every_checked_frame(
    small_potential: dict[str, Any], tmp_path: Path
) -> None:
    config = lammps_explore({"steps": 30, "gamma_lo": 1e8, "gamma_hi": 1e9})
    counts = []
    for keep in (False, True):
        frames, summary, _ = explore_run(
            "vacancy",
            pool=small_potential["pool"],
            previous_last=None,
            previous=None,
            potential_yaml=small_potential["yaml"],
            active_set=small_potential["asi"],
            explore=dict(config["explore"], keep_every_check=keep),
            elements=config["elements"],
            structures=config["structures"],
            seed=4,
            generation=0,
            work_dir=tmp_path / str(keep),
        )
        assert summary["extrapolative_checks"] == 0 and summary["checks"] == 3
        counts.append([frame.info["md_step"] for frame in frames])
    assert counts == [[], [10, 20, 30]]
