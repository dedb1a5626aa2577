import json

from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_structures, write_text_atomic  # noqa: E402
from mlip_autopipe.explore.runner import explore_run  # noqa: E402
from mlip_autopipe.timing import tool_time  # noqa: E402

previous_last, previous, previous_runs = None, None, []
if hasattr(snakemake.input, "previous"):  # generation 1 on: continue the run
    (previous_last,) = read_structures(snakemake.input.last)
    with open(snakemake.input.previous) as handle:
        previous = json.load(handle)
    with open(snakemake.input.previous_runs) as handle:
        previous_runs = json.load(handle)
with tool_time(log, "md"):
    frames, summary, last = explore_run(
        snakemake.wildcards.run,
        pool=read_structures(snakemake.input.pool),
        previous_last=previous_last,
        previous=previous,
        potential_yaml=snakemake.input.yaml,
        active_set=snakemake.input.asi,
        explore=snakemake.params.explore,
        elements=snakemake.params.elements,
        structures=snakemake.params.structures,
        seed=snakemake.params.seed,
        generation=snakemake.params.generation,
        work_dir=snakemake.params.work_dir,
        previous_runs=previous_runs,
    )
log.info("run %s", summary)
write_structures(snakemake.output.frames, frames)
write_structures(snakemake.output.last, [last])
write_text_atomic(snakemake.output.summary, json.dumps(summary, indent=2) + "\n")
