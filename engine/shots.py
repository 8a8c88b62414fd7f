# SPDX-License-Identifier: GPL-3.0-or-later
"""Shots: the frame ranges between camera cuts. An animation is split for a farm one task per
shot, because inside a shot each frame grows from the one before it."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Shot", "shots_between"]


@dataclass(frozen=True)
class Shot:
    start: int
    end: int

    @property
    def frames(self) -> str:
        """As `--frames` takes it: 12 or 1-48."""
        return str(self.start) if self.start == self.end else f"{self.start}-{self.end}"


def shots_between(start: int, end: int, cuts: list[int]) -> list[Shot]:
    """start..end cut before every frame in `cuts` (camera markers); cuts outside (start, end]
    change nothing, so a scene without camera markers is one shot."""
    if end < start:
        raise ValueError(f"the range {start}-{end} ends before it starts")
    inside = sorted({cut for cut in cuts if start < cut <= end})
    bounds = [start, *inside, end + 1]
    return [Shot(first, following - 1) for first, following in zip(bounds, bounds[1:])]
