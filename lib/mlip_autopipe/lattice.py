"""Lattices and compositions, a leaf module: what every stage that builds cells agrees on.

Parent lattices (atoms per conventional cell, cubic ones, ideal hcp c/a, nearest-neighbour
distances), Vegard's law on ASE's reference lattice constants, the composition grid, and the
cells themselves (lattice templates, the smallest cell of a pure element, a user's lattice
file). Lattice constants are in Angstrom, compositions map element symbols to fractions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, reference_states

from mlip_autopipe.errors import ConfigError

#: Largest allowed deviation of a composition's sum from 1.
COMPOSITION_TOLERANCE = 1e-6

#: Atoms in the conventional cell of each supported parent lattice (hcp: the hexagonal cell).
ATOMS_PER_CONVENTIONAL_CELL = {"fcc": 4, "bcc": 2, "sc": 1, "diamond": 8, "hcp": 2}

#: Lattices with a cubic conventional cell.
CUBIC_LATTICES = frozenset({"fcc", "bcc", "sc", "diamond"})

#: c/a of ideally packed hcp, used for elements whose reference state is not hcp.
IDEAL_C_OVER_A = (8.0 / 3.0) ** 0.5

#: Nearest-neighbour distance over the cubic lattice constant, per parent lattice.
NEAREST_NEIGHBOUR_FACTOR = {"fcc": 2**-0.5, "bcc": 3**0.5 / 2, "sc": 1.0, "diamond": 3**0.5 / 4}


def composition_name(composition: Mapping[str, float], separator: str = "") -> str:
    """``Cu`` for a pure element, ``Cu0.5Ni0.5`` for an alloy (elements in the given order);
    ``separator=" "`` gives the text of messages, ``Cu0.25 Ni0.75``."""
    if len(composition) == 1:
        return next(iter(composition))
    return separator.join(f"{element}{fraction:g}" for element, fraction in composition.items())


def all_compositions(structures: Mapping[str, Any], elements: Sequence[str]) -> list[dict[str, float]]:
    """The explicit compositions, then those of the grid (``composition_step``), without repeats.

    The grid covers the whole composition simplex of ``elements`` in steps of
    ``composition_step`` (pure elements included); zero fractions are dropped.
    """
    found: list[dict[str, float]] = []
    seen: set[tuple[tuple[str, float], ...]] = set()

    def add(composition: Mapping[str, float]) -> None:
        cleaned = {element: float(value) for element, value in composition.items() if value > 0}
        key = tuple(sorted((element, round(value, 9)) for element, value in cleaned.items()))
        if key not in seen:
            seen.add(key)
            found.append(cleaned)

    for composition in structures["compositions"]:
        add(composition)
    step = structures["composition_step"]
    if step:
        n_steps = int(round(1.0 / step))
        if abs(n_steps * step - 1.0) > COMPOSITION_TOLERANCE:
            raise ConfigError("structures.composition_step", f"1 / {step:g} is not a whole number of steps")
        for parts in _partitions(n_steps, len(elements)):
            add({element: part / n_steps for element, part in zip(elements, parts, strict=True)})
    return found


def _partitions(total: int, n_parts: int) -> list[tuple[int, ...]]:
    """All ways of writing ``total`` as an ordered sum of ``n_parts`` non-negative integers."""
    if n_parts == 1:
        return [(total,)]
    return [
        (first, *rest) for first in range(total, -1, -1) for rest in _partitions(total - first, n_parts - 1)
    ]


def vegard_reference_constant(element: str, lattice: str) -> float | None:
    """ASE's reference lattice constant ``a`` of ``element`` in ``lattice``, or None.

    An element whose reference state has a cubic lattice is converted to any other lattice
    at equal volume per atom (so bcc Fe gives an fcc constant, fcc Cu an ideal hcp one);
    an hcp reference serves hcp only, and other references give None.
    """
    state: dict[str, Any] = reference_states[atomic_numbers[element]] or {}
    if "a" not in state:
        return None
    a = float(state["a"])
    symmetry = str(state.get("symmetry"))
    if symmetry == lattice:
        return a
    if symmetry not in CUBIC_LATTICES:
        return None
    volume_per_atom = a**3 / ATOMS_PER_CONVENTIONAL_CELL[symmetry]
    if lattice in CUBIC_LATTICES:
        return float((volume_per_atom * ATOMS_PER_CONVENTIONAL_CELL[lattice]) ** (1 / 3))
    if lattice == "hcp":
        # two atoms in a hexagonal cell of volume sqrt(3)/2 a^2 c
        return float((2 * volume_per_atom / (3**0.5 / 2 * IDEAL_C_OVER_A)) ** (1 / 3))
    return None


def vegard_reference_c_over_a(element: str) -> float:
    """ASE's reference hcp c/a of ``element``, or the ideal value when its reference is not hcp."""
    state: dict[str, Any] = reference_states[atomic_numbers[element]] or {}
    if state.get("symmetry") == "hcp" and "c/a" in state:
        return float(state["c/a"])
    return IDEAL_C_OVER_A


def alloy_lattice_constant(composition: Mapping[str, float], lattice: str) -> float:
    """Vegard's law: the fraction-weighted mean of the elements' reference constants."""
    total = 0.0
    for element, fraction in composition.items():
        reference = vegard_reference_constant(element, lattice)
        if reference is None:
            raise ConfigError("structures.lattice_constant", f"no {lattice} reference for {element}")
        total += fraction * reference
    return total


def alloy_c_over_a(composition: Mapping[str, float]) -> float:
    """Vegard's law on hcp c/a: reference values of hcp elements, the ideal one for others."""
    return float(sum(fraction * vegard_reference_c_over_a(el) for el, fraction in composition.items()))


def densest_lattice_constant(
    structures: Mapping[str, Any], elements: Sequence[str] | None = None
) -> tuple[float, dict[str, float]] | None:
    """The smallest cubic lattice constant over the compositions, and that composition.

    With ``elements`` the grid of ``structures.composition_step`` counts too (its pure
    elements are often the densest crystals); None when there is no composition at all.
    """
    compositions = (
        all_compositions(structures, elements) if elements is not None else list(structures["compositions"])
    )
    best: tuple[float, dict[str, float]] | None = None
    for composition in compositions:
        a = structures["lattice_constant"]
        if a is None:
            a = sum(
                fraction * (vegard_reference_constant(element, structures["lattice"]) or 0.0)
                for element, fraction in composition.items()
            )
        if best is None or float(a) < best[0]:
            best = (float(a), dict(composition))
    return best


def parent_lattice(structures: Mapping[str, Any]) -> Atoms:
    """The first structure of ``structures.lattice_file``, checked (its species are ignored)."""
    from mlip_autopipe.user_structures import read_user_structures

    return read_user_structures(structures["lattice_file"], None, "structures.lattice_file")[0]


def lattice_template(
    lattice: str,
    lattice_constant: float,
    supercell: Sequence[int],
    c_over_a: float | None = None,
    symbol: str = "Cu",
) -> Atoms:
    """The parent lattice of ``symbol`` atoms: conventional cubic cell (hexagonal for hcp), repeated."""
    if lattice == "hcp":
        ratio = c_over_a if c_over_a is not None else IDEAL_C_OVER_A
        cell = bulk(symbol, "hcp", a=lattice_constant, c=ratio * lattice_constant)
    else:
        cell = bulk(symbol, lattice, a=lattice_constant, cubic=True)
    return cell.repeat(tuple(int(n) for n in supercell))


def lattice_parameters(
    composition: Mapping[str, float], structures: Mapping[str, Any]
) -> tuple[float, float | None]:
    """``a`` and (hcp only, else None) ``c/a`` of ``composition`` on the configured lattice:
    ``structures.lattice_constant``/``c_over_a`` when given, Vegard's law otherwise."""
    lattice = structures["lattice"]
    a = structures["lattice_constant"] or alloy_lattice_constant(composition, lattice)
    c_over_a = None
    if lattice == "hcp":
        c_over_a = structures["c_over_a"] or alloy_c_over_a(composition)
    return float(a), c_over_a


def element_cell(element: str, structures: Mapping[str, Any]) -> tuple[Atoms, str, float]:
    """The parent lattice's smallest cell filled with ``element``: (cell, lattice, lattice constant).

    Cubic lattices give the conventional cubic cell, hcp the 2-atom hexagonal cell, both at
    ASE's reference lattice constant; ``lattice_file`` gives the file's cell as it is.
    """
    if structures["lattice_file"]:
        cell = parent_lattice(structures)
        cell.set_chemical_symbols([element] * len(cell))
        return cell, "file", float(cell.cell.lengths()[0])
    lattice = structures["lattice"]
    a, c_over_a = lattice_parameters({element: 1.0}, structures)
    return lattice_template(lattice, a, (1, 1, 1), c_over_a, element), lattice, a


#: How far (A) the bulk's atoms are moved along a plane's normal before ase.build.surface cuts
#: layers of it: off the layer boundary, where rounding decides which side an atom lands on.
#: Unmoved, ase put some atoms of the bottom plane one layer up for some lattice constants (fcc
#: (111): 3.5875, 3.5575, 3.5225 A in a 2x2x2 cubic supercell): the exploration's (111) slab of
#: a Cu0.75Ni0.25 SQS cell started with 2-coordinated adatoms and a holed bottom plane (found in
#: the exploration benchmark, where those frames alone made the production fit's train error
#: 5x worse).
SLAB_NUDGE = 1e-4


def surface_cell(bulk_cell: Atoms, miller: Sequence[int], layers: int, vacuum: float | None = None) -> Atoms:
    """ase.build.surface's periodic slab of ``layers`` layers of ``bulk_cell`` normal to its plane
    ``miller`` (indices of ``bulk_cell``'s vectors), made of whole planes (the atoms are moved
    :data:`SLAB_NUDGE` along the normal first); ``vacuum`` A on each side (None: none)."""
    from ase.build import surface

    indices = tuple(int(index) for index in miller)
    normal = np.asarray(indices, dtype=float) @ bulk_cell.cell.reciprocal()
    nudged = bulk_cell.copy()
    nudged.positions += SLAB_NUDGE * normal / np.linalg.norm(normal)
    return surface(nudged, indices, layers=int(layers), vacuum=vacuum, periodic=True)


def thick_surface_cell(
    bulk_cell: Atoms, miller: Sequence[int], thickness: float, vacuum: float | None = None
) -> Atoms:
    """:func:`surface_cell` with the fewest whole layers whose atoms span at least ``thickness``
    A along the normal (bottom plane to top plane; the layers' period is one plane spacing
    more)."""
    layers = 1
    while True:
        slab = surface_cell(bulk_cell, miller, layers, vacuum=vacuum)
        if np.ptp(slab.positions[:, 2]) >= thickness - 1e-6:
            return slab
        layers += 1
