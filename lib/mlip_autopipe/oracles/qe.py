"""Quantum ESPRESSO (pw.x) as an oracle: settings, input, execution, parsing, SCF recovery.

Settings are resolved once from the ``oracle.qe`` config section (pseudopotentials found and
hashed, cutoffs chosen) so that every mistake is a :class:`ConfigError` before any job runs.
Each label runs pw.x through an argument list (never a shell), checks the exit code and the
output text before parsing, and walks a recovery ladder when the SCF does not converge.

Units: cutoffs and ``degauss`` in Ry (QE's own), k-point spacing in 1/A *including* the 2*pi
(ASE's ``kspacing`` leaves it out), energies in eV, forces in eV/A, stress in eV/A^3 (Voigt).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ase
import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.io import read, write

from mlip_autopipe.contract import Status
from mlip_autopipe.data import attach_labels
from mlip_autopipe.errors import ConfigError, LabellingError, ToolNotFoundError
from mlip_autopipe.oracles.base import hash_settings
from mlip_autopipe.tools import find_tool

#: Default PBE pseudopotentials, all shipped in Debian's quantum-espresso-data.
DEFAULT_PSEUDOPOTENTIALS = {
    "Si": "Si.pbe-nl-rrkjus_psl.1.0.0.UPF",
    "Ge": "Ge.pbe-kjpaw.UPF",
    "Cu": "Cu.pbe-kjpaw.UPF",
    "Ni": "Ni.pbe-nd-rrkjus.UPF",
    "Fe": "Fe.pbe-nd-rrkjus.UPF",
    "Cr": "Cr.pbe-spn-kjpaw_psl.1.0.0.UPF",
    "C": "C.pbe-n-kjpaw_psl.0.1.UPF",
    "N": "N.pbe-n-kjpaw_psl.1.0.0.UPF",
    "O": "O.pbe-kjpaw.UPF",
    "H": "H.pbe-kjpaw.UPF",
    "B": "B.pbe-n-kjpaw_psl.1.0.0.UPF",
}

#: Starting magnetic moments (Bohr magnetons per atom) that switch spin polarisation on.
DEFAULT_MAGNETIC_MOMENTS = {"Cr": 3.0, "Mn": 4.0, "Fe": 3.0, "Co": 2.0, "Ni": 1.0}

#: ecutrho / ecutwfc when neither the config nor the pseudo headers give ecutrho.
DUAL_NORM_CONSERVING = 4.0
DUAL_ULTRASOFT_OR_PAW = 8.0

#: Config keys that change how pw.x runs, not what it computes: neither the label cache key
#: nor Snakemake's params see them, so editing them reruns nothing.
EXECUTION_KEYS = ("command", "cores", "walltime_s")

#: Input/output names inside one attempt's folder (ASE's Espresso calculator uses the same).
INPUT_NAME = "espresso.pwi"
OUTPUT_NAME = "espresso.pwo"

SCF_NOT_CONVERGED = "convergence NOT achieved"
JOB_DONE = "JOB DONE."

#: Recovery-rung keys that only change how the SCF gets to its solution, not the solution:
#: a label from such a rung equals the first attempt's to within the SCF threshold.
RESULT_PRESERVING_RUNG_KEYS = (
    "mixing_beta",
    "mixing_mode",
    "mixing_ndim",
    "electron_maxstep",
    "diagonalization",
    "startingwfc",
)
#: Recovery-rung keys that change the Hamiltonian (smearing of the occupations): a label from
#: such a rung is not comparable with its neighbours, so these rungs run only with
#: ``oracle.qe.recovery_allow_physics_changes``.
PHYSICS_RUNG_KEYS = ("degauss", "smearing", "occupations")

#: Failure categories recorded in ``atoms.info['label_failure']`` and the ledger.
FAILURE_SCF = "scf_not_converged"
FAILURE_WALLTIME = "walltime"
FAILURE_CRASH = "crash"
FAILURE_PARSE = "unparsable_output"

_HEADER_NUMBER = r"([-+0-9.eEdD]+)"

#: pw.x's version when its header cannot be read (a wrapper that prints nothing, a timeout).
UNKNOWN_VERSION = "unknown"
_PW_VERSION = re.compile(r"Program PWSCF v\.(\S+) starts")


@dataclass(frozen=True)
class Pseudopotential:
    """One pseudopotential file and what its header says."""

    element: str
    path: Path
    sha256: str
    z_valence: float
    kind: str  # NC, US, PAW (UPF pseudo_type; SL/USPP folded into NC/US)
    suggested_ecutwfc: float | None
    suggested_ecutrho: float | None


@dataclass(frozen=True)
class QESettings:
    """Everything a pw.x label needs, resolved and checked."""

    command: tuple[str, ...]
    cores: int
    walltime_s: float
    pseudo_dir: Path
    pseudopotentials: Mapping[str, Pseudopotential]
    ecutwfc: float
    ecutrho: float
    kspacing: float
    occupations: str
    smearing: str
    degauss: float
    spin_polarised: str
    magnetic_moments: Mapping[str, float]
    conv_thr_per_atom: float
    mixing_beta: float
    mixing_mode: str
    electron_maxstep: int
    recovery: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    recovery_allow_physics_changes: bool = False
    #: the QE build and the ASE that writes its input: labels of other builds are other labels
    pw_version: str = UNKNOWN_VERSION
    ase_version: str = ase.__version__

    def result_settings(self) -> dict[str, Any]:
        """What changes a pw.x result: the cache key. Command, cores and paths are left out."""
        return {
            "oracle": "qe",
            "pseudopotentials": {
                element: {"file": pseudo.path.name, "sha256": pseudo.sha256}
                for element, pseudo in sorted(self.pseudopotentials.items())
            },
            "ecutwfc": self.ecutwfc,
            "ecutrho": self.ecutrho,
            "kspacing": self.kspacing,
            "occupations": self.occupations,
            "smearing": self.smearing,
            "degauss": self.degauss,
            "spin_polarised": self.spin_polarised,
            "magnetic_moments": dict(sorted(self.magnetic_moments.items())),
            "conv_thr_per_atom": self.conv_thr_per_atom,
            "mixing_beta": self.mixing_beta,
            "mixing_mode": self.mixing_mode,
            "electron_maxstep": self.electron_maxstep,
            "recovery": [dict(sorted(rung.items())) for rung in self.recovery],
            "recovery_allow_physics_changes": self.recovery_allow_physics_changes,
            "pw_version": self.pw_version,
            "ase_version": self.ase_version,
        }


# --------------------------------------------------------------------------- settings


def result_config(oracle_config: Mapping[str, Any]) -> dict[str, Any]:
    """What Snakemake's params of a label job compare: the oracle kind and, for ``qe``, its
    section without execution keys; for a surrogate (``mace``, ``chgnet``), its section. Other
    oracles' sections are left out as well."""
    config: dict[str, Any] = {"kind": oracle_config["kind"]}
    if oracle_config["kind"] in ("mace", "chgnet"):
        config[oracle_config["kind"]] = dict(oracle_config[oracle_config["kind"]])
    if oracle_config["kind"] == "qe":
        qe = oracle_config["qe"]
        config["qe"] = {key: value for key, value in qe.items() if key not in EXECUTION_KEYS}
        # which build runs, not how: another pw.x (or ASE writing its input) relabels
        config["qe"]["pw_version"] = pw_version(command_tokens(qe["command"]))
        config["qe"]["ase_version"] = ase.__version__
    return config


def command_tokens(command: str | Sequence[str]) -> tuple[str, ...]:
    """The pw.x command as an argument list; a string is split like a shell would, not run by one."""
    try:
        tokens = tuple(shlex.split(command)) if isinstance(command, str) else tuple(str(t) for t in command)
    except ValueError as error:  # unbalanced quotes
        raise ConfigError("oracle.qe.command", f"cannot be split into arguments: {error}") from error
    if not tokens:
        raise ConfigError("oracle.qe.command", "is empty; give e.g. 'pw.x' or 'mpirun -np {cores} pw.x'")
    return tokens


#: Stands for the MPI launcher in ``oracle.qe.command``: Snakemake's ``mpi`` resource of the
#: label rule ("mpirun" locally; the Slurm profile sets "srun").
MPI_PLACEHOLDER = "{mpi}"
DEFAULT_MPI_LAUNCHER = "mpirun"


def expand_mpi(tokens: Sequence[str], mpi: str | None) -> tuple[str, ...]:
    """Replace a ``{mpi}`` token by the launcher's own arguments (e.g. ``srun`` or ``mpirun``)."""
    launcher = shlex.split(mpi or DEFAULT_MPI_LAUNCHER)
    return tuple(part for token in tokens for part in (launcher if token == MPI_PLACEHOLDER else [token]))


#: Programs that start another program (the one to check) after their own options.
MPI_LAUNCHERS = frozenset(
    {"mpirun", "mpiexec", "mpiexec.hydra", "orterun", "srun", "aprun", "jsrun", "ibrun", "prun"}
)


def launched_program(tokens: Sequence[str]) -> str | None:
    """The program a command runs: its first word, or with an MPI launcher first, the first
    word after the launcher's options (an option's value is skipped unless it is a program:
    found on PATH, a path, or named like QE's ``*.x``). None when nothing follows the options."""
    if os.path.basename(tokens[0]) not in MPI_LAUNCHERS:
        return tokens[0]
    index = 1
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("-"):
            return token
        index += 1
        if "=" not in token and index < len(tokens) and not _is_program(tokens[index]):
            index += 1  # the option's value, e.g. "-np 4", "--bind-to core"
    return None


def _is_program(token: str) -> bool:
    return not token.startswith("-") and (
        shutil.which(token) is not None or os.sep in token or token.endswith(".x")
    )


def pw_program(tokens: Sequence[str]) -> str | None:
    """The program in a pw.x command (after ``{mpi}``/a launcher and its options) when it is
    found on PATH or as a path; None otherwise."""
    program = launched_program(expand_mpi(tokens, None))
    return program if program is not None and shutil.which(program) else None


def pw_version(tokens: Sequence[str]) -> str:
    """pw.x's version as its header prints it (``6.7MaX``, ``7.3.1``), or ``unknown``.

    Runs the program itself (not its launcher: no srun or mpirun) once per process and file,
    without input, in a scratch folder (pw.x leaves a CRASH file there).
    """
    program = pw_program(tokens)
    if program is None:
        return UNKNOWN_VERSION
    path = Path(shutil.which(program) or program).resolve()
    try:
        stat = path.stat()
    except OSError:
        return UNKNOWN_VERSION
    return _read_pw_version(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _read_pw_version(path: str, mtime_ns: int, size: int) -> str:
    """The header's version of the program at ``path`` (cached per process, file and mtime)."""
    with tempfile.TemporaryDirectory(prefix="pw-version-") as scratch:
        try:
            run = subprocess.run(
                [path],
                cwd=scratch,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return UNKNOWN_VERSION
    match = _PW_VERSION.search(run.stdout.decode(errors="replace"))
    return match.group(1) if match else UNKNOWN_VERSION


def default_pseudo_dir() -> Path | None:
    """QE's own search path: $ESPRESSO_PSEUDO, <prefix of pw.x>/share/espresso/pseudo, ~/espresso/pseudo."""
    candidates = []
    if os.environ.get("ESPRESSO_PSEUDO"):
        candidates.append(Path(os.environ["ESPRESSO_PSEUDO"]))
    with contextlib.suppress(ToolNotFoundError):
        candidates.append(Path(find_tool("pw.x")).resolve().parent.parent / "share" / "espresso" / "pseudo")
    candidates.append(Path.home() / "espresso" / "pseudo")
    return next((path for path in candidates if path.is_dir()), None)


def read_pseudopotential(element: str, path: Path) -> Pseudopotential:
    """Hash a UPF file and read valence charge, type and suggested cutoffs from its header."""
    try:
        data = path.read_bytes()
    except OSError as error:
        key = f"oracle.qe.pseudopotentials.{element}"
        raise ConfigError(key, f"cannot read '{path}': {error}") from error
    text = data[:200_000].decode(errors="replace")
    z_match = re.search(r'z_valence\s*=\s*"\s*' + _HEADER_NUMBER, text, re.IGNORECASE) or re.search(
        _HEADER_NUMBER + r"\s+Z valence", text
    )
    if z_match is None:
        raise ConfigError(f"oracle.qe.pseudopotentials.{element}", f"'{path.name}' has no valence charge")
    # UPF v2: pseudo_type="US"; UPF v1: a header line "US  Ultrasoft pseudopotential"
    type_match = re.search(r'pseudo_type\s*=\s*"\s*(\w+)', text, re.IGNORECASE) or re.search(
        r"^\s*(NC|SL|US|PAW)\s+(?:Norm|Ultrasoft|Projector|Semi)", text, re.MULTILINE | re.IGNORECASE
    )
    pseudo_type = type_match.group(1).upper() if type_match else "NC"
    kind = {"SL": "NC", "USPP": "US"}.get(pseudo_type, pseudo_type)

    def suggested(what: str) -> float | None:
        match = re.search(rf"Suggested minimum cutoff for {what}:\s*{_HEADER_NUMBER}", text)
        value = float(match.group(1).replace("d", "e").replace("D", "e")) if match else 0.0
        return value if value > 0 else None

    return Pseudopotential(
        element=element,
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        z_valence=float(z_match.group(1).replace("d", "e").replace("D", "e")),
        kind=kind,
        suggested_ecutwfc=suggested("wavefunctions"),
        suggested_ecutrho=suggested("charge density"),
    )


def _resolve_pseudopotentials(
    qe: Mapping[str, Any], elements: Sequence[str], pseudo_dir: Path
) -> dict[str, Pseudopotential]:
    chosen: Mapping[str, str] = qe["pseudopotentials"] or {}
    for element in chosen:
        if element not in atomic_numbers or element == "X":
            raise ConfigError(f"oracle.qe.pseudopotentials.{element}", "is not a chemical element symbol")
    resolved = {}
    for element in elements:
        key = f"oracle.qe.pseudopotentials.{element}"
        name = chosen.get(element) or DEFAULT_PSEUDOPOTENTIALS.get(element)
        if name is None:
            raise ConfigError(
                key, f"no default pseudopotential for {element}; name a UPF file of {pseudo_dir}"
            )
        path = Path(name) if Path(name).is_absolute() else pseudo_dir / name
        if not path.is_file():
            raise ConfigError(key, f"pseudopotential file '{name}' not found in {path.parent}")
        resolved[element] = read_pseudopotential(element, path)
    return resolved


def _resolve_cutoffs(qe: Mapping[str, Any], pseudos: Mapping[str, Pseudopotential]) -> tuple[float, float]:
    """ecutwfc/ecutrho (Ry): config, else per-element table, else pseudo headers; max over elements."""
    table: Mapping[str, Mapping[str, float]] = qe["element_cutoffs"] or {}
    for element, cutoffs in table.items():
        for name, value in cutoffs.items():
            if value <= 0:
                key = f"oracle.qe.element_cutoffs.{element}.{name}"
                raise ConfigError(key, f"must be positive, not {value}")
    ecutwfc = qe["ecutwfc"]
    if ecutwfc is None:
        values: list[float] = []
        for element, pseudo in pseudos.items():
            suggested = table.get(element, {}).get("ecutwfc") or pseudo.suggested_ecutwfc
            if suggested is None:
                raise ConfigError(
                    "oracle.qe.ecutwfc",
                    f"'{pseudo.path.name}' suggests no cutoff; set oracle.qe.ecutwfc "
                    f"or oracle.qe.element_cutoffs.{element}",
                )
            values.append(suggested)
        ecutwfc = max(values)
    ecutrho = qe["ecutrho"]
    if ecutrho is None:
        hard = any(pseudo.kind in ("US", "PAW") for pseudo in pseudos.values())
        ecutrho = (DUAL_ULTRASOFT_OR_PAW if hard else DUAL_NORM_CONSERVING) * ecutwfc
        if qe["ecutwfc"] is None:
            # cutoffs from the table or the headers: take their density cutoffs as well
            density_cutoffs = [
                table.get(element, {}).get("ecutrho") or pseudo.suggested_ecutrho
                for element, pseudo in pseudos.items()
            ]
            known = [value for value in density_cutoffs if value]
            if known:
                ecutrho = max(max(known), DUAL_NORM_CONSERVING * ecutwfc)
    if ecutrho < DUAL_NORM_CONSERVING * ecutwfc:
        raise ConfigError(
            "oracle.qe.ecutrho", f"must be at least 4 x ecutwfc = {DUAL_NORM_CONSERVING * ecutwfc:g} Ry"
        )
    return float(ecutwfc), float(ecutrho)


def resolve_settings(qe: Mapping[str, Any], elements: Sequence[str]) -> QESettings:
    """Check the ``oracle.qe`` section against the files on disk and resolve every default.

    Raises:
        ConfigError: naming the key (missing pseudo, unknown element, bad cutoff, ...).
    """
    for key in ("ecutwfc", "ecutrho", "kspacing", "degauss", "walltime_s", "mixing_beta"):
        value = qe[key]
        if value is not None and value <= 0:
            raise ConfigError(f"oracle.qe.{key}", f"must be positive, not {value}")
    tokens = expand_mpi(command_tokens(qe["command"]), qe.get("mpi"))
    try:
        find_tool(tokens[0])
    except ToolNotFoundError as error:
        raise ConfigError("oracle.qe.command", f"{error} (run `make setup`)") from error
    program = launched_program(tokens)
    if program is None:
        raise ConfigError("oracle.qe.command", f"names no program after the options of '{tokens[0]}'")
    if shutil.which(program) is None:
        raise ConfigError(
            "oracle.qe.command",
            f"program '{program}' not found on PATH (after '{tokens[0]}'; run `make setup`)",
        )
    if qe["pseudo_dir"]:
        pseudo_dir = Path(os.path.expanduser(str(qe["pseudo_dir"])))
        if not pseudo_dir.is_dir():
            raise ConfigError("oracle.qe.pseudo_dir", f"'{pseudo_dir}' is not a directory")
    else:
        found = default_pseudo_dir()
        if found is None:
            raise ConfigError("oracle.qe.pseudo_dir", "no pseudopotential directory found; set it")
        pseudo_dir = found
    pseudos = _resolve_pseudopotentials(qe, elements, pseudo_dir)
    ecutwfc, ecutrho = _resolve_cutoffs(qe, pseudos)
    moments = dict(DEFAULT_MAGNETIC_MOMENTS)
    moments.update(qe["starting_magnetic_moments"] or {})
    return QESettings(
        pw_version=pw_version(tokens),
        command=tokens,
        cores=int(qe["cores"]),
        walltime_s=float(qe["walltime_s"]),
        pseudo_dir=pseudo_dir,
        pseudopotentials=pseudos,
        ecutwfc=ecutwfc,
        ecutrho=ecutrho,
        kspacing=float(qe["kspacing"]),
        occupations=str(qe["occupations"]),
        smearing=str(qe["smearing"]),
        degauss=float(qe["degauss"]),
        spin_polarised=str(qe["spin_polarised"]),
        magnetic_moments={k: float(v) for k, v in moments.items() if k in pseudos},
        conv_thr_per_atom=float(qe["conv_thr_per_atom"]),
        mixing_beta=float(qe["mixing_beta"]),
        mixing_mode=str(qe["mixing_mode"]),
        electron_maxstep=int(qe["electron_maxstep"]),
        recovery=tuple(dict(rung) for rung in qe["recovery"]),
        recovery_allow_physics_changes=bool(qe["recovery_allow_physics_changes"]),
    )


# --------------------------------------------------------------------------- input


@dataclass
class PwInputs:
    """One pw.x input as ASE's espresso writer (and ASE's Espresso calculator) takes it."""

    atoms: Atoms
    input_data: dict[str, dict[str, Any]]
    pseudopotentials: dict[str, str]
    kpts: tuple[int, int, int]

    def write(self, path: Path) -> None:
        """Write the pw.x input file."""
        write(
            path,
            self.atoms,
            format="espresso-in",
            input_data=json.loads(json.dumps(self.input_data)),
            pseudopotentials=self.pseudopotentials,
            kpts=self.kpts,
        )


def kpoint_grid(atoms: Atoms, spacing: float) -> tuple[int, int, int]:
    """Monkhorst-Pack grid with at most ``spacing`` (1/A, 2*pi included) between k-points.

    Non-periodic directions get one k-point.
    """
    reciprocal = 2.0 * math.pi * np.asarray(atoms.cell.reciprocal())
    grid = []
    for vector, periodic in zip(reciprocal, atoms.pbc, strict=True):
        length = float(np.linalg.norm(vector))
        grid.append(max(1, math.ceil(length / spacing - 1e-9)) if periodic else 1)
    return (grid[0], grid[1], grid[2])


def starting_magnetisation(atoms: Atoms, settings: QESettings) -> np.ndarray | None:
    """Per-atom starting magnetisation as QE's fraction of the valence charge, or None (no spin).

    ``spin_polarised: auto`` turns spin on only for structures holding a magnetic element.
    """
    if settings.spin_polarised == "off":
        return None
    symbols = atoms.get_chemical_symbols()
    moments = np.array([settings.magnetic_moments.get(symbol, 0.0) for symbol in symbols])
    if settings.spin_polarised == "auto" and not np.any(moments):
        return None
    valence = np.array([settings.pseudopotentials[symbol].z_valence for symbol in symbols])
    return np.asarray(np.clip(moments / valence, -1.0, 1.0), dtype=float)


def pw_inputs(atoms: Atoms, settings: QESettings, changes: Mapping[str, Any] | None = None) -> PwInputs:
    """Build the pw.x input of ``atoms``; ``changes`` are recovery-ladder overrides.

    Raises:
        LabellingError: for an element the settings have no pseudopotential for.
    """
    changes = dict(changes or {})
    symbols = sorted(set(atoms.get_chemical_symbols()))
    missing = [symbol for symbol in symbols if symbol not in settings.pseudopotentials]
    if missing:
        raise LabellingError(f"no pseudopotential for {', '.join(missing)} (not in 'elements')")
    occupations = str(changes.get("occupations", settings.occupations))
    system: dict[str, Any] = {
        "ecutwfc": settings.ecutwfc,
        "ecutrho": settings.ecutrho,
        "occupations": occupations,
    }
    if occupations == "smearing" or "degauss" in changes:  # a degauss rung turns smearing on
        system.update(
            occupations="smearing",
            smearing=str(changes.get("smearing", settings.smearing)),
            degauss=float(changes.get("degauss", settings.degauss)),
        )
    work = atoms.copy()
    work.calc = None
    magnetisation = starting_magnetisation(atoms, settings)
    if magnetisation is not None:
        system["nspin"] = 2
        work.set_initial_magnetic_moments(magnetisation)
    else:
        work.set_initial_magnetic_moments(np.zeros(len(work)))
    electrons: dict[str, Any] = {
        "conv_thr": settings.conv_thr_per_atom * len(atoms),
        "mixing_beta": float(changes.get("mixing_beta", settings.mixing_beta)),
        "mixing_mode": str(changes.get("mixing_mode", settings.mixing_mode)),
        "electron_maxstep": int(changes.get("electron_maxstep", settings.electron_maxstep)),
    }
    # left to pw.x's defaults unless a rung sets them
    electrons.update(
        {key: changes[key] for key in ("mixing_ndim", "diagonalization", "startingwfc") if key in changes}
    )
    input_data = {
        "control": {
            "calculation": "scf",
            "tprnfor": True,
            "tstress": True,
            "disk_io": "none",
            "outdir": "./",
            "pseudo_dir": str(settings.pseudo_dir),
        },
        "system": system,
        "electrons": electrons,
    }
    pseudopotentials = {symbol: settings.pseudopotentials[symbol].path.name for symbol in symbols}
    return PwInputs(work, input_data, pseudopotentials, kpoint_grid(atoms, settings.kspacing))


#: Folder, inside each attempt's folder, of links to the pseudopotentials pw.x reads.
LINKED_PSEUDO_DIR = "pseudo"


def link_pseudopotentials(inputs: PwInputs, settings: QESettings, directory: Path) -> None:
    """Point ``inputs`` at links ``directory/pseudo/<El>.<ext>`` to the resolved pseudopotentials.

    One link per element, named after the element: a folder-per-element library
    (``Si/pbe.UPF``, ``Ge/pbe.UPF``) must not collapse into one link that labels Ge with the Si
    pseudopotential. pw.x reads ``pseudo_dir`` and file names from a Fortran namelist and a
    whitespace-separated card, so the names are plain (no quote or space from a user's folder);
    the file's extension is kept (sanitised), as QE picks old pseudopotential formats by it.
    """
    folder = directory / LINKED_PSEUDO_DIR
    folder.mkdir(exist_ok=True)
    names = {}
    for symbol in inputs.pseudopotentials:
        path = settings.pseudopotentials[symbol].path
        extension = "".join(char for char in path.suffix if char.isalnum())
        name = f"{symbol}.{extension or 'UPF'}"
        link = folder / name
        link.unlink(missing_ok=True)
        link.symlink_to(path.resolve())
        names[symbol] = name
    inputs.pseudopotentials = names
    inputs.input_data["control"]["pseudo_dir"] = f"./{LINKED_PSEUDO_DIR}/"


# --------------------------------------------------------------------------- execution


@dataclass
class PwRun:
    """What one pw.x execution left behind."""

    returncode: int | None
    seconds: float
    timed_out: bool
    output: str
    stderr: str


def pw_argv(command: Sequence[str], cores: int) -> list[str]:
    """The argument list: ``{cores}`` in the command becomes the job's cores, then ``-in <input>``."""
    return [token.replace("{cores}", str(cores)) for token in command] + ["-in", INPUT_NAME]


def run_pw(command: Sequence[str], directory: Path, cores: int, walltime_s: float) -> PwRun:
    """Run pw.x on ``directory/espresso.pwi`` as an argument list (no shell), killed at the walltime.

    With ``{cores}`` in the command the cores are MPI ranks (one OpenMP thread each);
    otherwise they are OpenMP threads of a single process.
    """
    env = dict(os.environ)
    uses_ranks = any("{cores}" in token for token in command)
    env["OMP_NUM_THREADS"] = "1" if uses_ranks else str(cores)
    argv = pw_argv(command, cores)
    started = time.monotonic()
    timed_out = False
    with open(directory / OUTPUT_NAME, "w") as stdout, open(directory / "espresso.err", "w") as stderr:
        try:
            process = subprocess.Popen(
                argv,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=env,
                start_new_session=True,  # its own process group: the walltime kill reaches mpirun's children
            )
        except OSError as error:
            raise LabellingError(f"cannot start '{argv[0]}': {error}", category=FAILURE_CRASH) from error
        try:
            returncode: int | None = process.wait(timeout=walltime_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(process)
            returncode = process.returncode
    return PwRun(
        returncode=returncode,
        seconds=time.monotonic() - started,
        timed_out=timed_out,
        output=(directory / OUTPUT_NAME).read_text(errors="replace"),
        stderr=(directory / "espresso.err").read_text(errors="replace"),
    )


def _kill_group(process: subprocess.Popen[Any]) -> None:
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()


# --------------------------------------------------------------------------- parsing


def classify_run(run: PwRun, walltime_s: float) -> tuple[str | None, str]:
    """(failure category, reason) of a pw.x run, or (None, "") when its output can be parsed.

    Checks the text and exit code before any parsing: a non-converged SCF exits 2 and
    leaves an output ASE's reader chokes on.
    """
    if run.timed_out:
        return FAILURE_WALLTIME, f"pw.x ran past the walltime of {walltime_s:g} s"
    not_converged = re.search(r"convergence NOT achieved after\s+(\d+)\s+iterations", run.output)
    if not_converged or SCF_NOT_CONVERGED in run.output:
        steps = f" after {not_converged.group(1)} iterations" if not_converged else ""
        return FAILURE_SCF, f"SCF not converged{steps}"
    if run.returncode != 0 or JOB_DONE not in run.output:
        return FAILURE_CRASH, f"pw.x crashed (exit code {run.returncode}): {crash_message(run)}"
    if "convergence has been achieved" not in run.output:
        return FAILURE_PARSE, "pw.x finished without reporting a converged SCF"
    return None, ""


def crash_message(run: PwRun) -> str:
    """QE's 'Error in routine ...' text, else the last line of stderr or stdout."""
    match = re.search(r"Error in routine\s+(.+?)\n\s*(.+?)\n", run.output)
    if match:
        return f"Error in routine {match.group(1).strip()}: {match.group(2).strip()}"
    for text in (run.stderr, run.output):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1][:300]
    return "no output"


#: One site of the 'Magnetic moment per site' block. QE 6.7 prints
#: ``atom:    1    charge:    6.4815    magn:    2.0370    constr:    0.0000``; QE 6.8 and later
#: print ``atom   1 (R=0.190)  charge= 14.3011  magn=  0.6012`` (``constr=`` when constrained).
_MAGNETIC_SITE = re.compile(r"^\s*atom:?\s+(\d+)\b.*?\bmagn[:=]\s*([-+0-9.EeDd]+)")


def parse_magnetic_moments(output: str, n_atoms: int) -> np.ndarray | None:
    """Per-atom moments (Bohr magnetons) from the last 'Magnetic moment per site' block.

    Reads the ``magn`` column in both QE 6.7's (``magn:``) and QE >= 6.8's (``magn=``) format;
    ASE's reader takes the last column, which QE 6.7 fills with ``constr:``. None when the
    block is missing or does not list exactly sites 1..``n_atoms``.
    """
    start = output.rfind("Magnetic moment per site")
    if start < 0:
        return None
    moments: list[float] = []
    for line in output[start:].splitlines()[1:]:
        site = _MAGNETIC_SITE.match(line)
        if site is None:
            break
        if int(site.group(1)) != len(moments) + 1:
            return None
        moments.append(float(site.group(2).replace("D", "E").replace("d", "e")))
    return np.array(moments) if len(moments) == n_atoms else None


def parse_pw_output(path: Path, reference: Atoms) -> Atoms:
    """Energy, forces, stress (and magnetic moments) of a finished run, on a copy of ``reference``.

    Raises:
        LabellingError: when the output lacks any of them.
    """
    text = path.read_text(errors="replace")
    try:
        image: Atoms = read(path, format="espresso-out", index=-1)  # type: ignore[assignment]
        energy = image.get_potential_energy()
        forces = image.get_forces()
        stress = image.get_stress(voigt=True)
    except Exception as error:  # ase raises many types (AssertionError, IndexError, ...)
        raise LabellingError(f"cannot parse pw.x output: {error!r}", category=FAILURE_PARSE) from error
    if len(image) != len(reference) or not (np.isfinite(energy) and np.all(np.isfinite(forces))):
        message = "pw.x output has the wrong atom count or non-finite values"
        raise LabellingError(message, category=FAILURE_PARSE)
    labelled = attach_labels(reference, energy=energy, forces=forces, stress=stress)
    version = _PW_VERSION.search(text)
    if version:
        # provenance: the build that made this label (the cache key holds the one asked for)
        labelled.info["qe_version"] = version.group(1)
    magmoms = parse_magnetic_moments(text, len(reference))
    if magmoms is not None and labelled.calc is not None:
        labelled.calc.results["magmoms"] = magmoms
        total = re.findall(r"total magnetization\s*=\s*([-+0-9.Ee]+)", text)
        if total:
            labelled.calc.results["magmom"] = float(total[-1])
    return labelled


# --------------------------------------------------------------------------- oracle


class QEOracle:
    """Quantum ESPRESSO pw.x: one SCF per structure, with an SCF recovery ladder.

    ``work_dir`` keeps each attempt's input and output (``attempt_N/``); without it a
    temporary folder is used and removed.
    """

    name = "qe"

    def __init__(self, settings: QESettings, work_dir: str | os.PathLike[str] | None = None) -> None:
        self.settings = settings
        self.work_dir = Path(work_dir) if work_dir is not None else None

    def settings_hash(self) -> str:
        """Hash of what changes a result: pseudo file contents, cutoffs, k-spacing, smearing, ..."""
        return hash_settings(self.settings.result_settings())

    def label(self, atoms: Atoms) -> Atoms:
        """Run pw.x, climbing the recovery ladder while the SCF does not converge.

        Returns a labelled copy whose ``info`` holds ``label_attempts`` and ``label_history``
        (JSON list of attempts). Raises :class:`LabellingError` with the history on failure.
        """
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            return self._climb(atoms, self.work_dir)
        with tempfile.TemporaryDirectory(prefix="pw-") as folder:
            return self._climb(atoms, Path(folder))

    def _climb(self, atoms: Atoms, work_dir: Path) -> Atoms:
        history: list[dict[str, Any]] = []
        changes: dict[str, Any] = {}
        rungs: list[Mapping[str, Any]] = [{}, *self.settings.recovery]
        for attempt, rung in enumerate(rungs, start=1):
            physics = sorted(key for key in rung if key in PHYSICS_RUNG_KEYS)
            if physics and not self.settings.recovery_allow_physics_changes:
                # the next rung would label this structure with another Hamiltonian than its
                # neighbours: leave it out of the training set (ledgered), unless opted in
                raise LabellingError(
                    f"SCF not converged in {attempt - 1} attempts; recovery rung {attempt - 1} changes "
                    f"the Hamiltonian ({', '.join(physics)}) and oracle.qe.recovery_allow_physics_changes "
                    "is false",
                    category=FAILURE_SCF,
                    history=history,
                )
            changes.update(rung)
            directory = work_dir / f"attempt_{attempt}"
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            try:
                inputs = pw_inputs(atoms, self.settings, changes)
                link_pseudopotentials(inputs, self.settings, directory)
                inputs.write(directory / INPUT_NAME)
            except (OSError, ValueError, KeyError) as error:  # a structure ASE cannot write for pw.x
                message = f"cannot write the pw.x input: {error}"
                raise LabellingError(message, category=FAILURE_CRASH) from error
            try:
                run = run_pw(self.settings.command, directory, self.settings.cores, self.settings.walltime_s)
                category, reason = classify_run(run, self.settings.walltime_s)
                labelled = parse_pw_output(directory / OUTPUT_NAME, atoms) if category is None else None
            except LabellingError as error:
                category, reason, labelled, run = error.category, str(error), None, None
            history.append(
                {
                    "attempt": attempt,
                    "changes": dict(rung),
                    "status": Status.OK if labelled is not None else category,
                    "reason": reason,
                    "seconds": round(run.seconds, 2) if run is not None else 0.0,
                }
            )
            if labelled is not None:
                # recovery_rung 0: the first attempt; k: the k-th rung of the ladder
                labelled.info.update(
                    label_attempts=attempt, recovery_rung=attempt - 1, label_history=json.dumps(history)
                )
                if changes:
                    labelled.info["label_recovery"] = json.dumps(changes, sort_keys=True)
                return labelled
            if category != FAILURE_SCF:
                raise LabellingError(reason, category=category or FAILURE_CRASH, history=history)
        raise LabellingError(
            f"SCF not converged in {len(rungs)} attempts (recovery ladder exhausted)",
            category=FAILURE_SCF,
            history=history,
        )


def make_qe_oracle(
    oracle_config: Mapping[str, Any],
    elements: Sequence[str],
    *,
    cores: int | None = None,
    mpi: str | None = None,
    work_dir: str | os.PathLike[str] | None = None,
) -> QEOracle:
    """Build the pw.x oracle from the ``oracle`` config section; ``cores`` overrides ``qe.cores``
    and ``mpi`` is the launcher that ``{mpi}`` in the command stands for. Callers use
    :func:`mlip_autopipe.oracles.oracle_from_config`."""
    qe = dict(oracle_config["qe"])
    if cores is not None:
        qe["cores"] = cores
    if mpi is not None:
        qe["mpi"] = mpi
    return QEOracle(resolve_settings(qe, elements), work_dir=work_dir)
