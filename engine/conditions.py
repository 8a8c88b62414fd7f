# SPDX-License-Identifier: GPL-3.0-or-later
"""Turning captured scene data into ControlNet condition images (pure numpy, no bpy)."""
from __future__ import annotations

import numpy as np

from .errors import DiffusionError

__all__ = ["FAR_FLOOR", "depth_to_control"]

# Brightness of the farthest geometry (about 20/255). Background is 0: with a floor the
# farthest object still stands apart from the empty background instead of melting into it,
# as in the MiDaS maps the depth ControlNets were trained on, where distant things stay
# dark grey and only the sky is black.
FAR_FLOOR = 0.08


def depth_to_control(
    z: np.ndarray,
    mask: np.ndarray,
    near: float | None = None,
    far: float | None = None,
    inverse: bool = True,
) -> np.ndarray:
    """A depth ControlNet image: near bright, far dark, background black.

    z: HxW float, camera depth in scene units (any value where mask is False).
    mask: HxW bool, True = geometry.
    near, far: the depth mapped to white and to FAR_FLOOR; default the nearest and
        farthest geometry in view (the visible range). Geometry nearer than `near` is
        white, farther than `far` stays at FAR_FLOOR (never black).
    inverse: normalise 1/z (disparity, like the MiDaS estimator the depth ControlNets
        were trained on, which keeps the shape of near objects readable in deep scenes);
        False normalises z linearly.
    Returns HxWx3 uint8.
    """
    z = np.asarray(z, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if z.ndim != 2 or mask.shape != z.shape:
        raise ValueError(f"z and mask must be HxW arrays of one shape, got {z.shape} and {mask.shape}")
    mask = mask & np.isfinite(z)
    if (near is not None and near <= 0) or (far is not None and far <= 0):
        raise DiffusionError("Depth near and far must be positive", "set them above zero")
    if near is not None and far is not None and near >= far:
        raise DiffusionError(
            f"Depth near ({near:g}) must be less than far ({far:g})", "swap or widen them")
    out = np.zeros(z.shape, np.float64)
    if mask.any():
        visible = z[mask]
        # A default end follows the visible range but never crosses a given one.
        near = min(float(visible.min()), np.inf if far is None else far) if near is None else float(near)
        far = max(float(visible.max()), near) if far is None else float(far)
        if far <= near:
            # An empty range (one depth in view, or all of it beyond a fixed far):
            # what is at or before `near` is nearest, the rest farthest.
            nearness = (visible <= near).astype(np.float64)
        else:
            # A camera never sees depth <= 0; the tiny bound only keeps 1/z finite.
            depth = np.clip(visible, max(near, 1e-9), far)
            if inverse:
                nearness = (1.0 / depth - 1.0 / far) / (1.0 / max(near, 1e-9) - 1.0 / far)
            else:
                nearness = (far - depth) / (far - near)
        out[mask] = FAR_FLOOR + (1.0 - FAR_FLOOR) * np.clip(nearness, 0.0, 1.0)
    image = np.rint(out * 255.0).astype(np.uint8)
    return np.repeat(image[:, :, None], 3, axis=2)
