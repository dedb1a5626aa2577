# Stage 7: the production potential, fitted once after the loop's last decision on every
# generation's labels with production.fit settings (get_final_potential in common.smk picks it,
# or the last loop fit when production.enabled is false).


rule production:
    input:
        training=get_all_training_sets,
    output:
        yaml="results/production/potential.yaml",
        yace="results/production/potential.yace",
        asi="results/production/potential.asi",
        metrics="results/production/metrics.json",
        categories="results/production/categories.json",
        dataset="results/production/training.pckl.gzip",
    params:
        fit=get_production_fit_settings(),
        ladder=get_production_ladder(),
        elements=config["elements"],
    log:
        "logs/production.log",
    threads: get_production_threads()
    conda:
        "../envs/pacemaker.yaml"
    script:
        "../scripts/production.py"
