import json

from common import start

log = start(snakemake)

from mlip_autopipe.contract import Status  # noqa: E402
from mlip_autopipe.data import read_structures, write_structures, write_text_atomic  # noqa: E402
from mlip_autopipe.embed import EmbeddingSettings, embed_selection  # noqa: E402

settings = EmbeddingSettings.from_config(snakemake.params.cutoff, snakemake.params.embed)
candidates, report = embed_selection(
    read_structures(snakemake.input[0]), settings, snakemake.params.next_generation
)
for row in report:
    log.info("%s", row)
failed = [row for row in report if row["status"] != Status.OK]
log.info("%d candidates for the next generation, %d picks not embeddable", len(candidates), len(failed))
write_structures(snakemake.output.candidates, candidates)
write_text_atomic(snakemake.output.report, json.dumps(report, indent=2) + "\n")
