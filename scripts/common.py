"""Shared start-up of the thin `script:` adapters: library path and logging to the rule's log."""

import logging
import sys
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "lib"
# This checkout's library first: Snakemake's script preamble appends the workflow's search
# paths *behind* site-packages, where another installed copy of mlip_autopipe would win.
while str(LIB) in sys.path:
    sys.path.remove(str(LIB))
sys.path.insert(0, str(LIB))


def start(snakemake) -> logging.Logger:
    """Send log records (and warnings) of this job to its Snakemake log file."""
    logging.basicConfig(
        filename=snakemake.log[0],
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
    return logging.getLogger(f"mlip_autopipe.{snakemake.rule}")
