import json

from common import start

log = start(snakemake)

from mlip_autopipe import fit, report  # noqa: E402
from mlip_autopipe.data import atomic_output, read_structures  # noqa: E402


def load_json(path):
    with open(path) as handle:
        return json.load(handle)


metrics = [load_json(path) for path in snakemake.input.metrics]
labelled = [read_structures(path) for path in snakemake.input.labelled]
runs = [load_json(path) for path in snakemake.input.runs]
frames = [read_structures(path) for path in snakemake.input.frames]
ledgers = [load_json(path) for path in snakemake.input.ledgers]

figures = {
    "rmse": report.plot_rmse_per_generation(metrics),
    "dataset": report.plot_dataset_by_generation(labelled),
    "labelling": report.plot_labelling_by_generation(ledgers),
    "gamma": report.plot_gamma_by_generation(
        frames, runs, snakemake.params.gamma_lo, snakemake.params.gamma_hi
    ),
}
everything = [atoms for images in labelled for atoms in images]
train, test = fit.split_train_test(everything, snakemake.params.test_fraction)
references = metrics[-1]["reference_energies_ev"]
figures["parity"] = report.plot_parity(
    {
        "train": fit.predict(snakemake.input.potential, train, references),
        "test": fit.predict(snakemake.input.potential, test, references),
    }
)
for name, figure in figures.items():
    with atomic_output(snakemake.output[name]) as temporary:
        figure.savefig(temporary, dpi=120)
    log.info("wrote %s", snakemake.output[name])
