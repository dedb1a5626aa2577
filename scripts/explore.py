import json

from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_structures, write_text_atomic  # noqa: E402
from mlip_autopipe.explore import run_exploration  # noqa: E402
from mlip_autopipe.timing import tool_time  # noqa: E402

pool = read_structures(snakemake.input.pool)
with tool_time(log, "md"):
    frames, runs = run_exploration(
        pool,
        snakemake.input.yaml,
        snakemake.input.asi,
        snakemake.params.explore,
        elements=snakemake.params.elements,
        seed=snakemake.params.seed,
        generation=snakemake.params.generation,
        work_dir=snakemake.params.work_dir,
    )
for run in runs:
    log.info("run %s", run)
write_structures(snakemake.output.frames, frames)
write_text_atomic(snakemake.output.runs, json.dumps(runs, indent=2) + "\n")
