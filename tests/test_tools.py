"""Finding external programs: this Python's environment first, then PATH."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from mlip_autopipe.errors import ToolNotFoundError
from mlip_autopipe.tools import find_tool


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_environment_of_this_python_wins_over_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executable(tmp_path / "pacemaker")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_tool("pacemaker") == str(Path(sys.executable).parent / "pacemaker")


def test_a_program_only_on_path_is_found_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = executable(tmp_path / "only-here.x")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_tool("only-here.x") == str(tool)


def test_a_missing_program_is_a_typed_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolNotFoundError, match="no-such-program"):
        find_tool("no-such-program")
    with pytest.raises(ToolNotFoundError, match="not found or not executable"):
        find_tool(str(tmp_path / "no-such-program"))
    assert find_tool(str(executable(tmp_path / "given by path"))) == str(tmp_path / "given by path")
