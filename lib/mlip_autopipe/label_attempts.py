"""Label jobs killed from outside (Slurm walltime or memory, SIGKILL) end up in the ledger.

A label job that is killed writes no label, so its generation could never gather. Each job's
run is therefore recorded in an attempts file before the oracle is built and removed when it
ends, kept alive by a heartbeat (and stamped when SIGTERM arrives, as Slurm sends before its
SIGKILL at the time limit). A record still present at the next start is an attempt that was
killed: ``walltime`` when it was alive up to its job's time limit, ``killed`` otherwise. Under
Slurm the limit is the job's own end time (from squeue, once per attempt): the job's clock starts
before the label script's (scheduling, Snakemake's start-up), so timing the attempt alone would
class a job killed at its limit as ``killed`` and label it again. Elsewhere it is the attempt's
runtime. The next start then labels the structure as failed, with that reason, instead of
running the oracle again:

- after one ``walltime`` attempt whose runtime was at least the current one (a rerun with a
  larger runtime tries again);
- after ``max_killed`` attempts killed otherwise (a killed workflow, memory, a lost node).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from mlip_autopipe.data import write_text_atomic
from mlip_autopipe.errors import LabellingError

FAILURE_WALLTIME = "walltime"
FAILURE_KILLED = "killed"
#: Seconds between heartbeats of a running attempt.
HEARTBEAT_S = 10.0
#: Slack when deciding that an attempt ran up to its runtime (plus one heartbeat when no
#: SIGTERM stamped the moment it was stopped).
RUNTIME_SLACK_S = 2.0


#: Seconds to wait for squeue's answer about the job's end time.
SQUEUE_TIMEOUT_S = 10.0


def slurm_job_end(job_id: str, squeue: str = "squeue") -> float | None:
    """Epoch seconds at which Slurm job ``job_id`` reaches its time limit, or None when squeue
    cannot tell (not installed, no answer, an unlimited job)."""
    try:
        answer = subprocess.run(
            [squeue, "--noheader", "--jobs", job_id, "--format", "%e"],
            capture_output=True,
            text=True,
            timeout=SQUEUE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if answer.returncode != 0:
        return None
    # squeue prints the end time in local time, as this process reads it
    try:
        return datetime.fromisoformat(answer.stdout.strip()).timestamp()
    except ValueError:  # "N/A", "Unknown", several lines
        return None


def read_attempts(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The attempts recorded in ``path`` (none when it is absent or unreadable)."""
    try:
        attempts = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(attempts, list):
        return []
    return [attempt for attempt in attempts if isinstance(attempt, dict) and "started" in attempt]


def _seconds_short_of_limit(attempt: dict[str, Any]) -> float | None:
    """How long before its time limit a killed attempt was last alive (None: no limit known).

    The limit is the Slurm job's end time where the attempt recorded one, else its start plus its
    runtime."""
    last_alive = float(attempt.get("last_alive", attempt["started"]))
    if attempt.get("job_end"):
        return float(attempt["job_end"]) - last_alive
    if attempt.get("runtime_min"):
        return float(attempt["started"]) + 60.0 * float(attempt["runtime_min"]) - last_alive
    return None


def classify(attempt: dict[str, Any]) -> str:
    """``walltime`` when a killed attempt was alive (nearly) up to its time limit, else ``killed``."""
    short_s = _seconds_short_of_limit(attempt)
    slack = RUNTIME_SLACK_S + (0.0 if attempt.get("signal") else HEARTBEAT_S)
    if short_s is not None and short_s <= slack:
        return FAILURE_WALLTIME
    return FAILURE_KILLED


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def killed_attempts_verdict(
    path: str | os.PathLike[str], runtime_min: float | None, max_killed: int
) -> LabellingError | None:
    """The failure to ledger instead of a new oracle run, or None when it may run (again).

    A verdict clears ``path`` (its attempts go into the failure's history), so deleting the
    failed label file is all it takes to try again.
    """
    history: list[dict[str, Any]] = []
    for attempt in read_attempts(path):
        ran_s = float(attempt.get("last_alive", attempt["started"])) - float(attempt["started"])
        where = f"Slurm job {attempt['slurm_job_id']}" if attempt.get("slurm_job_id") else attempt.get("host")
        history.append(
            {
                "status": classify(attempt),
                "seconds": round(ran_s, 1),
                "runtime_min": attempt.get("runtime_min"),
                "short_of_limit_s": _rounded(_seconds_short_of_limit(attempt)),
                "where": where,
                "signal": attempt.get("signal"),
            }
        )
    at_walltime = [
        entry
        for entry in history
        if entry["status"] == FAILURE_WALLTIME
        and (runtime_min is None or float(entry["runtime_min"]) >= float(runtime_min))
    ]
    verdict = None
    if at_walltime:
        last = at_walltime[-1]
        verdict = LabellingError(
            f"the label job was killed at its runtime of {last['runtime_min']:g} min ({last['where']}, "
            f"ran {last['seconds']:g} s); give label jobs more time (--set-resources label:runtime=MIN) "
            "and delete this label file to try again",
            category=FAILURE_WALLTIME,
            history=history,
        )
    elif len(history) >= max_killed:
        verdict = LabellingError(
            f"the label job was killed from outside {len(history)} times (memory, a lost node, a "
            f"killed workflow; oracle.max_killed_attempts is {max_killed}); delete this label file to "
            "try again",
            category=FAILURE_KILLED,
            history=history,
        )
    if verdict is not None:
        Path(path).unlink(missing_ok=True)
    return verdict


class AttemptRecord:
    """Context manager around one run of a label job: recorded on entry, kept alive by a
    heartbeat, removed when the run ends (a label or an oracle failure)."""

    def __init__(self, path: str | os.PathLike[str], runtime_min: float | None) -> None:
        self.path = Path(path)
        now = time.time()
        self.attempt: dict[str, Any] = {
            "started": now,
            "last_alive": now,
            "runtime_min": runtime_min,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        }
        if self.attempt["slurm_job_id"]:
            self.attempt["job_end"] = slurm_job_end(self.attempt["slurm_job_id"])
        self._earlier = read_attempts(self.path)
        self._stop = threading.Event()
        self._lock = threading.RLock()  # the SIGTERM handler may interrupt a write of this thread
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._previous_handler: Any = None

    def _write(self, **update: Any) -> None:
        with self._lock:
            self.attempt.update(update, last_alive=time.time())
            write_text_atomic(self.path, json.dumps([*self._earlier, self.attempt], indent=1) + "\n")

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self._write()

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # Slurm's time limit (and scancel) sends SIGTERM, then SIGKILL: note how long it ran,
        # then die of the signal as if nothing had been caught.
        self._write(signal="SIGTERM")
        previous = self._previous_handler
        signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        os.kill(os.getpid(), signum)

    def __enter__(self) -> AttemptRecord:
        # the handler first: once the record exists, a SIGTERM always stamps it (a job stopped
        # between the two would otherwise die unstamped and count as killed, not walltime)
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._write()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
        if error is None or isinstance(error, LabellingError):
            # the oracle ran to an end (a label, or a failure it ledgers itself): what was
            # killed before no longer matters
            self.path.unlink(missing_ok=True)
        else:  # a crash of this process counts as one more attempt that never ended
            self._write(error=repr(error)[:200])
