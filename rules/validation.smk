# Validation of the final potential against the oracle (same settings): equation of state,
# elastic constants, phonons, MD stability. Part of `all` when validation.enabled
# (get_validation_targets in common.smk).


rule validate:
    input:
        unpack(get_validation_potential),
        pool="results/structures/pool.extxyz",
    output:
        json="results/validation/validation.json",
        eos=report(
            "results/validation/equation_of_state.png",
            caption="../report/validation_eos.rst",
            category="Validation",
        ),
        elastic=report(
            "results/validation/elastic_constants.png",
            caption="../report/validation_elastic.rst",
            category="Validation",
        ),
        phonons=report(
            "results/validation/phonons.png",
            caption="../report/validation_phonons.rst",
            category="Validation",
        ),
        md=report(
            "results/validation/md_stability.png",
            caption="../report/validation_md.rst",
            category="Validation",
        ),
    params:
        validation=canonical(config["validation"]),
        oracle=get_oracle_result_settings(),
        structures=canonical(config["structures"]),
        explore=canonical(config["explore"]),
        elements=config["elements"],
        seed=config["seed"],
    log:
        "logs/validate.log",
    # pw.x runs like a label job: oracle.qe.cores ranks, `{mpi}` from the `mpi` resource
    threads: get_label_cores()
    conda:
        "../envs/validation.yaml"
    script:
        "../scripts/validate.py"

