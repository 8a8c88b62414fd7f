# SPDX-License-Identifier: GPL-3.0-or-later
"""UV islands after the blend: fill the texels no view saw, pad every island outward.

`fill` extends each island's seen colours into its unseen texels (pull-push: averages
over ever coarser levels, brought back up smoothly), island by island so no colour
crosses into another island; `pad` then grows the islands into the empty texture around
them, so bilinear filtering and mipmaps find no black seams. Both work in place on a
copy; memory stays near one texture-sized colour array beyond input and output.
"""
from __future__ import annotations

import numpy as np

from .sampling import bilinear

__all__ = ["GREY", "fill", "pad"]

# What a texture shows where nothing was painted.
GREY = 0.5
# Texels interpolated per band of rows: bounds the temporaries to ~100 MB.
_CHUNK = 1 << 20


def fill(rgb: np.ndarray, covered: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """`rgb` with the texels inside islands but not `covered` filled from covered ones.

    Each island fills from its own covered texels (a pull-push over the island's box, so
    colours fade smoothly into the hole and no other island's colours leak in); islands
    no view covered then fill from their filled neighbours; with nothing covered at all,
    islands turn mid grey.
    """
    import cv2  # lazy: enabling the extension must not import OpenCV
    out = np.array(rgb, dtype=np.float32, copy=True)
    inside = np.asarray(inside, dtype=bool)
    known = inside & np.asarray(covered, dtype=bool)
    holes = inside & ~known
    if not holes.any():
        return out
    if not known.any():
        out[inside] = GREY
        return out
    _, labels, stats, _ = cv2.connectedComponentsWithStats(inside.astype(np.uint8), connectivity=8)
    unreached = np.zeros_like(inside)
    for label in np.unique(labels[holes]):
        left, top, width, height = stats[label, :4]
        box = (slice(top, top + height), slice(left, left + width))
        island = labels[box] == label
        sources = island & known[box]
        targets = island & holes[box]
        if sources.any():
            _fill_from(out[box], targets, _pull_push(out[box], sources))
        else:
            unreached[box] |= targets
    if unreached.any():
        # Islands no view saw borrow from the texture around them.
        _fill_from(out, unreached, _pull_push(out, inside & ~unreached))
    return out


def _pull_push(rgb: np.ndarray, known: np.ndarray) -> np.ndarray:
    """A smooth extension of `rgb`'s `known` texels (at least one) at half the size:
    (H+1)//2 x (W+1)//2 x 3 float32, complete.

    Pull: each level halves the size, averaging the known colours with their weights
    (capped at 1). Push: coming back up, each cell keeps its own colour as far as it was
    known and takes the coarser level's interpolated colour for the rest. The full-size
    level is only needed where nothing is known (`_fill_from`), so it is never built.
    """
    import cv2  # lazy: enabling the extension must not import OpenCV
    weight = _halve(known.astype(np.float32))
    colour = _normalised(_halve(rgb * known[..., None]), weight)
    weight = np.minimum(weight, 1.0)
    levels = [(colour, weight)]
    while weight.shape != (1, 1):
        sums = _halve(colour * weight[..., None])
        weight = _halve(weight)
        colour = _normalised(sums, weight)
        weight = np.minimum(weight, 1.0)
        levels.append((colour, weight))
    filled = levels[-1][0]
    for colour, weight in reversed(levels[:-1]):
        height, width = weight.shape
        coarse = cv2.resize(filled, (2 * filled.shape[1], 2 * filled.shape[0]), interpolation=cv2.INTER_LINEAR)
        coarse = coarse.reshape(coarse.shape[0], coarse.shape[1], -1)[:height, :width]
        filled = (weight[..., None] * colour + (1.0 - weight[..., None]) * coarse).astype(np.float32)
    return filled


def _fill_from(rgb: np.ndarray, targets: np.ndarray, half: np.ndarray) -> None:
    """Writes into `rgb`'s `targets` texels the half-size level `half` interpolated there,
    a band of rows at a time (targets can be most of an 8192 texture)."""
    band = max(_CHUNK // max(rgb.shape[1], 1), 1)
    for top in range(0, rgb.shape[0], band):
        rows, columns = np.nonzero(targets[top:top + band])
        # A full-size centre (j + 0.5, i + 0.5) lies at half those coordinates on the
        # half-size level: where cv2.resize's 2x bilinear would sample.
        at = np.stack([(columns + 0.5) / 2, (rows + top + 0.5) / 2], axis=1)
        rgb[top + rows, columns] = bilinear(half, at)


def _normalised(sums: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Colour sums over weights, 0 where nothing is known."""
    out = np.zeros(sums.shape, np.float32)
    return np.divide(sums, weight[..., None], out=out, where=weight[..., None] > 0)


def _halve(array: np.ndarray) -> np.ndarray:
    """Sum over 2x2 blocks (odd sizes padded with zeros)."""
    height, width = array.shape[:2]
    pad_rows, pad_columns = height % 2, width % 2
    if pad_rows or pad_columns:
        array = np.pad(array, [(0, pad_rows), (0, pad_columns)] + [(0, 0)] * (array.ndim - 2))
    return array[0::2, 0::2] + array[1::2, 0::2] + array[0::2, 1::2] + array[1::2, 1::2]


def pad(rgb: np.ndarray, inside: np.ndarray, pixels: int = 8) -> np.ndarray:
    """`rgb` with every island grown outward by at least `pixels` texels (nearest colour).

    Every texel within `pixels` of an island along rows, columns and diagonals (a square
    neighbourhood: what a mipmap level averages) takes the colour of the nearest island
    texel; island texels are left as they are.
    """
    import cv2  # lazy: enabling the extension must not import OpenCV
    out = np.array(rgb, dtype=np.float32, copy=True)
    inside = np.asarray(inside, dtype=bool)
    if pixels <= 0 or not inside.any() or inside.all():
        return out
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    margin = (cv2.dilate(inside.astype(np.uint8), kernel) > 0) & ~inside
    flat = out.reshape(-1, 3)
    flat[np.flatnonzero(margin)] = flat[_nearest(inside, margin)]
    return out


def _nearest(sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The flat index of the nearest `sources` texel to each `targets` texel (row-major)."""
    import cv2  # lazy: enabling the extension must not import OpenCV
    # DIST_LABEL_PIXEL numbers the zero pixels 1, 2, ... in row-major order.
    _, labels = cv2.distanceTransformWithLabels((~sources).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    return np.flatnonzero(sources)[labels[targets] - 1]
