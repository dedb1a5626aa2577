import json

from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_structures, write_text_atomic  # noqa: E402
from mlip_autopipe.explore import explore_ase  # noqa: E402

frames, runs = explore_ase(
    read_structures(snakemake.input.pool),
    snakemake.input.yaml,
    snakemake.input.asi,
    snakemake.params.explore,
    seed=snakemake.params.seed,
    generation=snakemake.params.generation,
)
for run in runs:
    log.info("run %s", run)
write_structures(snakemake.output.frames, frames)
write_text_atomic(snakemake.output.runs, json.dumps(runs, indent=2) + "\n")
