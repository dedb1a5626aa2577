"""Hostile names: spaces, quotes and `;` in the run folder, the config file and config values.

Nothing may reach a shell unquoted: a name holding ``;touch PWNED`` must create no file PWNED,
and the run must work as with tame names.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from ase.build import bulk
from ase.io import write

from mlip_autopipe.data import read_structures
from snakemake_cli import make_run_command

REPO = Path(__file__).resolve().parent.parent
EMT_PRESET = REPO / "config" / "emt.yaml"
#: A name that breaks unquoted or naively double-quoted shell code ("$(RUN_DIR)" runs
#: `touch PWNED`), and so tells if a shell ran it.
HOSTILE = 'it\'s "a ;touch PWNED; b "run'


def pwned(*folders: Path) -> list[Path]:
    """Files a shell that ran ``touch PWNED`` would have left in any of ``folders`` (recursively)."""
    return [path for folder in folders for path in folder.rglob("PWNED*")]


@pytest.mark.slow
@pytest.mark.workflow
def test_make_run_in_a_hostile_folder_with_a_hostile_user_file(tmp_path: Path) -> None:
    run_dir = tmp_path / f"run {HOSTILE}"
    run_dir.mkdir()
    user_file = f"user {HOSTILE}.extxyz"
    write(run_dir / user_file, bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1)))

    config = yaml.safe_load(EMT_PRESET.read_text())
    config["structures"].update(
        compositions=[{"Cu": 0.5, "Ni": 0.5}],
        composition_step=None,
        cells_per_composition=1,
        initial_pick=10,
        user_files=[user_file],
    )
    config["structures"]["sqs"]["iterations"] = 1000
    config["explore"].update(temperatures=[800], starts_per_temperature=1, steps=200)
    config["loop"]["max_generations"] = 1
    config["fit"]["functions_per_element"] = 40  # an active set from the few atoms of 10 cells
    config["validation"] = {"enabled": False}
    config_dir = tmp_path / f"config {HOSTILE}"
    config_dir.mkdir()
    configfile = config_dir / f"emt {HOSTILE}.yaml"
    configfile.write_text(yaml.safe_dump(config))

    command = make_run_command(run_dir, configfile, "CORES=2")
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900, cwd=tmp_path)

    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert not pwned(tmp_path, REPO), "a name was run by a shell"
    assert (run_dir / "results/final/potential.yace").stat().st_size > 0
    pool = read_structures(run_dir / "results/structures/pool.extxyz")
    users = [atoms for atoms in pool if atoms.info["origin"] == "user"]
    assert [atoms.info["source_file"] for atoms in users] == [user_file]
    labelled = read_structures(run_dir / "results/gen_000/labelled.extxyz")
    assert labelled and all(atoms.info["label_status"] == "ok" for atoms in labelled)


@pytest.mark.slow
def test_pw_command_and_pseudo_dir_with_hostile_names_run_without_a_shell(tmp_path: Path) -> None:
    from mlip_autopipe.config import with_defaults
    from mlip_autopipe.oracles import oracle_from_config
    from mlip_autopipe.oracles.qe import default_pseudo_dir

    folder = tmp_path / f"qe {HOSTILE}"
    pseudo_dir = folder / f"pseudos {HOSTILE}"
    pseudo_dir.mkdir(parents=True)
    found = default_pseudo_dir()
    assert found is not None
    (pseudo_dir / f"Si {HOSTILE}.UPF").symlink_to(found / "Si.pbe-nl-rrkjus_psl.1.0.0.UPF")
    calls = folder / "calls.log"
    wrapper = folder / f"pw {HOSTILE}.x"
    # the wrapper finds its log through "$0", so no hostile name is pasted into its own code
    wrapper.write_text('#!/bin/sh\necho "$PWD" >> "$(dirname "$0")/calls.log"\nexec pw.x "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)

    oracle_config = {
        "kind": "qe",
        "qe": {
            "command": [str(wrapper)],
            "pseudo_dir": str(pseudo_dir),
            "pseudopotentials": {"Si": f"Si {HOSTILE}.UPF"},
            "ecutwfc": 12,
            "ecutrho": 96,
            "kspacing": 1.2,
        },
    }
    work_dir = folder / f"work {HOSTILE}"
    oracle = oracle_from_config(
        with_defaults({"elements": ["Si"], "oracle": oracle_config}), work_dir=work_dir
    )
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.05, seed=1)
    labelled = oracle.label(atoms)

    assert abs(labelled.get_forces()).max() > 1e-4 and labelled.info["label_attempts"] == 1
    # one label run (the other call, in a scratch folder, read pw.x's version for the cache key)
    assert [line for line in calls.read_text().splitlines() if line.startswith(str(work_dir))] == [
        str(work_dir / "attempt_1")
    ]
    assert not pwned(tmp_path, REPO), "a name was run by a shell"
