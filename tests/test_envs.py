"""Per-rule conda environments are valid conda specs (checked offline with py-rattler) and hold
every package their rule's script can import."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from rattler import MatchSpec
from rule_imports import Library, script_packages

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


#: Import name -> the names conda-forge and PyPI give the package that provides it (an env
#: file holds any one of them). A new third-party import fails the test below until added here.
PROVIDERS = {
    "ase": {"ase"},
    "chgnet": {"chgnet"},
    "dscribe": {"dscribe"},
    "jsonschema": {"jsonschema"},
    "mace": {"mace-torch"},
    "matplotlib": {"matplotlib", "matplotlib-base"},
    "numpy": {"numpy"},
    "pandas": {"pandas"},
    "phonopy": {"phonopy"},
    "pyace": {"python-ace"},
    "rich": {"rich"},
    "scipy": {"scipy"},
    "sklearn": {"scikit-learn"},
    "sqsgenerator": {"sqsgenerator"},
    "torch": {"pytorch", "torch"},
    "yaml": {"pyyaml"},
}


def _input_function_envs(name: str) -> list[str]:
    """Every env file an input function of rules/common.smk can return."""
    common = (REPO / "rules" / "common.smk").read_text()
    body = re.search(rf"^def {name}\(.*?(?=^\S|\Z)", common, re.M | re.S)
    assert body is not None, f"no function {name} in rules/common.smk"
    return re.findall(r'"(\.\./envs/[^"]+)"', body.group(0))


def rule_scripts_and_envs() -> list[tuple[str, Path, list[Path]]]:
    """(rule, script, the env files it may run in) of every rule with a ``script:``."""
    found = []
    for rule_file in sorted((REPO / "rules").glob("*.smk")):
        text = rule_file.read_text()
        for match in re.finditer(r"^(?:rule|checkpoint) (\w+):\n(.*?)(?=^\S|\Z)", text, re.M | re.S):
            name, body = match.groups()
            script = re.search(r'script:\s*\n\s*"([^"]+)"', body)
            conda = re.search(r"conda:\s*\n\s*(\S.*)", body)
            if script is None:
                continue
            assert conda is not None, f"rule {name} has no conda env"
            value = conda.group(1).strip()
            function = re.fullmatch(r"(\w+)\(\)", value)
            envs = _input_function_envs(function.group(1)) if function else [value.strip('"')]
            found.append((name, rule_file.parent / script.group(1), [rule_file.parent / env for env in envs]))
    return found


def env_packages(env_file: Path) -> set[str]:
    """Package names an env file installs (conda and pip), normalised."""
    names = set()
    for dependency in yaml.safe_load(env_file.read_text())["dependencies"]:
        if isinstance(dependency, dict):
            names.update(canonicalize_name(Requirement(line).name) for line in dependency["pip"])
        else:
            names.add(MatchSpec(dependency).name.normalized)
    return names


LIBRARY = Library(REPO / "lib" / "mlip_autopipe")
RULES = rule_scripts_and_envs()


def test_the_import_walk_follows_what_a_script_runs() -> None:
    scripts = {name: script for name, script, _ in RULES}
    # label builds any oracle (oracle_from_config names the surrogate factory, which imports torch);
    # gather_labels imports the same module but never builds an oracle
    assert {"torch", "mace", "chgnet"} <= script_packages(LIBRARY, scripts["label"])
    assert "torch" not in script_packages(LIBRARY, scripts["gather_labels"])
    assert {"sqsgenerator", "dscribe", "scipy"} <= script_packages(LIBRARY, scripts["structures"])
    assert {"pyace", "pandas", "sklearn"} <= script_packages(LIBRARY, scripts["fit"])
    assert {"envs/lammps.yaml", "envs/pacemaker.yaml"} == {
        str(env.resolve().relative_to(REPO)) for name, _, envs in RULES if name == "explore" for env in envs
    }


@pytest.mark.parametrize(("rule", "script", "envs"), RULES, ids=[rule for rule, _, _ in RULES])
def test_every_rule_env_holds_what_its_script_imports(rule: str, script: Path, envs: list[Path]) -> None:
    needed = script_packages(LIBRARY, script)
    unknown = needed - set(PROVIDERS)
    assert not unknown, f"add the conda/PyPI names of {sorted(unknown)} to PROVIDERS"
    for env in envs:
        have = env_packages(env)
        missing = sorted(package for package in needed if not PROVIDERS[package] & have)
        assert not missing, f"{env.name} (rule {rule}, {script.name}) lacks {missing}"
