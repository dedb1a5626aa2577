"""MLIP-AutoPipe: closed-loop active learning of an ACE potential.

structures -> label (one job per structure) -> fit -> explore -> select -> embed -> decide,
one generation at a time, until a decision says stop. See README.md.
"""

import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, os.path.join(workflow.basedir, "lib"))

from mlip_autopipe.config import check_config, load_yaml, validate_schema  # noqa: E402
from mlip_autopipe.errors import ConfigError  # noqa: E402


# The default run's config, unless config files are given on the command line: those
# replace it (schema defaults fill the gaps), so a preset never inherits stray defaults.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# One-line errors naming the key, before any job; then Snakemake's own validation.
try:
    validate_schema(config, load_yaml(os.path.join(workflow.basedir, "config", "schema.yaml")))
    check_config(config)
    if workflow.is_main_process:  # not again in every cluster job: it imports the SQS code
        from mlip_autopipe.structures import check_sqs_setups

        check_sqs_setups(config["structures"], config["elements"])
        from mlip_autopipe.explore.policy import check_policy

        check_policy(config["elements"], config["structures"], config["explore"])
except ConfigError as error:
    sys.exit(f"ConfigError: {error}")
validate(config, "config/schema.yaml")


report: "report/workflow.rst"


# Bookkeeping that takes seconds runs in the Snakemake process itself, never through a
# cluster queue; structures, labelling, fitting and exploration are submitted.
localrules:
    all,
    candidates,
    split_candidates,
    gather_labels,
    explore,
    select,
    decide,
    finalize,
    report_plots,
    database_labels,
    database_fit,


include: "rules/common.smk"
include: "rules/structures.smk"
include: "rules/label.smk"
include: "rules/fit.smk"
include: "rules/explore.smk"
include: "rules/select.smk"
include: "rules/embed.smk"
include: "rules/loop.smk"
include: "rules/production.smk"
include: "rules/report.smk"
include: "rules/validation.smk"
include: "rules/database.smk"


rule all:
    input:
        "results/final/potential.yace",
        "results/final/summary.json",
        rules.report_plots.output,
        get_validation_targets(),
    default_target: True
