"""Every class of bad input stops the run before any job: one line naming the key or file, a
non-zero exit, and the results directory (a previous run's included) left exactly as it was.

The validation the Snakefile runs (``validate_schema`` then ``check_config``) is tested for every
class; the real ``snakemake`` command for the classes whose files are found from the run
directory, plus a few others, on a run directory that holds an earlier run's results.
"""

from __future__ import annotations

import copy
import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.build import bulk
from ase.io import write

from mlip_autopipe.config import check_config, validate_schema
from mlip_autopipe.data import attach_labels, write_structures
from mlip_autopipe.errors import ConfigError
from mlip_autopipe.structures import check_sqs_setups
from snakemake_cli import run_snakemake

REPO = Path(__file__).resolve().parent.parent
EMT_PRESET = REPO / "config" / "emt.yaml"
USER_FILE = "mine.extxyz"


# --------------------------------------------------------------------------- bad files


def unreadable(path: Path) -> None:
    path.write_text("this is not\na structure file\n")


def without_cell(path: Path) -> None:
    write(path, Atoms("Cu2Ni2", positions=np.eye(4, 3) * 2.5))


def overlapping(path: Path) -> None:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.positions[1] = atoms.positions[0] + [0.4, 0.0, 0.0]
    write(path, atoms)


def foreign_element(path: Path) -> None:
    write(path, bulk("Fe", "bcc", a=2.87, cubic=True))


def nothing(path: Path) -> None:
    """No file at all."""


#: (id, config changes, user-file writer or None, key, words in the message)
Change = Callable[[dict[str, Any]], None]


def set_value(section: str, key: str, value: Any) -> Change:
    def change(config: dict[str, Any]) -> None:
        config.setdefault(section, {})[key] = value

    return change


def set_top(key: str, value: Any) -> Change:
    def change(config: dict[str, Any]) -> None:
        config[key] = value

    return change


def missing_pseudo(config: dict[str, Any]) -> None:
    config["oracle"] = {"kind": "qe", "qe": {"pseudopotentials": {"Ni": "Ni.no-such-file.UPF"}}}


def qe_setting(key: str, value: Any) -> Change:
    def change(config: dict[str, Any]) -> None:
        config["oracle"] = {"kind": "qe", "qe": {key: value}}

    return change


def validation_compositions(*compositions: dict[str, float]) -> Change:
    return set_value("validation", "compositions", list(compositions))


def with_user_file(config: dict[str, Any]) -> None:
    config["structures"]["user_files"] = [USER_FILE]


CASES: list[tuple[str, Change, Callable[[Path], None] | None, str, str]] = [
    ("schema: wrong type", set_value("loop", "max_generations", "three"), None,
     "loop.max_generations", "is not of type 'integer'"),
    ("schema: unknown key", set_value("fit", "cutof", 4.0), None, "fit.cutof", "unknown key"),
    ("composition sum", set_value("structures", "compositions", [{"Cu": 0.6, "Ni": 0.6}]), None,
     "structures.compositions[0]", "fractions sum to 1.2, not 1"),
    ("unknown element", set_top("elements", ["Cu", "Qq"]), None, "elements",
     "'Qq' is not a chemical element"),
    ("element the oracle lacks", set_top("elements", ["Cu", "Ni", "Fe"]), None, "elements",
     "Fe not supported by the emt oracle"),
    ("missing pseudopotential", missing_pseudo, None, "oracle.qe.pseudopotentials.Ni",
     "'Ni.no-such-file.UPF' not found"),
    ("negative temperature", set_value("explore", "temperatures", [800, -5]), None, "explore.temperatures.1",
     "-5 is less than or equal to the minimum of 0"),
    ("gamma thresholds out of order", set_value("explore", "gamma_hi", 1.0), None, "explore.gamma_lo",
     "must be below explore.gamma_hi (1.5 >= 1.0)"),
    ("cell cap too small", set_value("embed", "max_atoms", 40), None, "embed.max_atoms",
     "40 atoms cannot hold the sphere"),
    ("validation composition foreign element", validation_compositions({"Cu": 1.0}, {"Cu": 0.5, "Au": 0.5}),
     None, "validation.compositions[1]", "element 'Au' is not listed in 'elements'"),
    ("validation composition sum", validation_compositions({"Cu": 0.5, "Ni": 0.6}), None,
     "validation.compositions[0]", "fractions sum to 1.1, not 1"),
    ("validation composition off the cell", validation_compositions({"Cu": 0.3, "Ni": 0.7}), None,
     "validation.compositions[0]", "32 atoms cannot hold composition Cu0.3 Ni0.7"),
    ("pw.x behind mpirun missing",
     qe_setting("command", "mpirun -np {cores} --bind-to core no-such-pw.x -nk 2"), None,
     "oracle.qe.command", "program 'no-such-pw.x' not found on PATH"),
    ("moment of a foreign element", qe_setting("starting_magnetic_moments", {"Ni": 0.6, "Fe": 2.0}), None,
     "oracle.qe.starting_magnetic_moments.Fe", "'Fe' is not listed in 'elements'"),
    ("cutoffs of a foreign element", qe_setting("element_cutoffs", {"Si": {"ecutwfc": 40}}), None,
     "oracle.qe.element_cutoffs.Si", "'Si' is not listed in 'elements'"),
    ("user file missing", with_user_file, nothing, "structures.user_files[0]", "does not exist"),
    ("user file unreadable", with_user_file, unreadable, "structures.user_files[0]", "unreadable by ase.io"),
    ("user file without cell", with_user_file, without_cell, "structures.user_files[0]",
     "has no periodic cell"),
    ("user file overlapping atoms", with_user_file, overlapping, "structures.user_files[0]",
     "has overlapping atoms 0 and 1 (0.40 A apart)"),
    ("user file foreign element", with_user_file, foreign_element, "structures.user_files[0]",
     "holds Fe, not listed in 'elements'"),
]  # fmt: skip

#: Cases run through the real snakemake command too (files found from the run directory).
CLI_CASES = {
    "schema: unknown key",
    "validation composition off the cell",
    "missing pseudopotential",
    "negative temperature",
    "user file missing",
    "user file unreadable",
    "user file without cell",
    "user file overlapping atoms",
    "user file foreign element",
}


def bad_config(change: Change) -> dict[str, Any]:
    config = yaml.safe_load(EMT_PRESET.read_text())
    change(config)
    return config


# --------------------------------------------------------------------------- results snapshot


def earlier_results(run_dir: Path) -> None:
    """A previous run's results and logs: labels, a cached label, a final summary."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    labelled = attach_labels(atoms, energy=-1.0, forces=np.zeros((4, 3)), stress=np.zeros(6))
    labelled.info["uid"] = "0123456789abcdef"
    write_structures(run_dir / "results/gen_000/labelled.extxyz", [labelled])
    write_structures(run_dir / "results/label_cache/feedbeef/0123456789abcdef.extxyz", [labelled])
    (run_dir / "results/final").mkdir(parents=True)
    (run_dir / "results/final/summary.json").write_text('{"generations": 1}\n')
    (run_dir / "logs").mkdir()
    (run_dir / "logs/structures.log").write_text("earlier run\n")


def snapshot(run_dir: Path) -> dict[str, tuple[int, str]]:
    """Every file under results/ and logs/: modification time and content hash."""
    found = {}
    for top in ("results", "logs"):
        for path in sorted((run_dir / top).rglob("*")):
            if path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[str(path.relative_to(run_dir))] = (path.stat().st_mtime_ns, digest)
            else:
                found[str(path.relative_to(run_dir))] = (path.stat().st_mtime_ns, "dir")
    return found


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize(("name", "change", "make_file", "key", "words"), CASES, ids=[c[0] for c in CASES])
def test_validation_names_the_key_of_each_bad_input(
    schema: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    change: Change,
    make_file: Callable[[Path], None] | None,
    key: str,
    words: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # user files are found from the run directory, as under snakemake
    if make_file is not None:
        make_file(tmp_path / USER_FILE)
    config = bad_config(change)
    with pytest.raises(ConfigError) as raised:
        validate_schema(config, copy.deepcopy(schema))
        check_config(config)
    message = str(raised.value)
    assert raised.value.key == key, message
    assert words in message and "\n" not in message, message
    if make_file is not None:
        assert f"'{USER_FILE}'" in message  # the file is named


def test_the_unchanged_preset_passes_the_same_validation(schema: dict[str, Any]) -> None:
    # so each case above fails for its own change alone
    config = bad_config(lambda config: None)
    validate_schema(config, copy.deepcopy(schema))
    check_config(config)
    check_sqs_setups(config["structures"], config["elements"])


def snakemake(run_dir: Path, configfile: Path) -> subprocess.CompletedProcess[str]:
    return run_snakemake(run_dir, configfile, cores=1, timeout=300)


def primitive_fcc_lattice(config: dict[str, Any]) -> None:
    """A one-site lattice file repeated 2x2x2: 8 sites, too few for three SQS pair shells
    (sqsgenerator parses the set-up in the main Snakemake process, not in check_config)."""
    config["structures"].update(lattice_file=USER_FILE, supercell=[2, 2, 2], composition_step=None)
    config["structures"]["compositions"] = [{"Cu": 0.5, "Ni": 0.5}]


def primitive_fcc(path: Path) -> None:
    write(path, bulk("Cu", "fcc", a=3.6))


CLI = [case for case in CASES if case[0] in CLI_CASES] + [
    ("SQS cell too small", primitive_fcc_lattice, primitive_fcc, "structures.supercell", "8-site SQS cell")
]


@pytest.mark.workflow
@pytest.mark.parametrize(("name", "change", "make_file", "key", "words"), CLI, ids=[c[0] for c in CLI])
def test_snakemake_stops_before_any_job_and_leaves_earlier_results_alone(
    tmp_path: Path,
    name: str,
    change: Change,
    make_file: Callable[[Path], None] | None,
    key: str,
    words: str,
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    earlier_results(run_dir)
    if make_file is not None:
        make_file(run_dir / USER_FILE)
    configfile = tmp_path / "bad.yaml"
    configfile.write_text(yaml.safe_dump(bad_config(change)))
    before = snapshot(run_dir)

    result = snakemake(run_dir, configfile)

    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ConfigError")]
    assert len(errors) == 1, result.stderr
    assert f"config key '{key}'" in errors[0] and words in errors[0], errors[0]
    assert snapshot(run_dir) == before
    assert "rule " not in result.stdout + result.stderr  # no job was even scheduled


@pytest.mark.workflow
def test_snakemake_on_a_fresh_directory_creates_no_results(tmp_path: Path) -> None:
    configfile = tmp_path / "bad.yaml"
    configfile.write_text(yaml.safe_dump(bad_config(set_value("explore", "gamma_hi", 1.0))))
    run_dir = tmp_path / "fresh"
    run_dir.mkdir()
    result = snakemake(run_dir, configfile)
    assert result.returncode != 0 and "config key 'explore.gamma_lo'" in result.stderr
    assert not (run_dir / "results").exists() and not (run_dir / "logs").exists()
