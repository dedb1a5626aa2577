"""Label jobs killed from outside: recorded while they run, ledgered on a later start."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from ase import Atoms

from mlip_autopipe.data import read_structures, tag_structure
from mlip_autopipe.label_attempts import AttemptRecord, classify, read_attempts
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


def start_attempt(attempts: Path, runtime_min: float) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", LONG_ATTEMPT, str(LIB), str(attempts), str(runtime_min)],
        stdout=subprocess.PIPE,
        text=True,
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
