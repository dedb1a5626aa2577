import sys
from pathlib import Path

from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures  # noqa: E402
from mlip_autopipe.errors import FitError  # noqa: E402
from mlip_autopipe.training import WarmStart, train_potential  # noqa: E402

training_set = [atoms for path in snakemake.input.training for atoms in read_structures(path)]
warm_start = WarmStart.from_fit(*snakemake.input.warm_start) if snakemake.input.warm_start else None
pool = read_structures(snakemake.input.surrogate_pool[0]) if snakemake.input.surrogate_pool else None
try:
    train_potential(
        training_set,
        snakemake.params.elements,
        snakemake.params.fit,
        Path(snakemake.output.metrics).parent,
        warm_start=warm_start,
        surrogate_pool=pool,
        distillation=snakemake.params.distillation,
        generation=int(snakemake.wildcards.gen),
        threads=snakemake.threads,
        log=log,
        tool_log=snakemake.log[0],
    )
except FitError as error:
    # one line; labels and earlier generations stay as they are (failure.json says why)
    log.error("%s: %s", type(error).__name__, error)
    sys.exit(f"{type(error).__name__}: {error}")
