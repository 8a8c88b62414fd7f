# SPDX-License-Identifier: GPL-3.0-or-later
"""Vectorised triangle rasterisation: candidate cells in batches, and one winner per cell.

The texture engine rasterises twice: UV triangles onto texel centres (engine.texture's
`texels`) and world triangles onto a view's pixel centres (`view_uvs`). Both enumerate the
cells of each triangle's bounding box with numpy, test them, and keep one triangle per
cell; what differs (the inside test, the score) stays with the caller.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

__all__ = ["Candidates", "box_candidates", "best_per_cell"]

# Cells tested per batch: large enough that numpy's per-call overhead vanishes, small
# enough that a batch's temporaries (a dozen float64 arrays) stay around 100 MB.
BATCH_CELLS = 1 << 20


@dataclass(frozen=True, eq=False)
class Candidates:
    """One batch of (triangle, cell) pairs to test.

    triangle: N int64, the triangle's index; x, y: N int64, the cell's column and row.
    """
    triangle: np.ndarray
    x: np.ndarray
    y: np.ndarray


def box_candidates(x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray,
                   batch: int | None = None) -> Iterator[Candidates]:
    """Every cell (x, y) with x0 <= x < x1 and y0 <= y < y1 of each triangle's box (T int
    arrays, already clipped to the grid), in batches of at most `batch` cells (default
    BATCH_CELLS; a box larger than a batch is cut into bands of rows)."""
    batch = BATCH_CELLS if batch is None else batch
    x0, x1, y0, y1 = (np.asarray(a, dtype=np.int64) for a in (x0, x1, y0, y1))
    widths = np.maximum(x1 - x0, 0)
    heights = np.where(widths > 0, np.maximum(y1 - y0, 0), 0)
    keep = np.flatnonzero(heights > 0)
    if keep.size == 0:
        return
    widths, heights, x0, y0 = widths[keep], heights[keep], x0[keep], y0[keep]
    # Bands of rows so that no item exceeds a batch (a whole-texture triangle is 67M texels at 8192).
    band_rows = np.maximum(batch // widths, 1)
    bands = -(-heights // band_rows)
    item_triangle = np.repeat(keep, bands)
    item_band = np.arange(item_triangle.size) - np.repeat(np.cumsum(bands) - bands, bands)
    item_rows = np.repeat(band_rows, bands)
    item_y0 = np.repeat(y0, bands) + item_band * item_rows
    item_height = np.minimum(item_rows, np.repeat(y0 + heights, bands) - item_y0)
    item_width = np.repeat(widths, bands)
    item_x0 = np.repeat(x0, bands)
    sizes = item_width * item_height
    ends = np.cumsum(sizes)
    start = 0
    while start < sizes.size:
        # Greedy: as many whole items as fit in one batch (always at least one).
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + batch, side="right")), start + 1)
        counts = sizes[start:stop]
        local = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        width = np.repeat(item_width[start:stop], counts)
        yield Candidates(triangle=np.repeat(item_triangle[start:stop], counts),
                         x=np.repeat(item_x0[start:stop], counts) + local % width,
                         y=np.repeat(item_y0[start:stop], counts) + local // width)
        start = stop


def best_per_cell(cells: np.ndarray, scores: np.ndarray, flags: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The lowest-score candidate of each distinct cell.

    cells: N int flat cell indices; scores: N floats; flags: optional N bools.
    Returns (indices into the candidates of each cell's winner, how many flagged
    candidates each of those cells had; without flags, how many candidates).
    """
    if cells.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # One unstable sort on the cells (a stable or multi-key sort is several times slower),
    # then the minimum of each run of equal cells.
    order = np.argsort(cells)
    sorted_cells = cells[order]
    first = np.ones(cells.size, dtype=bool)
    first[1:] = sorted_cells[1:] != sorted_cells[:-1]
    starts = np.flatnonzero(first)
    sizes = np.diff(np.append(starts, cells.size))
    sorted_scores = scores[order]
    lowest = np.minimum.reduceat(sorted_scores, starts)
    at_lowest = np.flatnonzero(sorted_scores == np.repeat(lowest, sizes))
    group = np.cumsum(first) - 1
    keep = np.ones(at_lowest.size, dtype=bool)
    keep[1:] = group[at_lowest[1:]] != group[at_lowest[:-1]]
    winners = order[at_lowest[keep]]
    if flags is None:
        return winners, sizes
    return winners, np.add.reduceat(flags[order].astype(np.int64), starts)
