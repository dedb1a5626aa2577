"""The exploration benchmark's quick mode: real loop (Snakemake, EMT), test set, both baselines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlip_autopipe import testsets

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_benchmark_writes_every_category_and_baseline(tmp_path: Path) -> None:
    out = tmp_path / "exploration.json"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "exploration.py"), "--quick", "--out", str(out)],
        check=True,
        timeout=900,
    )
    result = json.loads(out.read_text())
    names = [scenario.name for scenario in testsets.default_scenarios()]
    assert result["quick"] is True
    assert result["test_set"]["categories"] == names
    (loop,) = result["loop"]
    assert [point["generation"] for point in loop["curve"]] == [0, 1]
    assert loop["final"]["oracle_calls"] == loop["curve"][-1]["oracle_calls"] > 0
    for scores in [loop["final"], *loop["curve"]]:
        assert sorted(scores["by_category"]) == sorted(names)
        worst = max(scores["by_category"].items(), key=lambda item: item[1]["force_rmse_ev_per_a"])
        assert scores["worst_category"] == worst[0]
        assert scores["worst_force_rmse_ev_per_a"] == pytest.approx(worst[1]["force_rmse_ev_per_a"], abs=1e-6)
    (baseline,) = result["random_dataset"]
    assert [point["oracle_calls"] for point in baseline["curve"]] == [10, 30]
    assert baseline["equal_budget"]["oracle_calls"] == loop["final"]["oracle_calls"]
    # the largest budget is the whole pool: half of it MD snapshots, whose MD steps count on
    # top as ab initio MD would (at least equilibration + interval steps over 8 frames each)
    assert baseline["curve"][-1]["md_snapshots"] == 15
    for point in baseline["curve"]:
        assert point["oracle_calls_with_aimd"] >= point["oracle_calls"] + 30 * point["md_snapshots"]
        assert sorted(point["by_category"]) == sorted(names)
    selection = result["random_selection"]
    assert isinstance(selection, list) or selection.startswith("not available")
    headline = result["headline"]
    assert headline["loop_oracle_calls_median"] == loop["final"]["oracle_calls"]
    assert headline["equal_budget_worst_ratio_random_dataset_over_loop"] > 0
