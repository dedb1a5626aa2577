# Stage 2: optional surrogate pre-screen of the candidates, then one oracle job (EMT, or pw.x with its recovery ladder) per candidate structure
# (scatter through a checkpoint), then gather labels and the ledger of every outcome.


rule prescreen:
    input:
        "results/gen_{gen}/candidates.extxyz",
    output:
        screened="results/gen_{gen}/screened.extxyz",
        ledger="results/gen_{gen}/prescreen.json",
    params:
        surrogate=get_surrogate_settings(),
        screen=canonical(config["surrogate"]["prescreen"]),
    log:
        "logs/gen_{gen}/prescreen.log",
    threads: config["surrogate"]["threads"]
    conda:
        "../envs/mace.yaml"
    script:
        "../scripts/prescreen.py"


checkpoint split_candidates:
    input:
        get_label_candidates,
    output:
        directory("results/gen_{gen}/candidates"),
    log:
        "logs/gen_{gen}/split_candidates.log",
    conda:
        "../envs/base.yaml"
    script:
        "../scripts/split_candidates.py"


rule label:
    input:
        "results/gen_{gen}/candidates/{uid}.extxyz",
    output:
        "results/gen_{gen}/label/{uid}.extxyz",
    params:
        oracle=get_oracle_result_settings(),
        cache_dir="results/label_cache",
    log:
        "logs/gen_{gen}/label/{uid}.log",
    threads: get_label_cores()
    resources:
        runtime=get_label_runtime_minutes(),
    conda:
        "../envs/qe.yaml"
    script:
        "../scripts/label.py"


rule gather_labels:
    input:
        get_label_files,
    output:
        labelled="results/gen_{gen}/labelled.extxyz",
        ledger="results/gen_{gen}/ledger.json",
    log:
        "logs/gen_{gen}/gather_labels.log",
    conda:
        "../envs/base.yaml"
    script:
        "../scripts/gather_labels.py"
