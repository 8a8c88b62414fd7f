# SPDX-License-Identifier: GPL-3.0-or-later
"""Vectorised triangle rasterisation: runs of cells per triangle and row, and one winner
per cell.

The texture engine rasterises twice: UV triangles onto texel centres (engine.texture's
`texels`) and world triangles onto a view's pixel centres (`view_uvs`). Both turn each
triangle into runs of cells, one per row it crosses (exact spans, computed with numpy
for all triangles at once, so no cell of a bounding box is tested in vain), expand the
runs into cells in batches, and keep one triangle per cell.

Cell (row i, column j) has its centre at (j + 0.5, i + 0.5) in grid coordinates.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Runs", "Cells", "triangle_runs", "box_runs", "cells_of", "lowest_claims", "best_per_cell",
           "barycentric_planes"]

# Cells expanded per batch: large enough that numpy's per-call overhead vanishes, small
# enough that a batch's temporaries (a dozen 8-byte arrays) stay around 100 MB.
BATCH_CELLS = 1 << 20


@dataclass(frozen=True, eq=False)
class Runs:
    """Horizontal runs of cells: run k covers columns start[k] <= j < stop[k] of row[k]
    for triangle[k]; the cells from inner_start[k] to inner_stop[k] lie inside the
    triangle by more than the margin (all int64 arrays)."""
    triangle: np.ndarray
    row: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    inner_start: np.ndarray
    inner_stop: np.ndarray


@dataclass(frozen=True, eq=False)
class Cells:
    """One batch of (triangle, cell) pairs: triangle, x (column), y (row) and inner (the
    cell is inside the triangle by more than the margin), N each."""
    triangle: np.ndarray
    x: np.ndarray
    y: np.ndarray
    inner: np.ndarray


def barycentric_planes(xy: np.ndarray) -> np.ndarray:
    """Tx3x3 (a, b, c) per corner k: its barycentric weight at grid point (x, y) is
    a x + b y + c (the three sum to 1). NaN for a triangle without area."""
    x, y = xy[..., 0].astype(np.float64), xy[..., 1].astype(np.float64)
    det = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(np.abs(det) > 1e-12, 1.0 / det, np.nan)
    planes = np.empty((len(xy), 3, 3))
    for k in range(3):
        # Corner k's weight is the signed area with the opposite edge, over the whole area.
        i, j = (k + 1) % 3, (k + 2) % 3
        planes[:, k, 0] = (y[:, i] - y[:, j]) * inverse
        planes[:, k, 1] = (x[:, j] - x[:, i]) * inverse
        planes[:, k, 2] = (x[:, i] * y[:, j] - x[:, j] * y[:, i]) * inverse
    return planes


def triangle_runs(xy: np.ndarray, width: int, height: int, margin: float) -> Runs:
    """The runs of cell centres inside each triangle (Tx3x2 grid coordinates), or within
    `margin` cells of it, clipped to the grid; in triangle order."""
    planes = barycentric_planes(xy)
    y0, y1, y2 = xy[:, 0, 1], xy[:, 1, 1], xy[:, 2, 1]
    with np.errstate(invalid="ignore"):
        first = np.clip(np.ceil(np.minimum(np.minimum(y0, y1), y2) - 0.5 - margin), 0, height)
        last = np.clip(np.floor(np.maximum(np.maximum(y0, y1), y2) - 0.5 + margin) + 1, 0, height)
    # Triangles with area that cross a row of centres (NaN planes: no area).
    usable = np.flatnonzero(np.isfinite(planes[:, 0, 0]) & (last > first))
    first = first[usable].astype(np.int64)
    rows = last[usable].astype(np.int64) - first
    triangle = np.repeat(usable, rows)
    row = np.repeat(first, rows) + (np.arange(triangle.size) - np.repeat(np.cumsum(rows) - rows, rows))
    # Per run, each corner's weight a x + (b y + c) must be >= -margin |(a, b)| (outer
    # span) or >= +margin |(a, b)| (inner span): a bound on x from each corner with a != 0.
    # (One flat array per corner: numpy reduces over a 3-wide axis far slower.)
    y = row + 0.5
    low = [np.full(row.size, -np.inf), np.full(row.size, -np.inf)]
    high = [np.full(row.size, np.inf), np.full(row.size, np.inf)]
    for k in range(3):
        a, b, c = (np.repeat(planes[usable, k, column], rows) for column in range(3))
        slack = margin * np.repeat(np.hypot(planes[usable, k, 0], planes[usable, k, 1]), rows)
        level = -(b * y + c)
        rising, falling, flat = a > 0, a < 0, a == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            for span, inset in ((0, -slack), (1, slack)):
                bound = (level + inset) / a
                np.maximum(low[span], bound, out=low[span], where=rising)
                np.minimum(high[span], bound, out=high[span], where=falling)
                # An edge parallel to the rows keeps the whole row or none of it.
                high[span][flat & (-level < inset)] = -np.inf
    spans = []
    for span in (0, 1):
        start = np.clip(np.ceil(low[span] - 0.5), 0, width)
        stop = np.maximum(np.clip(np.floor(high[span] - 0.5) + 1, 0, width), start)
        spans.append((start.astype(np.int64), stop.astype(np.int64)))
    (start, stop), (inner_start, inner_stop) = spans
    keep = stop > start
    return Runs(triangle[keep], row[keep], start[keep], stop[keep], inner_start[keep], inner_stop[keep])


def box_runs(triangle: np.ndarray, x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray) -> Runs:
    """The runs covering boxes (columns x0 <= x < x1, rows y0 <= y < y1, already clipped to
    the grid) for triangles whose picture has no straight edges; nothing counts as inner."""
    rows = np.where(x1 > x0, np.maximum(y1 - y0, 0), 0)
    owner = np.repeat(triangle, rows)
    row = np.repeat(y0, rows) + (np.arange(owner.size) - np.repeat(np.cumsum(rows) - rows, rows))
    start, stop = np.repeat(x0, rows), np.repeat(x1, rows)
    return Runs(owner, row, start, stop, start, start)


def cells_of(runs: Runs, batch: int | None = None) -> Iterator[Cells]:
    """Every cell of the runs, in batches of about `batch` cells (default BATCH_CELLS;
    whole runs, at least one per batch)."""
    batch = BATCH_CELLS if batch is None else batch
    lengths = runs.stop - runs.start
    ends = np.cumsum(lengths)
    first = 0
    while first < lengths.size:
        base = ends[first - 1] if first else 0
        last = max(int(np.searchsorted(ends, base + batch, side="right")), first + 1)
        counts = lengths[first:last]
        offset = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        x = np.repeat(runs.start[first:last], counts) + offset
        yield Cells(triangle=np.repeat(runs.triangle[first:last], counts), x=x,
                    y=np.repeat(runs.row[first:last], counts),
                    inner=(x >= np.repeat(runs.inner_start[first:last], counts))
                    & (x < np.repeat(runs.inner_stop[first:last], counts)))
        first = last


def lowest_claims(runs: Runs, width: int, height: int) -> tuple[np.ndarray, int]:
    """(HxW int32 the lowest-numbered triangle whose runs cover each cell, -1 for none;
    how many cells are inner to two triangles or more).

    Cells covered by one run (nearly all of a UV layout) are written as they come; only
    the cells runs share (found per row from the runs, before any cell is expanded) are
    sorted out.
    """
    owner = np.full(width * height, -1, dtype=np.int32)
    contested = np.zeros(width * height, dtype=bool)
    # Runs in row-major order: a run overlaps the ones before it in its row up to how far
    # they reach (keys keep rows apart: a row's keys all lie below the next row's).
    order = np.argsort(runs.row * (width + 1) + runs.start)
    row, start, stop = runs.row[order], runs.start[order], runs.stop[order]
    reach = np.maximum.accumulate(row * (width + 1) + stop)
    before = np.concatenate([[-1], reach[:-1]]) - row * (width + 1)
    shared = np.flatnonzero(np.minimum(stop, before) > start)
    if shared.size:
        shared_runs = Runs(order[shared], row[shared], start[shared], np.minimum(stop, before)[shared],
                           start[shared], start[shared])
        for cells in cells_of(shared_runs):
            contested[cells.y * width + cells.x] = True
    claims = []
    for cells in cells_of(runs):
        flat = cells.y * width + cells.x
        disputed = contested[flat]
        owner[flat[~disputed]] = cells.triangle[~disputed]
        if disputed.any():
            claims.append((flat[disputed], cells.triangle[disputed], cells.inner[disputed]))
    if not claims:
        return owner.reshape(height, width), 0
    flat, triangle, inner = (np.concatenate(parts) for parts in zip(*claims))
    winners, inner_claims = best_per_cell(flat, triangle, flags=inner)
    owner[flat[winners]] = triangle[winners]
    return owner.reshape(height, width), int((inner_claims > 1).sum())


def best_per_cell(cells: np.ndarray, scores: np.ndarray, flags: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The lowest-score candidate of each distinct cell.

    cells: N int flat cell indices; scores: N finite numbers; flags: optional N bools.
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
