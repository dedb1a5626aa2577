"""The data contract names every metadata key the library writes, and outcomes are a Status."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from ase import Atoms
from ase.build import bulk

from mlip_autopipe.contract import ARRAYS, INFO, Status
from mlip_autopipe.data import read_structures, tag_structure, write_structures

LIB = Path(__file__).resolve().parent.parent / "lib" / "mlip_autopipe"


def _is_attribute(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == name


def written_keys(tree: ast.AST, mapping: str) -> set[str]:
    """Constant keys written into ``<x>.<mapping>`` by assignment, update(...) or setdefault(...)."""
    keys: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Subscript)
                    and _is_attribute(target.value, mapping)
                    and isinstance(target.slice, ast.Constant)
                ):
                    keys.add(str(target.slice.value))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, owner = node.func.attr, node.func.value
            if not _is_attribute(owner, mapping):
                continue
            if method == "update":
                keys.update(keyword.arg for keyword in node.keywords if keyword.arg)
                for argument in node.args:
                    if isinstance(argument, ast.Dict):
                        keys.update(str(k.value) for k in argument.keys if isinstance(k, ast.Constant))
            elif method == "setdefault" and node.args and isinstance(node.args[0], ast.Constant):
                keys.add(str(node.args[0].value))
    return keys


def library_keys(mapping: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(LIB.rglob("*.py")):
        for key in written_keys(ast.parse(path.read_text()), mapping):
            found.setdefault(key, set()).add(str(path.relative_to(LIB)))
    return found


def test_every_info_key_the_library_writes_is_in_the_contract() -> None:
    written = library_keys("info")
    assert {"uid", "label_status", "energy_weight"} <= set(written)  # the scan sees them
    missing = {key: sorted(files) for key, files in written.items() if key not in INFO}
    assert missing == {}


def test_every_arrays_key_the_library_writes_is_in_the_contract() -> None:
    written = library_keys("arrays")
    assert "force_weight" in written
    missing = {key: sorted(files) for key, files in written.items() if key not in ARRAYS}
    assert missing == {}


def test_every_key_says_what_it_means_and_who_writes_it() -> None:
    for key, entry in {**INFO, **ARRAYS}.items():
        assert entry.meaning and entry.written_by, key


def test_labels_carry_the_status_as_a_plain_string(cuni_cell: Atoms) -> None:
    # a Status member inside atoms.info would make the pickled training data unreadable to
    # pacemaker's tools (pace_activeset), which run without this library
    from mlip_autopipe.labelling import label_candidate
    from mlip_autopipe.oracles import EMTOracle

    labelled = label_candidate(tag_structure(cuni_cell, generation=0, origin="rattle"), EMTOracle())
    assert type(labelled.info["label_status"]) is str and labelled.info["label_status"] == Status.OK


def test_status_is_the_plain_string_in_json_and_extxyz(tmp_path: Path) -> None:
    assert json.loads(json.dumps({"status": Status.OK})) == {"status": "ok"}
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.info["label_status"] = Status.FAILED
    write_structures(tmp_path / "a.extxyz", atoms)
    (back,) = read_structures(tmp_path / "a.extxyz")
    assert back.info["label_status"] == "failed" == Status.FAILED
