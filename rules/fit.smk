# Stage 3: pacemaker fit on the cumulative training set (with surrogate distillation: plus the
# surrogate-labelled pool, optionally labelled by the surrogate fine-tuned on the oracle's
# labels so far, and with surrogate MD: the frames it sampled), active set, train/test metrics.


rule finetune_surrogate:
    input:
        get_training_sets,
    output:
        model="results/gen_{gen}/surrogate/model.pt",
        committee=get_finetuned_committee_outputs(),
        metrics="results/gen_{gen}/surrogate/metrics.json",
    params:
        surrogate=get_finetune_settings(),
        elements=config["elements"],
        seed=config["seed"],
    log:
        "logs/gen_{gen}/finetune_surrogate.log",
    threads: config["surrogate"]["threads"]
    conda:
        "../envs/mace.yaml"
    script:
        "../scripts/finetune_surrogate.py"


rule surrogate_md:
    input:
        pool="results/structures/pool.extxyz",
        finetuned=get_finetuned_surrogate,
    output:
        frames="results/gen_{gen}/surrogate_md/frames.extxyz",
        uncertain="results/gen_{gen}/surrogate_md/uncertain.extxyz",
        summary="results/gen_{gen}/surrogate_md/summary.json",
    params:
        surrogate=get_surrogate_settings(),
        md=canonical(config["surrogate"]["distillation"]["md"]),
        explore=canonical(config["explore"]),
        structures=canonical(config["structures"]),
        elements=config["elements"],
        seed=config["seed"],
        generation=lambda wildcards: int(wildcards.gen),
    log:
        "logs/gen_{gen}/surrogate_md.log",
    threads: config["surrogate"]["threads"]
    conda:
        "../envs/mace.yaml"
    script:
        "../scripts/surrogate_md.py"


rule surrogate_pool:
    input:
        structures=get_surrogate_pool_sources,
        finetuned=get_finetuned_surrogate,
        md_frames=get_surrogate_md_frames,
    output:
        "results/gen_{gen}/surrogate_pool.extxyz",
    params:
        surrogate=get_surrogate_settings(),
        max_structures=config["surrogate"]["distillation"]["max_structures"],
        seed=config["seed"],
    log:
        "logs/gen_{gen}/surrogate_pool.log",
    threads: config["surrogate"]["threads"]
    conda:
        "../envs/mace.yaml"
    script:
        "../scripts/surrogate_pool.py"


rule fit:
    input:
        training=get_training_sets,
        warm_start=get_warm_start_inputs,
        surrogate_pool=get_distillation_inputs,
    output:
        yaml="results/gen_{gen}/fit/potential.yaml",
        yace="results/gen_{gen}/fit/potential.yace",
        asi="results/gen_{gen}/fit/potential.asi",
        metrics="results/gen_{gen}/fit/metrics.json",
        dataset="results/gen_{gen}/fit/training.pckl.gzip",
    params:
        fit=canonical(config["fit"]),
        distillation=canonical(config["surrogate"]["distillation"]),
        elements=config["elements"],
    log:
        "logs/gen_{gen}/fit.log",
    # the linear fit is single-threaded (more BLAS threads only change its round-off)
    threads: config["fit"]["threads"] if config["fit"]["mode"] == "nonlinear" else 1
    conda:
        "../envs/pacemaker.yaml"
    script:
        "../scripts/fit.py"
