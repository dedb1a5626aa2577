"""The workflow with the qe oracle: the default config's oracle on a tiny run, pw.x calls counted."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlip_autopipe.data import read_structures
from snakemake_cli import run_snakemake

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "config" / "config.yaml"

pytestmark = pytest.mark.workflow


def snakemake(run_dir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_snakemake(run_dir, configfile, *args)


def tiny_qe_config(command: list[str]) -> dict[str, Any]:
    """The default (Si-Ge, qe) config cut down to four 8-atom cells, one k-point, one generation."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert config["oracle"]["kind"] == "qe"
    config["structures"].update(
        compositions=[{"Si": 0.5, "Ge": 0.5}], cells_per_composition=1, strains=[0.02], initial_pick=4
    )
    config["structures"]["composition_step"] = None  # the default adds pure Si and Ge: not here
    config["structures"]["rattle_amplitudes"] = [0.05, 0.1]
    config["oracle"]["qe"].update(ecutwfc=15, ecutrho=60, kspacing=1.2, command=command)
    config["fit"]["functions_per_element"] = 8
    config["explore"].update(temperatures=[600], starts_per_temperature=1, steps=40)
    config["loop"]["max_generations"] = 1
    config["validation"] = {"enabled": False}  # pw.x validation: tests/test_validation_qe.py
    config["production"] = {"enabled": False}  # the production fit: tests/test_production.py
    return config


@pytest.fixture
def counting_pw(tmp_path: Path) -> tuple[Path, Path]:
    """A pw.x wrapper that logs every call, in a folder whose name has a space."""
    folder = tmp_path / "pw wrapper"
    folder.mkdir()
    wrapper = folder / "counting-pw.x"
    calls = folder / "calls.log"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nexec pw.x "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, calls


def pw_calls(calls: Path) -> int:
    """Label runs only: the version lookup (pw.x's header, for the cache key) runs it without arguments."""
    return sum("-in" in line.split() for line in calls.read_text().splitlines()) if calls.exists() else 0


@pytest.mark.slow
def test_fit_change_reruns_no_pw_and_the_ledger_lists_every_structure(
    tmp_path: Path, counting_pw: tuple[Path, Path]
) -> None:
    wrapper, calls = counting_pw
    config = tiny_qe_config([str(wrapper)])
    configfile = tmp_path / "qe.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first = snakemake(run_dir, configfile)
    assert first.returncode == 0, first.stderr[-4000:]
    ledger = json.loads((run_dir / "results/gen_000/ledger.json").read_text())
    candidates = read_structures(run_dir / "results/gen_000/candidates.extxyz")
    assert {row["uid"] for row in ledger} == {atoms.info["uid"] for atoms in candidates}
    assert all(row["status"] == "ok" and row["oracle"] == "qe" for row in ledger)
    assert pw_calls(calls) == sum(row["attempts"] for row in ledger) == len(candidates)

    # a fit parameter and the pw.x command (an execution detail) change: refit, no pw.x run
    config["fit"]["ridge_alpha"] = 3.0e-6
    config["oracle"]["qe"]["command"] = [str(wrapper), "-nk", "1"]
    configfile.write_text(yaml.safe_dump(config))
    again = snakemake(run_dir, configfile)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "rule fit:" in again.stdout + again.stderr
    assert pw_calls(calls) == len(candidates)

    # a cutoff change relabels every structure
    config["oracle"]["qe"]["ecutwfc"] = 14
    configfile.write_text(yaml.safe_dump(config))
    dry = snakemake(run_dir, configfile, "-n")
    assert dry.returncode == 0 and "rule label:" in dry.stdout + dry.stderr


def test_missing_pseudo_stops_the_workflow_before_any_job(tmp_path: Path) -> None:
    config = tiny_qe_config(["pw.x"])
    config["oracle"]["qe"]["pseudopotentials"] = {"Ge": "Ge.no-such-file.UPF"}
    configfile = tmp_path / "bad.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = snakemake(run_dir, configfile)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ConfigError")]
    assert len(errors) == 1 and "config key 'oracle.qe.pseudopotentials.Ge'" in errors[0], result.stderr
    assert not (run_dir / "results").exists()
