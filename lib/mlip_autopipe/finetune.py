"""Fine-tuning the surrogate on the oracle's labels (step 3 of the distillation route).

:func:`finetune_surrogate` is what the ``finetune_surrogate`` rule, the tests and the benchmarks
call. It takes every oracle label so far, holds out a test part by uid hash
(``surrogate.finetuning.test_fraction``, stable as the data grows), trains the surrogate on the
rest and measures its test error against the oracle before and after:

- CHGNet: its shipped weights (``surrogate.chgnet.model``) through chgnet's own
  :class:`chgnet.trainer.Trainer`; the result is a CHGNet file (``CHGNet.from_file``);
- MACE: ``mace_run_train`` from the first ``surrogate.mace.model_paths`` file as the foundation
  model, or a small model from scratch (:data:`SMALL_MACE`) when none is given.
  ``surrogate.finetuning.committee`` > 1 trains that many from different seeds: a committee
  whose force spread routes surrogate MD frames to the oracle (:mod:`mlip_autopipe.surrogate_md`).

Energies: a foundation model's absolute energies differ from the oracle's by a per-element
constant, so the oracle's energies are first moved onto the surrogate's per-element scale
(offsets fitted by least squares on the training part) and the network learns only the rest;
the distillation fit moves the pool back onto the oracle's scale
(:func:`mlip_autopipe.distillation.align_energies`). Energy errors are reported the same way:
after the per-element offsets of the training part. A model from scratch learns the oracle's
scale directly.

Structures with a zero energy weight or zero-weight atoms (embedded cells with their buffer)
are left out of training (neither trainer weights single atoms); their weighted atoms still
count in the force error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipe.contract import energy_weight, force_weights
from mlip_autopipe.data import copy_atomic, has_labels, write_text_atomic
from mlip_autopipe.errors import FitError, LabellingError
from mlip_autopipe.fit import split_train_test
from mlip_autopipe.oracles import oracle_from_config
from mlip_autopipe.oracles.base import Oracle
from mlip_autopipe.oracles.surrogates import CHGNetOracle, MACEOracle, make_surrogate, set_torch_threads

#: Files :func:`finetune_surrogate` writes into its folder (the rule's outputs).
FINETUNED_MODEL = "model.pt"
METRICS = "metrics.json"

#: A small MACE (one interaction, scalar features) that trains on a few dozen cells in a minute.
SMALL_MACE = {
    "num_interactions": 1,
    "num_channels": 8,
    "max_L": 0,
    "correlation": 2,
    "r_max": 4.0,
    "num_radial_basis": 6,
    "batch_size": 5,
    "max_num_epochs": 20,
    "valid_fraction": 0.1,
}


def torch_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def train_mace(
    labelled: Sequence[Atoms],
    folder: str | os.PathLike[str],
    *,
    name: str = "surrogate",
    settings: Mapping[str, Any] | None = None,
    foundation_model: str | os.PathLike[str] | None = None,
    seed: int = 0,
    threads: int = 1,
    device: str = "cpu",
) -> Path:
    """Train a MACE model on ``labelled`` structures with ``mace_run_train``; returns the model file.

    ``settings`` (over :data:`SMALL_MACE`, whose architecture keys are dropped when
    ``foundation_model`` is given: the foundation model's own are used) are mace_run_train
    options. float64, ``threads`` torch threads; the log is ``folder/<name>.log``.
    """
    from ase.io import write

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for atoms in labelled:
        frame = atoms.copy()
        frame.calc = None
        frame.info = {"REF_energy": float(atoms.get_potential_energy())}
        frame.arrays = {key: frame.arrays[key] for key in ("numbers", "positions")}
        frame.arrays["REF_forces"] = np.asarray(atoms.get_forces(), dtype=float)
        frames.append(frame)
    train_file = folder / f"{name}_train.xyz"
    write(train_file, frames, format="extxyz")
    options = {**SMALL_MACE, **(settings or {})}
    if foundation_model is None:
        start = ["--E0s=average", "--model=MACE"]
    else:
        architecture = (
            "num_interactions",
            "num_channels",
            "max_L",
            "correlation",
            "r_max",
            "num_radial_basis",
        )
        options = {key: value for key, value in options.items() if key not in architecture}
        start = [
            f"--foundation_model={foundation_model}",
            "--multiheads_finetuning=False",
            "--E0s=foundation",
            "--model=MACE",
        ]
    command = [
        str(Path(sys.executable).with_name("mace_run_train")),
        f"--name={name}",
        f"--train_file={train_file}",
        *start,
        f"--device={device}",
        "--default_dtype=float64",
        f"--seed={seed}",
        "--energy_key=REF_energy",
        "--forces_key=REF_forces",
        f"--work_dir={folder}",
        *(f"--{key}={value}" for key, value in options.items()),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(folder / f"{name}.log", "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    model = folder / f"{name}.model"
    if result.returncode != 0 or not model.is_file():
        raise FitError(f"mace_run_train failed (exit {result.returncode}); see {folder / f'{name}.log'}")
    return model


def element_offsets(
    predicted: Sequence[Atoms], reference: Sequence[Atoms], elements: Sequence[str]
) -> dict[str, float]:
    """Per-element constants (eV/atom) that best explain ``predicted`` minus ``reference``
    energies in least squares (minimum-norm where compositions do not fix them)."""
    if not predicted:
        return dict.fromkeys(elements, 0.0)
    counts = np.array(
        [[atoms.get_chemical_symbols().count(e) for e in elements] for atoms in reference], float
    )
    differences = np.array(
        [
            a.get_potential_energy() - b.get_potential_energy()
            for a, b in zip(predicted, reference, strict=True)
        ]
    )
    solution = np.linalg.lstsq(counts, differences, rcond=None)[0]
    return {element: float(value) for element, value in zip(elements, solution, strict=True)}


def _offset(atoms: Atoms, offsets: Mapping[str, float]) -> float:
    return float(sum(offsets[symbol] for symbol in atoms.get_chemical_symbols()))


def surrogate_errors(
    predicted: Sequence[Atoms], reference: Sequence[Atoms], offsets: Mapping[str, float]
) -> dict[str, Any]:
    """Force-component RMSE (eV/A, weighted atoms) and energy RMSE (meV/atom, after the
    per-element ``offsets``, structures with an energy weight) of ``predicted`` against the
    oracle's ``reference`` labels of the same structures."""
    forces, energies = [], []
    for guess, truth in zip(predicted, reference, strict=True):
        weighted = force_weights(truth) > 0
        forces.append((guess.get_forces() - truth.get_forces())[weighted].ravel())
        if energy_weight(truth) > 0:
            shifted = guess.get_potential_energy() - _offset(truth, offsets)
            energies.append((shifted - truth.get_potential_energy()) / len(truth))
    force_errors = np.concatenate(forces) if forces else np.zeros(0)
    return {
        "n_structures": len(reference),
        "force_rmse_ev_per_a": float(np.sqrt(np.mean(force_errors**2))) if force_errors.size else None,
        "energy_rmse_mev_per_atom": float(1000 * np.sqrt(np.mean(np.square(energies)))) if energies else None,
    }


def label_all(surrogate: Oracle, structures: Sequence[Atoms]) -> list[Atoms]:
    """``structures`` labelled by ``surrogate``; one it cannot label is a :class:`FitError`
    (the test error would otherwise be measured on a different set before and after)."""
    try:
        return [surrogate.label(atoms) for atoms in structures]
    except LabellingError as error:
        raise FitError(f"the {surrogate.name} surrogate cannot label an oracle structure: {error}") from error


def shifted_labels(structures: Sequence[Atoms], offsets: Mapping[str, float]) -> list[Atoms]:
    """Copies of ``structures`` whose energies carry the per-element ``offsets`` (forces kept)."""
    from mlip_autopipe.data import attach_labels

    return [
        attach_labels(
            atoms, energy=atoms.get_potential_energy() + _offset(atoms, offsets), forces=atoms.get_forces()
        )
        for atoms in structures
    ]


def trainable(atoms: Atoms) -> bool:
    """A structure both trainers can use whole: an energy weight and every atom weighted."""
    return energy_weight(atoms) > 0 and bool(np.all(force_weights(atoms) > 0))


def committee_files(folder: str | os.PathLike[str], size: int) -> list[Path]:
    """The model files of a fine-tuned committee of ``size`` in ``folder``: ``model.pt`` first."""
    return [Path(folder) / FINETUNED_MODEL] + [Path(folder) / f"committee_{i}.pt" for i in range(1, size)]


def finetuned_surrogate(
    surrogate_settings: Mapping[str, Any],
    model_file: str | os.PathLike[str],
    *,
    threads: int = 1,
    committee: Sequence[str | os.PathLike[str]] = (),
) -> Oracle:
    """The surrogate of ``surrogate_settings`` (the validated ``surrogate`` section) with the
    fine-tuned weights of ``model_file`` (what :func:`finetune_surrogate` wrote), and for MACE
    the other ``committee`` members' files (labels: the mean; spread in ``atoms.info``)."""
    if surrogate_settings["kind"] == "chgnet":
        return CHGNetOracle(surrogate_settings["chgnet"]["model"], model_file=model_file, threads=threads)
    return MACEOracle(
        [model_file, *committee],
        default_dtype=surrogate_settings["mace"]["default_dtype"],
        threads=threads,
        key="surrogate.mace.model_paths",
    )


def rule_surrogate(config: Mapping[str, Any], finetuned: Sequence[str], *, threads: int = 1) -> Oracle:
    """The surrogate a rule labels with: the fine-tuned one when the rule has its files
    (``model.pt`` first, then any committee members: :func:`committee_files`), else the one
    ``config['surrogate']`` names."""
    if finetuned:
        model, *committee = finetuned
        return finetuned_surrogate(config["surrogate"], model, threads=threads, committee=committee)
    return oracle_from_config(config, section="surrogate", cores=threads)


@dataclass(frozen=True)
class FinetuneResult:
    """What :func:`finetune_surrogate` wrote and measured."""

    model: Path
    metrics: dict[str, Any]
    train: list[Atoms]
    test: list[Atoms]
    #: the other members of a MACE committee (``surrogate.finetuning.committee`` > 1)
    committee: tuple[Path, ...] = ()


def finetune_surrogate(
    labelled_structures: Sequence[Atoms],
    elements: Sequence[str],
    surrogate_settings: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    threads: int = 1,
    seed: int = 0,
    log: logging.Logger | None = None,
) -> FinetuneResult:
    """Fine-tune the surrogate of ``surrogate_settings`` (the validated ``surrogate`` section)
    on the oracle's ``labelled_structures``; writes ``out_dir/model.pt`` (for a MACE committee
    also ``committee_1.pt``, ...: :func:`committee_files`) and ``metrics.json`` (test error
    against the oracle before and after, of the committee's mean; sizes, wall seconds, device).

    Raises:
        FitError: no trainable structure, or the trainer failed.
    """
    log = log or logging.getLogger(__name__)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tuning = surrogate_settings["finetuning"]
    kind = surrogate_settings["kind"]
    data = [atoms for atoms in labelled_structures if has_labels(atoms)]
    train, test = split_train_test(data, tuning["test_fraction"])
    trainable_train = [atoms for atoms in train if trainable(atoms)]
    if not trainable_train:
        raise FitError(
            "fine-tuning the surrogate: no oracle-labelled structure without embedding buffer to train on"
        )
    device = torch_device()
    set_torch_threads(threads)
    scratch = kind == "mace" and not surrogate_settings["mace"]["model_paths"]
    base = (
        None if scratch else make_surrogate(kind, surrogate_settings[kind], threads=threads, key="surrogate")
    )
    offsets = dict.fromkeys(elements, 0.0)
    before = None
    if base is not None:
        offsets = element_offsets(label_all(base, trainable_train), trainable_train, elements)
        before = surrogate_errors(label_all(base, test), test, offsets)
    targets = shifted_labels(trainable_train, offsets)
    log.info(
        "fine-tuning %s (%s) on %d of %d oracle structures (%d held out) on %s",
        kind,
        "from scratch" if scratch else "from its base model",
        len(targets),
        len(train),
        len(test),
        device,
    )
    started = time.perf_counter()
    if kind == "chgnet":
        model_file = _finetune_chgnet(
            targets, surrogate_settings["chgnet"]["model"], tuning, folder, device, seed
        )
    else:
        foundation = None if scratch else surrogate_settings["mace"]["model_paths"][0]
        options = {
            "max_num_epochs": tuning["epochs"],
            "batch_size": tuning["batch_size"],
            "lr": tuning["learning_rate"],
        }
        if scratch:
            options |= dict(tuning["mace_scratch"])
        members = committee_files(folder, int(tuning["committee"]))
        for index, member in enumerate(members):  # one seed per member: the spread is theirs
            trained = train_mace(
                targets,
                folder / ("mace" if index == 0 else f"mace_{index}"),
                settings=options,
                foundation_model=foundation,
                seed=seed + index,
                threads=threads,
                device=device,
            )
            copy_atomic(trained, member)
        model_file = members[0]
    others = committee_files(folder, int(tuning["committee"]))[1:] if kind == "mace" else []
    tuned = finetuned_surrogate(surrogate_settings, model_file, threads=threads, committee=others)
    train_seconds = time.perf_counter() - started
    after_offsets = element_offsets(label_all(tuned, trainable_train), trainable_train, elements)
    metrics = {
        "kind": kind,
        "start": "scratch" if scratch else "base_model",
        "committee": 1 + len(others),
        "device": device,
        "n_train": len(targets),
        "n_train_left_out": len(train) - len(targets),
        "n_test": len(test),
        "train_seconds": train_seconds,
        "test_before": before,
        "test_after": surrogate_errors(label_all(tuned, test), test, after_offsets),
    }
    log.info("surrogate test error against the oracle: before %s, after %s", before, metrics["test_after"])
    write_text_atomic(folder / METRICS, json.dumps(metrics, indent=2) + "\n")
    return FinetuneResult(model_file, metrics, list(train), list(test), tuple(others))


def _finetune_chgnet(
    targets: Sequence[Atoms], model_name: str, tuning: Mapping[str, Any], folder: Path, device: str, seed: int
) -> Path:
    """CHGNet's shipped weights trained on ``targets`` (energy per atom and forces) with chgnet's
    Trainer; the final model (not the best on a validation set: there is none) is saved."""
    from chgnet.data.dataset import StructureData, get_loader
    from chgnet.model import CHGNet
    from chgnet.trainer import Trainer
    from pymatgen.io.ase import AseAtomsAdaptor

    model = CHGNet.load(model_name=model_name, use_device=device, verbose=False, check_cuda_mem=False)
    dataset = StructureData(
        structures=[AseAtomsAdaptor.get_structure(atoms) for atoms in targets],
        energies=[atoms.get_potential_energy() / len(atoms) for atoms in targets],
        forces=[atoms.get_forces().tolist() for atoms in targets],
        structure_ids=[atoms.info.get("uid", str(index)) for index, atoms in enumerate(targets)],
    )
    loader = get_loader(dataset, batch_size=tuning["batch_size"], pin_memory=False)
    trainer = Trainer(
        model=model,
        targets="ef",
        optimizer="Adam",
        scheduler="CosLR",
        criterion="MSE",
        epochs=tuning["epochs"],
        learning_rate=tuning["learning_rate"],
        use_device=device,
        torch_seed=seed,
        data_seed=seed,
        print_freq=10_000,
    )
    checkpoints = folder / "chgnet_checkpoints"
    with open(folder / "chgnet_train.log", "w") as output, contextlib.redirect_stdout(output):
        # the training loader doubles as the per-epoch report: nothing is selected on it
        trainer.train(loader, loader, save_dir=str(checkpoints))
    shutil.rmtree(checkpoints, ignore_errors=True)  # one file per epoch and best: not needed
    model_file = folder / FINETUNED_MODEL
    model.to("cpu")  # the trainer trains this object in place
    partial = model_file.with_name(model_file.name + ".partial")
    trainer.save(str(partial))
    os.replace(partial, model_file)  # a Snakemake output: never seen half written
    return model_file
