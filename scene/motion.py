# SPDX-License-Identifier: GPL-3.0-or-later
"""A frame's geometry for the animation warp (engine.warp.FrameGeometry): its camera view,
Z pass and motion vectors, from one Cycles render of the Z and Vector passes at that frame.

Cycles' Vector pass, checked with renders of known motion on bpy 5.0.1 (an object moved
by known, unequal amounts before and after the frame in front of a still camera; a
camera turning and rising over a still wall; tests/scene/test_motion.py): four channels
in pixels, with y pointing up the image (Blender's rows run bottom-up):
- X, Y: where the surface point was at frame N-1 minus where it is now (to the previous);
- Z, W: where it is now minus where it will be at frame N+1 (minus the motion to the next).
In engine.warp's top-down pixels: to_previous = (X, -Y), to_next = (-Z, W). They agree
with the analytic displacement to ~2e-5 px for perspective and equirectangular cameras,
and are 0 on the background. Motion blur settings change nothing (render.py renders with
motion blur off, and Blender then takes exactly frames N-1 and N+1; shutter 0.3 and
position START gave the same vectors).

Orthographic cameras: when the camera moves towards either neighbouring frame, Cycles
projects both directions' positions with a perspective projection (intern/cycles/scene/
camera.cpp builds `perspective_pre` and `perspective_post` from `projection_perspective(
fov_pre/post, ...)` for every camera that is not a panorama, once the camera moves at all):
measured, vectors off by up to 7 px for a 4 px motion, and those of the still side too.
An orthographic camera's vectors are therefore kept only when its view is the same at
frames N-1, N and N+1 (then moving objects come out exact: 8.0 px for one unit at 8 px
per unit); otherwise they are left out and engine.warp reprojects with the camera's own
motion (exact for everything that did not move).

Vectors that hold nothing but the camera's motion (nothing seen moves) are marked so
(engine.warp.with_stillness): between two such frames the warp tests its taps by depth
alone, as for a still scene, and leaves out the vectors' round trip (the same answer,
with less work).
"""
from __future__ import annotations

import bpy
import numpy as np

from ..engine.views import CameraView
from ..engine.visibility import BACKGROUND_DEPTH
from ..engine.warp import FrameGeometry, with_stillness
from .camera import camera_view
from .render import render_passes, resolve_camera

__all__ = ["frame_geometry"]


def frame_geometry(scene: bpy.types.Scene, frame: int, width: int, height: int,
                   camera: bpy.types.Object | None = None, motion: bool = True) -> FrameGeometry:
    """The view, Z pass and (with `motion`) motion vectors of `scene` at `frame` seen by
    `camera` (default: the scene camera at that frame, following camera markers), at
    width x height, changing nothing in the file.

    The depth is +inf on the background; the vectors are in engine.warp's convention
    (pixels, x right, y down; see above). An orthographic camera that moves next to
    `frame` gets none: Cycles' are wrong for it.
    """
    frame = int(frame)
    camera = resolve_camera(scene, camera, frame)
    view = camera_view(scene, camera, width, height, frame)
    rendered = render_passes(scene, ("z", "vector") if motion else ("z",), camera=camera, width=width,
                             height=height, frame=frame)
    return geometry_of(scene, camera, view, rendered.images["z"], rendered.images.get("vector"))


def geometry_of(scene: bpy.types.Scene, camera: bpy.types.Object, view: CameraView, z: np.ndarray,
                vector: np.ndarray | None) -> FrameGeometry:
    """A FrameGeometry from a capture's own Z pass and Vector pass (None: no motion), e.g.
    scene.conditions.capture_view(..., motion=True): conditions and geometry of a frame
    from one render."""
    depth = np.where(z < BACKGROUND_DEPTH, z, np.inf).astype(np.float32)
    if vector is None:
        return FrameGeometry(view, depth)
    to_previous = np.stack([vector[..., 0], -vector[..., 1]], axis=-1).astype(np.float32)
    to_next = np.stack([-vector[..., 2], vector[..., 3]], axis=-1).astype(np.float32)
    before, after = (camera_view(scene, camera, view.width, view.height, neighbour)
                     for neighbour in (view.frame - 1, view.frame + 1))
    if view.type == 'ORTHO' and not (_same_view(view, before) and _same_view(view, after)):
        return FrameGeometry(view, depth)
    # Kept, and marked where they hold nothing but the camera's motion (the warp then
    # reprojects instead, faster): a camera moving through a still scene.
    return with_stillness(FrameGeometry(view, depth, to_previous, to_next), before, after)


def _same_view(view: CameraView, other: CameraView) -> bool:
    return (np.allclose(view.world_from_camera, other.world_from_camera, rtol=0.0, atol=1e-6)
            and np.allclose(view.projection, other.projection, rtol=1e-6, atol=1e-9))
