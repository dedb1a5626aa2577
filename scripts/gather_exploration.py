import json

from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_structures, write_text_atomic  # noqa: E402

frames = [frame for path in snakemake.input.frames for frame in read_structures(path)]
runs = []
for path in snakemake.input.summaries:
    with open(path) as handle:
        runs.append(json.load(handle))
log.info("%d runs, %d extrapolative frames", len(runs), len(frames))
write_structures(snakemake.output.frames, frames)
write_text_atomic(snakemake.output.runs, json.dumps(runs, indent=2) + "\n")
