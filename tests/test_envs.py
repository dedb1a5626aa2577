"""Per-rule conda environments are valid conda specs (checked offline with py-rattler)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from rattler import MatchSpec

REPO = Path(__file__).resolve().parent.parent
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))


def test_every_rule_names_an_existing_env() -> None:
    for rule_file in sorted((REPO / "rules").glob("*.smk")):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', rule_file.read_text()):
            assert (rule_file.parent / env).resolve().exists(), f"{rule_file.name}: {env}"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_file_parses(env_file: Path) -> None:
    env = yaml.safe_load(env_file.read_text())
    assert env["channels"][0] == "conda-forge"
    names = set()
    for dependency in env["dependencies"]:
        if isinstance(dependency, dict):
            for pip_requirement in dependency["pip"]:
                Requirement(pip_requirement)  # raises on a malformed pin
            continue
        spec = MatchSpec(dependency)
        names.add(spec.name.normalized)
        if spec.name.normalized == "numpy":
            assert spec.version is not None and "<2.4" in str(spec.version)
    assert "python" in names and "ase" in names
