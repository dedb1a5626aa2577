"""Figures of the validation: equation of state, elastic constants, phonons, MD stability.

Each function takes the plain dicts of ``validation.json`` and returns a matplotlib Figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

#: Line style of each method in every validation figure.
STYLES = {
    "potential": {"color": "tab:blue", "linestyle": "-"},
    "oracle": {"color": "black", "linestyle": "--"},
}


def _empty(text: str) -> Figure:
    figure, axis = plt.subplots(figsize=(5, 2))
    axis.axis("off")
    axis.text(0.5, 0.5, text, ha="center", va="center")
    return figure


def plot_equation_of_state(materials: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Energy per atom (relative to each method's minimum) against volume per atom."""
    if not materials:
        return _empty("no validation materials")
    figure, axes = plt.subplots(1, len(materials), figsize=(3.6 * len(materials), 3.4), squeeze=False)
    for axis, (name, material) in zip(axes[0], materials.items(), strict=True):
        for method, results in material["methods"].items():
            eos = results["eos"]
            energies = (np.array(eos["energies"]) - eos["e0"]) * 1000
            label = f"{method}: a0 {eos['a0']:.3f} A, B0 {eos['B0']:.0f} GPa"
            axis.plot(eos["volumes"], energies, marker="o", markersize=3, label=label, **STYLES[method])
        axis.set(title=name, xlabel="volume (A^3/atom)", ylabel="E - E0 (meV/atom)")
        if material.get("failure"):
            axis.text(0.5, 0.5, material["failure"], ha="center", va="center", wrap=True, fontsize=7)
        else:
            axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_elastic_constants(materials: Mapping[str, Mapping[str, Any]]) -> Figure:
    """C11, C12, C44 of each material, potential beside oracle."""
    keys = ("C11", "C12", "C44")
    cubic = {
        n: m
        for n, m in materials.items()
        if "potential" in m["methods"] and "C11" in m["methods"]["potential"]["elastic"]
    }
    if not cubic:
        return _empty("no cubic material: see the elastic matrices in validation.json")
    figure, axis = plt.subplots(figsize=(max(5.0, 2.2 * len(cubic)), 3.6))
    methods = list(next(iter(cubic.values()))["methods"])
    width = 0.8 / (len(keys) * len(methods))
    for m_index, method in enumerate(methods):
        for k_index, key in enumerate(keys):
            offset = (k_index * len(methods) + m_index) * width - 0.4 + width / 2
            values = [m["methods"][method]["elastic"][key] for m in cubic.values()]
            axis.bar(
                np.arange(len(cubic)) + offset,
                values,
                width,
                color=f"C{k_index}",
                alpha=1.0 if method == "potential" else 0.45,
                hatch="" if method == "potential" else "//",
                label=f"{key} {method}",
            )
    axis.set_xticks(np.arange(len(cubic)), list(cubic))
    axis.set(ylabel="GPa", title="Elastic constants (ions clamped)")
    axis.legend(fontsize=7, ncol=len(methods))
    figure.tight_layout()
    return figure


def plot_phonons(phonons: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Phonon dispersion of each pure element: potential (solid) and oracle (dashed)."""
    if not phonons:
        return _empty("phonons not computed (validation.phonons.enabled, or no pure element)")
    figure, axes = plt.subplots(1, len(phonons), figsize=(4.5 * len(phonons), 3.6), squeeze=False)
    for axis, (name, result) in zip(axes[0], phonons.items(), strict=True):
        for method, band in result["methods"].items():
            frequencies = np.array(band["frequencies"])
            for index in range(frequencies.shape[1]):
                axis.plot(
                    band["distance"],
                    frequencies[:, index],
                    linewidth=1,
                    label=method if index == 0 else None,
                    **STYLES[method],
                )
        band = result["methods"]["potential"]
        for position in band["special_distance"]:
            axis.axvline(position, color="grey", linewidth=0.5)
        labels = ["Γ" if label == "G" else label for label in band["special_labels"]]
        axis.set_xticks(band["special_distance"], labels)
        axis.set_xlim(band["distance"][0], band["distance"][-1])
        axis.axhline(0, color="grey", linewidth=0.5)
        axis.set(title=name, ylabel="frequency (THz)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_md_stability(md: Mapping[str, Any] | None) -> Figure:
    """Closest pair distance and temperature along the stability run."""
    if not md:
        return _empty("MD stability run not requested (validation.md.enabled)")
    trace = md["trace"]
    figure, (distance_axis, temperature_axis) = plt.subplots(1, 2, figsize=(9, 3.4))
    distance_axis.plot(trace["time_fs"], trace["min_distance"])
    distance_axis.axhline(md["min_distance_threshold"], color="tab:red", linestyle="--", label="threshold")
    distance_axis.set(
        xlabel="time (fs)", ylabel="closest pair (A)", title="stable" if md["stable"] else "UNSTABLE"
    )
    distance_axis.legend()
    temperature_axis.plot(trace["time_fs"], trace["temperature"])
    temperature_axis.axhline(md["temperature_target"], color="grey", linestyle="--", label="target")
    temperature_axis.set(xlabel="time (fs)", ylabel="temperature (K)", title=md["material"])
    temperature_axis.legend()
    figure.tight_layout()
    return figure
