"""The `mlip-autopipe` command line: init writes configs that pass check; bad arguments are
one line and exit 2; an invalid config is one line naming the key and exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlip_autopipe.cli.init_config import derive_lattice, starter_config

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "lib"))
    command = [sys.executable, "-m", "mlip_autopipe.cli.app", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, check=False, timeout=300)


@pytest.mark.parametrize(
    ("elements", "oracle", "lattice"),
    [(["Cu", "Ni"], "emt", "fcc"), (["Si", "Ge"], "qe", "diamond"), (["Fe", "Ni", "Cr"], "qe", "bcc")],
)
def test_init_writes_a_commented_config_that_passes_check(
    tmp_path: Path, elements: list[str], oracle: str, lattice: str
) -> None:
    path = tmp_path / "config.yaml"
    written = cli("init", *elements, "--oracle", oracle, "--output", str(path))
    assert written.returncode == 0, written.stderr
    settings = yaml.safe_load(path.read_text())
    assert settings["elements"] == elements and settings["oracle"]["kind"] == oracle
    assert settings["structures"]["lattice"] == lattice
    assert f"lattice: {lattice}  # reference states in ASE's data" in path.read_text()
    checked = cli("check", str(path))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{path}: ok")


def test_init_derives_the_lattice_most_elements_share() -> None:
    assert derive_lattice(["Fe", "Ni", "Cr"])[0] == "bcc"  # Fe and Cr bcc, Ni fcc
    assert derive_lattice(["Ni", "Fe"])[0] == "fcc"  # a tie goes to the first element
    assert "lattice: hcp  # given with --lattice" in starter_config(["Cu", "Ni"], "emt", "hcp")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["frobnicate"], "No such command 'frobnicate'"),
        (["run"], "Missing argument 'config'"),
        (["check", "no-such-file.yaml"], "config file 'no-such-file.yaml' does not exist"),
        (["status", "no-such-run"], "run folder 'no-such-run' does not exist"),
        (["init", "Cu", "Xx"], "'Xx' is not a chemical element symbol"),
        (["init", "Si", "Ge", "--oracle", "emt"], "EMT has no parameters for Ge, Si"),
        (["run", "config/emt.yaml", "--profile", "nowhere"], "profile 'nowhere' is neither local, slurm"),
        (["status", ".", "--interval", "0"], "Invalid value for '--interval'"),
        (["export", "."], "Missing option '--db'"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    if args[:2] == ["run", "config/emt.yaml"]:
        args = ["run", str(REPO / "config" / "emt.yaml"), *args[2:], "--dir", str(tmp_path / "run")]
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_check_of_an_invalid_config_names_the_key_in_one_line(tmp_path: Path) -> None:
    settings = yaml.safe_load((REPO / "config" / "emt.yaml").read_text())
    settings["explore"]["gamma_hi"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(settings))
    result = cli("check", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ConfigError: config key 'explore.gamma_hi'")


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("keep me\n")
    result = cli("init", "Cu", "Ni", "--oracle", "emt", "-o", str(path))
    assert result.returncode == 2 and path.read_text() == "keep me\n"


def test_dry_run_passes_extra_snakemake_arguments_and_runs_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    locks = run_dir / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("left by a killed run\n")  # stale: no process works there
    result = cli(
        "run", str(REPO / "config" / "emt.yaml"), "--dir", str(run_dir), "--dry-run", "--", "--quiet", "rules"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "rule structures" not in result.stdout and "structures" in result.stdout
    )  # --quiet rules: a job table
    assert not (run_dir / "results").exists()
    assert "removed the stale Snakemake lock" in result.stdout


def test_export_to_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    result = cli("export", str(tmp_path), "--db", f"postgresql://nobody@/postgres?host={tmp_path}/no-socket")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cannot write to 'postgresql://")
    assert "OperationalError" in lines[0]
