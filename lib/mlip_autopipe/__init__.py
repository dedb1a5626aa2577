"""MLIP-AutoPipe helper library: pure, typed functions on ``ase.Atoms``.

Nothing here imports Snakemake; every stage of the workflow is a function that
can be called and tested on its own.
"""

from mlip_autopipe.errors import (
    ConfigError,
    ExplorationError,
    FitError,
    LabellingError,
    MlipAutopipeError,
    StructureError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ExplorationError",
    "FitError",
    "LabellingError",
    "MlipAutopipeError",
    "StructureError",
    "__version__",
]
