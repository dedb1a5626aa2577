# Stage 4: MD with the fitted potential, keeping extrapolative frames (gamma watch).
# One job per run of the exploration policy (results/gen_NNN/explore/runs/<run>/: deck, log,
# dump, frames, summary and the last frame that the same run continues from in the next
# generation), then one gather job. Engine `lammps` (fix halt) or `ase` (pyace Langevin).


rule explore_run:
    input:
        unpack(get_explore_run_inputs),
    output:
        frames="results/gen_{gen}/explore/runs/{run}/frames.extxyz",
        summary="results/gen_{gen}/explore/runs/{run}/summary.json",
        last="results/gen_{gen}/explore/runs/{run}/last.extxyz",
    params:
        explore=get_explore_settings(),
        structures=canonical(config["structures"]),
        elements=config["elements"],
        seed=config["seed"],
        generation=lambda wildcards: int(wildcards.gen),
        work_dir=lambda wildcards: f"{gen_dir(wildcards.gen)}/explore/runs/{wildcards.run}/md",
    log:
        "logs/gen_{gen}/explore/{run}.log",
    threads: 1
    conda:
        get_explore_env()
    script:
        "../scripts/explore_run.py"


rule explore:
    input:
        frames=lambda wildcards: expand(
            "results/gen_{gen}/explore/runs/{run}/frames.extxyz", gen=wildcards.gen, run=get_explore_runs()
        ),
        summaries=lambda wildcards: expand(
            "results/gen_{gen}/explore/runs/{run}/summary.json", gen=wildcards.gen, run=get_explore_runs()
        ),
    output:
        frames="results/gen_{gen}/explore/frames.extxyz",
        runs="results/gen_{gen}/explore/runs.json",
    log:
        "logs/gen_{gen}/explore.log",
    conda:
        "../envs/base.yaml"
    script:
        "../scripts/gather_exploration.py"
