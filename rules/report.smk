# Figures for `snakemake --report`: learning curves, data, extrapolation, oracle calls, parity.


rule report_plots:
    input:
        unpack(get_report_inputs),
    output:
        rmse=report(
            "results/report/rmse_per_generation.png",
            caption="../report/rmse.rst",
            category="Learning",
        ),
        parity=report(
            "results/report/parity.png", caption="../report/parity.rst", category="Learning"
        ),
        dataset=report(
            "results/report/dataset_by_generation.png",
            caption="../report/dataset.rst",
            category="Data",
        ),
        labelling=report(
            "results/report/labelling_by_generation.png",
            caption="../report/labelling.rst",
            category="Data",
        ),
        gamma=report(
            "results/report/gamma_by_generation.png",
            caption="../report/gamma.rst",
            category="Exploration",
        ),
        scenarios=report(
            "results/report/scenarios_by_generation.png",
            caption="../report/scenarios.rst",
            category="Exploration",
        ),
    params:
        converged_fraction=config["loop"]["converged_fraction"],
        gamma_lo=config["explore"]["gamma_lo"],
        gamma_hi=config["explore"]["gamma_hi"],
        test_fraction=config["fit"]["test_fraction"],
    log:
        "logs/report_plots.log",
    conda:
        "../envs/pacemaker.yaml"
    script:
        "../scripts/report_plots.py"
