import json

from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_text_atomic  # noqa: E402
from mlip_autopipe.loop import decide  # noqa: E402

with open(snakemake.input.runs) as handle:
    runs = json.load(handle)
with open(snakemake.input.metrics) as handle:
    metrics = json.load(handle)
with open(snakemake.input.embed) as handle:
    embed_report = json.load(handle)
decision = decide(
    snakemake.params.generation,
    runs,
    read_structures(snakemake.input.selected),
    metrics,
    snakemake.params.loop,
    embed_report=embed_report,
)
log.info("decision: %s", decision)
write_text_atomic(snakemake.output.decision, json.dumps(decision, indent=2) + "\n")
