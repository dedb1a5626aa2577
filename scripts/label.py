from pathlib import Path

from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_structures  # noqa: E402
from mlip_autopipe.labelling import label_candidate  # noqa: E402
from mlip_autopipe.oracles import oracle_from_config  # noqa: E402
from mlip_autopipe.timing import tool_time  # noqa: E402

(candidate,) = read_structures(snakemake.input[0])
# The oracle comes from the full config section: params.oracle leaves out the execution keys
# (pw.x command, walltime) so that editing them reruns nothing; cores are the rule's threads,
# and `{mpi}` in the command is the rule's `mpi` resource (srun under the Slurm profile).
oracle = oracle_from_config(
    snakemake.config,
    cores=snakemake.threads,
    mpi=snakemake.resources.get("mpi"),
    work_dir=Path(snakemake.log[0]).with_suffix(".pw"),
)
with tool_time(log, "oracle"):
    labelled = label_candidate(candidate, oracle, cache_dir=snakemake.params.cache_dir)
log.info(
    "%s: %s %s (cache: %s, attempts: %s)",
    candidate.info["uid"],
    labelled.info["label_status"],
    labelled.info["label_reason"],
    labelled.info["from_cache"],
    labelled.info.get("label_attempts", 1),
)
write_structures(snakemake.output[0], labelled)
