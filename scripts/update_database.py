import json

from common import start

log = start(snakemake)

from mlip_autopipe.data import write_text_atomic  # noqa: E402
from mlip_autopipe.provenance import update_database  # noqa: E402

labels = snakemake.params.part == "labels"
summary = update_database(
    snakemake.params.database,
    ".",
    [snakemake.params.generation],
    rows=labels,
    fits=not labels,
)
log.info(
    "%s: %s rows, fits %s, %.3f s",
    snakemake.params.database,
    summary["rows"],
    summary["fits"],
    summary["seconds"],
)
write_text_atomic(snakemake.output[0], json.dumps(summary, indent=2) + "\n")
