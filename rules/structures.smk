# Stage 1: the generation-0 pool (SQS cells, variants, user files) and its SOAP farthest-point
# pick; candidates per generation.


rule structures:
    input:
        user_files=config["structures"]["user_files"],
        lattice_file=config["structures"]["lattice_file"] or [],
    output:
        pool="results/structures/pool.extxyz",
        initial="results/structures/initial.extxyz",
    params:
        structures=canonical(config["structures"]),
        elements=config["elements"],
        seed=config["seed"],
    log:
        "logs/structures.log",
    conda:
        "../envs/base.yaml"
    script:
        "../scripts/build_structures.py"


rule candidates:
    input:
        get_candidate_source,
    output:
        "results/gen_{gen}/candidates.extxyz",
    params:
        generation=lambda wildcards: int(wildcards.gen),
    log:
        "logs/gen_{gen}/candidates.log",
    conda:
        "../envs/base.yaml"
    script:
        "../scripts/candidates.py"
