"""Label jobs killed from outside: recorded while they run, ledgered on a later start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from ase import Atoms

from mlip_autopipe.data import read_structures, tag_structure
from mlip_autopipe.label_attempts import (
    AttemptRecord,
    classify,
    killed_attempts_verdict,
    read_attempts,
    slurm_job_end,
)
from mlip_autopipe.labelling import label_job
from mlip_autopipe.oracles import EMTOracle

LIB = Path(__file__).resolve().parent.parent / "lib"

#: A label job's process: an attempt recorded around a long oracle run (here: sleeping).
LONG_ATTEMPT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from mlip_autopipe.label_attempts import AttemptRecord
with AttemptRecord(sys.argv[2], float(sys.argv[3])):
    print("running", flush=True)
    time.sleep(120)
"""


def start_attempt(
    attempts: Path, runtime_min: float, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", LONG_ATTEMPT, str(LIB), str(attempts), str(runtime_min)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None and process.stdout.readline() == "running\n"
    return process


def kill(process: subprocess.Popen[str], signum: int) -> None:
    process.send_signal(signum)
    process.wait(timeout=30)
    assert process.returncode == -signum


def test_attempts_killed_from_outside_are_retried_then_ledgered(tmp_path: Path, cuni_cell: Atoms) -> None:
    attempts, output = tmp_path / "uid.attempts.json", tmp_path / "label.extxyz"
    candidate = tag_structure(cuni_cell.copy(), generation=0, origin="sqs")
    for _ in range(2):  # e.g. an out-of-memory kill, then a lost node
        kill(start_attempt(attempts, runtime_min=10), signal.SIGKILL)
    assert [classify(attempt) for attempt in read_attempts(attempts)] == ["killed", "killed"]

    # with three allowed, the next start labels it and forgets the killed runs
    retried = label_job(candidate.copy(), EMTOracle, output, attempts_file=attempts, max_killed_attempts=3)
    assert retried.info["label_status"] == "ok" and not attempts.exists()
    assert read_structures(output)[0].info["label_status"] == "ok"

    for _ in range(2):
        kill(start_attempt(attempts, runtime_min=10), signal.SIGKILL)
    failed = label_job(candidate.copy(), EMTOracle, output, attempts_file=attempts, max_killed_attempts=2)
    assert read_structures(output)[0].info["label_failure"] == "killed"
    assert failed.info["label_status"] == "failed" and failed.calc is None
    assert failed.info["label_failure"] == "killed" and failed.info["label_attempts"] == 2
    assert [entry["status"] for entry in json.loads(failed.info["label_history"])] == ["killed"] * 2
    assert not attempts.exists()  # deleting the failed label is all it takes to try again


def test_a_job_stopped_at_its_runtime_is_a_walltime_failure(tmp_path: Path, cuni_cell: Atoms) -> None:
    attempts = tmp_path / "uid.attempts.json"
    runtime_min = 0.05  # 3 s
    # SIGTERM well before the runtime (scancel, a stopped workflow): killed, tried again
    early = start_attempt(attempts, runtime_min)
    time.sleep(0.3)
    kill(early, signal.SIGTERM)
    (record,) = read_attempts(attempts)
    assert record["signal"] == "SIGTERM" and classify(record) == "killed"
    attempts.unlink()

    # SIGTERM at the runtime, as Slurm sends it at the time limit: walltime ...
    candidate = tag_structure(cuni_cell.copy(), generation=0, origin="sqs")
    for runtime_now, status in ((1.0, "ok"), (runtime_min, "failed")):
        late = start_attempt(attempts, runtime_min)
        time.sleep(60 * runtime_min + 0.2)
        kill(late, signal.SIGTERM)
        (record,) = read_attempts(attempts)
        assert classify(record) == "walltime"
        # ... tried again by a rerun given a longer runtime, ledgered at once under the same one
        outcome = label_job(
            candidate.copy(),
            EMTOracle,
            tmp_path / "label.extxyz",
            attempts_file=attempts,
            runtime_min=runtime_now,
            max_killed_attempts=9,
        )
        assert outcome.info["label_status"] == status and not attempts.exists()
    assert outcome.info["label_failure"] == "walltime"
    assert "killed at its runtime of 0.05 min" in outcome.info["label_reason"]


def test_an_attempt_that_ends_leaves_no_record(tmp_path: Path) -> None:
    attempts = tmp_path / "uid.attempts.json"
    with AttemptRecord(attempts, runtime_min=1.0):
        (record,) = read_attempts(attempts)
        assert record["runtime_min"] == 1.0 and record["started"] <= record["last_alive"]
    assert not attempts.exists()


def test_a_sigterm_right_after_the_record_appears_is_stamped(tmp_path: Path, monkeypatch) -> None:
    # A job stopped (hung, or SIGSTOPped) just after its record was written and then ended by
    # Slurm's SIGTERM must stamp the signal, or it is classed `killed` and labelled again. So the
    # handler is in place before the first write (it was installed after it; the Slurm test hit
    # that window once in CI).
    import mlip_autopipe.label_attempts as label_attempts

    attempts = tmp_path / "uid.attempts.json"
    handlers_at_write: list[object] = []
    real_write = label_attempts.write_text_atomic

    def spying_write(path, text):  # type: ignore[no-untyped-def]
        handlers_at_write.append(signal.getsignal(signal.SIGTERM))
        return real_write(path, text)

    monkeypatch.setattr(label_attempts, "write_text_atomic", spying_write)
    record = AttemptRecord(attempts, runtime_min=1.0)
    with record:
        pass
    assert handlers_at_write and handlers_at_write[0] == record._on_sigterm
    assert signal.getsignal(signal.SIGTERM) is not record._on_sigterm  # restored on exit


def slurm_job_env(tmp_path: Path, job_end: float) -> dict[str, str]:
    """The environment of a process in Slurm job 4242, whose squeue says the job ends at
    ``job_end`` (squeue's local-time format); the real squeue runs in tests/test_slurm.py."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    end = datetime.fromtimestamp(round(job_end)).isoformat()
    squeue = bin_dir / "squeue"
    squeue.write_text(f'#!/bin/sh\n[ "$*" = "--noheader --jobs 4242 --format %e" ] && echo {end}\n')
    squeue.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_JOB_ID": "4242"}


def test_a_slurm_job_killed_at_its_limit_is_walltime_however_late_the_label_started(
    tmp_path: Path,
) -> None:
    # The Slurm job's clock starts before the label script's (queue, Snakemake's start-up: 2-20 s
    # on a loaded node). A job killed at its limit was classed `killed` (the attempt alone ran
    # short of its runtime) and labelled again (CI: 'ok' where 'failed' was expected).
    attempts = tmp_path / "uid.attempts.json"
    late = start_attempt(attempts, runtime_min=1.0, env=slurm_job_env(tmp_path, time.time() + 3))
    (record,) = read_attempts(attempts)
    time.sleep(max(0.0, record["job_end"] - time.time()) + 0.2)
    kill(late, signal.SIGTERM)
    (record,) = read_attempts(attempts)
    assert record["slurm_job_id"] == "4242" and record["last_alive"] - record["started"] < 10
    assert classify(record) == "walltime"
    verdict = killed_attempts_verdict(attempts, runtime_min=1.0, max_killed=9)
    assert verdict is not None and verdict.category == "walltime"
    (entry,) = verdict.history
    assert entry["where"] == "Slurm job 4242" and -1.0 <= entry["short_of_limit_s"] <= 0.0

    # scancel (or a stopped workflow) long before the job's limit: killed, tried again
    early = start_attempt(attempts, runtime_min=1.0, env=slurm_job_env(tmp_path, time.time() + 600))
    kill(early, signal.SIGTERM)
    (record,) = read_attempts(attempts)
    assert record["signal"] == "SIGTERM" and classify(record) == "killed"


def test_no_job_end_from_squeue_falls_back_to_the_attempts_runtime(tmp_path: Path) -> None:
    squeue = tmp_path / "squeue"
    for answer in ("N/A", "", "2026-12-02T10:00:00\n2026-12-02T11:00:00"):
        squeue.write_text(f"#!/bin/sh\nprintf '{answer}'\n")
        squeue.chmod(0o755)
        assert slurm_job_end("1", squeue=str(squeue)) is None
    assert slurm_job_end("1", squeue=str(tmp_path / "absent")) is None
    squeue.write_text("#!/bin/sh\necho 2026-12-02T10:00:00\n")
    assert slurm_job_end("1", squeue=str(squeue)) == datetime(2026, 12, 2, 10).timestamp()
    # without it, an attempt is timed from its own start
    started = time.time()
    timed_alone = {"started": started, "last_alive": started + 59.5, "runtime_min": 1, "job_end": None}
    assert classify({**timed_alone, "signal": "SIGTERM"}) == "walltime"
