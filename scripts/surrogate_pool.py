from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_structures  # noqa: E402
from mlip_autopipe.distillation import surrogate_pool  # noqa: E402
from mlip_autopipe.finetune import rule_surrogate  # noqa: E402

surrogate = rule_surrogate(snakemake.config, snakemake.input.finetuned, threads=snakemake.threads)
structures = [atoms for path in snakemake.input.structures for atoms in read_structures(path)]
labelled = surrogate_pool(
    structures, surrogate, snakemake.params.max_structures, snakemake.params.seed, log=log.info
)
# surrogate MD frames come labelled by the same surrogate
md_frames = [atoms for path in snakemake.input.md_frames for atoms in read_structures(path)]
if md_frames:
    log.info("%d surrogate MD frames added to the pool", len(md_frames))
write_structures(snakemake.output[0], labelled + md_frames)
