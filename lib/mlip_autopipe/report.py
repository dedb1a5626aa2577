"""Figures of a run: learning curves, dataset growth, extrapolation, labelling, parity.

Every function takes plain data (dicts from the JSON outputs, lists of Atoms) and returns a
matplotlib Figure, so the report rule only reads files and saves figures.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mlip_autopipe.contract import Status  # noqa: E402


def plot_rmse_per_generation(metrics: Sequence[Mapping[str, Any]]) -> Figure:
    """Energy and force RMSE (train and held-out test) of each generation's potential."""
    figure, (energy_axis, force_axis) = plt.subplots(1, 2, figsize=(9, 3.6))
    generations = np.arange(len(metrics))
    for split, marker in (("train", "o"), ("test", "s")):
        energy = [m.get(split, {}).get("energy_rmse_mev_per_atom") for m in metrics]
        force = [m.get(split, {}).get("force_rmse_ev_per_a") for m in metrics]
        energy_values = np.array([np.nan if v is None else v for v in energy], dtype=float)
        force_values = np.array([np.nan if v is None else 1000 * v for v in force], dtype=float)
        energy_axis.plot(generations, energy_values, marker=marker, label=split)
        force_axis.plot(generations, force_values, marker=marker, label=split)
    energy_axis.set(xlabel="generation", ylabel="energy RMSE (meV/atom)", title="Energy")
    force_axis.set(xlabel="generation", ylabel="force RMSE (meV/A)", title="Forces")
    for axis in (energy_axis, force_axis):
        axis.set_xticks(generations)
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def plot_dataset_by_generation(labelled: Sequence[Sequence[Atoms]]) -> Figure:
    """Structures added per generation, stacked by origin."""
    figure, axis = plt.subplots(figsize=(6, 3.6))
    counts = [Counter(str(a.info.get("origin", "?")) for a in images) for images in labelled]
    origins = sorted({origin for count in counts for origin in count})
    bottom = np.zeros(len(labelled))
    for origin in origins:
        heights = np.array([count.get(origin, 0) for count in counts], dtype=float)
        axis.bar(np.arange(len(labelled)), heights, bottom=bottom, label=origin)
        bottom += heights
    axis.set(xlabel="generation", ylabel="labelled structures", title="Training data by origin")
    axis.set_xticks(np.arange(len(labelled)))
    if origins:
        axis.legend()
    figure.tight_layout()
    return figure


def plot_gamma_by_generation(
    frames: Sequence[Sequence[Atoms]],
    runs: Sequence[Sequence[Mapping[str, Any]]],
    gamma_lo: float,
    gamma_hi: float,
) -> Figure:
    """Max-gamma distribution of kept MD frames per generation, with halted runs counted."""
    figure, axis = plt.subplots(figsize=(6, 3.6))
    for generation, images in enumerate(frames):
        gammas = [float(a.info["max_gamma"]) for a in images]
        if gammas:
            axis.boxplot(gammas, positions=[generation], widths=0.5)
        halted = sum(bool(run.get("halted")) for run in runs[generation])
        axis.annotate(
            f"{halted}/{len(runs[generation])} halted",
            (generation, gamma_lo),
            textcoords="offset points",
            xytext=(0, 4),
            ha="center",
            fontsize=8,
        )
    axis.axhline(gamma_lo, color="tab:green", linestyle="--", label="gamma_lo")
    axis.axhline(gamma_hi, color="tab:red", linestyle="--", label="gamma_hi")
    axis.set_yscale("log")
    axis.set(xlabel="generation", ylabel="max gamma of kept frames", title="Extrapolation in MD")
    axis.set_xticks(np.arange(len(frames)))
    axis.set_xlim(-0.6, len(frames) - 0.4)
    axis.legend()
    figure.tight_layout()
    return figure


def plot_scenarios_by_generation(
    decisions: Sequence[Mapping[str, Any]], converged_fraction: float | None = None
) -> Figure:
    """Per exploration scenario and generation (from each ``decision.json``): the extrapolative
    fraction of its MD checks, its halted runs and its picks (the oracle's next labels)."""
    names = sorted({name for decision in decisions for name in decision.get("scenarios", {})})
    generations = np.arange(len(decisions))
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    width = 0.8 / max(1, len(names))
    for k, name in enumerate(names):
        rows = [decision.get("scenarios", {}).get(name, {}) for decision in decisions]
        fraction = [
            row.get("extrapolative_fraction", np.nan) if row.get("md_runs") else np.nan for row in rows
        ]
        axes[0].plot(generations, fraction, marker="o", label=name)
        offset = (k - (len(names) - 1) / 2) * width
        axes[1].bar(generations + offset, [row.get("halted_runs", 0) for row in rows], width, label=name)
        axes[2].bar(generations + offset, [row.get("selected", 0) for row in rows], width, label=name)
    if converged_fraction is not None:
        axes[0].axhline(float(converged_fraction), color="black", linestyle="--", linewidth=0.8)
    axes[0].set(xlabel="generation", ylabel="extrapolative fraction of MD checks", ylim=(-0.02, 1.02))
    axes[1].set(xlabel="generation", ylabel="halted runs")
    axes[2].set(xlabel="generation", ylabel="frames selected for the oracle")
    for axis in axes:
        axis.set_xticks(generations)
    axes[0].set_title("Extrapolation per scenario")
    axes[1].set_title("Halts (gamma > gamma_hi)")
    axes[2].set_title("Picks per scenario")
    if names:
        axes[2].legend(fontsize=7, ncol=2)
    figure.tight_layout()
    return figure


def plot_labelling_by_generation(ledgers: Sequence[Sequence[Mapping[str, Any]]]) -> Figure:
    """Oracle outcomes per generation: labelled, reused from cache, failed."""
    figure, axis = plt.subplots(figsize=(6, 3.6))
    x = np.arange(len(ledgers))
    fresh = np.array([sum(e["status"] == Status.OK and not e.get("from_cache") for e in g) for g in ledgers])
    cached = np.array(
        [sum(e["status"] == Status.OK and bool(e.get("from_cache")) for e in g) for g in ledgers]
    )
    failed = np.array([sum(e["status"] != Status.OK for e in g) for g in ledgers])
    axis.bar(x, fresh, label="labelled")
    axis.bar(x, cached, bottom=fresh, label="from cache")
    axis.bar(x, failed, bottom=fresh + cached, label="failed")
    axis.set(xlabel="generation", ylabel="structures", title="Oracle calls")
    axis.set_xticks(x)
    axis.legend()
    figure.tight_layout()
    return figure


def plot_parity(parity: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]) -> Figure:
    """Predicted vs reference energies per atom and force components.

    ``parity[split][quantity] = (reference, predicted)`` with split ``train``/``test`` and
    quantity ``energy`` (eV/atom, reference-corrected) or ``forces`` (eV/A components).
    """
    figure, axes = plt.subplots(1, 2, figsize=(9, 4))
    for axis, quantity, unit in ((axes[0], "energy", "eV/atom"), (axes[1], "forces", "eV/A")):
        values = []
        for split, data in parity.items():
            reference, predicted = data[quantity]
            if len(reference):
                axis.scatter(reference, predicted, s=6, alpha=0.6, label=split)
                values.extend([reference.min(), reference.max(), predicted.min(), predicted.max()])
        if values:
            low, high = float(min(values)), float(max(values))
            axis.plot([low, high], [low, high], color="black", linewidth=0.8)
        axis.set(xlabel=f"reference ({unit})", ylabel=f"ACE ({unit})", title=quantity)
        axis.legend()
    figure.tight_layout()
    return figure


def parity_by_split(
    potential_yaml: str | os.PathLike[str],
    labelled: Sequence[Sequence[Atoms]],
    test_fraction: float,
    metrics: Mapping[str, Any],
) -> dict[str, Any]:
    """Parity data (oracle vs potential) of every generation's labels, split into the fit's
    train and test parts (by uid hash), on the reference energies of ``metrics``."""
    from mlip_autopipe import fit

    everything = [atoms for images in labelled for atoms in images]
    train, test = fit.split_train_test(everything, test_fraction)
    references = metrics["reference_energies_ev"]
    return {
        "train": fit.predict(potential_yaml, train, references),
        "test": fit.predict(potential_yaml, test, references),
    }
