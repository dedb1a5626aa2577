from pathlib import Path

from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures  # noqa: E402
from mlip_autopipe.labelling import label_job  # noqa: E402
from mlip_autopipe.oracles import oracle_from_config  # noqa: E402
from mlip_autopipe.timing import tool_time  # noqa: E402

(candidate,) = read_structures(snakemake.input[0])


def build_oracle():
    # The oracle comes from the full config section: params.oracle leaves out the execution keys
    # (pw.x command, walltime) so that editing them reruns nothing; cores are the rule's threads,
    # and `{mpi}` in the command is the rule's `mpi` resource (srun under the Slurm profile).
    return oracle_from_config(
        snakemake.config,
        cores=snakemake.threads,
        mpi=snakemake.resources.get("mpi"),
        work_dir=Path(snakemake.log[0]).with_suffix(".pw"),
    )


with tool_time(log, "oracle"):
    # A run of this job killed from outside (walltime, memory, SIGKILL) stays recorded in the
    # attempts file; a later start ledgers it as 'walltime'/'killed' instead of stalling.
    labelled = label_job(
        candidate,
        build_oracle,
        snakemake.output[0],
        attempts_file=Path(snakemake.log[0]).with_suffix(".attempts.json"),
        cache_dir=snakemake.params.cache_dir,
        runtime_min=snakemake.resources.get("runtime"),
        max_killed_attempts=snakemake.config["oracle"]["max_killed_attempts"],
    )
log.info(
    "%s: %s %s (cache: %s, attempts: %s)",
    candidate.info["uid"],
    labelled.info["label_status"],
    labelled.info["label_reason"],
    labelled.info["from_cache"],
    labelled.info.get("label_attempts", 1),
)
