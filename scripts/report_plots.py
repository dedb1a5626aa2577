import json

from common import start

log = start(snakemake)

from mlip_autopipe import report  # noqa: E402
from mlip_autopipe.data import atomic_output, read_structures  # noqa: E402


def load_json(path):
    with open(path) as handle:
        return json.load(handle)


metrics = [load_json(path) for path in snakemake.input.metrics]
labelled = [read_structures(path) for path in snakemake.input.labelled]
runs = [load_json(path) for path in snakemake.input.runs]
frames = [read_structures(path) for path in snakemake.input.frames]
ledgers = [load_json(path) for path in snakemake.input.ledgers]
decisions = [load_json(path) for path in snakemake.input.decisions]

figures = {
    "rmse": report.plot_rmse_per_generation(metrics),
    "dataset": report.plot_dataset_by_generation(labelled),
    "labelling": report.plot_labelling_by_generation(ledgers),
    "scenarios": report.plot_scenarios_by_generation(decisions, snakemake.params.converged_fraction),
    "gamma": report.plot_gamma_by_generation(
        frames, runs, snakemake.params.gamma_lo, snakemake.params.gamma_hi
    ),
}
figures["parity"] = report.plot_parity(
    report.parity_by_split(snakemake.input.potential, labelled, snakemake.params.test_fraction, metrics[-1])
)
for name, figure in figures.items():
    with atomic_output(snakemake.output[name]) as temporary:
        figure.savefig(temporary, dpi=120)
    log.info("wrote %s", snakemake.output[name])
