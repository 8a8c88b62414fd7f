# SPDX-License-Identifier: GPL-3.0-or-later
"""The scene camera: the output size it is rendered at, and its view (engine.views.CameraView)
at a frame."""
from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..engine.errors import DiffusionError
from ..engine.inputs import MAX_SIZE, MIN_SIZE
from ..engine.views import CameraView
from .frames import evaluated_at
from .render import capture_size, resolve_camera


@dataclass(frozen=True)
class OutputSize:
    """The generation size: the render resolution (with its %), rounded to a multiple of 8."""
    width: int
    height: int
    render_width: int
    render_height: int

    @property
    def rounded(self) -> bool:
        return (self.width, self.height) != (self.render_width, self.render_height)

    def describe(self) -> str:
        if not self.rounded:
            return f"{self.width}×{self.height}"
        return (f"{self.width}×{self.height} (render size {self.render_width}×{self.render_height} "
                f"rounded to a multiple of 8)")


def round_to_8(value: int) -> int:
    return max(8, int(value / 8.0 + 0.5) * 8)  # half up, not banker's rounding


def output_size(scene: bpy.types.Scene) -> OutputSize:
    """The size to generate at, checked against what Stable Diffusion can do."""
    render = scene.render
    width = int(render.resolution_x * render.resolution_percentage / 100)
    height = int(render.resolution_y * render.resolution_percentage / 100)
    size = OutputSize(round_to_8(width), round_to_8(height), width, height)
    for name, value in (("width", size.width), ("height", size.height)):
        if value > MAX_SIZE:
            raise DiffusionError(f"The render {name} {value} px is over {MAX_SIZE} px",
                                 "lower the resolution or its % in Output Properties > Format")
        if value < MIN_SIZE:
            raise DiffusionError(f"The render {name} {value} px is under {MIN_SIZE} px",
                                 "raise the resolution or its % in Output Properties > Format")
    return size


# --- Camera geometry -------------------------------------------------------------------------

def view_of(camera: bpy.types.Object, depsgraph: bpy.types.Depsgraph, width: int, height: int, frame: int,
            name: str | None = None) -> CameraView:
    """The view of an evaluated camera object (see scene/frames.py) at width x height."""
    data = camera.data
    panorama = None
    if data.type == 'PANO':
        panorama = (data.panorama_type, data.longitude_min, data.longitude_max, data.latitude_min, data.latitude_max)
    # Square pixels, like every capture: the matrix Blender renders with at this size.
    projection = camera.calc_matrix_camera(depsgraph, x=width, y=height, scale_x=1.0, scale_y=1.0)
    return CameraView(name=name or camera.name, type=data.type, width=int(width), height=int(height),
                      world_from_camera=np.array(camera.matrix_world.normalized(), dtype=np.float64),
                      projection=np.array(projection, dtype=np.float64),
                      clip_start=float(data.clip_start), clip_end=float(data.clip_end), frame=int(frame),
                      panorama=panorama)


def camera_view(scene: bpy.types.Scene, camera: bpy.types.Object | None = None, width: int | None = None,
                height: int | None = None, frame: int | None = None) -> CameraView:
    """The view of `camera` (default: the scene camera at `frame`, following camera markers)
    at `frame` (default: the current one), changing nothing; the size defaults to the
    scene's output size (with its percentage)."""
    frame = scene.frame_current if frame is None else int(frame)
    camera = resolve_camera(scene, camera, frame)
    width, height = capture_size(scene, width, height)
    with evaluated_at(scene, frame, [camera]) as evaluated:
        return view_of(evaluated.object(camera), evaluated.depsgraph, width, height, frame, name=camera.name)
