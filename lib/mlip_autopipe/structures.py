"""Generation-0 structures: SQS alloy cells, their variants, user structures, the initial pick.

The pool holds, per composition, ``cells_per_composition`` special quasirandom structures
(``origin: sqs``) and for each of them strained (``strain``), sheared (``shear``), rattled
(``rattle``), vacancy, antisite and interstitial variants, each with ``parent_uid``; then
the structures of the user's files (``origin: user``). The initial pick is a farthest-point
sample of the pool in averaged-SOAP space. Everything is reproducible from the seed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipe import variants
from mlip_autopipe.data import tag_structure
from mlip_autopipe.diversity import farthest_point_sampling, soap_descriptors
from mlip_autopipe.errors import ConfigError, StructureError
from mlip_autopipe.lattice import (
    all_compositions,
    composition_name,
    lattice_parameters,
    lattice_template,
    parent_lattice,
)
from mlip_autopipe.sqs import check_setup, generate_sqs
from mlip_autopipe.user_structures import read_user_structures

#: Every ``origin`` a pool structure can have.
POOL_ORIGINS = ("sqs", "strain", "shear", "rattle", "vacancy", "antisite", "interstitial", "user")


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
    """The parent lattice with species shuffled at exact composition (no SQS search)."""
    cell = lattice_template(lattice, lattice_constant, supercell)
    counts = element_counts(composition, len(cell))
    symbols = [element for element, count in counts.items() for _ in range(count)]
    cell.set_chemical_symbols(list(rng.permutation(symbols)))
    return cell


def sqs_template(
    composition: Mapping[str, float], structures: Mapping[str, Any]
) -> tuple[Atoms, str, float | None, float | None]:
    """The supercell an SQS of ``composition`` decorates, its lattice name, a and c/a (or None)."""
    a: float | None = None
    c_over_a = None
    if structures["lattice_file"]:
        # the file's cell and sites as they are: no Vegard scaling
        lattice = f"file:{os.path.basename(structures['lattice_file'])}"
        sites = parent_lattice(structures)
        sites.set_chemical_symbols([next(iter(composition))] * len(sites))
        template = sites.repeat(tuple(int(n) for n in structures["supercell"]))
    else:
        lattice = structures["lattice"]
        a, c_over_a = lattice_parameters(composition, structures)
        template = lattice_template(lattice, a, structures["supercell"], c_over_a, next(iter(composition)))
    return template, lattice, a, c_over_a


def check_sqs_setups(structures: Mapping[str, Any], elements: Sequence[str]) -> None:
    """Every alloy composition's SQS set-up, parsed by sqsgenerator before any job runs.

    Raises:
        ConfigError: naming ``structures.supercell`` when a cell is too small for the shells.
    """
    settings = structures["sqs"]
    for composition in all_compositions(structures, elements):
        template = sqs_template(composition, structures)[0]
        try:
            check_setup(template, element_counts(composition, len(template)), settings["pair_shells"])
        except StructureError as error:
            raise ConfigError(
                "structures.supercell",
                f"the {len(template)}-site SQS cell of {composition_name(composition, ' ')} is too small for "
                f"structures.sqs.pair_shells = {settings['pair_shells']} ({error}); "
                "use a larger supercell or fewer shells",
            ) from error


def sqs_cells(
    composition: Mapping[str, float],
    structures: Mapping[str, Any],
    seed: Sequence[int],
) -> list[Atoms]:
    """The SQS parent cells of one composition, tagged ``origin: sqs``."""
    template, lattice, a, c_over_a = sqs_template(composition, structures)
    settings = structures["sqs"]
    cells = generate_sqs(
        template,
        element_counts(composition, len(template)),
        n_structures=structures["cells_per_composition"],
        seed=int(np.random.SeedSequence(list(seed)).generate_state(1)[0]),
        iterations=settings["iterations"],
        pair_shells=settings["pair_shells"],
        triplet_shells=settings["triplet_shells"],
    )
    for atoms in cells:
        atoms.info["lattice"] = lattice
        if a is not None:
            atoms.info["lattice_constant"] = float(a)
        if c_over_a is not None:
            atoms.info["c_over_a"] = float(c_over_a)
        tag_structure(atoms, generation=0, origin="sqs")
    return cells


def derived_variants(
    parent: Atoms, structures: Mapping[str, Any], rng: np.random.Generator
) -> Iterator[tuple[str, Atoms]]:
    """(origin, structure) of every configured variant of ``parent``."""
    for strain in structures["strains"]:
        yield "strain", variants.strained(parent, strain)
    for shear in structures["shear_strains"]:
        yield "shear", variants.sheared(parent, shear)
    for amplitude in structures["rattle_amplitudes"]:
        yield "rattle", variants.rattled(parent, amplitude, rng)
    defects = structures["defects"]
    for site in variants.pick_sites(len(parent), defects["vacancies"], rng):
        yield "vacancy", variants.with_vacancy(parent, site)
    for _ in range(defects["antisites"]):
        exchanged = variants.with_antisite(parent, rng)
        if exchanged is not None:
            yield "antisite", exchanged
    elements = sorted(set(parent.get_chemical_symbols()))
    for _ in range(defects["interstitials"]):
        element = elements[int(rng.integers(len(elements)))]
        yield "interstitial", variants.with_interstitial(parent, element, rng)


def build_pool(
    structures: Mapping[str, Any], seed: int, elements: Sequence[str] | None = None
) -> list[Atoms]:
    """All generation-0 candidates: SQS cells with their variants, then user structures.

    Args:
        structures: the validated ``structures`` config section (schema defaults filled in).
        seed: the run's seed; SQS search and variants derive their own streams from it.
        elements: the run's elements (for the composition grid and user files); by default
            those of the explicit compositions.
    """
    if elements is None:
        elements = sorted({el for composition in structures["compositions"] for el in composition})
    pool: list[Atoms] = []
    for index, composition in enumerate(all_compositions(structures, elements)):
        for number, parent in enumerate(sqs_cells(composition, structures, (seed, index))):
            pool.append(parent)
            rng = np.random.default_rng([seed, index, number])
            for origin, variant in derived_variants(parent, structures, rng):
                pool.append(
                    tag_structure(variant, generation=0, origin=origin, parent_uid=parent.info["uid"])
                )
    for index, path in enumerate(structures["user_files"]):
        for atoms in read_user_structures(path, elements, f"structures.user_files[{index}]"):
            pool.append(tag_structure(atoms, generation=0, origin="user"))
    return pool


def pick_initial(
    pool: Sequence[Atoms], count: int, species: Sequence[str], soap: Mapping[str, Any] | None = None
) -> list[Atoms]:
    """Farthest-point sample of ``count`` structures in averaged-SOAP space.

    The sampling starts from the pool's first structure (the first SQS cell); each picked
    structure records its ``pick_rank`` (0 = first picked).
    """
    if not pool:
        return []
    descriptors = soap_descriptors(pool, species, soap)
    order = farthest_point_sampling(descriptors, count)
    picked = []
    for rank, index in enumerate(order):
        atoms = pool[index].copy()
        atoms.info["pick_rank"] = rank
        picked.append(atoms)
    return picked
