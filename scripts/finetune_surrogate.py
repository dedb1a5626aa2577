from pathlib import Path

from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures  # noqa: E402
from mlip_autopipe.finetune import finetune_surrogate  # noqa: E402

labelled = [atoms for path in snakemake.input for atoms in read_structures(path)]
finetune_surrogate(
    labelled,
    snakemake.params.elements,
    snakemake.params.surrogate,
    Path(snakemake.output.model).parent,
    threads=snakemake.threads,
    seed=snakemake.params.seed,
    log=log,
)
