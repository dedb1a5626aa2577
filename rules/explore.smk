# Stage 4: MD with the fitted potential, keeping extrapolative frames (gamma watch).
# Engine `ase` (pyace) or `lammps` (decks, logs and dumps kept in explore/runs/<run>/).


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
        elements=config["elements"],
        seed=config["seed"],
        generation=lambda wildcards: int(wildcards.gen),
        work_dir=lambda wildcards: f"{gen_dir(wildcards.gen)}/explore/runs",
    log:
        "logs/gen_{gen}/explore.log",
    threads: 1
    conda:
        get_explore_env()
    script:
        "../scripts/explore.py"
