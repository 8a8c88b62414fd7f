# SPDX-License-Identifier: GPL-3.0-or-later
"""Bilinear sampling, exact in float arithmetic: images at continuous pixel coordinates
(engine.views' convention, pixel centres at +0.5) and textures at UVs.

cv2.remap would be faster but quantises its weights to 1/32 of a pixel: a texel would
not take the colour of the exact point it projects to.
"""
from __future__ import annotations

import numpy as np

__all__ = ["bilinear", "sample_repeating"]


def bilinear(image: np.ndarray, at: np.ndarray) -> np.ndarray:
    """NxC float32: HxWxC `image` at N continuous pixel coordinates (centres at +0.5),
    the border pixels extended outward."""
    if image.shape[0] < 2 or image.shape[1] < 2:
        image = np.pad(image, [(0, max(2 - image.shape[0], 0)), (0, max(2 - image.shape[1], 0)), (0, 0)], mode="edge")
    height, width = image.shape[:2]
    # float32 (the projection's own precision): subtracting 0.5 and the integer part is exact.
    x = np.clip(at[:, 0].astype(np.float32) - np.float32(0.5), 0.0, width - 1)
    y = np.clip(at[:, 1].astype(np.float32) - np.float32(0.5), 0.0, height - 1)
    # The last row and column interpolate from the one before (with a weight of 1).
    x0 = np.minimum(x.astype(np.int64), width - 2)
    y0 = np.minimum(y.astype(np.int64), height - 2)
    fx = (x - x0.astype(np.float32))[:, None]
    fy = (y - y0.astype(np.float32))[:, None]
    flat = image.reshape(-1, image.shape[2])
    corner = y0 * width + x0
    top_left, top_right = np.take(flat, corner, axis=0), np.take(flat, corner + 1, axis=0)
    corner += width
    bottom_left, bottom_right = np.take(flat, corner, axis=0), np.take(flat, corner + 1, axis=0)
    top = top_left + (top_right - top_left) * fx
    bottom = bottom_left + (bottom_right - bottom_left) * fx
    return (top + (bottom - top) * fy).astype(np.float32, copy=False)


def sample_repeating(texture: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """Bilinear samples of a texture at UVs, wrapping around its edges (Blender's REPEAT)."""
    height, width = texture.shape[:2]
    x = uvs[:, 0].astype(np.float64) * width - 0.5
    y = (1.0 - uvs[:, 1].astype(np.float64)) * height - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx = (x - x0)[:, None].astype(np.float32)
    fy = (y - y0)[:, None].astype(np.float32)
    x0 = x0.astype(np.int64) % width
    y0 = y0.astype(np.int64) % height
    x1, y1 = (x0 + 1) % width, (y0 + 1) % height
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return top * (1 - fy) + bottom * fy
