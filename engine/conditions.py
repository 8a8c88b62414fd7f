# SPDX-License-Identifier: GPL-3.0-or-later
"""Turning captured scene data into ControlNet condition images (pure numpy + OpenCV, no bpy)."""
from __future__ import annotations

import numpy as np

from .errors import DiffusionError

__all__ = [
    "FAR_FLOOR", "NORMAL_BACKGROUND", "depth_to_control", "normal_to_control", "normals_to_bae",
    "edges_from_passes", "lines_to_control",
]

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
    z = np.asarray(z)  # float32 passes stay float32; the visible depths are taken as float64
    mask = np.asarray(mask, dtype=bool)
    if z.ndim != 2 or mask.shape != z.shape:
        raise ValueError(f"z and mask must be HxW arrays of one shape, got {z.shape} and {mask.shape}")
    mask = mask & np.isfinite(z)
    if (near is not None and near <= 0) or (far is not None and far <= 0):
        raise DiffusionError("Depth near and far must be positive", "set them above zero")
    if near is not None and far is not None and near >= far:
        raise DiffusionError(
            f"Depth near ({near:g}) must be less than far ({far:g})", "swap or widen them")
    image = np.zeros(z.shape, np.uint8)
    if mask.any():
        visible = z[mask].astype(np.float64)
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
        # Only the geometry's pixels are worked out (background stays 0, black).
        image[mask] = np.rint((FAR_FLOOR + (1.0 - FAR_FLOOR) * np.clip(nearness, 0.0, 1.0)) * 255.0)
    return np.repeat(image[:, :, None], 3, axis=2)


# --- Normal maps ---------------------------------------------------------------------------
#
# The convention: control_v11p_sd15_normalbae (ControlNet 1.1, and the normal ControlNets
# trained on the same annotator since) learned from the maps of Bae et al.'s ScanNet
# estimator as controlnet_aux's NormalBaeDetector writes them: RGB = trunc((n + 1) / 2 * 255)
# with n a unit normal in a camera frame whose first axis points to the image's LEFT, the
# second to its TOP, the third towards the viewer. So a surface facing the camera is
# (127, 127, 255) (blue-violet), one facing right (0, 127, 127), left (255, 127, 127), up
# (127, 255, 127), down (127, 0, 127). Checked against two independent uses of that model:
# Dream Textures' normal map for it (OpenGL view-space normal with red flipped, cleared to
# (0.5, 0.5, 1)) and a "convert_normal2bae" helper ("OpenGL convention (red - right, green
# - up, blue - front) to BAE convention (red - left, green - up, blue - front)"); the
# estimator's training loader flips exactly the red component on horizontal flips.
# ControlNet 1.0's control_sd15_normal used another one (normals from MiDaS depth gradients,
# fed in BGR order): not supported.
# Background: a flat surface facing the camera, as ControlNet 1.0's annotator set its
# background normals to (0, 0, 1) and Dream Textures clears to (0.5, 0.5, 1): the models
# read it as "nothing in particular", where black would be a normal pointing away.

NORMAL_BACKGROUND = (127, 127, 255)


def normals_to_bae(normals: np.ndarray) -> np.ndarray:
    """Camera-space normals (x right, y up, z towards the viewer: Blender's camera axes)
    -> the BAE frame the normal ControlNets read (x left, y up, z towards the viewer)."""
    bae = np.array(normals, dtype=np.float32, copy=True)
    bae[..., 0] *= -1.0
    return bae


def normal_to_control(normals: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A normal ControlNet image (BAE convention above), background NORMAL_BACKGROUND.

    normals: HxWx3 float, camera space with Blender's camera axes (x right, y up, z towards
        the viewer); need not be unit length (renormalised; zero-length counts as background).
    mask: HxW bool, True = geometry.
    Returns HxWx3 uint8.
    """
    normals = np.asarray(normals, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if normals.ndim != 3 or normals.shape[2] != 3 or mask.shape != normals.shape[:2]:
        raise ValueError(f"normals must be HxWx3 and mask HxW, got {normals.shape} and {mask.shape}")
    length = np.linalg.norm(normals, axis=2)
    valid = mask & np.isfinite(length) & (length > 1e-6)
    unit = normals / np.where(valid, length, 1.0)[..., None]
    encoded = ((normals_to_bae(unit) + 1.0) * 0.5).clip(0.0, 1.0) * 255.0
    image = np.empty(normals.shape, np.uint8)
    image[...] = NORMAL_BACKGROUND
    # Truncation, not rounding: the detector's `astype(np.uint8)`, so flat areas match it.
    image[valid] = encoded[valid].astype(np.uint8)
    return image


# --- Edges -----------------------------------------------------------------------------------

def edges_from_passes(
    z: np.ndarray,
    mask: np.ndarray,
    normals: np.ndarray,
    low: float = 100.0,
    high: float = 200.0,
) -> np.ndarray:
    """A Canny ControlNet image (white edges on black) of the scene's exact passes.

    cv2.Canny runs on a 4-channel 8-bit picture of the geometry: the normal map (normal
    changes: creases, silhouettes against the black background) and the depth condition
    (near bright: steps in depth where a surface passes in front of another with the same
    facing). A multi-channel image gives Canny's gradient from the channel that changes
    most at each pixel, so low/high mean what they mean on a photo (A1111's 100/200 default):
    a step of about low/4 grey levels in one channel starts an edge. Unlike a one-sample
    render this has no lighting noise, and flat shading is what we want edges of.

    z: HxW camera depth (any value off the mask); mask: HxW bool; normals: HxWx3 camera space.
    Returns HxWx3 uint8 (0 or 255).
    """
    import cv2  # opencv-python-headless: a dependency installed with the others

    if not 0 <= low <= high:
        raise DiffusionError(f"Canny thresholds low {low:g} and high {high:g} are out of order",
                             "set low to at most high (100 and 200 are the usual values)")
    mask = np.asarray(mask, dtype=bool)
    normal = normal_to_control(normals, mask)
    normal[~mask] = 0  # the background stands apart from every facing (no unit normal encodes to black)
    depth = depth_to_control(z, mask)[..., :1]
    source = np.ascontiguousarray(np.concatenate([normal, depth], axis=2))
    edges = cv2.Canny(source, float(low), float(high))
    return np.repeat(edges[:, :, None], 3, axis=2)


# --- Line art --------------------------------------------------------------------------------

def lines_to_control(coverage: np.ndarray) -> np.ndarray:
    """A line art ControlNet image: white lines on black, as controlnet_aux's line art
    detectors return them (they invert their sketch, black on white, at the end).

    coverage: HxW float, 0 = no line, 1 = line (Freestyle's alpha: anti-aliased).
    Returns HxWx3 uint8.
    """
    coverage = np.asarray(coverage, dtype=np.float32)
    if coverage.ndim != 2:
        raise ValueError(f"coverage must be HxW, got {coverage.shape}")
    grey = np.rint(np.nan_to_num(coverage).clip(0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)
