"""Configuration: JSON-schema validation with defaults, then semantic checks.

Both raise :class:`ConfigError` naming the dotted key, so a user sees one line that says
what to fix, before any job starts.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from ase.data import atomic_numbers

from mlip_autopipe.errors import ConfigError
from mlip_autopipe.lattice import (
    ATOMS_PER_CONVENTIONAL_CELL,
    COMPOSITION_TOLERANCE,
    NEAREST_NEIGHBOUR_FACTOR,
    all_compositions,
    composition_name,
    densest_lattice_constant,
    parent_lattice,
    vegard_reference_constant,
)

#: Elements ASE's EMT calculator has parameters for.
EMT_ELEMENTS = frozenset({"Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt"})


#: The schema of this checkout (the user manual of the configuration: every default lives there).
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


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
    if not all_compositions(structures, elements) and not structures.get("user_files"):
        raise ConfigError(
            "structures.compositions", "no structures: give a composition, a composition_step or user_files"
        )
    if structures.get("lattice_file"):
        parent_lattice(structures)  # an unusable file is named as such, even with no composition
    for composition in all_compositions(structures, elements):
        _check_supercell_fits(composition, structures)
    if structures.get("lattice_constant") is None and not structures.get("lattice_file"):
        for element in _elements_in(all_compositions(structures, elements)):
            if vegard_reference_constant(element, structures["lattice"]) is None:
                raise ConfigError(
                    "structures.lattice_constant",
                    f"no reference {structures['lattice']} lattice constant for {element} in ASE; "
                    "set structures.lattice_constant",
                )
    _check_user_files(structures, elements)
    _check_validation_compositions(config, elements)

    oracle = config["oracle"]
    if oracle["kind"] == "qe":
        # Pseudopotentials found and read, cutoffs resolved, pw.x on PATH: before any job.
        from mlip_autopipe.oracles.qe import resolve_settings

        qe = oracle["qe"]
        for section in ("starting_magnetic_moments", "element_cutoffs"):
            for element in qe[section] or {}:
                if element not in elements:
                    raise ConfigError(
                        f"oracle.qe.{section}.{element}",
                        f"'{element}' is not listed in 'elements' {elements}",
                    )
        resolve_settings(qe, elements)
    if oracle["kind"] == "emt":
        missing = [element for element in elements if element not in EMT_ELEMENTS]
        if missing:
            raise ConfigError(
                "elements",
                f"{', '.join(missing)} not supported by the emt oracle "
                f"(it knows {', '.join(sorted(EMT_ELEMENTS))})",
            )

    _check_surrogates(config)

    explore = config["explore"]
    if explore["engine"] == "lammps":
        from mlip_autopipe.explore.lammps import check_pace_extrapolation

        check_pace_extrapolation(explore)
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
    if len(fit["fs_parameters"]) % 2:
        raise ConfigError("fit.fs_parameters", "needs (prefactor, exponent) pairs: an even number of values")
    if fit["environments_per_function"] is not None and fit["mode"] == "nonlinear" and fit["warm_start"]:
        raise ConfigError(
            "fit.environments_per_function",
            "sizes the basis by the data, so it changes between generations; a nonlinear warm "
            "start needs the previous generation's basis: set fit.warm_start: false, or null here",
        )
    _check_embedding(config)
    _check_ladder(config)


def _check_ladder(config: Mapping[str, Any]) -> None:
    """production.ladder needs the production fit it grows: nonlinear, with a held-out test set,
    and a basis larger than one step."""
    production = config["production"]
    ladder = production["ladder"]
    if not ladder["enabled"]:
        return
    if not production["enabled"]:
        raise ConfigError(
            "production.ladder.enabled", "needs production.enabled: true (it grows the production fit)"
        )
    settings = {**config["fit"], **{k: v for k, v in production["fit"].items() if v is not None}}
    if settings["mode"] != "nonlinear":
        raise ConfigError(
            "production.ladder.enabled",
            f"needs production.fit.mode nonlinear (pacemaker's ladder), not {settings['mode']}",
        )
    if not settings["test_fraction"] > 0:
        raise ConfigError(
            "production.fit.test_fraction",
            "must be above 0 with production.ladder.enabled: the ladder stops on the held-out test error",
        )
    step = ladder["ladder_step"]
    functions = [value for value in (step if isinstance(step, list) else [step]) if value >= 1]
    if functions and functions[0] >= settings["functions_per_element"]:
        raise ConfigError(
            "production.ladder.ladder_step",
            f"{functions[0]} functions per step reach production.fit.functions_per_element "
            f"({settings['functions_per_element']}) in the first step: nothing to grow",
        )


def _check_surrogates(config: Mapping[str, Any]) -> None:
    """MACE model files exist wherever a MACE surrogate is used (oracle or surrogate section)."""
    from mlip_autopipe.oracles.surrogates import check_model_files

    if config["oracle"]["kind"] == "mace":
        check_model_files(config["oracle"]["mace"]["model_paths"], "oracle.mace.model_paths")
    surrogate = config.get("surrogate") or {}
    prescreen = surrogate.get("prescreen", {}).get("enabled")
    distillation = surrogate.get("distillation", {})
    if distillation.get("finetune") and not distillation.get("enabled"):
        raise ConfigError(
            "surrogate.distillation.finetune",
            "fine-tuning feeds the distillation pool: set surrogate.distillation.enabled true as well",
        )
    if distillation.get("md", {}).get("enabled") and not distillation.get("enabled"):
        raise ConfigError(
            "surrogate.distillation.md.enabled",
            "surrogate MD feeds the distillation pool: set surrogate.distillation.enabled true as well",
        )
    if surrogate.get("finetuning", {}).get("committee", 1) > 1 and surrogate.get("kind") != "mace":
        raise ConfigError(
            "surrogate.finetuning.committee",
            "a fine-tuned committee is MACE only (surrogate.kind mace); CHGNet fine-tunes one model",
        )
    held_out = surrogate.get("finetuning", {}).get("test_fraction", 1.0)
    fit_held_out = config.get("fit", {}).get("test_fraction", 0.0)
    if distillation.get("finetune") and held_out < fit_held_out:
        raise ConfigError(
            "surrogate.finetuning.test_fraction",
            f"must be at least fit.test_fraction ({held_out} < {fit_held_out}): the surrogate "
            "would train on the fit's test structures",
        )
    # a MACE surrogate fine-tuned from scratch needs no model file, unless it also pre-screens
    needs_files = prescreen or (distillation.get("enabled") and not distillation.get("finetune"))
    model_paths = surrogate.get("mace", {}).get("model_paths")
    if surrogate.get("kind") == "mace" and (needs_files or (distillation.get("finetune") and model_paths)):
        check_model_files(surrogate["mace"]["model_paths"], "surrogate.mace.model_paths")


#: embed.min_distance must stay below this fraction of the nearest-neighbour distance.
MIN_DISTANCE_FRACTION = 0.8


def _check_embedding(config: Mapping[str, Any]) -> None:
    """The embedded cell must fit under embed.max_atoms at the material's density."""
    from mlip_autopipe.embed import minimum_embedding_atoms

    structures, embed = config["structures"], config["embed"]
    lattice = structures["lattice"]
    densest = densest_lattice_constant(structures, config["elements"])
    if densest is None:  # user files only: their cells are checked as they are
        return
    a, composition = densest
    where = f"composition {composition_name(composition, ' ')}"
    neighbour = NEAREST_NEIGHBOUR_FACTOR[lattice] * a
    if embed["min_distance"] >= MIN_DISTANCE_FRACTION * neighbour:
        raise ConfigError(
            "embed.min_distance",
            f"{embed['min_distance']} A would thin out bulk atoms; keep it below "
            f"{MIN_DISTANCE_FRACTION} x the nearest-neighbour distance {neighbour:.2f} A "
            f"({where}), i.e. below {MIN_DISTANCE_FRACTION * neighbour:.2f} A",
        )
    density = ATOMS_PER_CONVENTIONAL_CELL[lattice] / a**3
    radius = config["fit"]["cutoff"] + embed["buffer"]
    minimum = minimum_embedding_atoms(radius, density)
    if embed["max_atoms"] < minimum:
        raise ConfigError(
            "embed.max_atoms",
            f"{embed['max_atoms']} atoms cannot hold the sphere of radius fit.cutoff + embed.buffer "
            f"= {radius:g} A at {density:.4f} atoms/A^3 ({where}); the minimum is {minimum}",
        )


def _check_validation_compositions(config: Mapping[str, Any], elements: list[str]) -> None:
    """Validation compositions: run elements, summing to 1; alloys fit the pool's SQS cell."""
    structures = config["structures"]
    for index, composition in enumerate(config["validation"].get("compositions") or []):
        key = f"validation.compositions[{index}]"
        _check_composition(key, composition, elements)
        if sum(1 for fraction in composition.values() if fraction > 0) > 1:  # an SQS cell
            _check_supercell_fits(composition, structures, key)
        if structures.get("lattice_constant") is None and not structures.get("lattice_file"):
            for element in _elements_in([composition]):
                if vegard_reference_constant(element, structures["lattice"]) is None:
                    raise ConfigError(
                        key,
                        f"no reference {structures['lattice']} lattice constant for {element} in ASE; "
                        "set structures.lattice_constant",
                    )


def _check_composition(key: str, composition: Mapping[str, float], elements: list[str]) -> None:
    for element in composition:
        if element not in elements:
            raise ConfigError(key, f"element '{element}' is not listed in 'elements'")
    total = sum(composition.values())
    if abs(total - 1.0) > COMPOSITION_TOLERANCE:
        raise ConfigError(key, f"fractions sum to {total:.8g}, not 1")


def _check_supercell_fits(
    composition: Mapping[str, float], structures: Mapping[str, Any], key: str = "structures.supercell"
) -> None:
    if structures.get("lattice_file"):
        n_atoms = len(parent_lattice(structures))
    else:
        n_atoms = ATOMS_PER_CONVENTIONAL_CELL[structures["lattice"]]
    for repeat in structures["supercell"]:
        n_atoms *= repeat
    for element, fraction in composition.items():
        count = fraction * n_atoms
        if abs(count - round(count)) > COMPOSITION_TOLERANCE * n_atoms or (fraction > 0 and count < 0.5):
            label = composition_name(composition, " ")
            raise ConfigError(
                key,
                f"{n_atoms} atoms cannot hold composition {label} exactly "
                f"({element}: {fraction:g} x {n_atoms} = {count:.3g} atoms); use a larger or other "
                "structures.supercell",
            )


def _elements_in(compositions: Sequence[Mapping[str, float]]) -> list[str]:
    return sorted({element for composition in compositions for element in composition})


def _check_user_files(structures: Mapping[str, Any], elements: Sequence[str]) -> None:
    from mlip_autopipe.user_structures import read_user_structures

    for index, path in enumerate(structures.get("user_files", [])):
        read_user_structures(path, elements, f"structures.user_files[{index}]")


def load_config(path: str | os.PathLike[str], schema_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load, validate (with defaults) and check a configuration file."""
    config = load_yaml(path)
    validate_schema(config, load_yaml(schema_path))
    check_config(config)
    return config


def with_defaults(
    config: Mapping[str, Any] | None = None, schema_path: str | os.PathLike[str] = SCHEMA_PATH
) -> dict[str, Any]:
    """A copy of ``config`` validated against the schema with every default filled in (no
    semantic checks): how tests and benchmarks build the validated sections the library takes."""
    return validate_schema(copy.deepcopy(dict(config or {})), load_yaml(schema_path))


def section_defaults(name: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Config section ``name`` with the schema's defaults filled in around ``values``."""
    return with_defaults({name: dict(values or {})})[name]
