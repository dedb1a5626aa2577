"""Quantum ESPRESSO oracle: settings and cache key, real pw.x labels, SCF recovery, the ledger.

Every pw.x run here is tiny (2-atom cells, 20 Ry, one to a few k-points: about a second each).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.espresso import Espresso, EspressoProfile
from ase.io.espresso import kspacing_to_grid

from mlip_autopipe.config import check_config, validate_schema
from mlip_autopipe.data import read_structures, tag_structure, write_structures
from mlip_autopipe.errors import ConfigError
from mlip_autopipe.labelling import gather_labels, label_candidate
from mlip_autopipe.oracles import oracle_from_config
from mlip_autopipe.oracles.qe import kpoint_grid, pw_inputs, resolve_settings

#: Cheap settings for real pw.x runs on 2-atom cells.
TINY_QE: dict[str, Any] = {"ecutwfc": 20.0, "ecutrho": 80.0, "kspacing": 0.6}


def qe_config(
    schema: dict[str, Any], elements: list[str], lattice: str = "diamond", **qe: Any
) -> dict[str, Any]:
    """A validated config with the qe oracle (schema defaults filled in)."""
    config: dict[str, Any] = {
        "elements": elements,
        "structures": {"lattice": lattice, "compositions": [{elements[0]: 1.0}]},
        "oracle": {"kind": "qe", "qe": qe},
    }
    validate_schema(config, copy.deepcopy(schema))
    check_config(config)
    return config


@pytest.fixture
def sige_pair() -> Atoms:
    """A rattled 2-atom Si-Ge diamond cell (forces and stress non-zero)."""
    atoms = bulk("Si", "diamond", a=5.55)
    atoms.set_chemical_symbols(["Si", "Ge"])
    atoms.positions += np.random.default_rng(3).normal(scale=0.05, size=atoms.positions.shape)
    return tag_structure(atoms, generation=0, origin="rattle")


def test_kpoint_grid_counts_the_two_pi_that_ase_kspacing_leaves_out() -> None:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    spacing = 0.25
    expected = math.ceil(2 * math.pi / 5.43 / spacing)
    assert kpoint_grid(atoms, spacing) == (expected,) * 3
    assert tuple(kspacing_to_grid(atoms, spacing)) != (expected,) * 3
    slab = atoms.copy()
    slab.pbc = (True, True, False)
    assert kpoint_grid(slab, spacing)[2] == 1
    # a longer cell vector needs fewer k-points along it
    assert kpoint_grid(atoms.repeat((2, 1, 1)), spacing)[0] < expected


def test_default_cutoffs_are_the_maximum_over_the_pseudo_headers(schema: dict[str, Any]) -> None:
    config = qe_config(schema, ["Si", "Ge"])
    settings = resolve_settings(config["oracle"]["qe"], config["elements"])
    si, ge = settings.pseudopotentials["Si"], settings.pseudopotentials["Ge"]
    assert si.suggested_ecutwfc is not None and ge.suggested_ecutwfc is not None
    assert settings.ecutwfc == max(si.suggested_ecutwfc, ge.suggested_ecutwfc)
    assert settings.ecutrho >= 4 * settings.ecutwfc
    table = qe_config(schema, ["Si", "Ge"], element_cutoffs={"Ge": {"ecutwfc": 60, "ecutrho": 480}})
    assert resolve_settings(table["oracle"]["qe"], ["Si", "Ge"]).ecutwfc == 60


def test_settings_hash_follows_results_not_execution(schema: dict[str, Any], tmp_path: Path) -> None:
    def settings_hash(**qe: Any) -> str:
        config = qe_config(schema, ["Si"], **{**TINY_QE, **qe})
        return oracle_from_config(config).settings_hash()

    base = settings_hash()
    # execution details and where the pseudo lives do not change results
    pseudo = resolve_settings(qe_config(schema, ["Si"])["oracle"]["qe"], ["Si"]).pseudopotentials["Si"]
    copied = tmp_path / "copied"
    copied.mkdir()
    shutil.copy(pseudo.path, copied / pseudo.path.name)
    assert settings_hash(command="mpirun -np {cores} pw.x", cores=2, walltime_s=5) == base
    assert settings_hash(pseudo_dir=str(copied)) == base
    # physics does, pseudo file contents included
    assert settings_hash(ecutwfc=18.0) != base
    assert settings_hash(kspacing=0.3) != base
    assert settings_hash(degauss=0.02) != base
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / pseudo.path.name).write_bytes(pseudo.path.read_bytes() + b"\n<!-- edited -->\n")
    assert settings_hash(pseudo_dir=str(edited)) != base


@pytest.mark.parametrize(
    ("elements", "qe", "key", "words"),
    [
        (
            ["Si"],
            {"pseudopotentials": {"Si": "Si.missing.UPF"}},
            "oracle.qe.pseudopotentials.Si",
            "not found",
        ),
        (["Si", "Xe"], {}, "oracle.qe.pseudopotentials.Xe", "no default pseudopotential"),
        (["Si"], {"pseudopotentials": {"Qq": "Qq.UPF"}}, "oracle.qe.pseudopotentials.Qq", "not a chemical"),
        (["Si"], {"ecutwfc": 0}, "oracle.qe.ecutwfc", "less than or equal to the minimum"),
        (["Si"], {"ecutwfc": -30}, "oracle.qe.ecutwfc", "less than or equal to the minimum"),
        (["Si"], {"ecutwfc": 30, "ecutrho": 60}, "oracle.qe.ecutrho", "at least 4 x ecutwfc"),
        (
            ["Si"],
            {"element_cutoffs": {"Si": {"ecutwfc": -1}}},
            "oracle.qe.element_cutoffs.Si.ecutwfc",
            "positive",
        ),
        (["Si"], {"kspacing": 0}, "oracle.qe.kspacing", "less than or equal to the minimum"),
        (["Si"], {"command": "no-such-pw.x -nk 2"}, "oracle.qe.command", "not found on PATH"),
        (["Si"], {"command": "{mpi} -n 2 no-such-pw.x"}, "oracle.qe.command", "'no-such-pw.x' not found"),
        (["Si"], {"command": "mpirun -np 2 --oversubscribe"}, "oracle.qe.command", "names no program"),
        (["Si"], {"pseudo_dir": "/no/such/folder"}, "oracle.qe.pseudo_dir", "not a directory"),
    ],
)
def test_bad_qe_settings_are_config_errors_naming_the_key(
    schema: dict[str, Any], elements: list[str], qe: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        qe_config(schema, elements, **qe)
    assert raised.value.key == key
    assert words in str(raised.value) and "\n" not in str(raised.value)


def test_command_failure_is_a_ledgered_crash_not_an_exception(
    schema: dict[str, Any], sige_pair: Atoms, tmp_path: Path
) -> None:
    config = qe_config(schema, ["Si", "Ge"], command=["false"], **TINY_QE)
    failed = label_candidate(sige_pair, oracle_from_config(config))
    assert failed.info["label_status"] == "failed" and failed.info["label_failure"] == "crash"
    assert "exit code 1" in failed.info["label_reason"]
    assert failed.info["label_attempts"] == 1  # a crash is not retried


@pytest.mark.slow
def test_pw_labels_equal_a_direct_ase_espresso_run(
    schema: dict[str, Any], sige_pair: Atoms, tmp_path: Path
) -> None:
    config = qe_config(schema, ["Si", "Ge"], kspacing=0.5, ecutwfc=20.0, ecutrho=80.0)
    oracle = oracle_from_config(config, work_dir=tmp_path / "project")
    labelled = oracle.label(sige_pair)

    settings = resolve_settings(config["oracle"]["qe"], ["Si", "Ge"])
    inputs = pw_inputs(sige_pair, settings)
    direct = inputs.atoms
    direct.calc = Espresso(
        profile=EspressoProfile(command="pw.x", pseudo_dir=settings.pseudo_dir),
        directory=tmp_path / "direct",
        input_data=inputs.input_data,
        pseudopotentials=inputs.pseudopotentials,
        kpts=inputs.kpts,
    )
    assert labelled.get_potential_energy() == pytest.approx(direct.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(labelled.get_forces(), direct.get_forces(), atol=1e-5)
    np.testing.assert_allclose(labelled.get_stress(), direct.get_stress(), atol=1e-7)
    assert np.abs(labelled.get_forces()).max() > 1e-2 and np.abs(labelled.get_stress()).max() > 1e-4
    # provenance: the QE build that made the label, as pw.x printed it
    output = (tmp_path / "project/attempt_1/espresso.pwo").read_text()
    assert f"v.{labelled.info['qe_version']} starts" in output
    text = " ".join((tmp_path / "project/attempt_1/espresso.pwi").read_text().lower().split())
    for flag in ("tprnfor = .true.", "tstress = .true.", "disk_io = 'none'", "occupations = 'smearing'"):
        assert flag in text


@pytest.mark.slow
def test_spin_polarised_for_magnetic_elements_with_moments_from_magn(
    schema: dict[str, Any], tmp_path: Path
) -> None:
    iron = tag_structure(bulk("Fe", "bcc", a=2.83), generation=0, origin="alloy")
    config = qe_config(schema, ["Fe"], "bcc", ecutwfc=20.0, ecutrho=160.0, kspacing=0.8)
    labelled = oracle_from_config(config, work_dir=tmp_path).label(iron)
    text = (tmp_path / "attempt_1/espresso.pwi").read_text()
    assert "nspin" in text and "starting_magnetization(1)" in text
    # bcc Fe is ferromagnetic, about 2.2 Bohr magnetons per atom in PBE
    assert 1.5 < labelled.calc.results["magmoms"][0] < 3.0
    assert 1.5 < labelled.calc.results["magmom"] < 3.0
    write_structures(tmp_path / "fe.extxyz", labelled)
    (back,) = read_structures(tmp_path / "fe.extxyz")
    np.testing.assert_allclose(back.get_magnetic_moments(), labelled.calc.results["magmoms"])


@pytest.mark.slow
def test_scf_failure_is_recovered_by_the_ladder_and_ledgered(
    schema: dict[str, Any], sige_pair: Atoms, tmp_path: Path
) -> None:
    ladder = [{"mixing_beta": 0.3}, {"electron_maxstep": 100}]
    config = qe_config(schema, ["Si", "Ge"], electron_maxstep=2, recovery=ladder, **TINY_QE)
    recovered = label_candidate(sige_pair.copy(), oracle_from_config(config))
    assert recovered.info["label_status"] == "ok" and recovered.info["label_attempts"] == 3

    hopeless = qe_config(schema, ["Si", "Ge"], electron_maxstep=2, recovery=ladder[:1], **TINY_QE)
    moved = sige_pair.copy()
    moved.positions[0] += 0.05
    failed = label_candidate(
        tag_structure(moved, generation=0, origin="rattle"), oracle_from_config(hopeless)
    )
    assert failed.info["label_status"] == "failed"

    write_structures(tmp_path / "label/a.extxyz", recovered)
    write_structures(tmp_path / "label/b.extxyz", failed)
    labelled, ledger = gather_labels(sorted((tmp_path / "label").glob("*.extxyz")))
    assert [a.info["uid"] for a in labelled] == [recovered.info["uid"]]
    rows = {row["uid"]: row for row in ledger}
    good, bad = rows[recovered.info["uid"]], rows[failed.info["uid"]]
    assert [step["status"] for step in good["history"]] == ["scf_not_converged", "scf_not_converged", "ok"]
    assert [step["changes"] for step in good["history"]] == [{}, *ladder]
    assert good["attempts"] == 3 and good["status"] == "ok" and good["failure"] is None
    assert bad["status"] == "failed" and bad["failure"] == "scf_not_converged" and bad["attempts"] == 2
    assert "recovery ladder exhausted" in bad["reason"]
    json.dumps(ledger)  # the ledger is plain JSON


@pytest.mark.slow
def test_walltime_is_classified_and_not_retried(schema: dict[str, Any], tmp_path: Path) -> None:
    big = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 1, 1))
    big = tag_structure(big, generation=0, origin="alloy")
    config = qe_config(schema, ["Si"], walltime_s=0.5, ecutwfc=30.0, kspacing=0.2)
    failed = label_candidate(big, oracle_from_config(config, work_dir=tmp_path))
    assert failed.info["label_failure"] == "walltime" and failed.info["label_attempts"] == 1
    assert "walltime of 0.5 s" in failed.info["label_reason"]


def test_mpi_placeholder_becomes_the_rules_launcher() -> None:
    from mlip_autopipe.oracles.qe import expand_mpi, pw_argv

    command = ("{mpi}", "-n", "{cores}", "pw.x", "-nk", "{cores}")
    assert expand_mpi(command, None)[0] == "mpirun"  # the local default
    under_slurm = expand_mpi(command, "srun --mpi=pmix")
    assert under_slurm[:2] == ("srun", "--mpi=pmix")
    assert pw_argv(under_slurm, 4)[:5] == ["srun", "--mpi=pmix", "-n", "4", "pw.x"]
    assert expand_mpi(("pw.x",), "srun") == ("pw.x",)  # no placeholder: nothing changes


# --------------------------------------------------------------------------- issue 16, items 1-4


def test_pseudopotential_links_are_named_per_element(schema: dict[str, Any], tmp_path: Path) -> None:
    from mlip_autopipe.oracles.qe import link_pseudopotentials

    default = resolve_settings(qe_config(schema, ["Si", "Ge"])["oracle"]["qe"], ["Si", "Ge"])
    library = {}
    for element, name in (("Si", "pbe.UPF"), ("Ge", "pbe.upf")):
        (tmp_path / element).mkdir()
        shutil.copy(default.pseudopotentials[element].path, tmp_path / element / name)
        library[element] = str(tmp_path / element / name)
    config = qe_config(schema, ["Si", "Ge"], pseudopotentials=library, **TINY_QE)
    settings = resolve_settings(config["oracle"]["qe"], ["Si", "Ge"])
    pair = bulk("Si", "diamond", a=5.55)
    pair.set_chemical_symbols(["Si", "Ge"])
    inputs = pw_inputs(pair, settings)
    link_pseudopotentials(inputs, settings, tmp_path)
    # one link per element, whatever the library calls its files; the extension is kept
    assert inputs.pseudopotentials == {"Ge": "Ge.upf", "Si": "Si.UPF"}
    for element, name in inputs.pseudopotentials.items():
        assert (tmp_path / "pseudo" / name).resolve() == Path(library[element]).resolve()


@pytest.mark.slow
def test_folder_per_element_pseudopotentials_give_the_distinct_name_energy(
    schema: dict[str, Any], sige_pair: Atoms, tmp_path: Path
) -> None:
    # a cluster-style library: <dir>/Si/pbe.UPF, <dir>/Ge/pbe.UPF, copies of Debian's picks
    default = resolve_settings(qe_config(schema, ["Si", "Ge"])["oracle"]["qe"], ["Si", "Ge"])
    library = {}
    for element in ("Si", "Ge"):
        (tmp_path / "library" / element).mkdir(parents=True)
        shutil.copy(default.pseudopotentials[element].path, tmp_path / "library" / element / "pbe.UPF")
        library[element] = str(tmp_path / "library" / element / "pbe.UPF")
    distinct = qe_config(schema, ["Si", "Ge"], **TINY_QE)
    per_folder = qe_config(schema, ["Si", "Ge"], pseudopotentials=library, **TINY_QE)
    expected = oracle_from_config(distinct).label(sige_pair)
    labelled = oracle_from_config(per_folder, work_dir=tmp_path / "run").label(sige_pair)
    assert labelled.get_potential_energy() == pytest.approx(expected.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(labelled.get_forces(), expected.get_forces(), atol=1e-5)
    assert sorted(path.name for path in (tmp_path / "run/attempt_1/pseudo").iterdir()) == ["Ge.UPF", "Si.UPF"]


#: QE 6.7 (Debian 12), as pw.x printed it for bcc Fe here.
MAGNETIC_MOMENTS_QE_6_7 = """
     Magnetic moment per site:
     atom:    1    charge:    6.4815    magn:    2.0370    constr:    0.0000
     atom:    2    charge:    6.4815    magn:   -1.9012    constr:    0.0000

     total cpu time spent up to now is        2.1 secs
"""

#: QE 6.8 and later (PW/src/report_mag.f90: FORMAT 'atom',i4,' (R=',F5.3,')  charge=',F8.4,'  magn=',F8.4).
MAGNETIC_MOMENTS_QE_7 = """
     Magnetic moment per site  (integrated on atomic sphere of radius R)
     atom   1 (R=0.190)  charge= 14.3011  magn=  0.6012
     atom   2 (R=0.190)  charge= 14.2999  magn= -0.5987

     total cpu time spent up to now is        2.1 secs
"""

MAGNETIC_MOMENTS_QE_7_CONSTRAINED = """
     Magnetic moment per site  (integrated on atomic sphere of radius R)
     atom   1 (R=0.190)  charge= 14.3011  magn=  0.6012   constr=  1.0000
     atom   2 (R=0.190)  charge= 14.2999  magn= -0.5987   constr= -1.0000
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MAGNETIC_MOMENTS_QE_6_7, [2.0370, -1.9012]),
        (MAGNETIC_MOMENTS_QE_7, [0.6012, -0.5987]),
        (MAGNETIC_MOMENTS_QE_7_CONSTRAINED, [0.6012, -0.5987]),
    ],
)
def test_magnetic_moments_are_read_from_qe_6_7_and_qe_7_output(text: str, expected: list[float]) -> None:
    from mlip_autopipe.oracles.qe import parse_magnetic_moments

    earlier = text.replace("0.6012", "9.9999").replace("2.0370", "9.9999")  # an earlier SCF step's block
    moments = parse_magnetic_moments(earlier + "\n iteration #  9\n" + text, 2)
    assert moments is not None
    np.testing.assert_allclose(moments, expected)
    assert parse_magnetic_moments(text, 3) is None  # a block for another structure is not half-read


def test_default_recovery_ladder_keeps_the_hamiltonian(schema: dict[str, Any]) -> None:
    from mlip_autopipe.oracles.qe import PHYSICS_RUNG_KEYS, RESULT_PRESERVING_RUNG_KEYS

    config = qe_config(schema, ["Si"])
    ladder = config["oracle"]["qe"]["recovery"]
    assert len(ladder) >= 4
    assert all(key in RESULT_PRESERVING_RUNG_KEYS for rung in ladder for key in rung)
    # every rung key the schema accepts is classified, one way or the other
    rung_keys = schema["properties"]["oracle"]["properties"]["qe"]["properties"]["recovery"]["items"][
        "properties"
    ]
    assert set(rung_keys) == set(RESULT_PRESERVING_RUNG_KEYS) | set(PHYSICS_RUNG_KEYS)
    assert config["oracle"]["qe"]["recovery_allow_physics_changes"] is False


@pytest.mark.slow
def test_result_preserving_rungs_reproduce_the_first_attempt_label(
    schema: dict[str, Any], sige_pair: Atoms, tmp_path: Path
) -> None:
    direct = oracle_from_config(qe_config(schema, ["Si", "Ge"], **TINY_QE)).label(sige_pair)
    ladder = [{"diagonalization": "cg", "startingwfc": "random", "mixing_ndim": 12, "electron_maxstep": 100}]
    config = qe_config(schema, ["Si", "Ge"], electron_maxstep=2, recovery=ladder, **TINY_QE)
    recovered = label_candidate(sige_pair.copy(), oracle_from_config(config, work_dir=tmp_path))
    assert recovered.info["label_status"] == "ok" and recovered.info["recovery_rung"] == 1
    text = " ".join((tmp_path / "attempt_2/espresso.pwi").read_text().lower().split())
    for flag in ("diagonalization = 'cg'", "startingwfc = 'random'", "mixing_ndim = 12"):
        assert flag in text
    # the same Hamiltonian: the same label to within the SCF threshold
    assert recovered.get_potential_energy() == pytest.approx(direct.get_potential_energy(), abs=1e-5)
    np.testing.assert_allclose(recovered.get_forces(), direct.get_forces(), atol=1e-4)


@pytest.mark.slow
def test_a_rung_that_changes_the_hamiltonian_needs_the_opt_in(
    schema: dict[str, Any], sige_pair: Atoms, tmp_path: Path
) -> None:
    ladder = [{"mixing_beta": 0.3}, {"degauss": 0.03, "electron_maxstep": 100}]
    strict = qe_config(schema, ["Si", "Ge"], electron_maxstep=2, recovery=ladder, **TINY_QE)
    kept_out = label_candidate(sige_pair.copy(), oracle_from_config(strict))
    assert kept_out.info["label_status"] == "failed" and kept_out.info["label_failure"] == "scf_not_converged"
    assert "recovery_allow_physics_changes" in kept_out.info["label_reason"]
    assert kept_out.info["label_attempts"] == 2  # the degauss rung never ran

    opted_in = qe_config(
        schema,
        ["Si", "Ge"],
        electron_maxstep=2,
        recovery=ladder,
        recovery_allow_physics_changes=True,
        **TINY_QE,
    )
    oracle = oracle_from_config(opted_in)
    assert oracle.settings_hash() != oracle_from_config(strict).settings_hash()
    smeared = label_candidate(sige_pair.copy(), oracle)
    assert smeared.info["label_status"] == "ok" and smeared.info["recovery_rung"] == 2

    write_structures(tmp_path / "label/a.extxyz", smeared)
    write_structures(tmp_path / "label/b.extxyz", kept_out)
    labelled, ledger = gather_labels(sorted((tmp_path / "label").glob("*.extxyz")))
    assert len(labelled) == 1 and labelled[0].info["recovery_rung"] == 2
    assert sorted((row["status"], row["recovery_rung"]) for row in ledger) == [("failed", None), ("ok", 2)]


def test_pw_version_is_read_from_the_program_header() -> None:
    from mlip_autopipe.oracles.qe import pw_version

    assert pw_version(["pw.x"]) == subprocess_version()
    # the launcher and its options are skipped; the placeholder too
    assert pw_version(["mpirun", "-np", "{cores}", "pw.x", "-nk", "2"]) == pw_version(["pw.x"])
    assert pw_version(["{mpi}", "-n", "{cores}", "pw.x"]) == pw_version(["pw.x"])
    assert pw_version(["no-such-program-pw.x"]) == "unknown"


def test_label_params_and_cache_key_follow_the_pw_and_ase_versions(
    schema: dict[str, Any], tmp_path: Path
) -> None:
    import dataclasses

    import ase

    from mlip_autopipe.oracles.qe import QEOracle, result_config

    # another QE build: a pw.x whose header names another version
    other = tmp_path / "bin" / "pw.x"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\necho '     Program PWSCF v.7.3.1 starts on  1Dec2026 at  2:45: 7'\nexit 1\n")
    other.chmod(0o755)
    config = qe_config(schema, ["Si"], **TINY_QE)
    params = result_config(config["oracle"])["qe"]
    assert params["pw_version"] == subprocess_version() and params["ase_version"] == ase.__version__
    elsewhere = copy.deepcopy(config["oracle"])
    elsewhere["qe"]["command"] = f"mpirun -np {{cores}} {other}"
    assert result_config(elsewhere)["qe"]["pw_version"] == "7.3.1"

    settings = resolve_settings(config["oracle"]["qe"], ["Si"])
    assert settings.pw_version == subprocess_version()
    base = QEOracle(settings).settings_hash()
    assert QEOracle(dataclasses.replace(settings, pw_version="7.3.1")).settings_hash() != base
    assert QEOracle(dataclasses.replace(settings, ase_version="3.99.0")).settings_hash() != base
    assert QEOracle(resolve_settings(elsewhere["qe"], ["Si"])).settings_hash() != base


def subprocess_version() -> str:
    """The installed pw.x's version, as its own header prints it."""
    import re

    with tempfile.TemporaryDirectory() as folder:
        header = subprocess.run(
            ["pw.x"], stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=folder, check=False
        ).stdout
    match = re.search(r"Program PWSCF v\.(\S+) starts", header)
    assert match is not None
    return match.group(1)


@pytest.mark.slow
def test_a_cache_hit_keeps_the_qe_version(schema: dict[str, Any], sige_pair: Atoms, tmp_path: Path) -> None:
    oracle = oracle_from_config(qe_config(schema, ["Si", "Ge"], **TINY_QE))
    fresh = label_candidate(sige_pair.copy(), oracle, cache_dir=tmp_path)
    again = label_candidate(sige_pair.copy(), oracle, cache_dir=tmp_path)
    assert not fresh.info["from_cache"] and again.info["from_cache"]
    assert again.info["qe_version"] == fresh.info["qe_version"] == subprocess_version()
    assert again.info["recovery_rung"] == fresh.info["recovery_rung"] == 0


def test_the_program_behind_an_mpi_launcher_is_found() -> None:
    from mlip_autopipe.oracles.qe import launched_program

    assert launched_program(["pw.x", "-nk", "2"]) == "pw.x"
    assert launched_program(["mpirun", "-np", "{cores}", "--allow-run-as-root", "pw.x", "-nk", "2"]) == "pw.x"
    assert launched_program(["srun", "--mpi=pmix", "/opt/qe/bin/pw.x"]) == "/opt/qe/bin/pw.x"
    assert launched_program(["mpiexec", "-n", "4", "--bind-to", "core", "my-pw"]) == "my-pw"
    assert launched_program(["mpirun", "-np", "2"]) is None
