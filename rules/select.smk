# Stage 5: choose the extrapolative environments that the next generation labels (with
# surrogate MD: among its frames where the surrogate committee disagrees, too).


rule select:
    input:
        frames="results/gen_{gen}/explore/frames.extxyz",
        uncertain=get_surrogate_uncertain,
        yaml="results/gen_{gen}/fit/potential.yaml",
        asi="results/gen_{gen}/fit/potential.asi",
    output:
        "results/gen_{gen}/selected.extxyz",
    params:
        select=canonical(config["select"]),
        gamma_hi=config["explore"]["gamma_hi"],
        whole_frame_atoms=config["embed"]["max_atoms"],
        seed=lambda wildcards: config["seed"] + int(wildcards.gen),
    log:
        "logs/gen_{gen}/select.log",
    conda:
        "../envs/pacemaker.yaml"
    script:
        "../scripts/select.py"
