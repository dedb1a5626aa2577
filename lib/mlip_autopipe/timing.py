"""Seconds spent inside the tools a job drives (oracle, pacemaker, MD engine), in its log.

A script wraps each tool call in :func:`tool_time`; the job's log then holds one line
``tool_seconds <tool> <seconds>`` per call, and :func:`tool_seconds_in` sums them per tool.
What a job spends outside these lines (interpreter and import start-up, reading and writing
files, Snakemake's own work between jobs) is orchestration overhead (benchmarks/overhead).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

#: The log line :func:`tool_time` writes, as :func:`tool_seconds_in` reads it back.
TOOL_LINE = re.compile(r"tool_seconds (?P<tool>[A-Za-z_]+) (?P<seconds>[0-9]+(?:\.[0-9]*)?)")


@contextmanager
def tool_time(log: logging.Logger, tool: str) -> Iterator[None]:
    """Log the wall seconds spent in the ``with`` block as time inside ``tool``.

    The line is written even when the block raises, so a failing tool's time still counts.
    """
    if not re.fullmatch(r"[A-Za-z_]+", tool):
        raise ValueError(f"tool name '{tool}' must be letters and underscores")
    start = time.perf_counter()
    try:
        yield
    finally:
        log.info("tool_seconds %s %.3f", tool, time.perf_counter() - start)


def tool_seconds_in(lines: Iterable[str]) -> dict[str, float]:
    """Total seconds per tool over the ``tool_seconds`` lines among ``lines``."""
    totals: dict[str, float] = {}
    for line in lines:
        match = TOOL_LINE.search(line)
        if match:
            tool = match["tool"]
            totals[tool] = totals.get(tool, 0.0) + float(match["seconds"])
    return totals
