import json

from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_structures, write_text_atomic  # noqa: E402
from mlip_autopipe.finetune import rule_surrogate  # noqa: E402
from mlip_autopipe.surrogate_md import surrogate_md, surrogate_md_starts  # noqa: E402
from mlip_autopipe.timing import tool_time  # noqa: E402

surrogate = rule_surrogate(snakemake.config, snakemake.input.finetuned, threads=snakemake.threads)
starts = surrogate_md_starts(
    snakemake.params.elements,
    snakemake.params.structures,
    snakemake.params.explore,
    read_structures(snakemake.input.pool),
    snakemake.params.seed + 1000 * snakemake.params.generation,
)
with tool_time(log, "md"):
    result = surrogate_md(
        starts,
        surrogate,
        snakemake.params.md,
        snakemake.params.explore,
        seed=snakemake.params.seed,
        generation=snakemake.params.generation,
        log=log.info,
    )
write_structures(snakemake.output.frames, result.pool)
write_structures(snakemake.output.uncertain, result.uncertain)
write_text_atomic(snakemake.output.summary, json.dumps(result.summary(), indent=2) + "\n")
