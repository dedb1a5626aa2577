# Stage 3: pacemaker fit on the cumulative training set, active set, train/test metrics.


def get_warm_start_inputs(wildcards):
    """Generation g-1's potential and metrics when generation g starts warm (nonlinear mode)."""
    generation = int(wildcards.gen)
    fit = config["fit"]
    if generation == 0 or fit["mode"] != "nonlinear" or not fit["warm_start"]:
        return []
    previous = gen_dir(generation - 1)
    return [f"{previous}/fit/potential.yaml", f"{previous}/fit/metrics.json"]


rule fit:
    input:
        training=get_training_sets,
        warm_start=get_warm_start_inputs,
    output:
        yaml="results/gen_{gen}/fit/potential.yaml",
        yace="results/gen_{gen}/fit/potential.yace",
        asi="results/gen_{gen}/fit/potential.asi",
        metrics="results/gen_{gen}/fit/metrics.json",
        dataset="results/gen_{gen}/fit/training.pckl.gzip",
    params:
        fit=canonical(config["fit"]),
        elements=config["elements"],
        pacemaker_dir="results/gen_{gen}/fit/pacemaker",
    log:
        "logs/gen_{gen}/fit.log",
    threads: config["fit"]["threads"]
    conda:
        "../envs/pacemaker.yaml"
    script:
        "../scripts/fit.py"
