from common import start

log = start(snakemake)

from mlip_autopipe.data import write_structures  # noqa: E402
from mlip_autopipe.structures import build_pool, pick_initial  # noqa: E402
from mlip_autopipe.timing import tool_time  # noqa: E402

structures = snakemake.params.structures
elements = snakemake.params.elements
with tool_time(log, "structures"):  # SQS search (sqsgenerator) and SOAP (dscribe)
    pool = build_pool(structures, snakemake.params.seed, elements)
    initial = pick_initial(pool, structures["initial_pick"], elements, structures["soap"])
log.info("pool of %d structures, %d picked for generation 0", len(pool), len(initial))
for atoms in pool:
    if atoms.info["origin"] == "sqs":
        log.info(
            "SQS %s: pair deviation %.3g, triplet deviation %.3g",
            atoms.info["uid"],
            atoms.info["sqs_pair_deviation"],
            atoms.info["sqs_triplet_deviation"],
        )
write_structures(snakemake.output.pool, pool)
write_structures(snakemake.output.initial, initial)
