"""The data contract: uids, labels through extxyz, atomic writes."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from mlip_autopipe.data import (
    atomic_output,
    attach_labels,
    copy_atomic,
    has_labels,
    read_structures,
    structure_uid,
    tag_structure,
    write_structures,
    write_text_atomic,
)
from mlip_autopipe.errors import StructureError


def test_uid_is_stable_and_content_sensitive(cuni_cell: Atoms) -> None:
    uid = structure_uid(cuni_cell)
    assert uid == structure_uid(cuni_cell.copy())
    moved = cuni_cell.copy()
    moved.positions[0, 0] += 1e-3
    assert structure_uid(moved) != uid
    swapped = cuni_cell.copy()
    swapped.numbers[[0, 1]] = (
        swapped.numbers[[1, 0]] if swapped.numbers[0] != swapped.numbers[1] else [28, 29]
    )
    assert structure_uid(swapped) != uid
    # metadata is not content, and snapping to the stored precision keeps the uid
    tagged = tag_structure(cuni_cell.copy(), generation=3, origin="rattle")
    assert tagged.info["uid"] == uid


def test_uid_survives_many_write_read_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(42)
    images = []
    for _ in range(200):
        atoms = Atoms(
            "Cu4", positions=rng.uniform(0, 5, (4, 3)), cell=np.diag(rng.uniform(5, 6, 3)), pbc=True
        )
        images.append(tag_structure(atoms, generation=0, origin="test"))
    write_structures(tmp_path / "many.extxyz", images)
    for written, read_back in zip(images, read_structures(tmp_path / "many.extxyz"), strict=True):
        assert structure_uid(read_back) == written.info["uid"] == read_back.info["uid"]


def test_labels_and_metadata_survive_extxyz(tmp_path: Path, cuni_cell: Atoms) -> None:
    forces = np.random.default_rng(0).normal(size=(len(cuni_cell), 3))
    stress = np.arange(6) * 1e-3
    labelled = attach_labels(cuni_cell, energy=-12.5, forces=forces, stress=stress)
    tag_structure(labelled, generation=2, origin="strain", parent_uid="0123456789abcdef")
    labelled.arrays["force_weight"] = np.ones(len(cuni_cell))
    write_structures(tmp_path / "one.extxyz", [labelled, labelled])
    back = read_structures(tmp_path / "one.extxyz")
    assert len(back) == 2 and has_labels(back[0])
    assert back[0].get_potential_energy() == pytest.approx(-12.5)
    np.testing.assert_allclose(back[0].get_forces(), forces, atol=1e-7)
    np.testing.assert_allclose(back[0].get_stress(voigt=True), stress)
    assert back[0].info["uid"] == labelled.info["uid"]
    assert back[0].info["generation"] == 2 and back[0].info["origin"] == "strain"
    assert back[0].info["parent_uid"] == "0123456789abcdef"
    assert structure_uid(back[0]) == back[0].info["uid"]


def test_empty_list_round_trips(tmp_path: Path) -> None:
    write_structures(tmp_path / "none.extxyz", [])
    assert read_structures(tmp_path / "none.extxyz") == []


def test_write_leaves_no_temporary_files(tmp_path: Path, cuni_cell: Atoms) -> None:
    write_structures(tmp_path / "a.extxyz", cuni_cell)
    assert [p.name for p in tmp_path.iterdir()] == ["a.extxyz"]


def test_unreadable_and_missing_files_name_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.extxyz"
    garbage.write_text("this is not\na structure file\n")
    with pytest.raises(StructureError, match="garbage.extxyz"):
        read_structures(garbage)
    with pytest.raises(StructureError, match="missing.extxyz"):
        read_structures(tmp_path / "missing.extxyz")


def test_a_writer_interrupted_midway_leaves_the_old_output_and_no_partial_file(
    tmp_path: Path, cuni_cell: Atoms, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlip_autopipe.data as data

    target = tmp_path / "labelled.extxyz"
    write_structures(target, [cuni_cell])
    before = target.read_bytes()
    real_write = data.write

    def write_half_then_die(path: str | Path, *args: object, **kwargs: object) -> None:
        real_write(path, *args, **kwargs)
        Path(path).write_bytes(Path(path).read_bytes()[:50])
        raise KeyboardInterrupt  # a SIGINT (or a SIGTERM handler) in the middle of the write

    monkeypatch.setattr(data, "write", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        write_structures(target, [cuni_cell, cuni_cell])
    assert target.read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["labelled.extxyz"]
    # a first write cut short leaves nothing at all, so Snakemake sees the output as missing
    with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "figure.png") as temporary:
        temporary.write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt
    assert [path.name for path in tmp_path.iterdir()] == ["labelled.extxyz"]


def test_atomic_outputs_keep_the_suffix_and_the_usual_permissions(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "parity.png") as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".png"  # savefig infers the format
        temporary.write_bytes(b"png")
    write_text_atomic(tmp_path / "metrics.json", "{}\n")
    copy_atomic(tmp_path / "metrics.json", tmp_path / "final.json")
    umask = os.umask(0)
    os.umask(umask)
    for name in ("parity.png", "metrics.json", "final.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


#: What a script may hand a Snakemake output path to: the atomic writers of the library, and
#: calls that only read the file or build its name.
ATOMIC_WRITERS = {
    "write_structures",
    "write_text_atomic",
    "copy_atomic",
    "atomic_output",
    "fit.save_potential",
    "fit.compute_active_set",
    "train_potential",  # every file through the writers above (tests/test_training.py)
    "label_job",  # writes its label through write_structures
    "train_production",  # writes through train_potential
    "finetune_surrogate",  # metrics through write_text_atomic, the model renamed into place
}
NOT_WRITERS = {"Path", "fit.evaluate", "log.info"}


def test_scripts_write_every_output_through_an_atomic_writer() -> None:
    scripts = Path(__file__).resolve().parent.parent / "scripts"
    for script in sorted(scripts.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if not isinstance(node, ast.Call):
                continue
            arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
            names_output = any(
                isinstance(inner, ast.Attribute)
                and inner.attr == "output"
                and isinstance(inner.value, ast.Name)
                and inner.value.id == "snakemake"
                for argument in arguments
                for inner in ast.walk(argument)
            )
            if names_output:
                called = ast.unparse(node.func)
                assert called in ATOMIC_WRITERS | NOT_WRITERS, f"{script.name}: {ast.unparse(node)}"


@pytest.mark.parametrize("uid", ["0123456789012345", "1234e56789012345", "0000000000000000", "12e4"])
def test_uid_like_keys_stay_strings_through_write_and_read(tmp_path: Path, uid: str) -> None:
    # ASE's extxyz reader turns all-digit values into ints and "12e4" into floats; the
    # content-hash uids are hex: one in ~2000 is all digits, and some read like floats (1234e56...).
    atoms = Atoms("Cu", cell=[2.5, 2.5, 2.5], pbc=True)
    atoms.info.update(uid=uid, parent_uid=uid, start_uid=uid, frame_uid=uid, generation=2, weight=0.5)
    write_structures(tmp_path / "one.extxyz", [atoms, atoms.copy()])
    for back in read_structures(tmp_path / "one.extxyz"):
        for key in ("uid", "parent_uid", "start_uid", "frame_uid"):
            assert back.info[key] == uid and type(back.info[key]) is str, key
        # other keys keep ASE's typing
        assert back.info["generation"] == 2 and back.info["weight"] == 0.5
