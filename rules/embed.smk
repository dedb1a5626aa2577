# Stage 5b: selected environments -> the next generation's candidates (periodic embedding
# of picked atoms of large MD cells; small MD cells are labelled whole).


rule embed:
    input:
        "results/gen_{gen}/selected.extxyz",
    output:
        candidates="results/gen_{gen}/embedded.extxyz",
        report="results/gen_{gen}/embed.json",
    params:
        embed=canonical(config["embed"]),
        cutoff=config["fit"]["cutoff"],
        next_generation=lambda wildcards: int(wildcards.gen) + 1,
    log:
        "logs/gen_{gen}/embed.log",
    conda:
        "../envs/base.yaml"
    script:
        "../scripts/embed.py"
