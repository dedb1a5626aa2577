import json

from common import start

log = start(snakemake)

from mlip_autopipe.contract import Status  # noqa: E402
from mlip_autopipe.data import copy_atomic, write_text_atomic  # noqa: E402

#: What each shipped file's energies are (the README says the same).
FINAL_ENERGIES = {
    "potential.yace": "total energies on the oracle's scale: the per-element reference energies "
    "are the basis's per-element constant E0, which pyace and LAMMPS pair_style pace add",
    "potential.yaml": "energy minus the reference energies (reference_energies_ev, also in the "
    "file's metadata as pacemaker's reference_energy): pacemaker's B-basis format has no "
    "per-element constant, so pair_style pace/extrapolation and pyace's calculator on this file "
    "give energies without them; forces and gamma are the same as with the .yace",
}

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
    copy_atomic(snakemake.input[key], snakemake.output[key])
summary = {
    "generations": len(decisions),
    "final_generation": decisions[-1]["generation"],
    "stop_reason": decisions[-1]["reason"],
    "why": decisions[-1]["why"],
    "labels": ledger_totals,
    "final_metrics": metrics,
    "reference_energies_ev": metrics["reference_energies_ev"],
    "energies": FINAL_ENERGIES,
    "decisions": decisions,
}
log.info("stopped after %d generations: %s", len(decisions), decisions[-1]["why"])
write_text_atomic(snakemake.output.summary, json.dumps(summary, indent=2) + "\n")
