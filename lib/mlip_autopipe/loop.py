"""The per-generation decision: stop (converged, no extrapolation, max generations) or go on.

The decision works per exploration scenario: the loop converges when no run halted or failed
and every scenario's extrapolative fraction is at most ``loop.converged_fraction``.
``decision.json`` lists, per scenario, its runs, checks, extrapolation, halts and picks, and the
cost of the picks in oracle calls and atoms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ase import Atoms

CONVERGED = "converged"
NO_EXTRAPOLATION = "no_extrapolation"
MAX_GENERATIONS = "max_generations"
CONTINUE = "continue"


def _scenario(item: Mapping[str, Any]) -> str:
    return str(item.get("scenario") or "bulk")


def scenario_counts(
    runs: Sequence[Mapping[str, Any]], selected: Sequence[Atoms]
) -> dict[str, dict[str, Any]]:
    """Per scenario: runs, MD checks, extrapolative checks and fraction, halted and failed runs,
    highest gamma, escalation level, and the picks (count and atoms) of this generation."""
    table: dict[str, dict[str, Any]] = {}
    for run in runs:
        row = table.setdefault(
            _scenario(run),
            {
                "md_runs": 0,
                "md_checks": 0,
                "extrapolative_checks": 0,
                "halted_runs": 0,
                "failed_runs": 0,
                "max_gamma": 0.0,
                "escalation": 0,
                "selected": 0,
                "selected_atoms": 0,
            },
        )
        row["md_runs"] += 1
        row["md_checks"] += int(run["checks"])
        row["extrapolative_checks"] += int(run["extrapolative_checks"])
        row["halted_runs"] += int(bool(run["halted"]))
        row["failed_runs"] += int(run["status"] == "failed")
        row["max_gamma"] = max(row["max_gamma"], float(run.get("max_gamma", 0.0)))
        row["escalation"] = max(row["escalation"], int(run.get("escalation", 0)))
    for frame in selected:
        row = table.setdefault(_scenario(frame.info), {"selected": 0, "selected_atoms": 0})
        row["selected"] = row.get("selected", 0) + 1
        row["selected_atoms"] = row.get("selected_atoms", 0) + len(frame)
    for row in table.values():
        checks = row.get("md_checks", 0)
        row["extrapolative_fraction"] = row.get("extrapolative_checks", 0) / checks if checks else 1.0
    return dict(sorted(table.items()))


def decide(
    generation: int,
    runs: Sequence[Mapping[str, Any]],
    selected: Sequence[Atoms] | int,
    metrics: Mapping[str, Any],
    loop: Mapping[str, Any],
    embed_report: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Decide whether generation ``generation + 1`` is needed, and say why.

    ``selected`` is the generation's picks (or just their number); ``embed_report`` the
    embedding's rows (``embed.json``), for the oracle cost of the picks in atoms.
    """
    picks: Sequence[Atoms] = [] if isinstance(selected, int) else selected
    n_selected = selected if isinstance(selected, int) else len(selected)
    checks = sum(int(run["checks"]) for run in runs)
    extrapolative = sum(int(run["extrapolative_checks"]) for run in runs)
    halted = sum(1 for run in runs if run["halted"])
    failed = sum(1 for run in runs if run["status"] == "failed")
    fraction = extrapolative / checks if checks else 1.0
    scenarios = scenario_counts(runs, picks)
    ran = {name: row for name, row in scenarios.items() if row.get("md_runs")}
    worst = max(ran.items(), key=lambda item: item[1]["extrapolative_fraction"], default=None)
    worst_fraction = worst[1]["extrapolative_fraction"] if worst else fraction
    embedded = [row for row in embed_report if row.get("status") == "ok"]
    counts = {
        "md_runs": len(runs),
        "md_checks": checks,
        "extrapolative_checks": extrapolative,
        "extrapolative_fraction": fraction,
        "worst_scenario_fraction": worst_fraction,
        "halted_runs": halted,
        "failed_runs": failed,
        "selected": n_selected,
        "selected_atoms": sum(len(frame) for frame in picks),
        "next_oracle_calls": len({row["uid"] for row in embedded}),
        "next_oracle_atoms": sum(
            int(row["n_candidate_atoms"]) for row in {row["uid"]: row for row in embedded}.values()
        ),
    }
    if n_selected == 0 and failed == 0:
        reason, why = NO_EXTRAPOLATION, "no MD frame exceeded gamma_lo"
    elif halted == 0 and failed == 0 and worst_fraction <= loop["converged_fraction"]:
        reason = CONVERGED
        why = f"no run halted and every scenario's extrapolative fraction is at most {worst_fraction:.1%}"
    elif generation + 1 >= loop["max_generations"]:
        reason, why = MAX_GENERATIONS, f"reached loop.max_generations = {loop['max_generations']}"
    elif n_selected == 0:
        reason, why = NO_EXTRAPOLATION, "MD runs failed and no extrapolative frame was found"
    else:
        reason = CONTINUE
        busiest = f"; worst scenario {worst[0]} at {worst_fraction:.1%}" if worst else ""
        why = f"{halted} of {len(runs)} runs halted; {extrapolative} extrapolative checks{busiest}"
    coverage = metrics.get("active_set", {})
    if reason == CONTINUE and coverage and not coverage.get("gamma_informative", True):
        why += (
            f"; gamma weakly informative ({coverage['lowest_environments_per_function']:.2f} training "
            "environments per basis function: nearly every new environment extrapolates)"
        )
    return {
        "generation": generation,
        "continue": reason == CONTINUE,
        "reason": reason,
        "why": why,
        "counts": counts,
        "scenarios": scenarios,
        "test_metrics": dict(metrics.get("test", {})),
        "train_metrics": dict(metrics.get("train", {})),
        "active_set": dict(coverage),
    }
