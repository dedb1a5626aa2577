from common import start

log = start(snakemake)

from mlip_autopipe.data import write_structures  # noqa: E402
from mlip_autopipe.structures import build_pool, pick_initial  # noqa: E402

structures = snakemake.params.structures
pool = build_pool(structures, snakemake.params.seed)
initial = pick_initial(pool, structures["initial_pick"], snakemake.params.seed)
log.info("pool of %d structures, %d picked for generation 0", len(pool), len(initial))
write_structures(snakemake.output.pool, pool)
write_structures(snakemake.output.initial, initial)
