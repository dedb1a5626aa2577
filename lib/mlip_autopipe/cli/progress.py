"""A live progress view of a running workflow, read from its results folder like ``status``.

Snakemake's own output goes to ``RUN_DIR/logs/mlip-autopipe-run.log``; the terminal shows the
generation, the stage, labels done/pending/failed and an ETA, refreshed every second.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlip_autopipe.cli.status import GenerationStatus, run_status

#: Snakemake's output while `mlip-autopipe run` follows it.
RUN_LOG = Path("logs") / "mlip-autopipe-run.log"


@dataclass
class Progress:
    """What the live view shows."""

    generation: int | None
    stage: str
    labelled: int
    pending: int
    failed: int
    generations_done: int
    eta_s: float | None


def stage_of(status: GenerationStatus, folder: Path) -> str:
    """The stage a generation is in, from the files it has."""
    if status.decision is not None:
        return "decided"
    if status.candidates is None:
        return "candidates"
    if status.pending:
        return "labelling"
    if not status.fitted:
        return "fitting"
    if not status.explored:
        return "exploring"
    if not (folder / "selected.extxyz").exists():
        return "selecting"
    return "deciding"


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def progress(run_dir: Path, max_generations: int, started: float) -> Progress:
    """The run's progress now; the ETA assumes every remaining generation takes the mean so far
    (an upper bound: the loop often stops before max_generations)."""
    generations = run_status(run_dir)
    if not generations:
        stage = "final" if (run_dir / "results" / "final").is_dir() else "structures"
        return Progress(None, stage, 0, 0, 0, 0, None)
    current = generations[-1]
    folder = run_dir / "results" / f"gen_{current.generation:03d}"
    done = [status for status in generations if status.decision is not None]
    stage = stage_of(current, folder)
    if done and not done[-1].decision.get("continue", True):  # type: ignore[union-attr]
        stage = "final fit and validation"
    eta = None
    last_decision = run_dir / "results" / f"gen_{done[-1].generation:03d}" / "decision.json" if done else None
    finished_at = _mtime(last_decision) if last_decision is not None else None
    if finished_at is not None:
        per_generation = max(finished_at - started, 0.0) / len(done) if finished_at > started else None
        if per_generation:
            remaining = max(max_generations - len(done), 0)
            eta = per_generation * remaining
    return Progress(
        current.generation,
        stage,
        sum(status.labelled for status in generations),
        sum(status.pending or 0 for status in generations),
        sum(status.failed for status in generations),
        len(done),
        eta,
    )


def describe(state: Progress, max_generations: int, elapsed: float) -> str:
    """One line of progress."""
    generation = "-" if state.generation is None else f"{state.generation}"
    eta = "-" if state.eta_s is None else f"<= {state.eta_s / 60:.1f} min"
    return (
        f"generation {generation} (of up to {max_generations}) | {state.stage} | "
        f"labels done {state.labelled}, pending {state.pending}, failed {state.failed} | "
        f"elapsed {elapsed / 60:.1f} min | ETA {eta}"
    )


def follow_run(command: list[str], run_dir: Path, settings: Mapping[str, Any], env: dict[str, str]) -> int:
    """Run ``command`` (Snakemake), showing live progress; returns its exit code."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from mlip_autopipe.cli.status import render

    max_generations = int(settings["loop"]["max_generations"])
    log_path = run_dir / RUN_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    console = Console()
    started = time.time()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        if console.is_terminal:
            with Live(console=console, refresh_per_second=2, transient=True) as live:
                while process.poll() is None:
                    state = progress(run_dir, max_generations, started)
                    live.update(Text(describe(state, max_generations, time.time() - started), style="bold"))
                    time.sleep(1.0)
        else:  # a log or a pipe: one line whenever the state changes
            last = None
            while process.poll() is None:
                state = progress(run_dir, max_generations, started)
                key = (state.generation, state.stage, state.labelled, state.failed)
                if key != last:
                    line = describe(state, max_generations, time.time() - started)
                    console.print(line, highlight=False, soft_wrap=True)
                    last = key
                time.sleep(1.0)
    code = process.returncode
    sys.stdout.write(render(run_dir))  # already laid out 160 wide: not re-wrapped
    sys.stdout.flush()
    if code != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-40:]
        console.print("\n".join(tail), highlight=False, markup=False)
        failure = f"[red]the workflow failed (exit {code}); full output in {log_path}[/red]"
        console.print(failure, soft_wrap=True)
    else:
        minutes = (time.time() - started) / 60
        console.print(f"done in {minutes:.1f} min; Snakemake's output is in {log_path}", soft_wrap=True)
    return code
