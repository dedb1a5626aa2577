"""Structures on disk: extended XYZ files, content-hash uids, labels and provenance tags.

``atoms.info`` keys set here: ``uid`` (content hash), ``generation``, ``origin``, ``parent_uid``;
every metadata key of the pipeline is listed in :mod:`mlip_autopipe.contract`. Labels travel
through ASE's ``SinglePointCalculator`` so ``ase.io.read`` returns them.
Every uid-like key (``uid``, ``*_uid``) is a string, also when its characters are all digits:
read structure files through :func:`read_structures`, never ``ase.io.read`` directly.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from ase.io.extxyz import key_val_str_to_dict

from mlip_autopipe.errors import StructureError

#: Decimals kept when hashing positions and cell: 1e-6 A, far below any physical change.
UID_DECIMALS = 6
#: Decimals extended XYZ stores ("%16.8f"); tagged structures are snapped to them so a
#: write/read round trip gives back the very same uid.
STORED_DECIMALS = 8
UID_LENGTH = 16


def structure_uid(atoms: Atoms) -> str:
    """Return a stable content hash of atomic numbers, positions, cell and pbc."""
    digest = hashlib.sha256()
    digest.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    for array in (atoms.positions, np.asarray(atoms.cell)):
        # Rounding to the stored precision first makes the uid a function of what extended
        # XYZ keeps; adding 0.0 turns -0.0 into 0.0 so that signed zeros hash alike.
        stored = np.round(np.asarray(array, dtype=float), STORED_DECIMALS)
        rounded = np.round(stored, UID_DECIMALS) + 0.0
        digest.update(rounded.tobytes())
    digest.update(np.asarray(atoms.pbc, dtype=np.int8).tobytes())
    return digest.hexdigest()[:UID_LENGTH]


def tag_structure(
    atoms: Atoms,
    *,
    generation: int,
    origin: str,
    parent_uid: str | None = None,
) -> Atoms:
    """Set ``uid``, ``generation``, ``origin`` (and ``parent_uid``) in ``atoms.info``.

    Positions and cell are first rounded to what extended XYZ stores (1e-8 A), so the uid
    read back from a file is the uid written.
    """
    atoms.set_cell(np.round(np.asarray(atoms.cell), STORED_DECIMALS) + 0.0)
    atoms.positions = np.round(atoms.positions, STORED_DECIMALS) + 0.0
    atoms.info["uid"] = structure_uid(atoms)
    atoms.info["generation"] = int(generation)
    atoms.info["origin"] = origin
    if parent_uid is not None:
        atoms.info["parent_uid"] = parent_uid
    return atoms


def attach_labels(
    atoms: Atoms,
    *,
    energy: float,
    forces: np.ndarray,
    stress: np.ndarray | None = None,
) -> Atoms:
    """Return a copy of ``atoms`` carrying energy, forces (and Voigt stress) as results."""
    labelled = atoms.copy()
    results: dict[str, object] = {
        "energy": float(energy),
        "forces": np.asarray(forces, dtype=float).reshape(len(atoms), 3),
    }
    if stress is not None:
        results["stress"] = np.asarray(stress, dtype=float).reshape(6)
    labelled.calc = SinglePointCalculator(labelled, **results)
    return labelled


def has_labels(atoms: Atoms) -> bool:
    """True when ``atoms`` carries an energy and forces."""
    calc = atoms.calc
    return calc is not None and "energy" in calc.results and "forces" in calc.results


def is_uid_key(key: str) -> bool:
    """True for the ``atoms.info`` keys that hold uids (``uid``, ``parent_uid``, ``start_uid``, ...)."""
    return key == "uid" or key.endswith("_uid")


def parse_comment_line(line: str) -> dict[str, object]:
    """ASE's extended XYZ comment-line parser, except that uid-like values stay strings.

    ASE turns a bare ``parent_uid=0123456789012345`` into an int (and ``1234e567...`` into a
    float, losing digits); a hex content hash is all digits about once in 2000 structures.
    The raw text of such a value is taken back from the line.
    """
    info: dict[str, object] = key_val_str_to_dict(line)
    for key, value in info.items():
        if is_uid_key(key) and not isinstance(value, str):
            raw = re.search(rf'(?:^|\s){re.escape(key)}=(["\']?)([^\s"\']+)\1(?=\s|$)', line)
            if raw is None:
                raise StructureError(f"cannot read back the text of '{key}' in line: {line.strip()}")
            info[key] = raw.group(2)
    return info


def read_structures(path: str | os.PathLike[str]) -> list[Atoms]:
    """Read every frame of an extended XYZ file; an empty file is an empty list.

    uid-like ``info`` keys come back as strings (:func:`parse_comment_line`).
    """
    path = Path(path)
    if not path.exists():
        raise StructureError(f"structure file '{path}' does not exist")
    if path.stat().st_size == 0:
        return []
    try:
        images = read(path, index=":", format="extxyz", properties_parser=parse_comment_line)
    except Exception as error:  # ase raises many types for unreadable files
        raise StructureError(f"structure file '{path}' is unreadable: {error}") from error
    return list(images) if isinstance(images, list) else [images]


#: Permission bits new files get from the process umask; ``mkstemp`` alone would give 0600.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends.

    Every output a rule hands on goes through here: a reader (or a resumed run) sees the old
    file or the complete new one, never a half-written one. When the block raises, the
    temporary file is removed and ``path`` is left as it was. The temporary name keeps the
    suffix of ``path`` (``.potential.yaml.<random>.tmp.yaml``), so writers that infer a format
    from it (matplotlib, pandas) still do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"nothing was written to the temporary file of '{path}'")
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_structures(path: str | os.PathLike[str], images: Sequence[Atoms] | Atoms) -> None:
    """Write frames as extended XYZ atomically (temp file + rename), so no reader sees half."""
    frames = [images] if isinstance(images, Atoms) else list(images)
    with atomic_output(path) as temporary:
        if frames:
            write(temporary, frames, format="extxyz")


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file atomically (temp file + rename)."""
    with atomic_output(path) as temporary:
        temporary.write_text(text)


def copy_atomic(source: str | os.PathLike[str], destination: str | os.PathLike[str]) -> None:
    """Copy a file atomically (temp file + rename)."""
    with atomic_output(destination) as temporary:
        shutil.copyfile(source, temporary)


def unique_by_uid(images: Iterable[Atoms]) -> list[Atoms]:
    """Keep the first structure of each uid, in order."""
    seen: set[str] = set()
    unique = []
    for atoms in images:
        uid = atoms.info.get("uid") or structure_uid(atoms)
        if uid not in seen:
            seen.add(uid)
            unique.append(atoms)
    return unique
