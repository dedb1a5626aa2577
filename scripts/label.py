from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_structures  # noqa: E402
from mlip_autopipe.labelling import label_candidate  # noqa: E402
from mlip_autopipe.oracles import make_oracle  # noqa: E402

(candidate,) = read_structures(snakemake.input[0])
oracle = make_oracle(snakemake.params.oracle)
labelled = label_candidate(candidate, oracle, cache_dir=snakemake.params.cache_dir)
log.info(
    "%s: %s %s (cache: %s)",
    candidate.info["uid"],
    labelled.info["label_status"],
    labelled.info["label_reason"],
    labelled.info["from_cache"],
)
write_structures(snakemake.output[0], labelled)
