import json

from common import start

log = start(snakemake)

from mlip_autopipe.data import copy_atomic, write_text_atomic  # noqa: E402
from mlip_autopipe.production import oracle_cost, pair_lines, readiness  # noqa: E402

#: What each shipped file's energies are (the README says the same).
FINAL_ENERGIES = {
    "potential.yace": "total energies on the oracle's scale: the per-element reference energies "
    "are the basis's per-element constant E0, which pyace and LAMMPS pair_style pace add",
    "potential.yaml": "energy minus the reference energies (reference_energies_ev, also in the "
    "file's metadata as pacemaker's reference_energy): pacemaker's B-basis format has no "
    "per-element constant, so pair_style pace/extrapolation and pyace's calculator on this file "
    "give energies without them; forces and gamma are the same as with the .yace",
}


def load_json(path):
    with open(path) as handle:
        return json.load(handle)


decisions = [load_json(path) for path in snakemake.input.decisions]
ledgers = [load_json(path) for path in snakemake.input.ledgers]
metrics = load_json(snakemake.input.metrics)
validation_file = snakemake.input.get("validation")
validation = load_json(validation_file) if validation_file else None
categories_file = snakemake.input.get("categories")
ready, reasons = readiness(validation, snakemake.params.tolerances)
for key in ("yaml", "yace", "asi"):
    copy_atomic(snakemake.input[key], snakemake.output[key])
lines = pair_lines(snakemake.params.elements, "potential.yace", "potential.yaml", "potential.asi")
write_text_atomic(snakemake.output.pair_lines, "\n".join(lines) + "\n")
cost = oracle_cost(ledgers)
summary = {
    "potential": "production fit" if snakemake.params.production else "last loop fit",
    "production_ready": ready,
    "not_ready_because": reasons,
    "generations": len(decisions),
    "final_generation": decisions[-1]["generation"],
    "stop_reason": decisions[-1]["reason"],
    "why": decisions[-1]["why"],
    "labels": cost["labels"],
    "oracle_cost": {"calls": cost["calls"], "seconds": cost["seconds"]},
    "data": {
        "train_structures": metrics["train"]["n_structures"],
        "test_structures": metrics["test"]["n_structures"],
    },
    "final_metrics": metrics,
    # production.ladder: every step, the chosen one and why the basis stopped growing (or None)
    "ladder": metrics.get("ladder"),
    "test_by_category": load_json(categories_file) if categories_file else None,
    "loop_final_metrics": load_json(snakemake.input.loop_metrics),
    "reference_energies_ev": metrics["reference_energies_ev"],
    "energies": FINAL_ENERGIES,
    "lammps": lines,
    "decisions": decisions,
}
log.info("stopped after %d generations: %s", len(decisions), decisions[-1]["why"])
log.info("production_ready: %s %s", ready, "; ".join(reasons))
write_text_atomic(snakemake.output.summary, json.dumps(summary, indent=2) + "\n")
