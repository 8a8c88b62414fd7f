# SPDX-License-Identifier: GPL-3.0-or-later
"""Exact depth from the scene camera: the condition behind "Generate Image" with depth.

Method: the Cycles Depth pass at one sample, rendered through a temporary copy of the
scene (scene/render.py) and read from an uncompressed EXR (scene/exr.py). Kept over ray
casting because it is faster and sees exactly what a render sees (modifiers, instances,
curves, alpha cut-outs, ray visibility, view layers). Measured with
scripts/bench_depth.py at 512x512 on a 2-core CPU, median of 7, a cube, a 64x32 UV sphere
and a plane, bpy 5.0.1: Cycles 0.16 s (render 0.15 s, EXR read 4 ms); one merged
camera-space mathutils BVHTree with a `ray_cast` per pixel 0.50 s; `Scene.ray_cast` per
pixel 1.15 s. With a 330k-triangle mesh added: Cycles 0.49 s, BVHTree 1.7 s. bpy 4.2.0:
Cycles 0.12 s, BVHTree 0.53 s. The methods agree to 5e-5 in depth and exactly in coverage.
"""
from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..engine.errors import NothingInView
from .render import render_passes

__all__ = ["DepthCapture", "capture_depth", "geometry_mask"]

# Cycles writes 1e10 where a camera ray hits nothing.
_BACKGROUND_Z = 1e9


@dataclass(frozen=True, eq=False)
class DepthCapture:
    """Exact depth of one camera view.

    z: HxW float32, planar camera-space depth in scene units (distance along the view
        axis; for panoramic cameras the distance along the ray), +inf on background.
    mask: HxW bool, True where geometry was hit.
    near, far: smallest and largest z over the mask.
    Rows are top-down (row 0 = top of the image).
    """
    z: np.ndarray
    mask: np.ndarray
    camera: str
    camera_type: str  # 'PERSP', 'ORTHO' or 'PANO'
    near: float
    far: float
    frame: int
    seconds: float

    @property
    def width(self) -> int:
        return int(self.z.shape[1])

    @property
    def height(self) -> int:
        return int(self.z.shape[0])


def geometry_mask(z: np.ndarray, camera: str) -> np.ndarray:
    """HxW bool, True where a Z pass hit geometry; refuses a view with nothing in it."""
    mask = np.isfinite(z) & (z < _BACKGROUND_Z)
    if not mask.any():
        raise NothingInView(
            "Nothing is in the camera's view",
            f"point '{camera}' at visible objects: objects hidden from render, in "
            "excluded collections or beyond the camera's clip distances do not count")
    return mask


def capture_depth(
    scene: bpy.types.Scene,
    camera: bpy.types.Object | None = None,
    width: int | None = None,
    height: int | None = None,
    frame: int | None = None,
) -> DepthCapture:
    """The exact depth seen by `camera` (default: the scene camera) at `frame`.

    width, height: default the scene's output size (with its percentage).
    frame: default the current frame; the scene's current frame is never changed.
    Objects hidden from render, in excluded collections or invisible to camera rays are
    not in it. The scene is left exactly as it was, also when this raises.
    """
    rendered = render_passes(scene, ("z",), camera=camera, width=width, height=height, frame=frame)
    z = rendered.images["z"]
    mask = geometry_mask(z, rendered.camera)
    z = np.where(mask, z, np.float32(np.inf)).astype(np.float32)
    return DepthCapture(
        z=z, mask=mask, camera=rendered.camera, camera_type=rendered.camera_type,
        near=float(z[mask].min()), far=float(z[mask].max()), frame=rendered.frame,
        seconds=rendered.seconds)
