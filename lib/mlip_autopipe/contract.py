"""The data contract: every ``atoms.info`` / ``atoms.arrays`` key the pipeline reads or writes.

Structures travel between stages as extended XYZ; these keys are their metadata. :data:`INFO`
and :data:`ARRAYS` name each key with its meaning, unit and the stage that writes it; the
accessors give every reader the same default for an absent key. Outcomes (labels, embeddings,
fits) are a :class:`Status`, whose values are the strings JSON ledgers hold (``"ok"``,
``"failed"``). ``tests/test_contract.py`` checks that every key a library module writes is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from ase import Atoms


class Status(StrEnum):
    """Outcome of a label, an embedding or a fit; ``str(Status.OK) == "ok"`` in files.

    ``atoms.info`` holds the plain ``.value``: training DataFrames are pickled with their Atoms
    and read by pacemaker's tools, which cannot import this library.
    """

    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class Key:
    """One metadata key: what it means, its unit ("" when dimensionless or text), who writes it."""

    meaning: str
    unit: str
    written_by: str


#: ``atoms.info`` keys.
INFO: dict[str, Key] = {
    # identity and provenance
    "uid": Key(
        "content hash of numbers, positions, cell and pbc (16 hex digits, always a string)", "", "data"
    ),
    "generation": Key("generation that produced the structure (0: initial pool)", "", "data"),
    "origin": Key(
        "how it was made: sqs, strain, shear, rattle, vacancy, antisite, interstitial, user, md, embed",
        "",
        "data",
    ),
    "parent_uid": Key("uid of the structure it was derived from", "", "data"),
    "scenario": Key("exploration scenario of an MD frame (bulk, melt, surface_111, ...)", "", "explore"),
    "run": Key("name of the exploration run that produced an MD frame", "", "explore"),
    "md_step": Key("MD step of the frame within its run", "", "explore"),
    "temperature": Key("thermostat temperature of the frame's run", "K", "explore"),
    # broad held-out test sets (testsets.py)
    "category": Key(
        "test-set scenario of an oracle MD frame (bulk_300K, vacancy, liquid, surface_111, ...)",
        "",
        "testsets",
    ),
    "md_steps": Key("oracle MD steps that produced the frame, equilibration included", "", "testsets"),
    "miller": Key("Miller indices of a test-set slab's free surfaces", "", "testsets"),
    "bragg_vectors": Key(
        "parent crystal's Bragg vectors, carried by a melt start cell only", "1/A", "testsets"
    ),
    "translational_order": Key(
        "mean squared structure factor at the Bragg vectors (~1 crystal, ~1/N liquid)", "", "testsets"
    ),
    "source_file": Key("user file a structure was read from", "", "user_structures"),
    "pick_rank": Key("rank in the farthest-point initial pick", "", "structures"),
    # parent lattice and variants
    "lattice": Key("parent lattice (fcc, bcc, hcp, diamond, sc, file:<name>)", "", "structures"),
    "lattice_constant": Key("lattice constant a of the parent lattice", "A", "structures"),
    "c_over_a": Key("c/a of an hcp parent lattice", "", "structures"),
    "sqs_pair_deviation": Key("largest pair-correlation deviation from the random alloy", "", "sqs"),
    "sqs_triplet_deviation": Key("largest triplet-correlation deviation from the random alloy", "", "sqs"),
    "sqs_pair_deviation_by_shell": Key("pair-correlation deviation per neighbour shell", "", "sqs"),
    "sqs_pair_shells": Key("neighbour shells the SQS search matched pairs on", "", "sqs"),
    "sqs_triplet_shells": Key("neighbour shells the SQS check matched triplets on", "", "sqs"),
    "strain": Key("isotropic strain of a strained variant", "", "variants"),
    "shear_strain": Key("shear strain of a sheared variant", "", "variants"),
    "rattle_amplitude": Key("standard deviation of a rattled variant's displacements", "A", "variants"),
    "removed_element": Key("element of the atom a vacancy variant removed", "", "variants"),
    "added_element": Key("element of an interstitial variant's added atom", "", "variants"),
    "exchanged": Key("the two elements an antisite variant swapped", "", "variants"),
    # exploration and selection
    "max_gamma": Key("largest extrapolation grade of any atom in an MD frame", "", "explore"),
    "core_atom": Key("index of the selected extrapolative atom (embedding centre)", "", "select"),
    "core_gamma": Key("extrapolation grade of the core atom", "", "select"),
    "selection": Key("method that selected the environment (maxvol, gamma)", "", "select"),
    "selection_score": Key("the selection's rank or score of the environment", "", "select"),
    "embed_radius": Key("radius of the exactly reproduced sphere of an embedded cell", "A", "embed"),
    # fit weights
    "energy_weight": Key("weight of the total energy in a fit (0: embedded cell; absent: 1)", "", "embed"),
    "label_source": Key("oracle or surrogate: where a distilled fit's label came from", "", "distillation"),
    # labelling outcome
    "label_status": Key("Status of the label (ok, failed)", "", "labelling"),
    "label_reason": Key("why a label failed, or how it was obtained", "", "labelling"),
    "label_failure": Key("failure category (scf_not_converged, walltime, crash, ...)", "", "labelling"),
    "label_attempts": Key("pw.x runs made (recovery ladder rungs climbed + 1)", "", "oracles.qe"),
    "label_history": Key("JSON list of attempts (rung, changes, status, reason, seconds)", "", "oracles.qe"),
    "label_recovery": Key("JSON of the recovery settings that produced the label", "", "oracles.qe"),
    "recovery_rung": Key("recovery-ladder rung that produced the label (0: none)", "", "labelling"),
    "oracle": Key("name of the oracle that labelled it (emt, qe, mace, chgnet)", "", "labelling"),
    "oracle_settings": Key("hash of the settings that change labels (cache key, with uid)", "", "labelling"),
    "from_cache": Key("the label came from the label cache", "", "labelling"),
    "qe_version": Key("pw.x version that computed the label", "", "oracles.qe"),
    "surrogate_energy_std": Key("committee spread of the surrogate energy", "eV/atom", "oracles.surrogates"),
    "surrogate_force_std": Key("largest per-atom surrogate force spread", "eV/A", "oracles.surrogates"),
}

#: ``atoms.arrays`` keys (one value per atom).
ARRAYS: dict[str, Key] = {
    "force_weight": Key(
        "weight of the atom's force rows in a fit (1 core, 0 buffer; absent: 1)", "", "embed"
    ),
    "gamma": Key("per-atom extrapolation grade of an MD frame", "", "explore"),
    "REF_forces": Key(
        "oracle forces in a MACE training file (mace_run_train's --forces_key)", "eV/A", "finetune"
    ),
    "source_atom": Key("index of each atom of an embedded cell in the frame it was cut from", "", "embed"),
}

#: ``atoms.arrays`` key of the per-atom force weights.
FORCE_WEIGHT = "force_weight"

#: ``atoms.info`` key of the structure's energy weight.
ENERGY_WEIGHT = "energy_weight"


def force_weights(atoms: Atoms) -> np.ndarray:
    """Per-atom force weights of ``atoms`` (ones when the structure carries none)."""
    return np.asarray(atoms.arrays.get(FORCE_WEIGHT, np.ones(len(atoms))), dtype=float)


def energy_weight(atoms: Atoms) -> float:
    """The structure's energy weight (1 when it carries none)."""
    return float(atoms.info.get(ENERGY_WEIGHT, 1.0))
