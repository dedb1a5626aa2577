import json

from common import start

log = start(snakemake)

from mlip_autopipe import fit  # noqa: E402
from mlip_autopipe.data import read_structures, write_text_atomic  # noqa: E402

elements = snakemake.params.elements
settings = snakemake.params.fit
images = [atoms for path in snakemake.input for atoms in read_structures(path)]
fit.check_training_set(images, elements)
train, test = fit.split_train_test(images, settings["test_fraction"])
references = fit.reference_energies(train, elements)
log.info("fitting on %d structures (%d held out)", len(train), len(test))
basis = fit.fit_linear(train, elements, settings, references)
fit.save_potential(basis, snakemake.output.yaml, snakemake.output.yace)
fit.to_dataframe(train, references).to_pickle(snakemake.output.dataset, compression="gzip")
fit.compute_active_set(snakemake.output.yaml, snakemake.output.dataset, snakemake.log[0])
metrics = {
    "mode": settings["mode"],
    "reference_energies_ev": references,
    "train": fit.evaluate(snakemake.output.yaml, train, references),
    "test": fit.evaluate(snakemake.output.yaml, test, references),
}
log.info("metrics: %s", metrics)
write_text_atomic(snakemake.output.metrics, json.dumps(metrics, indent=2) + "\n")
