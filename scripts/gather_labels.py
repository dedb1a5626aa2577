import json

from common import start

log = start(snakemake)

from mlip_autopipe.contract import Status  # noqa: E402
from mlip_autopipe.data import write_structures, write_text_atomic  # noqa: E402
from mlip_autopipe.labelling import gather_labels  # noqa: E402

labelled, ledger = gather_labels(snakemake.input)
failed = [entry for entry in ledger if entry["status"] != Status.OK]
log.info("%d labelled, %d failed", len(labelled), len(failed))
for entry in failed:
    log.warning("label failed for %s: %s", entry["uid"], entry["reason"])
write_structures(snakemake.output.labelled, labelled)
write_text_atomic(snakemake.output.ledger, json.dumps(ledger, indent=2) + "\n")
