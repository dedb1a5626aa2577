"""Typed errors with messages a scientist can act on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class MlipAutopipeError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(MlipAutopipeError):
    """An invalid configuration value; ``key`` is its dotted path (``explore.gamma_lo``)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"config key '{key}': {message}")


class StructureError(MlipAutopipeError):
    """A structure (or a structure file) that cannot be used."""


class LabellingError(MlipAutopipeError):
    """An oracle (EMT, DFT, ...) could not label a structure.

    ``category`` classifies the failure for the ledger (``scf_not_converged``, ``walltime``,
    ``crash``, ...); ``history`` lists the attempts made, oldest first.
    """

    def __init__(
        self, message: str, *, category: str = "failed", history: Sequence[Mapping[str, Any]] = ()
    ) -> None:
        super().__init__(message)
        self.category = category
        self.history = [dict(attempt) for attempt in history]


class FitError(MlipAutopipeError):
    """The training data or the fit itself is unusable."""


class FitDiverged(FitError):
    """A fit whose loss or coefficients became NaN or infinite; ``reason`` says where."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ExplorationError(MlipAutopipeError):
    """Molecular dynamics exploration failed."""


class SelectionError(MlipAutopipeError):
    """The D-optimal selection of extrapolative environments could not run."""


class EmbeddingError(MlipAutopipeError):
    """An atom's environment cannot be reproduced in a small periodic cell."""


class ValidationError(MlipAutopipeError):
    """The final potential (or the oracle) cannot be validated on a cell."""


class ToolNotFoundError(MlipAutopipeError):
    """An external program (pw.x, pacemaker, pace_activeset, lmp) is not installed."""
