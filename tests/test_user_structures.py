"""User structure files: read through ase.io, refused with the file named when unusable."""

from __future__ import annotations

from pathlib import Path

import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from mlip_autopipe.errors import ConfigError
from mlip_autopipe.user_structures import read_user_structures

KEY = "structures.user_files[0]"


def test_poscar_cif_and_extxyz_are_read_with_their_source(tmp_path: Path) -> None:
    write(tmp_path / "POSCAR", bulk("Cu", "fcc", a=3.6, cubic=True), format="vasp")
    write(tmp_path / "cell.cif", bulk("Ni", "fcc", a=3.52, cubic=True))
    write(tmp_path / "two.extxyz", [bulk("Cu", "fcc", a=3.6), bulk("Ni", "fcc", a=3.5)])
    assert [len(a) for a in read_user_structures(tmp_path / "POSCAR", ["Cu"], KEY)] == [4]
    (cif,) = read_user_structures(tmp_path / "cell.cif", ["Cu", "Ni"], KEY)
    assert cif.get_chemical_symbols() == ["Ni"] * 4 and cif.info["source_file"] == "cell.cif"
    frames = read_user_structures(tmp_path / "two.extxyz", ["Cu", "Ni"], KEY)
    assert [a.info["source_frame"] for a in frames] == [0, 1]


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    (folder / "garbage.cif").write_text("this is not a crystal\n")
    write(folder / "molecule.xyz", Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.3]]), format="xyz")
    crowded = bulk("Cu", "fcc", a=3.6, cubic=True)
    crowded += Atoms("Cu", positions=[[0.2, 0.0, 0.0]])
    write(folder / "crowded.extxyz", crowded)
    write(folder / "foreign.extxyz", bulk("Fe", "bcc", a=2.87, cubic=True))
    return {
        "unreadable": (folder / "garbage.cif", "unreadable"),
        "missing": (folder / "absent.extxyz", "does not exist"),
        "no cell": (folder / "molecule.xyz", "no periodic cell"),
        "overlap": (folder / "crowded.extxyz", "overlapping atoms"),
        "foreign element": (folder / "foreign.extxyz", "holds Fe, not listed"),
    }


@pytest.mark.parametrize("case", ["unreadable", "missing", "no cell", "overlap", "foreign element"])
def test_unusable_file_is_a_config_error_naming_key_and_file(tmp_path: Path, case: str) -> None:
    path, words = bad_files(tmp_path)[case]
    with pytest.raises(ConfigError) as raised:
        read_user_structures(path, ["Cu", "Ni"], KEY)
    assert raised.value.key == KEY
    assert str(path) in str(raised.value) and words in str(raised.value)
    assert "\n" not in str(raised.value)
