# Stage 3: pacemaker fit on the cumulative training set, active set, train/test metrics.


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
    # the linear fit is single-threaded (more BLAS threads only change its round-off)
    threads: config["fit"]["threads"] if config["fit"]["mode"] == "nonlinear" else 1
    conda:
        "../envs/pacemaker.yaml"
    script:
        "../scripts/fit.py"
