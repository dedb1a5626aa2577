"""Run tools, not science: the ``mlip-autopipe`` command (``app.py``: init, check, run, status,
report, export, dashboard), ``python -m mlip_autopipe.cli.status`` (progress of a run folder) and
``python -m mlip_autopipe.cli.resume`` (clear a stale Snakemake lock after a hard kill)."""
