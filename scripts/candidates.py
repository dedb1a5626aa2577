from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_structures  # noqa: E402

generation = snakemake.params.generation
candidates = read_structures(snakemake.input[0])
for atoms in candidates:
    atoms.info["generation"] = generation
log.info("generation %d: %d candidates", generation, len(candidates))
write_structures(snakemake.output[0], candidates)
