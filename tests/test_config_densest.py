"""The embedding cell cap is checked at the densest composition, the composition grid included."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mlip_autopipe.config import check_config, validate_schema
from mlip_autopipe.embed import minimum_embedding_atoms
from mlip_autopipe.errors import ConfigError
from mlip_autopipe.lattice import densest_lattice_constant


def grid_config(schema: dict[str, Any]) -> dict[str, Any]:
    """Cu0.5Ni0.5 given explicitly; the 0.5 grid adds pure Cu and pure Ni (the densest, 3.52 A)."""
    config = {
        "elements": ["Cu", "Ni"],
        "oracle": {"kind": "emt"},
        "structures": {"compositions": [{"Cu": 0.5, "Ni": 0.5}], "composition_step": 0.5},
    }
    validate_schema(config, copy.deepcopy(schema))
    return config


def test_densest_lattice_constant_includes_the_composition_grid(schema: dict[str, Any]) -> None:
    config = grid_config(schema)
    explicit_only = densest_lattice_constant(config["structures"])
    with_grid = densest_lattice_constant(config["structures"], config["elements"])
    assert explicit_only == (pytest.approx((3.61 + 3.52) / 2), {"Cu": 0.5, "Ni": 0.5})
    assert with_grid == (pytest.approx(3.52), {"Ni": 1.0})


def test_densest_lattice_constant_of_user_files_only_is_none(schema: dict[str, Any]) -> None:
    config = grid_config(schema)
    config["structures"].update(compositions=[], composition_step=None)
    assert densest_lattice_constant(config["structures"], config["elements"]) is None


def test_cell_cap_that_only_the_grid_pure_element_exceeds_is_a_config_error(schema: dict[str, Any]) -> None:
    config = grid_config(schema)
    radius = config["fit"]["cutoff"] + config["embed"]["buffer"]
    at_mixture = minimum_embedding_atoms(radius, 4 / ((3.61 + 3.52) / 2) ** 3)
    at_nickel = minimum_embedding_atoms(radius, 4 / 3.52**3)
    assert at_mixture < at_nickel
    config["embed"]["max_atoms"] = at_mixture  # enough for the explicit composition only
    with pytest.raises(ConfigError) as raised:
        check_config(config)
    assert raised.value.key == "embed.max_atoms"
    assert f"composition Ni); the minimum is {at_nickel}" in str(raised.value)
    config["embed"]["max_atoms"] = at_nickel
    check_config(config)
