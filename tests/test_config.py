"""The configuration is validated before any job, with one-line errors naming the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from mlip_autopipe.config import check_config, validate_schema
from mlip_autopipe.errors import ConfigError
from mlip_autopipe.lattice import vegard_reference_constant


def checked(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    validate_schema(config, copy.deepcopy(schema))
    check_config(config)
    return config


def test_empty_config_gets_every_default(schema: dict[str, Any]) -> None:
    config = checked({}, schema)
    assert config["elements"] == ["Cu", "Ni"]
    assert config["explore"]["gamma_lo"] < config["explore"]["gamma_hi"]
    assert config["structures"]["supercell"] == [2, 2, 2]


def test_every_schema_key_has_a_description_and_a_default(schema: dict[str, Any]) -> None:
    def walk(node: dict[str, Any], path: str) -> None:
        for name, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}{name} has no description"
            assert "default" in sub, f"{path}{name} has no default"
            walk(sub, f"{path}{name}.")

    walk(schema, "")


@pytest.mark.parametrize(
    ("override", "key", "words"),
    [
        ({"elements": ["Cu", "Xx"]}, "elements", "not a chemical element"),
        (
            {"elements": ["Cu", "Fe"], "structures": {"compositions": [{"Cu": 0.5, "Fe": 0.5}]}},
            "elements",
            "not supported by the emt oracle",
        ),
        (
            {"structures": {"compositions": [{"Cu": 0.5, "Ni": 0.4}]}},
            "structures.compositions[0]",
            "sum to 0.9",
        ),
        (
            {"structures": {"compositions": [{"Cu": 0.5, "Au": 0.5}]}},
            "structures.compositions[0]",
            "not listed",
        ),
        (
            {"structures": {"compositions": [{"Cu": 0.3, "Ni": 0.7}]}},
            "structures.supercell",
            "cannot hold composition",
        ),
        ({"explore": {"gamma_lo": 5.0, "gamma_hi": 2.0}}, "explore.gamma_lo", "below explore.gamma_hi"),
        ({"explore": {"temperatures": [-10]}}, "explore.temperatures.0", "less than or equal"),
        ({"fit": {"cutof": 4.0}}, "fit.cutof", "unknown key"),
        ({"fit": {"lmax_by_orders": [0, 1]}}, "fit.lmax_by_orders", "one entry per body order"),
        ({"fit": {"mode": "quadratic"}}, "fit.mode", "is not one of"),
        ({"fit": {"fs_parameters": [1, 1, 1]}}, "fit.fs_parameters", "even number"),
        ({"fit": {"repulsion": "zbl"}}, "fit.repulsion", "is not valid"),
        ({"fit": {"loss_kappa": 1.5}}, "fit.loss_kappa", "maximum"),
        (
            {"fit": {"mode": "nonlinear", "environments_per_function": 3}},
            "fit.environments_per_function",
            "fit.warm_start: false",
        ),
        ({"fit": {"environments_per_function": 0}}, "fit.environments_per_function", "less than or equal"),
        ({"loop": {"max_generations": 0}}, "loop.max_generations", "less than the minimum"),
    ],
)
def test_bad_config_names_the_key(
    schema: dict[str, Any], override: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        checked(override, schema)
    assert raised.value.key == key
    assert words in str(raised.value)
    assert "\n" not in str(raised.value)


def test_exact_composition_within_tolerance_is_accepted(schema: dict[str, Any]) -> None:
    checked({"structures": {"compositions": [{"Cu": 0.5 + 5e-7, "Ni": 0.5 - 4e-7}]}}, schema)


def test_vegard_reference_converts_between_cubic_lattices() -> None:
    assert vegard_reference_constant("Cu", "fcc") == pytest.approx(3.61)
    fcc_fe = vegard_reference_constant("Fe", "fcc")
    assert fcc_fe is not None
    # equal volume per atom: a_fcc^3 / 4 == a_bcc^3 / 2
    assert fcc_fe**3 / 4 == pytest.approx(vegard_reference_constant("Fe", "bcc") ** 3 / 2)


def test_missing_lattice_constant_reference_is_a_config_error(schema: dict[str, Any]) -> None:
    # Zn's reference state is hcp: no cubic constant to mix, so the user must give one.
    config = {"elements": ["Zn", "Cu"], "structures": {"compositions": [{"Zn": 0.5, "Cu": 0.5}]}}
    with pytest.raises(ConfigError) as raised:
        checked(config, schema)
    assert raised.value.key == "structures.lattice_constant"


@pytest.mark.parametrize(
    ("structures", "elements", "key", "words"),
    [
        (
            {"compositions": [{"Cu": 0.5, "Ni": 0.500002}]},
            ["Cu", "Ni"],
            "structures.compositions[0]",
            "not 1",
        ),
        (
            {"lattice": "bcc", "compositions": [{"Cu": 0.5, "O": 0.5}]},
            ["Cu", "O"],
            "structures.lattice_constant",
            "no reference bcc lattice constant for O",
        ),
        (
            {"lattice": "hcp", "compositions": [{"Cu": 0.5, "Ga": 0.5}]},
            ["Cu", "Ga"],
            "structures.lattice_constant",
            "for Ga",
        ),
        ({"composition_step": 0.1}, ["Cu", "Ni"], "structures.supercell", "32 atoms cannot hold"),
        (
            {"lattice": "hcp", "supercell": [2, 1, 1], "compositions": [{"Cu": 0.125, "Ni": 0.875}]},
            ["Cu", "Ni"],
            "structures.supercell",
            "4 atoms cannot hold composition Cu0.125 Ni0.875",
        ),
        (
            {"lattice": "diamond", "supercell": [1, 1, 1], "compositions": [{"Cu": 0.1, "Ni": 0.9}]},
            ["Cu", "Ni"],
            "structures.supercell",
            "8 atoms cannot hold",
        ),
        ({"composition_step": 0.3}, ["Cu", "Ni"], "structures.composition_step", "whole number"),
        ({"compositions": []}, ["Cu", "Ni"], "structures.compositions", "no structures"),
        ({"sqs": {"pair_shells": 0}}, ["Cu", "Ni"], "structures.sqs.pair_shells", "less than the minimum"),
        ({"defects": {"vacancy": 1}}, ["Cu", "Ni"], "structures.defects.vacancy", "unknown key"),
    ],
)
def test_bad_structures_section_names_the_key(
    schema: dict[str, Any], structures: dict[str, Any], elements: list[str], key: str, words: str
) -> None:
    config = {"elements": elements, "structures": structures, "oracle": {"kind": "emt"}}
    with pytest.raises(ConfigError) as raised:
        checked(config, schema)
    assert raised.value.key == key
    assert words in str(raised.value)
    assert "\n" not in str(raised.value)


def test_lattice_file_sets_the_site_count_and_must_be_usable(schema: dict[str, Any], tmp_path: Path) -> None:
    write(tmp_path / "sites.extxyz", bulk("Si", "diamond", a=5.43, cubic=True))
    good = {"lattice_file": str(tmp_path / "sites.extxyz"), "supercell": [1, 1, 1]}
    # Si is not a run element, yet a lattice file only gives sites: accepted
    checked({"structures": {**good, "compositions": [{"Cu": 0.25, "Ni": 0.75}]}}, schema)
    with pytest.raises(ConfigError) as raised:
        checked({"structures": {**good, "compositions": [{"Cu": 0.1, "Ni": 0.9}]}}, schema)
    assert raised.value.key == "structures.supercell" and "8 atoms" in str(raised.value)
    write(tmp_path / "molecule.xyz", Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.3]]), format="xyz")
    with pytest.raises(ConfigError) as raised:
        checked({"structures": {"lattice_file": str(tmp_path / "molecule.xyz")}}, schema)
    assert raised.value.key == "structures.lattice_file" and "molecule.xyz" in str(raised.value)


def test_lammps_engine_needs_a_loadable_pace_extrapolation(
    schema: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlip_autopipe.explore.lammps as lammps

    config = {"explore": {"engine": "lammps"}}
    checked(copy.deepcopy(config), schema)  # this checkout's plugin, built by `make plugin`
    monkeypatch.setattr(lammps, "PLUGIN_BUILD_DIR", tmp_path)  # no plugin built
    monkeypatch.delenv("LAMMPS_PLUGIN_PATH", raising=False)
    with pytest.raises(ConfigError) as raised:
        checked(copy.deepcopy(config), schema)
    assert raised.value.key == "explore.engine" and "pace/extrapolation" in str(raised.value)
    # a plugin path whose file LAMMPS cannot load: the pair style is still missing
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "paceplugin.so").write_bytes(b"not a shared library")
    monkeypatch.setenv("LAMMPS_PLUGIN_PATH", str(broken))
    with pytest.raises(ConfigError) as raised:
        checked(copy.deepcopy(config), schema)
    assert raised.value.key == "explore.engine" and "\n" not in str(raised.value)
    assert "cannot create pair_style pace/extrapolation" in str(raised.value)
    config["explore"]["lammps_command"] = "no-such-lmp"
    with pytest.raises(ConfigError) as raised:
        checked(copy.deepcopy(config), schema)
    assert raised.value.key == "explore.lammps_command"
