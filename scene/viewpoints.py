# SPDX-License-Identifier: GPL-3.0-or-later
"""Where textures are painted from: the scene camera, the cameras of a collection, or an
orbit of temporary cameras around the selection.

Orbit cameras exist only while their views are captured (`cameras`): nothing is added to
the person's file. They frame the selection's bounding sphere in the render's aspect.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..engine.errors import DiffusionError
from .render import resolve_camera

__all__ = ["Viewpoint", "Cameras", "viewpoints", "cameras", "ORBIT_LENS"]

ORBIT_LENS = 50.0  # mm on a 36 mm sensor: about 40° across the wider side
_SENSOR = 36.0
_MARGIN = 1.08  # the bounding sphere fills a little less than the frame


@dataclass(frozen=True)
class Viewpoint:
    """One view: an existing camera object (`camera`), or a temporary camera with a world
    matrix (`matrix`, row-major 4x4) and a lens."""
    name: str
    camera: str = ""
    matrix: tuple[tuple[float, ...], ...] = ()
    lens: float = ORBIT_LENS
    clip_end: float = 1000.0


def viewpoints(scene: bpy.types.Scene, settings, objects: list[bpy.types.Object], width: int, height: int,
               frame: int) -> list[Viewpoint]:
    """The views `settings` (scene.scene_diffusion.texture) ask for, around `objects`."""
    if settings.views == 'CAMERA':
        return [Viewpoint(resolve_camera(scene, None, frame).name, camera=resolve_camera(scene, None, frame).name)]
    if settings.views == 'CAMERAS':
        collection = settings.camera_collection
        if collection is None:
            raise DiffusionError("No camera collection is picked",
                                 "pick the collection holding the cameras in the Texture panel, or use Orbit views")
        cameras = sorted((obj for obj in collection.all_objects if obj.type == 'CAMERA'), key=lambda obj: obj.name)
        if not cameras:
            raise DiffusionError(f"The collection '{collection.name}' holds no camera",
                                 "add cameras to it, or use Orbit views")
        return [Viewpoint(camera.name, camera=camera.name) for camera in cameras]
    return orbit(objects, settings.view_count, settings.elevation, settings.include_top, settings.include_bottom,
                 width, height)


def orbit(objects: list[bpy.types.Object], count: int, elevation: float, top: bool, bottom: bool,
          width: int, height: int) -> list[Viewpoint]:
    """`count` views around the objects' bounding sphere at `elevation`, the first from the
    front (-Y looking +Y), going counter-clockwise seen from above; then the top and bottom."""
    centre, radius = _bounding_sphere(objects)
    half_wide = math.atan(_SENSOR / 2.0 / ORBIT_LENS)
    half_narrow = math.atan(math.tan(half_wide) * min(width, height) / max(width, height))
    distance = radius * _MARGIN / math.sin(half_narrow)
    directions = [(f"Orbit {index + 1}/{count}",
                   (math.cos(elevation) * math.sin(2 * math.pi * index / count),
                    -math.cos(elevation) * math.cos(2 * math.pi * index / count), math.sin(elevation)))
                  for index in range(count)]
    if top:
        directions.append(("Top", (0.0, 0.0, 1.0)))
    if bottom:
        directions.append(("Bottom", (0.0, 0.0, -1.0)))
    views = []
    for name, direction in directions:
        position = Vector(centre) + Vector(direction) * distance
        if name == "Top":
            rotation = Matrix.Identity(4)  # a camera looks down its -Z, +Y up in the image
        elif name == "Bottom":
            rotation = Matrix.Rotation(math.pi, 4, 'X')
        else:
            rotation = (Vector(centre) - position).to_track_quat('-Z', 'Y').to_matrix().to_4x4()
        matrix = Matrix.Translation(position) @ rotation
        views.append(Viewpoint(name, matrix=tuple(tuple(row) for row in matrix),
                               clip_end=max(1000.0, 4.0 * (distance + radius))))
    return views


def _bounding_sphere(objects: list[bpy.types.Object]) -> tuple[tuple[float, float, float], float]:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    corners = []
    for obj in objects:
        evaluated = obj.evaluated_get(depsgraph)
        matrix = np.array(evaluated.matrix_world)
        box = np.array([corner[:] for corner in evaluated.bound_box])
        corners.append(box @ matrix[:3, :3].T + matrix[:3, 3])
    points = np.concatenate(corners)
    low, high = points.min(axis=0), points.max(axis=0)
    centre = (low + high) / 2.0
    radius = max(float(np.linalg.norm(points - centre, axis=1).max()), 1e-3)
    return tuple(float(value) for value in centre), radius


class Cameras:
    """The camera object of each viewpoint: the existing one, or for orbit views one
    temporary camera (in no scene) moved from view to view, removed when the block of
    `cameras()` ends. One object for every orbit view lets a capture session keep its
    scene data between renders (a new camera object each time makes Cycles start over)."""

    def __init__(self) -> None:
        self._temporary: bpy.types.Object | None = None

    def for_view(self, viewpoint: Viewpoint) -> bpy.types.Object:
        if viewpoint.camera:
            camera = bpy.data.objects.get(viewpoint.camera)
            if camera is None or camera.type != 'CAMERA':
                raise DiffusionError(f"The camera '{viewpoint.camera}' is gone", "capture again")
            return camera
        if self._temporary is None:
            data = bpy.data.cameras.new(".scene_diffusion_view")
            data.sensor_width, data.sensor_fit, data.clip_start = _SENSOR, 'AUTO', 0.01
            self._temporary = bpy.data.objects.new(".scene_diffusion_view", data)
        camera = self._temporary
        camera.data.lens, camera.data.clip_end = viewpoint.lens, viewpoint.clip_end
        camera.matrix_world = Matrix(viewpoint.matrix)
        return camera

    def remove(self) -> None:
        if self._temporary is not None:
            data = self._temporary.data
            bpy.data.objects.remove(self._temporary)
            bpy.data.cameras.remove(data)
            self._temporary = None


@contextlib.contextmanager
def cameras() -> Iterator[Cameras]:
    """Camera objects for viewpoints; the temporary one is removed when the block ends."""
    made = Cameras()
    try:
        yield made
    finally:
        made.remove()
