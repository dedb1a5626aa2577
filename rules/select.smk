# Stage 5: choose the extrapolative frames that the next generation labels.


rule select:
    input:
        frames="results/gen_{gen}/explore/frames.extxyz",
    output:
        "results/gen_{gen}/selected.extxyz",
    params:
        cap=config["select"]["max_per_generation"],
        gamma_hi=config["explore"]["gamma_hi"],
    log:
        "logs/gen_{gen}/select.log",
    conda:
        "../envs/base.yaml"
    script:
        "../scripts/select.py"
