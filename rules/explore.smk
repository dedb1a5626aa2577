# Stage 4: MD with the fitted potential, keeping extrapolative frames (gamma watch).


rule explore:
    input:
        pool="results/structures/pool.extxyz",
        yaml="results/gen_{gen}/fit/potential.yaml",
        asi="results/gen_{gen}/fit/potential.asi",
    output:
        frames="results/gen_{gen}/explore/frames.extxyz",
        runs="results/gen_{gen}/explore/runs.json",
    params:
        explore=canonical(config["explore"]),
        seed=config["seed"],
        generation=lambda wildcards: int(wildcards.gen),
    log:
        "logs/gen_{gen}/explore.log",
    threads: 1
    conda:
        "../envs/pacemaker.yaml"
    script:
        "../scripts/explore.py"
