"""The Snakemake workflow end to end on the EMT preset, run from a directory outside the repo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import write

from independent_metrics import recompute_rmse
from mlip_autopipe.data import has_labels, read_structures
from mlip_autopipe.fit import split_train_test
from mlip_autopipe.structures import POOL_ORIGINS
from snakemake_cli import run_snakemake

REPO = Path(__file__).resolve().parent.parent
EMT_PRESET = REPO / "config" / "emt.yaml"
STOP_REASONS = {"converged", "no_extrapolation", "max_generations"}

pytestmark = pytest.mark.workflow


def snakemake(run_dir: Path, *args: str, configfile: Path = EMT_PRESET) -> subprocess.CompletedProcess[str]:
    """Run the workflow on the EMT preset (or ``configfile``) in ``run_dir``."""
    return run_snakemake(run_dir, configfile, *args)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("emt run")  # a space in the path on purpose
    result = snakemake(run_dir)
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir


def decisions(run_dir: Path) -> list[dict]:
    found = sorted((run_dir / "results").glob("gen_*/decision.json"))
    return [json.loads(path.read_text()) for path in found]


def test_loop_runs_generations_and_stops_by_its_own_decision(finished_run: Path) -> None:
    summary = json.loads((finished_run / "results/final/summary.json").read_text())
    steps = decisions(finished_run)
    assert len(steps) >= 2
    assert [d["generation"] for d in steps] == list(range(len(steps)))
    assert all(d["continue"] for d in steps[:-1])
    assert not steps[-1]["continue"] and steps[-1]["reason"] in STOP_REASONS
    assert summary["generations"] == len(steps) and summary["stop_reason"] == steps[-1]["reason"]
    for name in ("potential.yaml", "potential.yace", "potential.asi"):
        assert (finished_run / "results/final" / name).stat().st_size > 0


def test_final_potential_gives_the_oracles_total_energies(finished_run: Path, tmp_path: Path) -> None:
    final = finished_run / "results/final"
    summary = json.loads((final / "summary.json").read_text())
    references = summary["final_metrics"]["reference_energies_ev"]
    images = [
        atoms
        for path in sorted((finished_run / "results").glob("gen_*/labelled.extxyz"))
        if int(path.parent.name.split("_")[1]) <= summary["final_generation"]
        for atoms in read_structures(path)
    ]
    train, _ = split_train_test(images, 0.1)
    # the .yace against the oracle's total energies (no references subtracted): the very RMSE
    # the fit reported on energies minus references, so the .yace is off by nothing more
    no_references = {element: 0.0 for element in references}
    energy_rmse, _ = recompute_rmse(final / "potential.yace", train, no_references)
    assert energy_rmse == pytest.approx(
        summary["final_metrics"]["train"]["energy_rmse_mev_per_atom"], rel=1e-6
    )
    # LAMMPS pair_style pace on the shipped .yace: the same total energies as pyace
    from pyace import PyACECalculator

    from mlip_autopipe.explore.lammps import lammps_command, lammps_environment

    elements = yaml.safe_load(EMT_PRESET.read_text())["elements"]
    calculator = PyACECalculator(str(final / "potential.yace"))
    for index, atoms in enumerate(train[:2]):
        folder = tmp_path / str(index)
        folder.mkdir()
        write(folder / "cell.data", atoms, format="lammps-data", specorder=elements, masses=True)
        deck = "\n".join(
            [
                "units metal",
                "read_data cell.data",
                "pair_style pace",
                f'pair_coeff * * "{final / "potential.yace"}" {" ".join(elements)}',
                "run 0",
                'print "TOTAL $(pe:%.17g)"',
            ]
        )
        (folder / "in.lammps").write_text(deck)
        command = lammps_command({})
        result = subprocess.run(
            [*command, "-in", "in.lammps", "-log", "none", "-nocite"],
            cwd=folder,
            env=lammps_environment(command),
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-3000:]
        lammps_energy = float(
            next(line for line in result.stdout.splitlines() if line.startswith("TOTAL")).split()[1]
        )
        work = atoms.copy()
        work.calc = calculator
        assert lammps_energy == pytest.approx(work.get_potential_energy(), rel=1e-9, abs=1e-9)
        # one structure's error is at most sqrt(n) x the RMSE over the n training structures;
        # without the references it would be off by 0.1-0.2 eV/atom
        per_atom_error = abs(lammps_energy - atoms.get_potential_energy()) / len(atoms)
        assert 1000 * per_atom_error <= energy_rmse * np.sqrt(len(train)) * (1 + 1e-6)
    # the .yaml keeps pacemaker's convention: references in its metadata, and in the summary
    from mlip_autopipe.fit import stored_reference_energies

    assert stored_reference_energies(final / "potential.yaml") == pytest.approx(references, abs=1e-12)
    assert summary["reference_energies_ev"] == references


def test_every_candidate_is_labelled_or_ledgered(finished_run: Path) -> None:
    for generation_dir in sorted((finished_run / "results").glob("gen_*")):
        candidates = read_structures(generation_dir / "candidates.extxyz")
        labelled = read_structures(generation_dir / "labelled.extxyz")
        ledger = json.loads((generation_dir / "ledger.json").read_text())
        assert {a.info["uid"] for a in candidates} == {entry["uid"] for entry in ledger}
        assert len(labelled) == sum(entry["status"] == "ok" for entry in ledger)
        generation = int(generation_dir.name.split("_")[1])
        for atoms in labelled:
            assert has_labels(atoms) and atoms.info["generation"] == generation
            assert atoms.info["origin"] in {*POOL_ORIGINS, "md"}
        metrics = json.loads((generation_dir / "fit/metrics.json").read_text())
        assert metrics["train"]["n_structures"] + metrics["test"]["n_structures"] >= len(labelled)


def test_later_generations_label_extrapolative_md_frames(finished_run: Path) -> None:
    labelled = read_structures(finished_run / "results/gen_001/labelled.extxyz")
    assert labelled and all(a.info["origin"] == "md" for a in labelled)
    assert all(a.info["max_gamma"] > 0 for a in labelled)
    # 32-atom MD cells are under embed.max_atoms: labelled whole, every force weight 1
    assert all(np.all(a.arrays["force_weight"] == 1.0) and "core_atom" in a.info for a in labelled)


def test_rerun_with_nothing_changed_does_nothing(finished_run: Path) -> None:
    result = snakemake(finished_run, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_linear_metrics_files_are_honest(finished_run: Path) -> None:
    for generation_dir in sorted((finished_run / "results").glob("gen_*")):
        assert assert_metrics_file_is_honest(generation_dir)["mode"] == "linear"


def test_fit_parameter_change_refits_without_relabelling(finished_run: Path, tmp_path: Path) -> None:
    config = yaml.safe_load(EMT_PRESET.read_text())
    config["fit"]["ridge_alpha"] = 2.0e-6
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(config))
    dry = snakemake(finished_run, "-n", configfile=edited)
    assert dry.returncode == 0, dry.stderr[-3000:]
    log = dry.stdout + dry.stderr
    assert "rule fit:" in log and "Params have changed" in log
    assert "rule label:" not in log and "rule structures:" not in log
    labels = sorted((finished_run / "results/gen_000/label").glob("*.extxyz"))
    before = {path: path.stat().st_mtime_ns for path in labels}
    result = snakemake(finished_run, configfile=edited)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {path: path.stat().st_mtime_ns for path in labels} == before
    assert "results/gen_000/label/" not in result.stdout + result.stderr


def test_dry_run_shows_the_dag_up_to_the_first_checkpoint(tmp_path: Path) -> None:
    result = snakemake(tmp_path, "-n")
    assert result.returncode == 0, result.stderr
    log = result.stdout + result.stderr
    for rule in ("rule structures:", "rule candidates:", "checkpoint split_candidates:"):
        assert rule in log
    # one label job per structure appears only once the split checkpoint has run
    assert "rule label:" not in log
    assert not (tmp_path / "results").exists()


def test_lint_is_clean(tmp_path: Path) -> None:
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"elements": ["Cu", "Qq"]}, "elements"),
        ({"structures": {"compositions": [{"Cu": 0.6, "Ni": 0.6}]}}, "structures.compositions[0]"),
        ({"explore": {"gamma_lo": 6.0, "gamma_hi": 5.0}}, "explore.gamma_lo"),
        ({"loop": {"max_generations": "three"}}, "loop.max_generations"),
        ({"embed": {"max_atoms": 40}}, "embed.max_atoms"),
    ],
)
def test_invalid_config_stops_before_any_job(tmp_path: Path, override: dict, key: str) -> None:
    config = yaml.safe_load(EMT_PRESET.read_text())
    for section, value in override.items():
        if isinstance(value, dict):
            config.setdefault(section, {}).update(value)
        else:
            config[section] = value
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = snakemake(run_dir, configfile=bad)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ConfigError")]
    assert len(errors) == 1 and f"config key '{key}'" in errors[0], result.stderr
    assert not (run_dir / "results").exists()


def test_report_html_contains_every_figure(finished_run: Path) -> None:
    figures = sorted((finished_run / "results/report").glob("*.png"))
    assert {p.name for p in figures} == {
        "rmse_per_generation.png",
        "parity.png",
        "dataset_by_generation.png",
        "labelling_by_generation.png",
        "gamma_by_generation.png",
        "scenarios_by_generation.png",
    }
    validation_figures = sorted((finished_run / "results/validation").glob("*.png"))
    assert {p.name for p in validation_figures} == {
        "equation_of_state.png",
        "elastic_constants.png",
        "phonons.png",
        "md_stability.png",
    }
    result = snakemake(finished_run, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (finished_run / "report.html").read_text()
    for figure in [*figures, *validation_figures]:
        assert figure.name in html
    assert "Validation" in html


def test_validation_of_the_final_potential_matches_the_oracle(finished_run: Path) -> None:
    report = json.loads((finished_run / "results/validation/validation.json").read_text())
    assert report["oracle"] == "emt"
    materials = report["materials"]
    assert list(materials) == ["Cu", "Ni", "Cu0.5Ni0.5"]  # the end members and the first alloy
    for name, material in materials.items():
        comparison = material["comparison"]
        assert abs(comparison["a0"]["relative_error"]) < 0.005, (name, comparison["a0"])
        if len(material["composition"]) == 1:  # the alloy: see the next test
            assert abs(comparison["B0"]["relative_error"]) < 0.05, (name, comparison["B0"])
        for method in ("potential", "oracle"):
            elastic = material["methods"][method]["elastic"]
            assert elastic["C11"] > elastic["C12"] > 0 and elastic["C44"] > 0, (name, method, elastic)
    assert set(report["phonons"]) == {"Cu", "Ni"}
    for name, phonons in report["phonons"].items():
        assert set(phonons["methods"]) == {"potential", "oracle"}  # EMT is cheap: both
        for method, bands in phonons["methods"].items():
            assert bands["gamma_acoustic_max_abs"] < 0.1, (name, method)
            assert bands["min_frequency"] > -0.1, (name, method)  # no imaginary branch
    md = report["md"]
    config = yaml.safe_load(EMT_PRESET.read_text())
    assert md["temperature_target"] == pytest.approx(1.2 * max(config["explore"]["temperatures"]))
    assert md["stable"] and md["lost_atoms"] == 0 and md["steps_done"] == md["steps_requested"]
    assert md["min_distance_observed"] > md["min_distance_threshold"]


def test_validation_bulk_modulus_of_the_alloy_is_within_5_percent(finished_run: Path) -> None:
    report = json.loads((finished_run / "results/validation/validation.json").read_text())
    alloy = report["materials"]["Cu0.5Ni0.5"]["comparison"]["B0"]
    assert abs(alloy["relative_error"]) < 0.05, alloy


def test_status_reads_a_partial_run(finished_run: Path, tmp_path: Path) -> None:
    import shutil

    from mlip_autopipe.cli.status import render, run_status

    partial = tmp_path / "partial"
    shutil.copytree(finished_run / "results", partial / "results")
    last = sorted((partial / "results").glob("gen_*"))[-1]
    for name in ("decision.json", "ledger.json", "labelled.extxyz"):
        (last / name).unlink()
    candidates = sorted(path.stem for path in (last / "candidates").glob("*.extxyz"))
    (last / "label" / f"{candidates[0]}.extxyz").unlink()  # one structure still waiting
    (last / "label" / "0123456789abcdef.extxyz").write_text("")  # stale file of an older candidate
    statuses = run_status(partial)
    assert statuses[0].decision is not None and statuses[0].fitted
    assert statuses[-1].decision is None
    assert statuses[-1].candidates == len(candidates) and statuses[-1].pending == 1
    assert statuses[-1].labelled == len(candidates) - 1
    text = render(partial)
    assert "running" in text and "continue" in text


def test_status_of_an_empty_directory(tmp_path: Path) -> None:
    from mlip_autopipe.cli.status import render

    assert "no generation started yet" in render(tmp_path)


def test_user_structure_files_join_the_pool_from_the_run_directory(tmp_path: Path) -> None:
    from ase.build import bulk
    from ase.io import write

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = yaml.safe_load(EMT_PRESET.read_text())
    config["structures"]["user_files"] = ["mine.extxyz"]  # relative: taken from the run directory
    configfile = tmp_path / "user.yaml"
    configfile.write_text(yaml.safe_dump(config))

    write(run_dir / "mine.extxyz", bulk("Fe", "bcc", a=2.87, cubic=True))
    refused = snakemake(run_dir, "--until", "structures", configfile=configfile)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("ConfigError")]
    assert len(errors) == 1 and "'structures.user_files[0]'" in errors[0] and "holds Fe" in errors[0]
    assert not (run_dir / "results").exists()

    write(run_dir / "mine.extxyz", bulk("Ni", "fcc", a=3.52, cubic=True).repeat((2, 1, 1)))
    result = snakemake(run_dir, "--until", "structures", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    pool = read_structures(run_dir / "results/structures/pool.extxyz")
    users = [atoms for atoms in pool if atoms.info["origin"] == "user"]
    assert len(users) == 1 and users[0].info["source_file"] == "mine.extxyz" and len(users[0]) == 8
    initial = read_structures(run_dir / "results/structures/initial.extxyz")
    assert len(initial) == config["structures"]["initial_pick"]
    assert {atoms.info["uid"] for atoms in initial} <= {atoms.info["uid"] for atoms in pool}


def assert_metrics_file_is_honest(generation_dir: Path) -> dict:
    """metrics.json against RMSEs recomputed from potential.yaml with PyACECalculator alone."""
    metrics = json.loads((generation_dir / "fit/metrics.json").read_text())
    images = [
        a
        for path in sorted(generation_dir.parent.glob("gen_*/labelled.extxyz"))
        if path.parent.name <= generation_dir.name
        for a in read_structures(path)
    ]
    train, test = split_train_test(images, 0.1)
    assert (metrics["train"]["n_structures"], metrics["test"]["n_structures"]) == (len(train), len(test))
    for part, images in (("train", train), ("test", test)):
        if not images:
            continue
        energy, forces = recompute_rmse(
            generation_dir / "fit/potential.yaml", images, metrics["reference_energies_ev"]
        )
        assert metrics[part]["energy_rmse_mev_per_atom"] == pytest.approx(energy, rel=1e-6)
        assert metrics[part]["force_rmse_ev_per_a"] == pytest.approx(forces, rel=1e-6)
    return metrics


@pytest.mark.slow
def test_nonlinear_fits_warm_start_and_write_honest_metrics(tmp_path: Path) -> None:
    config = yaml.safe_load(EMT_PRESET.read_text())
    config["fit"] = {
        "mode": "nonlinear",
        "functions_per_element": 12,
        "nradmax_by_orders": [6, 2],
        "lmax_by_orders": [0, 1],
        "maxiter": 30,
        "warm_start_maxiter": 20,
    }
    # a second generation whatever gen 0's MD finds: a low gamma_lo, no early convergence
    config["loop"].update(max_generations=2, converged_fraction=0.0)
    config["explore"].update(gamma_lo=1.05, steps=300)
    config["structures"]["initial_pick"] = 6  # little data: gen 0's MD must extrapolate
    config["validation"] = {"enabled": False}  # this test is about the fits
    nonlinear = tmp_path / "nonlinear.yaml"
    nonlinear.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, configfile=nonlinear)
    assert result.returncode == 0, result.stderr[-4000:]
    cold = assert_metrics_file_is_honest(tmp_path / "results/gen_000")
    warm = assert_metrics_file_is_honest(tmp_path / "results/gen_001")
    assert cold["mode"] == warm["mode"] == "nonlinear"
    assert cold["optimizer"]["iterations"] == 30 and not cold["optimizer"]["warm_start"]
    assert warm["optimizer"]["iterations"] == 20 and warm["optimizer"]["warm_start"]
    # generation 1 keeps generation 0's reference energies and learns from its new frames; that
    # a warm start needs fewer iterations than a cold one is measured in test_nonlinear_fit.py
    # (here generation 1's data are the frames generation 0 failed on, so its first loss is high)
    assert warm["reference_energies_ev"] == cold["reference_energies_ev"]
    assert warm["optimizer"]["final_loss"] < 0.5 * warm["optimizer"]["initial_loss"]
    for generation in ("gen_000", "gen_001"):
        fit_dir = tmp_path / "results" / generation / "fit"
        assert (fit_dir / "potential.asi").stat().st_size > 0
        assert "inner_cutoff_type: zbl" in (fit_dir / "potential.yaml").read_text()
