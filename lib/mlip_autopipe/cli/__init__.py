"""Run tools, not science: ``python -m mlip_autopipe.cli.status`` (progress of a run folder) and
``python -m mlip_autopipe.cli.resume`` (clear a stale Snakemake lock after a hard kill)."""
