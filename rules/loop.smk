# Stage 6: the per-generation decision (a checkpoint), and the final potential.


checkpoint decide:
    input:
        selected="results/gen_{gen}/selected.extxyz",
        embed="results/gen_{gen}/embed.json",
        runs="results/gen_{gen}/explore/runs.json",
        metrics="results/gen_{gen}/fit/metrics.json",
        database=["results/gen_{gen}/database/labels.json", "results/gen_{gen}/database/fit.json"],
    output:
        decision="results/gen_{gen}/decision.json",
    params:
        loop=canonical(config["loop"]),
        generation=lambda wildcards: int(wildcards.gen),
    log:
        "logs/gen_{gen}/decide.log",
    conda:
        "../envs/base.yaml"
    script:
        "../scripts/decide.py"


rule finalize:
    input:
        unpack(get_final_inputs),
    output:
        yaml="results/final/potential.yaml",
        yace="results/final/potential.yace",
        asi="results/final/potential.asi",
        pair_lines="results/final/pair_lines.lammps",
        summary=report(
            "results/final/summary.json",
            caption="../report/summary.rst",
            category="Production potential",
        ),
    params:
        elements=config["elements"],
        tolerances=canonical(config["validation"]["tolerances"]),
        production=config["production"]["enabled"],
    log:
        "logs/finalize.log",
    conda:
        "../envs/base.yaml"
    script:
        "../scripts/finalize.py"
