import json
import sys
from pathlib import Path

from common import start

log = start(snakemake)

from mlip_autopipe import fit, nonlinear_fit  # noqa: E402
from mlip_autopipe.data import atomic_output, read_structures, write_text_atomic  # noqa: E402
from mlip_autopipe.distillation import distillation_set  # noqa: E402
from mlip_autopipe.errors import FitError  # noqa: E402
from mlip_autopipe.timing import tool_time  # noqa: E402

generation = int(snakemake.wildcards.gen)
# A failed fit is ledgered next to its outputs; a later successful fit removes the entry.
failure_file = Path(snakemake.output.metrics).with_name("failure.json")
failure_file.unlink(missing_ok=True)

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
oracle_train = train
if snakemake.input.surrogate_pool:
    # surrogate pool -> base ACE -> oracle delta, as one weighted fit (see distillation.py)
    distillation = snakemake.params.distillation
    surrogate_data = read_structures(snakemake.input.surrogate_pool[0])
    train = distillation_set(
        oracle_train,
        surrogate_data,
        references,
        elements,
        oracle_weight=distillation["oracle_weight"],
        surrogate_weight=distillation["surrogate_weight"],
        exclude_uids={atoms.info.get("uid") for atoms in test},
    )
    log.info("distillation: %d surrogate-labelled structures added", len(train) - len(oracle_train))
log.info("fitting (%s) on %d structures (%d held out)", settings["mode"], len(train), len(test))
history = None
with tool_time(log, "pacemaker"):
    if settings["mode"] == "nonlinear":
        try:
            fitted = nonlinear_fit.fit_nonlinear(
                train,
                elements,
                settings,
                references,
                snakemake.params.pacemaker_dir,
                threads=snakemake.threads,
                initial_potential=previous_potential,
                generation=generation,
            )
        except FitError as error:
            # Stop this fit with one line; its inputs (labels, earlier generations) stay as they are.
            record = nonlinear_fit.fit_failure_record(generation, error, snakemake.params.pacemaker_dir)
            write_text_atomic(failure_file, json.dumps(record, indent=2) + "\n")
            log.error("%s: %s", type(error).__name__, error)
            sys.exit(f"{type(error).__name__}: {error}")
        basis = fit.load_basis(fitted)
        history = nonlinear_fit.read_loss_history(snakemake.params.pacemaker_dir)
    else:
        basis = fit.fit_linear(train, elements, settings, references)
fit.save_potential(basis, snakemake.output.yaml, snakemake.output.yace, references)
with atomic_output(snakemake.output.dataset) as temporary:
    fit.to_dataframe(train, references).to_pickle(temporary, compression="gzip")
with tool_time(log, "pacemaker"):
    fit.compute_active_set(snakemake.output.yaml, snakemake.output.dataset, snakemake.log[0])
    metrics = {
        "mode": settings["mode"],
        "reference_energies_ev": references,
        "train": fit.evaluate(snakemake.output.yaml, oracle_train, references),
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
