"""Generation-0 structures: random alloy cells and their strained and rattled variants."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk

from mlip_autopipe.config import vegard_reference_constant
from mlip_autopipe.data import tag_structure
from mlip_autopipe.errors import ConfigError


def alloy_lattice_constant(composition: Mapping[str, float], lattice: str) -> float:
    """Vegard's law: the fraction-weighted mean of the elements' reference constants."""
    total = 0.0
    for element, fraction in composition.items():
        reference = vegard_reference_constant(element, lattice)
        if reference is None:
            raise ConfigError("structures.lattice_constant", f"no {lattice} reference for {element}")
        total += fraction * reference
    return total


def element_counts(composition: Mapping[str, float], n_atoms: int) -> dict[str, int]:
    """Whole atom counts for a composition; the config check guarantees they are exact."""
    counts = {element: int(round(fraction * n_atoms)) for element, fraction in composition.items()}
    if sum(counts.values()) != n_atoms:
        raise ConfigError("structures.supercell", f"composition does not fill {n_atoms} atoms")
    return counts


def random_alloy(
    composition: Mapping[str, float],
    lattice: str,
    lattice_constant: float,
    supercell: Sequence[int],
    rng: np.random.Generator,
) -> Atoms:
    """A supercell of the conventional cubic cell with species shuffled at exact composition."""
    template = bulk("Cu", lattice, a=lattice_constant, cubic=True)
    cell = template.repeat(tuple(int(n) for n in supercell))
    counts = element_counts(composition, len(cell))
    symbols = [element for element, count in counts.items() for _ in range(count)]
    cell.set_chemical_symbols(list(rng.permutation(symbols)))
    return cell


def strained(atoms: Atoms, strain: float) -> Atoms:
    """Isotropically strained copy (positions scale with the cell)."""
    copy = atoms.copy()
    copy.set_cell(np.asarray(atoms.cell) * (1.0 + strain), scale_atoms=True)
    return copy


def rattled(atoms: Atoms, amplitude: float, rng: np.random.Generator) -> Atoms:
    """Copy with Gaussian displacements of standard deviation ``amplitude`` (Angstrom)."""
    copy = atoms.copy()
    copy.positions += rng.normal(scale=amplitude, size=copy.positions.shape)
    return copy


def build_pool(structures: Mapping[str, Any], seed: int) -> list[Atoms]:
    """All generation-0 candidates: alloy cells, then each one's strained and rattled variants."""
    rng = np.random.default_rng(seed)
    pool: list[Atoms] = []
    lattice = structures["lattice"]
    for composition in structures["compositions"]:
        a = structures.get("lattice_constant") or alloy_lattice_constant(composition, lattice)
        for _ in range(structures["cells_per_composition"]):
            parent = random_alloy(composition, lattice, a, structures["supercell"], rng)
            tag_structure(parent, generation=0, origin="alloy")
            parent.info["lattice_constant"] = float(a)
            pool.append(parent)
            uid = parent.info["uid"]
            for strain in structures["strains"]:
                variant = strained(parent, strain)
                variant.info = {"strain": float(strain)}
                pool.append(tag_structure(variant, generation=0, origin="strain", parent_uid=uid))
            for amplitude in structures["rattle_amplitudes"]:
                variant = rattled(parent, amplitude, rng)
                variant.info = {"rattle_amplitude": float(amplitude)}
                pool.append(tag_structure(variant, generation=0, origin="rattle", parent_uid=uid))
    return pool


def pick_initial(pool: Sequence[Atoms], count: int, seed: int) -> list[Atoms]:
    """Choose ``count`` structures: every alloy cell first, then a seeded random draw of variants."""
    alloys = [atoms for atoms in pool if atoms.info.get("origin") == "alloy"]
    variants = [atoms for atoms in pool if atoms.info.get("origin") != "alloy"]
    if count <= len(alloys):
        return alloys[:count]
    rng = np.random.default_rng(seed + 1)
    chosen = rng.choice(len(variants), size=min(count - len(alloys), len(variants)), replace=False)
    return alloys + [variants[index] for index in sorted(chosen)]
