"""A diverged nonlinear fit (NaN/inf loss or coefficients) is classified, ledgered and stops with
one line naming the generation and the fix; nothing computed before is touched.

pacemaker's BFGS does not diverge on demand (NaN data are refused up front, huge weights are
normalised away), so its real output files are corrupted the way a divergence writes them:
``nan`` in the loss column of ``metrics.txt``, ``nan`` among the potential's coefficients.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from conftest import NONLINEAR_FIT_SETTINGS, structures_section
from mlip_autopipe import fit, nonlinear_fit
from mlip_autopipe.errors import FitDiverged
from mlip_autopipe.labelling import label_candidate
from mlip_autopipe.oracles import EMTOracle
from mlip_autopipe.structures import build_pool

ELEMENTS = ["Cu", "Ni"]
SETTINGS: dict[str, Any] = dict(
    NONLINEAR_FIT_SETTINGS, functions_per_element=8, maxiter=4, warm_start_maxiter=4
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    structures = structures_section(
        lattice="fcc",
        supercell=[2, 2, 2],
        compositions=[{"Cu": 0.5, "Ni": 0.5}],
        cells_per_composition=1,
        strains=[-0.02],
        rattle_amplitudes=[0.05],
    )
    images = [label_candidate(atoms, EMTOracle()) for atoms in build_pool(structures, seed=11)]
    return {"train": images, "references": fit.reference_energies(images, ELEMENTS)}


@pytest.fixture(scope="module")
def good_fit(data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, finite pacemaker fit: its folder (metrics.txt, output_potential.yaml, ...)."""
    workdir = tmp_path_factory.mktemp("good fit")
    nonlinear_fit.fit_nonlinear(data["train"], ELEMENTS, SETTINGS, data["references"], workdir, threads=1)
    return workdir


def corrupted_copy(good_fit: Path, destination: Path, file: str, old: str, new: str) -> Path:
    shutil.copytree(good_fit, destination)
    path = destination / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return destination


def test_a_finite_fit_is_not_diverged(good_fit: Path) -> None:
    history = nonlinear_fit.read_loss_history(good_fit)
    assert len(history) >= 2
    assert nonlinear_fit.divergence(good_fit, good_fit / "output_potential.yaml") is None


def test_nan_loss_in_real_metrics_is_a_divergence(good_fit: Path, tmp_path: Path) -> None:
    iteration, loss = nonlinear_fit.read_loss_history(good_fit)[1]
    copy = corrupted_copy(good_fit, tmp_path / "nan loss", "metrics.txt", repr(loss), "nan")
    assert nonlinear_fit.divergence(copy) == f"loss nan at iteration {iteration}"


def test_infinite_loss_is_a_divergence(good_fit: Path, tmp_path: Path) -> None:
    iteration, loss = nonlinear_fit.read_loss_history(good_fit)[-1]
    copy = corrupted_copy(good_fit, tmp_path / "inf loss", "metrics.txt", repr(loss), "inf")
    assert nonlinear_fit.divergence(copy) == f"loss inf at iteration {iteration}"


def test_nan_coefficient_in_the_real_potential_is_a_divergence(good_fit: Path, tmp_path: Path) -> None:
    potential = "output_potential.yaml"
    copy = corrupted_copy(good_fit, tmp_path / "nan coefficient", potential, " c: [", " c: [nan, ")
    reason = nonlinear_fit.divergence(copy, copy / "output_potential.yaml")
    assert reason is not None and reason.startswith("non-finite value in output_potential.yaml at ")
    assert reason.endswith(".c.0"), reason  # the first function's first coefficient


def diverging_pacemaker(folder: Path) -> Path:
    """The real pacemaker, after which the loss from iteration 2 on reads ``nan`` (as a divergence
    writes it) while pacemaker's exit code is kept."""
    folder.mkdir()
    wrapper = folder / "pacemaker"
    real = fit.pacemaker_tool("pacemaker")
    wrapper.write_text(
        "#!/bin/sh\n"
        f'"{real}" "$@"\n'
        "status=$?\n"
        "awk 'NR > 1 && $3 >= 2 { $4 = \"nan\" } { print }' metrics.txt > metrics.new\n"
        "mv metrics.new metrics.txt\n"
        "exit $status\n"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_diverged_warm_start_stops_with_the_generation_and_keeps_the_previous_potential(
    data: dict[str, Any], good_fit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = tmp_path / "gen_002" / "potential.yaml"
    previous.parent.mkdir()
    shutil.copy(good_fit / "output_potential.yaml", previous)
    before = digest(previous)
    wrapper = diverging_pacemaker(tmp_path / "tools")
    monkeypatch.setattr(nonlinear_fit, "pacemaker_tool", lambda name: str(wrapper))

    workdir = tmp_path / "gen_003"
    with pytest.raises(FitDiverged) as raised:
        nonlinear_fit.fit_nonlinear(
            data["train"], ELEMENTS, SETTINGS, data["references"], workdir,
            threads=1, initial_potential=previous, generation=3,
        )  # fmt: skip
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("generation 3: pacemaker fit diverged (loss nan at iteration 2)")
    assert "fit.l2_coefficient" in message
    assert digest(previous) == before  # the previous generation's potential is untouched

    record = nonlinear_fit.fit_failure_record(3, raised.value, workdir)
    assert record["category"] == "fit_diverged" and record["reason"] == "loss nan at iteration 2"
    assert record["loss_history"][2] == [2, "nan"] and record["loss_history"][0][1] != "nan"
