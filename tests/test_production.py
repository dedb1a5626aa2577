"""The production stage: a nonlinear fit on every generation's labels after the loop, shipped in
results/final with its LAMMPS lines and a summary whose production_ready comes from validation."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

from mlip_autopipe import fit
from mlip_autopipe.config import section_defaults
from mlip_autopipe.data import attach_labels, read_structures
from mlip_autopipe.explore.lammps import lammps_command, lammps_environment, read_thermo
from mlip_autopipe.production import readiness
from mlip_autopipe.validation import Material, validate_material
from snakemake_cli import run_snakemake

REPO = Path(__file__).resolve().parent.parent
EMT_PRESET = REPO / "config" / "emt.yaml"


@pytest.fixture(scope="module")
def production_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The EMT preset cut to two generations with a 20-function linear loop fit and a small
    production fit (nonlinear, 40 functions, 100 iterations) grown by production.ladder (10
    functions per basis block and step: 20, then 40 per element unless the test error stops
    falling), and a cheap validation of pure Cu whose a0 tolerance no fit can meet (the run must
    end normally, production_ready false)."""
    run_dir = tmp_path_factory.mktemp("production")
    config = yaml.safe_load(EMT_PRESET.read_text())
    config["loop"].update(max_generations=2)
    config["explore"].update(steps=300)
    # the loop's fits small and fast (linear, 20 functions), the production fit nonlinear
    config["fit"].update(functions_per_element=20, environments_per_function=None)
    config["production"] = {
        "enabled": True,
        "fit": {
            "functions_per_element": 40,
            "nradmax_by_orders": [8, 3, 2],
            "lmax_by_orders": [0, 2, 1],
            "maxiter": 100,
        },
    }
    config["production"]["ladder"] = {"enabled": True, "ladder_step": 10}
    config["validation"] = {
        "compositions": [{"Cu": 1.0}],
        "eos": {"points": 7},
        "phonons": {"enabled": False},
        "md": {"steps": 50},
        "tolerances": {"a0": 1e-9},
    }
    configfile = run_dir / "production.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = run_snakemake(run_dir, configfile)
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir


def all_labels(run_dir: Path) -> list:
    return [
        atoms
        for path in sorted(run_dir.glob("results/gen_*/labelled.extxyz"))
        for atoms in read_structures(path)
    ]


@pytest.mark.slow
def test_nonlinear_production_fit_beats_the_loops_linear_fit_on_held_out_forces(production_run: Path) -> None:
    summary = json.loads((production_run / "results/final/summary.json").read_text())
    assert summary["potential"] == "production fit" and summary["final_metrics"]["mode"] == "nonlinear"
    assert "inner_cutoff_type: zbl" in (production_run / "results/final/potential.yaml").read_text()
    # the same held-out structures for both (uid hash, equal test fractions): neither saw them
    images = all_labels(production_run)
    train, test = fit.split_train_test(images, 0.1)
    assert test and summary["data"] == {"train_structures": len(train), "test_structures": len(test)}
    final_generation = summary["final_generation"]
    loop = production_run / f"results/gen_{final_generation:03d}/fit"
    loop_references = json.loads((loop / "metrics.json").read_text())["reference_energies_ev"]
    linear = fit.evaluate(loop / "potential.yaml", test, loop_references)
    production = fit.evaluate(
        production_run / "results/final/potential.yaml", test, summary["reference_energies_ev"]
    )
    print(
        f"held-out force RMSE: production {production['force_rmse_ev_per_a']:.4f}, "
        f"loop {linear['force_rmse_ev_per_a']:.4f} eV/A on {len(test)} structures"
    )
    assert production["force_rmse_ev_per_a"] < linear["force_rmse_ev_per_a"]
    # per-category test RMSEs cover every held-out structure once per kind
    by_origin = summary["test_by_category"]["origin"]
    assert sum(entry["n_structures"] for entry in by_origin.values()) == len(test)
    assert summary["oracle_cost"]["calls"] == sum(summary["labels"].values()) > 0


@pytest.mark.slow
def test_production_yace_gives_the_oracles_absolute_energies(production_run: Path) -> None:
    from pyace import PyACECalculator

    summary = json.loads((production_run / "results/final/summary.json").read_text())
    _, test = fit.split_train_test(all_labels(production_run), 0.1)
    calculator = PyACECalculator(str(production_run / "results/final/potential.yace"))
    errors = []
    for atoms in test:
        work = atoms.copy()
        work.calc = calculator
        errors.append(abs(work.get_potential_energy() - atoms.get_potential_energy()) / len(atoms))
    rmse = 1000 * float(np.sqrt(np.mean(np.square(errors))))
    print(f"held-out absolute energy RMSE {rmse:.2f} meV/atom")
    # total energies (no references subtracted) to the fit's own test accuracy
    assert rmse == pytest.approx(summary["final_metrics"]["test"]["energy_rmse_mev_per_atom"], rel=1e-6)
    assert rmse < 20.0  # references missing would put it at 100-200 meV/atom


@pytest.mark.slow
def test_final_lammps_lines_run_100_md_steps_with_the_plugin(production_run: Path, tmp_path: Path) -> None:
    final = production_run / "results/final"
    lines = [
        line for line in (final / "pair_lines.lammps").read_text().splitlines() if not line.startswith("#")
    ]
    assert lines[0] == "pair_style pace"
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.symbols[::3] = "Ni"
    write(tmp_path / "cell.data", atoms, format="lammps-data", specorder=["Cu", "Ni"], masses=True)
    for name in ("potential.yace", "potential.yaml", "potential.asi"):
        (tmp_path / name).symlink_to(final / name)
    deck = [
        "units metal",
        "read_data cell.data",
        *lines,
        "velocity all create 600 5 mom yes rot no dist gaussian",
        "timestep 0.001",
        "fix nve all nve",
        "thermo 10",
        "thermo_style custom step temp pe etotal",
        "run 100",
    ]
    (tmp_path / "in.lammps").write_text("\n".join(deck) + "\n")
    command = lammps_command({})
    result = subprocess.run(
        [*command, "-in", "in.lammps", "-log", "log.lammps", "-nocite"],
        cwd=tmp_path,
        env=lammps_environment(command),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    rows = read_thermo(tmp_path / "log.lammps")
    assert rows[-1]["Step"] == 100 and rows[-1]["Temp"] > 50
    total = np.array([row["TotEng"] for row in rows]) / len(atoms)
    assert np.abs(total - total[0]).max() < 1e-3  # NVE: a sane, smooth potential


@pytest.mark.slow
def test_failed_tolerance_marks_the_potential_not_production_ready(production_run: Path) -> None:
    summary = json.loads((production_run / "results/final/summary.json").read_text())
    validation = json.loads((production_run / "results/validation/validation.json").read_text())
    assert "comparison" in validation["materials"]["Cu"]
    assert summary["production_ready"] is False
    assert any("a0" in reason and "%" in reason for reason in summary["not_ready_because"])


@pytest.mark.slow
def test_the_ladder_grows_the_production_basis_and_the_summary_names_the_chosen_step(
    production_run: Path,
) -> None:
    from pyace import BBasisConfiguration

    summary = json.loads((production_run / "results/final/summary.json").read_text())
    metrics = json.loads((production_run / "results/production/metrics.json").read_text())
    ladder = summary["ladder"]
    assert ladder == metrics["ladder"]
    steps = ladder["steps"]
    print(
        "production ladder: "
        + "; ".join(
            f"{step['functions']} functions: test {step['test']['energy_rmse_mev_per_atom']:.2f} meV/atom, "
            f"{step['test']['force_rmse_ev_per_a']:.4f} eV/A, {step['fit_seconds']:.0f} s"
            for step in steps
        )
        + f"; chose step {ladder['chosen_step']}: {ladder['stopped_because']}"
    )
    functions = [step["functions"] for step in steps]
    assert len(steps) >= 2 and functions == sorted(set(functions))
    chosen = steps[ladder["chosen_step"]]
    shipped = BBasisConfiguration(str(production_run / "results/final/potential.yaml"))
    assert shipped.total_number_of_functions == chosen["functions"] == ladder["chosen_functions"]
    assert summary["final_metrics"]["test"] == pytest.approx(chosen["test"])
    errors = [step["test_error"] for step in steps]
    assert ladder["chosen_step"] == errors.index(min(errors))
    assert ladder["stopped_because"].startswith(("the test error stopped falling", "the basis is complete"))


class StretchedEMT:
    """A poor potential: EMT on a cell 15 % larger, so its EOS minimum lies outside the scan."""

    def __call__(self, atoms):  # type: ignore[no-untyped-def]
        stretched = atoms.copy()
        stretched.set_cell(atoms.cell / 1.15, scale_atoms=True)
        stretched.calc = EMT()
        return attach_labels(
            atoms,
            energy=stretched.get_potential_energy(),
            forces=stretched.get_forces(),
            stress=stretched.get_stress(voigt=True),
        )


def emt_labeller(atoms):  # type: ignore[no-untyped-def]
    work = atoms.copy()
    work.calc = EMT()
    return attach_labels(
        atoms,
        energy=work.get_potential_energy(),
        forces=work.get_forces(),
        stress=work.get_stress(voigt=True),
    )


def test_poor_potential_is_reported_not_production_ready_without_a_crash() -> None:
    validation = section_defaults("validation", {})
    material = Material("Cu", {"Cu": 1.0}, bulk("Cu", "fcc", a=3.61, cubic=True), "fcc", 3.61)
    result = validate_material(material, {"potential": StretchedEMT(), "oracle": emt_labeller}, validation)
    assert "edge of the volume scan" in result["failure"]
    ready, reasons = readiness({"materials": {"Cu": result}, "md": None}, validation["tolerances"])
    assert not ready and reasons == [f"Cu: {result['failure']}"]
    # the same material with the oracle as its own potential is ready
    good = validate_material(material, {"potential": emt_labeller, "oracle": emt_labeller}, validation)
    assert readiness({"materials": {"Cu": good}, "md": None}, validation["tolerances"]) == (True, [])
