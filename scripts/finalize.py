import json
import shutil

from common import start

log = start(snakemake)

from mlip_autopipe.contract import Status  # noqa: E402
from mlip_autopipe.data import write_text_atomic  # noqa: E402

decisions = []
for path in snakemake.input.decisions:
    with open(path) as handle:
        decisions.append(json.load(handle))
ledger_totals = {Status.OK: 0, Status.FAILED: 0}
for path in snakemake.input.ledgers:
    with open(path) as handle:
        for entry in json.load(handle):
            ledger_totals[Status.OK if entry["status"] == Status.OK else Status.FAILED] += 1
with open(snakemake.input.metrics) as handle:
    metrics = json.load(handle)
for key in ("yaml", "yace", "asi"):
    shutil.copyfile(snakemake.input[key], snakemake.output[key])
summary = {
    "generations": len(decisions),
    "final_generation": decisions[-1]["generation"],
    "stop_reason": decisions[-1]["reason"],
    "why": decisions[-1]["why"],
    "labels": ledger_totals,
    "final_metrics": metrics,
    "decisions": decisions,
}
log.info("stopped after %d generations: %s", len(decisions), decisions[-1]["why"])
write_text_atomic(snakemake.output.summary, json.dumps(summary, indent=2) + "\n")
