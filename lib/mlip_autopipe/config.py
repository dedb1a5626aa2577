"""Configuration: JSON-schema validation with defaults, then semantic checks.

Both raise :class:`ConfigError` naming the dotted key, so a user sees one line that says
what to fix, before any job starts.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from typing import Any

import yaml
from ase.data import atomic_numbers, reference_states

from mlip_autopipe.errors import ConfigError

#: Largest allowed deviation of a composition's sum from 1.
COMPOSITION_TOLERANCE = 1e-6

#: Elements ASE's EMT calculator has parameters for.
EMT_ELEMENTS = frozenset({"Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt"})

#: Atoms in the conventional cell of each supported parent lattice.
ATOMS_PER_CONVENTIONAL_CELL = {"fcc": 4, "bcc": 2, "sc": 1, "diamond": 8}


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping; a file that is not a mapping is a ConfigError."""
    with open(path) as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ConfigError("<root>", f"'{path}' must hold a mapping of keys, not {type(data).__name__}")
    return data


def _dotted(path: Iterator[Any] | Any) -> str:
    parts = [str(part) for part in path]
    return ".".join(parts) if parts else "<root>"


def validate_schema(config: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``config`` in place against ``schema``, filling in defaults.

    Raises:
        ConfigError: naming the first offending key, in one line.
    """
    from jsonschema import Draft202012Validator, validators

    base = Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Any, instance: Any, schema: Any) -> Any:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    with_defaults = validators.extend(base, {"properties": set_defaults})
    errors = sorted(with_defaults(dict(schema)).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        key = _dotted(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            unknown = sorted(set(error.instance) - allowed)
            prefix = f"{key}." if error.absolute_path else ""
            raise ConfigError(f"{prefix}{unknown[0]}", "unknown key (check its spelling)")
        raise ConfigError(key, error.message.replace("\n", " "))
    return config


def check_config(config: Mapping[str, Any]) -> None:
    """Semantic checks that a JSON schema cannot express."""
    elements = list(config["elements"])
    for element in elements:
        if element not in atomic_numbers or element == "X":
            raise ConfigError("elements", f"'{element}' is not a chemical element symbol")

    structures = config["structures"]
    for index, composition in enumerate(structures["compositions"]):
        _check_composition(f"structures.compositions[{index}]", composition, elements)
        _check_supercell_fits(index, composition, structures)
    if structures.get("lattice_constant") is None:
        for element in elements:
            if vegard_reference_constant(element, structures["lattice"]) is None:
                raise ConfigError(
                    "structures.lattice_constant",
                    f"no reference {structures['lattice']} lattice constant for {element} in ASE; "
                    "set structures.lattice_constant",
                )

    oracle = config["oracle"]
    if oracle["kind"] == "qe":
        # Pseudopotentials found and read, cutoffs resolved, pw.x on PATH: before any job.
        from mlip_autopipe.dft import resolve_settings

        resolve_settings(oracle.get("qe") or {}, elements)
    if oracle["kind"] == "emt":
        missing = [element for element in elements if element not in EMT_ELEMENTS]
        if missing:
            raise ConfigError(
                "elements",
                f"{', '.join(missing)} not supported by the emt oracle "
                f"(it knows {', '.join(sorted(EMT_ELEMENTS))})",
            )

    explore = config["explore"]
    if explore["gamma_lo"] >= explore["gamma_hi"]:
        raise ConfigError(
            "explore.gamma_lo",
            f"must be below explore.gamma_hi ({explore['gamma_lo']} >= {explore['gamma_hi']})",
        )
    if explore["check_interval"] > explore["steps"]:
        raise ConfigError("explore.check_interval", "must not exceed explore.steps")

    fit = config["fit"]
    if len(fit["nradmax_by_orders"]) != len(fit["lmax_by_orders"]):
        raise ConfigError(
            "fit.lmax_by_orders", "must have one entry per body order, like fit.nradmax_by_orders"
        )


def _check_composition(key: str, composition: Mapping[str, float], elements: list[str]) -> None:
    for element in composition:
        if element not in elements:
            raise ConfigError(key, f"element '{element}' is not listed in 'elements'")
    total = sum(composition.values())
    if abs(total - 1.0) > COMPOSITION_TOLERANCE:
        raise ConfigError(key, f"fractions sum to {total:.8g}, not 1")


def _check_supercell_fits(
    index: int, composition: Mapping[str, float], structures: Mapping[str, Any]
) -> None:
    n_atoms = ATOMS_PER_CONVENTIONAL_CELL[structures["lattice"]]
    for repeat in structures["supercell"]:
        n_atoms *= repeat
    for element, fraction in composition.items():
        count = fraction * n_atoms
        if abs(count - round(count)) > COMPOSITION_TOLERANCE * n_atoms or (fraction > 0 and count < 0.5):
            raise ConfigError(
                "structures.supercell",
                f"{n_atoms} atoms cannot hold composition {index} exactly "
                f"({element}: {fraction} x {n_atoms} = {count:.3g} atoms); use a larger or other supercell",
            )


def vegard_reference_constant(element: str, lattice: str) -> float | None:
    """ASE's reference cubic lattice constant of ``element`` in ``lattice``, or None.

    An element whose reference state has another cubic lattice is converted at equal
    volume per atom (so bcc Fe gives an fcc constant); non-cubic references give None.
    """
    state: dict[str, Any] = reference_states[atomic_numbers[element]] or {}
    if "a" not in state:
        return None
    a = float(state["a"])
    symmetry = str(state.get("symmetry"))
    if symmetry == lattice:
        return a
    cubic = {"fcc", "bcc", "sc", "diamond"}
    if symmetry in cubic and lattice in cubic:
        volume_per_atom = a**3 / ATOMS_PER_CONVENTIONAL_CELL[symmetry]
        return float((volume_per_atom * ATOMS_PER_CONVENTIONAL_CELL[lattice]) ** (1 / 3))
    return None


def load_config(path: str | os.PathLike[str], schema_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load, validate (with defaults) and check a configuration file."""
    config = load_yaml(path)
    validate_schema(config, load_yaml(schema_path))
    check_config(config)
    return config
