"""The per-generation decision: stop (converged, no extrapolation, max generations) or go on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CONVERGED = "converged"
NO_EXTRAPOLATION = "no_extrapolation"
MAX_GENERATIONS = "max_generations"
CONTINUE = "continue"


def decide(
    generation: int,
    runs: Sequence[Mapping[str, Any]],
    n_selected: int,
    metrics: Mapping[str, Any],
    loop: Mapping[str, Any],
) -> dict[str, Any]:
    """Decide whether generation ``generation + 1`` is needed, and say why."""
    checks = sum(int(run["checks"]) for run in runs)
    extrapolative = sum(int(run["extrapolative_checks"]) for run in runs)
    halted = sum(1 for run in runs if run["halted"])
    failed = sum(1 for run in runs if run["status"] == "failed")
    fraction = extrapolative / checks if checks else 1.0
    counts = {
        "md_runs": len(runs),
        "md_checks": checks,
        "extrapolative_checks": extrapolative,
        "extrapolative_fraction": fraction,
        "halted_runs": halted,
        "failed_runs": failed,
        "selected": n_selected,
    }
    if n_selected == 0 and failed == 0:
        reason, why = NO_EXTRAPOLATION, "no MD frame exceeded gamma_lo"
    elif halted == 0 and failed == 0 and fraction <= loop["converged_fraction"]:
        reason = CONVERGED
        why = f"no run halted and {fraction:.1%} of MD checks were extrapolative"
    elif generation + 1 >= loop["max_generations"]:
        reason, why = MAX_GENERATIONS, f"reached loop.max_generations = {loop['max_generations']}"
    elif n_selected == 0:
        reason, why = NO_EXTRAPOLATION, "MD runs failed and no extrapolative frame was found"
    else:
        reason = CONTINUE
        why = f"{halted} of {len(runs)} runs halted; {extrapolative} extrapolative checks"
    return {
        "generation": generation,
        "continue": reason == CONTINUE,
        "reason": reason,
        "why": why,
        "counts": counts,
        "test_metrics": dict(metrics.get("test", {})),
        "train_metrics": dict(metrics.get("train", {})),
    }
