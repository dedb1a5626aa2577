"""Tool-time log lines: written around a block, summed per tool when read back."""

import logging

import pytest

from mlip_autopipe.timing import tool_seconds_in, tool_time


def test_tool_time_lines_are_summed_per_tool(caplog):
    log = logging.getLogger("test_timing")
    with caplog.at_level(logging.INFO, logger="test_timing"):
        with tool_time(log, "oracle"):
            pass
        with tool_time(log, "oracle"):
            pass
        with pytest.raises(RuntimeError), tool_time(log, "pacemaker"):
            raise RuntimeError("a failing tool still counts")
    totals = tool_seconds_in(record.getMessage() for record in caplog.records)
    assert set(totals) == {"oracle", "pacemaker"}
    assert all(0 <= seconds < 1 for seconds in totals.values())


def test_tool_seconds_ignores_other_lines():
    lines = [
        "2026-11-22 10:00:00 INFO x: tool_seconds md 1.5",
        "2026-11-22 10:00:01 INFO x: fitting on 30 structures",
        "tool_seconds md 2.25",
    ]
    assert tool_seconds_in(lines) == {"md": 3.75}


def test_tool_names_are_words():
    with pytest.raises(ValueError), tool_time(logging.getLogger("t"), "pw.x"):
        pass
