"""A commented starter config from the composition alone (``mlip-autopipe init Cu Ni``).

Every choice is derived from the elements and explained in a comment next to it; everything
not written takes the schema's default (config/schema.yaml is the manual of every key).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import yaml
from ase.data import atomic_numbers, reference_states

from mlip_autopipe.config import (
    ATOMS_PER_CONVENTIONAL_CELL,
    EMT_ELEMENTS,
    load_yaml,
    vegard_reference_constant,
)
from mlip_autopipe.errors import ConfigError

ORACLES = ("qe", "emt")

#: Supercells tried in order until the equiatomic composition fits exactly.
SUPERCELLS = ([1, 1, 1], [2, 1, 1], [2, 2, 1], [2, 2, 2], [3, 2, 2], [3, 3, 2], [3, 3, 3])

#: Smallest cell the starter config uses: big enough for SQS pair correlations to mean something.
MIN_ATOMS = {"emt": 16, "qe": 8}


def reference_lattice(element: str) -> str | None:
    """The lattice of ``element``'s reference state in ASE's data, when the workflow supports it."""
    state = reference_states[atomic_numbers[element]] or {}
    symmetry = state.get("symmetry")
    return symmetry if symmetry in ATOMS_PER_CONVENTIONAL_CELL else None


def derive_lattice(elements: Sequence[str]) -> tuple[str, str]:
    """The parent lattice most of the elements crystallise in, and why (a comment line)."""
    lattices = {element: reference_lattice(element) for element in elements}
    known = [lattice for lattice in lattices.values() if lattice is not None]
    if not known:
        raise ConfigError(
            "structures.lattice", f"no supported reference lattice for {', '.join(elements)}: pass --lattice"
        )
    counts = Counter(known)
    best = max(counts.values())
    lattice = next(lattice for lattice in known if counts[lattice] == best)  # ties: the first element's
    listing = ", ".join(f"{element} {lattice or 'none'}" for element, lattice in lattices.items())
    return lattice, f"reference states in ASE's data ({listing}): the most common one"


def equiatomic(elements: Sequence[str]) -> dict[str, float]:
    """Equal fractions that sum to exactly 1 (the last element takes the rounding)."""
    fraction = round(1.0 / len(elements), 6)
    composition = {element: fraction for element in elements}
    composition[elements[-1]] = round(1.0 - fraction * (len(elements) - 1), 6)
    return composition


def derive_supercell(lattice: str, n_elements: int, oracle: str) -> list[int]:
    """The smallest supercell of at least MIN_ATOMS atoms that holds the equiatomic composition."""
    per_cell = ATOMS_PER_CONVENTIONAL_CELL[lattice]
    for supercell in SUPERCELLS:
        n_atoms = per_cell * supercell[0] * supercell[1] * supercell[2]
        if n_atoms >= MIN_ATOMS[oracle] and n_atoms % n_elements == 0:
            return list(supercell)
    return list(SUPERCELLS[-1])


def _flow(mapping: dict[str, float]) -> str:
    return "{" + ", ".join(f"{key}: {value:g}" for key, value in mapping.items()) + "}"


#: Cutoffs (Ry) written when a pseudopotential header suggests none: typical of the ultrasoft
#: and PAW pseudos of 3d metals; a starting point to converge, not a converged value.
FALLBACK_CUTOFFS = (45, 360)


def starter_config(elements: Sequence[str], oracle: str = "qe", lattice: str | None = None) -> str:
    """The text of a commented starter config for ``elements`` labelled by ``oracle``.

    The text is checked as the workflow checks it; when the pseudopotential headers suggest no
    cutoff, explicit cutoffs are written instead (with a comment saying so).
    """
    from mlip_autopipe.config import SCHEMA_PATH, check_config, validate_schema

    text = _starter_text(elements, oracle, lattice, explicit_cutoffs=False)
    if oracle == "qe":
        try:
            check_config(validate_schema(yaml.safe_load(text), load_yaml(SCHEMA_PATH)))
        except ConfigError as error:
            if error.key != "oracle.qe.ecutwfc":
                raise
            text = _starter_text(elements, oracle, lattice, explicit_cutoffs=True)
    return text


def _starter_text(elements: Sequence[str], oracle: str, lattice: str | None, explicit_cutoffs: bool) -> str:
    elements = list(elements)
    for element in elements:
        if element not in atomic_numbers or element == "X":
            raise ConfigError("elements", f"'{element}' is not a chemical element symbol")
    if len(set(elements)) != len(elements):
        raise ConfigError("elements", f"{' '.join(elements)} names an element twice")
    if oracle not in ORACLES:
        raise ConfigError("oracle.kind", f"'{oracle}' is not one of {', '.join(ORACLES)}")
    if oracle == "emt" and not set(elements) <= EMT_ELEMENTS:
        missing = sorted(set(elements) - EMT_ELEMENTS)
        raise ConfigError("oracle.kind", f"EMT has no parameters for {', '.join(missing)}: use --oracle qe")
    if lattice is None:
        lattice, lattice_why = derive_lattice(elements)
    elif lattice not in ATOMS_PER_CONVENTIONAL_CELL:
        supported = ", ".join(ATOMS_PER_CONVENTIONAL_CELL)
        raise ConfigError("structures.lattice", f"'{lattice}' is not one of {supported}")
    else:
        lattice_why = "given with --lattice"
    supercell = derive_supercell(lattice, len(elements), oracle)
    n_atoms = ATOMS_PER_CONVENTIONAL_CELL[lattice] * supercell[0] * supercell[1] * supercell[2]
    constants = {element: vegard_reference_constant(element, lattice) for element in elements}
    constants_text = ", ".join(f"{el} {a:.3f} A" if a else f"{el} unknown" for el, a in constants.items())
    composition = equiatomic(elements)
    binary = len(elements) == 2
    fast = oracle == "emt"
    lines = [
        f"# Starter config written by `mlip-autopipe init {' '.join(elements)} --oracle {oracle}`.",
        "# Every value below was derived from the elements; every key left out takes the default",
        "# of config/schema.yaml (the manual of every key). Check it: `mlip-autopipe check FILE`.",
        "seed: 7  # one seed for SQS, rattling, the farthest-point pick and MD: reruns are identical",
        f"elements: [{', '.join(elements)}]",
        "structures:",
        f"  lattice: {lattice}  # {lattice_why}",
        f"  # lattice constants by Vegard's law from ASE's reference data ({constants_text})",
        f"  supercell: {supercell}  # {n_atoms} atoms: the smallest cell of at least "
        f"{MIN_ATOMS[oracle]} atoms that holds the equiatomic composition exactly",
        "  compositions:",
        f"    - {_flow(composition)}  # equiatomic: the centre of the composition space",
    ]
    if binary and n_atoms % 4 == 0:
        lines.append("  composition_step: 0.25  # a grid of the binary that includes the pure elements")
    lines += []
    if n_atoms < 16:
        lines.append(
            "  sqs: {pair_shells: 2, triplet_shells: 0}  # a cell this small has too few shells for more"
        )
    lines += [
        "  cells_per_composition: 2  # two SQS cells per composition: different local environments",
        "  strains: [-0.02, 0.02]  # energy-volume points for the equation of state",
        "  shear_strains: [0.02]  # shear, for the elastic constants",
        "  rattle_amplitudes: [0.05, 0.1]  # thermal-like displacements (A)",
        "  defects: {vacancies: 1, antisites: 1, interstitials: 0}  # point defects the MD will meet",
        f"  initial_pick: {30 if fast else 18}  # farthest-point (SOAP) sample of the pool labelled first",
        "oracle:",
    ]
    if fast:
        lines.append("  kind: emt  # ASE's EMT: seconds per label, for trying the workflow out")
    else:
        lines += [
            "  kind: qe  # Quantum ESPRESSO pw.x (PBE); pseudopotentials found in pw.x's pseudo folder",
            "  qe:",
            "    kspacing: 0.3  # k-point spacing (1/A): converged to ~1 meV/atom for metals and",
            "    # semiconductors at these cell sizes; cutoffs are the pseudopotentials' suggested ones",
            "    cores: 1  # pw.x processes per label job (raise on a cluster)",
        ]
        if explicit_cutoffs:
            low, high = FALLBACK_CUTOFFS
            lines += [
                f"    ecutwfc: {low}  # Ry: a pseudopotential header suggests no cutoff; typical of",
                f"    ecutrho: {high}  # ultrasoft/PAW pseudos of 3d metals: converge it before production",
            ]
    lines += [
        "fit:",
        "  mode: linear  # a linear ACE fit: seconds; switch to nonlinear for production",
        "  cutoff: 5.0  # A: second neighbours of close-packed metals and semiconductors",
        f"  functions_per_element: {150 if fast else 60}  # basis size matched to the initial data",
        "explore:",
        "  engine: ase  # ASE MD with the fitted potential (lammps: the faster engine, needs the plugin)",
        "  temperatures: [600, 1200]  # below and near melting of most alloys",
        "  steps: 1000",
        "select:",
        f"  max_per_generation: {8 if fast else 6}  # new oracle calls per generation",
        "loop:",
        "  max_generations: 3  # stops earlier when exploration finds no extrapolation",
        "validation:",
        f"  enabled: {'true' if fast else 'false'}  # EOS and elastic constants against the oracle"
        + ("" if fast else ": ~100 more DFT calls, enable it on a cluster"),
        "",
    ]
    return "\n".join(lines)
