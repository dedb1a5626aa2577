import json

from common import start

log = start(snakemake)

from mlip_autopipe import fit, nonlinear_fit  # noqa: E402
from mlip_autopipe.data import read_structures, write_text_atomic  # noqa: E402
from mlip_autopipe.timing import tool_time  # noqa: E402

elements = snakemake.params.elements
settings = snakemake.params.fit
images = [atoms for path in snakemake.input.training for atoms in read_structures(path)]
fit.check_training_set(images, elements)
train, test = fit.split_train_test(images, settings["test_fraction"])
warm_start = list(snakemake.input.warm_start)
if warm_start:
    # keep the previous generation's references: the start potential represents energies on them
    previous_potential, previous_metrics = warm_start
    with open(previous_metrics) as handle:
        references = json.load(handle)["reference_energies_ev"]
else:
    previous_potential = None
    references = fit.reference_energies(train, elements)
log.info("fitting (%s) on %d structures (%d held out)", settings["mode"], len(train), len(test))
history = None
with tool_time(log, "pacemaker"):
    if settings["mode"] == "nonlinear":
        fitted = nonlinear_fit.fit_nonlinear(
            train,
            elements,
            settings,
            references,
            snakemake.params.pacemaker_dir,
            threads=snakemake.threads,
            initial_potential=previous_potential,
        )
        basis = fit.load_basis(fitted)
        history = nonlinear_fit.read_loss_history(snakemake.params.pacemaker_dir)
    else:
        basis = fit.fit_linear(train, elements, settings, references)
fit.save_potential(basis, snakemake.output.yaml, snakemake.output.yace)
fit.to_dataframe(train, references).to_pickle(snakemake.output.dataset, compression="gzip")
with tool_time(log, "pacemaker"):
    fit.compute_active_set(snakemake.output.yaml, snakemake.output.dataset, snakemake.log[0])
    metrics = {
        "mode": settings["mode"],
        "reference_energies_ev": references,
        "train": fit.evaluate(snakemake.output.yaml, train, references),
        "test": fit.evaluate(snakemake.output.yaml, test, references),
    }
if history:
    metrics["optimizer"] = {
        "warm_start": previous_potential is not None,
        "iterations": history[-1][0],
        "initial_loss": history[0][1],
        "final_loss": history[-1][1],
    }
log.info("metrics: %s", metrics)
write_text_atomic(snakemake.output.metrics, json.dumps(metrics, indent=2) + "\n")
