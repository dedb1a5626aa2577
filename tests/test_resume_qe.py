"""Hard kill with real pw.x: SIGKILL mid-labelling, same command again, no finished label recomputed.

Tiny DFT on purpose: 4-atom Si-Ge diamond cells (two primitive cells), 12/96 Ry, a k-point or two, one
generation; each pw.x takes a few seconds. A wrapper script logs the working directory of every
pw.x call (``logs/gen_000/label/<uid>.pw/attempt_N``), so calls are counted per structure.
"""

from __future__ import annotations

import json
import stat
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from ase.build import bulk
from ase.io import read, write

from mlip_autopipe.cli.resume import stale_lock
from mlip_autopipe.data import read_structures
from snakemake_cli import finish_make_run, kill_workflow, start_make_run

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.workflow]


def tiny_qe_config(folder: Path, wrapper: Path) -> Path:
    """A one-generation Si-Ge run on 4-atom cells labelled by pw.x through ``wrapper``."""
    primitive = folder / "primitive_diamond.extxyz"
    write(primitive, bulk("Si", "diamond", a=5.54))  # 2 sites; species are set by the composition
    config: dict[str, Any] = {
        "seed": 3,
        "elements": ["Si", "Ge"],
        "structures": {
            "lattice": "diamond",
            "lattice_file": str(primitive),
            "supercell": [2, 1, 1],
            "compositions": [{"Si": 0.5, "Ge": 0.5}],
            "cells_per_composition": 1,
            "sqs": {"iterations": 100, "pair_shells": 1, "triplet_shells": 0},
            "strains": [-0.03, -0.01, 0.01, 0.03],
            "shear_strains": [0.02],
            "rattle_amplitudes": [0.05, 0.1, 0.15],
            "defects": {"vacancies": 0, "antisites": 0, "interstitials": 0},
            "initial_pick": 8,
        },
        "oracle": {
            "kind": "qe",
            "qe": {"command": [str(wrapper)], "ecutwfc": 12, "ecutrho": 96, "kspacing": 1.2, "cores": 1},
        },
        "fit": {"mode": "linear", "cutoff": 4.5, "functions_per_element": 8, "test_fraction": 0.15},
        "explore": {
            "engine": "ase",
            "temperatures": [600],
            "starts_per_temperature": 1,
            "steps": 20,
            "check_interval": 10,
        },
        "loop": {"max_generations": 1},
        "validation": {"enabled": False},
    }
    path = folder / "tiny-qe.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def counting_wrapper(folder: Path) -> tuple[Path, Path]:
    """A pw.x stand-in that logs its working directory, then becomes the real pw.x."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "counting-pw.x"
    calls = folder / "calls.log"
    wrapper.write_text(f'#!/bin/sh\necho "$PWD" >> "{calls}"\nexec pw.x "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, calls


def calls_per_uid(calls: Path) -> Counter[str]:
    """pw.x calls per structure uid, from the logged ``.../label/<uid>.pw/attempt_N`` folders."""
    if not calls.exists():
        return Counter()
    # label runs only: the version lookup (pw.x's header, for the cache key) runs in a scratch folder
    attempts = [
        Path(line) for line in calls.read_text().splitlines() if Path(line).name.startswith("attempt_")
    ]
    return Counter(attempt.parent.name.removesuffix(".pw") for attempt in attempts)


def finished_labels(run_dir: Path) -> set[str]:
    """uids whose pw.x label is complete: in the label cache (written before the label file)."""
    return {path.stem for path in (run_dir / "results" / "label_cache").glob("*/*.extxyz")}


def outcome(run_dir: Path) -> dict[str, Any]:
    """What must not depend on a kill: the labels, the ledger and the decision."""
    generation = run_dir / "results" / "gen_000"
    labelled = read_structures(generation / "labelled.extxyz")
    ledger = json.loads((generation / "ledger.json").read_text())
    decision = json.loads((generation / "decision.json").read_text())
    return {
        "labels": sorted((a.info["uid"], round(a.get_potential_energy(), 6)) for a in labelled),
        "forces": {a.info["uid"]: a.get_forces().round(5).tolist() for a in labelled},
        "ledger": sorted((row["uid"], row["status"], row["attempts"]) for row in ledger),
        "decision": (decision["reason"], decision["counts"]),
    }


def test_sigkill_during_pw_labelling_resumes_without_repeating_a_finished_label(tmp_path: Path) -> None:
    reference_wrapper, reference_calls = counting_wrapper(tmp_path / "reference pw")
    reference_dir = tmp_path / "uninterrupted"
    reference_dir.mkdir()
    reference_config = tiny_qe_config(tmp_path / "reference pw", reference_wrapper)
    finish_make_run(reference_dir, reference_config)
    reference = outcome(reference_dir)
    n_candidates = len(reference["labels"])
    assert n_candidates >= 6
    assert sum(calls_per_uid(reference_calls).values()) == n_candidates

    wrapper, calls = counting_wrapper(tmp_path / "killed pw")
    configfile = tiny_qe_config(tmp_path / "killed pw", wrapper)
    run_dir = tmp_path / "killed during pw.x"
    run_dir.mkdir()
    process = start_make_run(run_dir, configfile)
    deadline = time.time() + 600
    # kill once at least two labels are done and another pw.x is running
    while not (len(finished_labels(run_dir)) >= 2 and sum(calls_per_uid(calls).values()) > 2):
        assert process.poll() is None, "run ended before the kill"
        assert time.time() < deadline, "labelling never got going"
        time.sleep(0.02)
    kill_workflow(process, run_dir)
    assert stale_lock(run_dir)

    done_before = finished_labels(run_dir)
    started_before = calls_per_uid(calls)
    assert 2 <= len(done_before) < n_candidates
    interrupted = set(started_before) - done_before
    assert interrupted, "the kill should cut a pw.x run short"
    for path in (run_dir / "results").rglob("*.extxyz"):
        if path.stat().st_size:
            read(path, index=":")  # nothing half-written, even right after the kill

    output = finish_make_run(run_dir, configfile)
    assert "removed the stale Snakemake lock" in output

    counts = calls_per_uid(calls)
    assert {uid for uid in done_before if counts[uid] != 1} == set(), counts
    assert all(counts[uid] == 2 for uid in interrupted), counts  # cut short, so run again
    assert sum(counts.values()) == n_candidates + len(interrupted)
    assert outcome(run_dir) == reference
    for path in (run_dir / "results").rglob("*.extxyz"):
        if path.stat().st_size:
            read(path, index=":")
    assert not list((run_dir / "results").rglob("*.tmp"))
