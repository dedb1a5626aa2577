"""Selection of extrapolative MD frames for the next generation's labelling."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import zip_longest

from ase import Atoms

from mlip_autopipe.data import unique_by_uid


def _priority(frame: Atoms, gamma_hi: float) -> tuple[int, float]:
    """Trustworthy frames (max gamma <= gamma_hi) by descending gamma, then wilder ones ascending."""
    gamma = float(frame.info["max_gamma"])
    return (0, -gamma) if gamma <= gamma_hi else (1, gamma)


def select_by_gamma(frames: Sequence[Atoms], cap: int, gamma_hi: float) -> list[Atoms]:
    """Pick up to ``cap`` frames, taking turns between MD runs so one run cannot fill the cap.

    Within a run, frames still inside ``gamma_hi`` come first, highest gamma first; frames
    past ``gamma_hi`` (where a run halted, possibly unphysical) are a fallback.
    """
    by_run: dict[str, list[Atoms]] = defaultdict(list)
    for frame in unique_by_uid(frames):
        by_run[str(frame.info.get("run", ""))].append(frame)
    ranked = [sorted(group, key=lambda f: _priority(f, gamma_hi)) for group in by_run.values()]
    ranked.sort(key=lambda group: _priority(group[0], gamma_hi))
    interleaved = [frame for turn in zip_longest(*ranked) for frame in turn if frame is not None]
    return interleaved[:cap]
