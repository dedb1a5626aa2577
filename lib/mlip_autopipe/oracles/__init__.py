"""Oracles: the reference methods that label structures, behind one protocol and one factory.

- :mod:`~mlip_autopipe.oracles.base`: the :class:`Oracle` protocol, :func:`hash_settings`, EMT;
- :mod:`~mlip_autopipe.oracles.qe`: Quantum ESPRESSO (pw.x) with its SCF recovery ladder;
- :mod:`~mlip_autopipe.oracles.surrogates`: MACE and CHGNet (pre-screening, distillation).

Every caller (labelling, validation, pre-screening, the surrogate pool, benchmarks) builds its
oracle with :func:`oracle_from_config` from the full validated configuration, so the run's
``elements`` (which pw.x needs to find pseudopotentials) can never be left out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from mlip_autopipe.errors import ConfigError
from mlip_autopipe.oracles.base import EMTOracle, Oracle, hash_settings
from mlip_autopipe.oracles.qe import make_qe_oracle, result_config
from mlip_autopipe.oracles.surrogates import SURROGATE_KINDS, make_surrogate

__all__ = ["EMTOracle", "Oracle", "hash_settings", "oracle_from_config", "result_config"]


def oracle_from_config(
    config: Mapping[str, Any],
    *,
    section: Literal["oracle", "surrogate"] = "oracle",
    cores: int | None = None,
    mpi: str | None = None,
    work_dir: str | os.PathLike[str] | None = None,
) -> Oracle:
    """The oracle that ``config[section]`` names, from a full validated configuration.

    ``section`` is ``oracle`` (the labelling reference: emt, qe, mace or chgnet) or
    ``surrogate`` (the cheap model of pre-screening and distillation: mace or chgnet).
    ``cores`` are pw.x's MPI ranks (over ``oracle.qe.cores``) or the surrogate's torch threads
    (one when not given); ``mpi`` is what ``{mpi}`` in the pw.x command stands for; pw.x runs
    in ``work_dir`` (a temporary folder when not given).
    """
    settings = config[section]
    kind = settings["kind"]
    if section == "oracle" and kind == "emt":
        return EMTOracle()
    if section == "oracle" and kind == "qe":
        return make_qe_oracle(settings, config["elements"], cores=cores, mpi=mpi, work_dir=work_dir)
    if kind in SURROGATE_KINDS:
        return make_surrogate(kind, settings[kind], threads=cores or 1, key=section)
    raise ConfigError(f"{section}.kind", f"unknown {section} '{kind}'")
