# The provenance database: results/dataset.db (SQLite, ase.db) kept current as the loop goes.
# Each job projects one generation's ledger (after the gather) or its fit (after the fit) into
# the database and writes a small receipt. Both run inside the Snakemake process (`run:`, a
# localrule): no interpreter start-up per job, so each takes well under a second.
# The database is a view: the files stay the source of truth, and `mlip-autopipe export`
# rebuilds the same rows anywhere. Decide waits for them, so every generation is in it.


rule database_labels:
    input:
        ledger="results/gen_{gen}/ledger.json",
        labels=get_label_files,
    output:
        "results/gen_{gen}/database/labels.json",
    params:
        database=DATABASE_PATH,
        part="labels",
        generation=lambda wildcards: int(wildcards.gen),
    log:
        "logs/gen_{gen}/database_labels.log",
    run:
        record_database_update(params, log[0], output[0])


rule database_fit:
    input:
        metrics="results/gen_{gen}/fit/metrics.json",
        potential="results/gen_{gen}/fit/potential.yaml",
    output:
        "results/gen_{gen}/database/fit.json",
    params:
        database=DATABASE_PATH,
        part="fit",
        generation=lambda wildcards: int(wildcards.gen),
    log:
        "logs/gen_{gen}/database_fit.log",
    run:
        record_database_update(params, log[0], output[0])
