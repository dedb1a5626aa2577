import json
import sys
from pathlib import Path

from common import start

log = start(snakemake)

from mlip_autopipe.data import read_structures, write_text_atomic  # noqa: E402
from mlip_autopipe.errors import FitError  # noqa: E402
from mlip_autopipe.production import category_metrics, train_production  # noqa: E402

training_set = [atoms for path in snakemake.input.training for atoms in read_structures(path)]
try:
    fitted = train_production(
        training_set,
        snakemake.params.elements,
        snakemake.params.fit,
        Path(snakemake.output.metrics).parent,
        threads=snakemake.threads,
        log=log,
        tool_log=snakemake.log[0],
        ladder=snakemake.params.ladder,
    )
except FitError as error:
    log.error("%s: %s", type(error).__name__, error)
    sys.exit(f"{type(error).__name__}: {error}")
categories = category_metrics(fitted.yaml, fitted.test, fitted.references)
write_text_atomic(snakemake.output.categories, json.dumps(categories, indent=2) + "\n")
