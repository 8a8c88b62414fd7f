# SPDX-License-Identifier: GPL-3.0-or-later
"""The scene as 360° panoramas around a point, in the World's own mapping.

A temporary Cycles panoramic camera (equirectangular, the whole sphere) at the scene
camera's position, or at a chosen object's, turned (90°, 0°, −90°): it renders exactly the
mapping of the World's Environment Texture (engine/panorama.py): the image centre looks
towards +X, u = 0.25 towards +Y, the top row +Z. (FACTS.md's (90°, 0°, 90°) gives the
mapping turned by 180°: checked by rendering a World made from a panorama capture,
tests/e2e/test_backgrounds.py.) Its captures are
condition panoramas that line up with a World made from them.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator

import bpy
from mathutils import Euler, Matrix

from ..engine.errors import DiffusionError, NothingInView
from .conditions import CaptureOptions, ViewCapture, capture_view
from .frames import evaluated_at
from .render import resolve_camera

__all__ = ["PANORAMA_KINDS", "WORLD_ROTATION", "capture_panorama", "origin_of", "panorama_camera"]

# The rotation that gives the Environment Texture's mapping.
WORLD_ROTATION = (math.radians(90.0), 0.0, math.radians(-90.0))
# Condition kinds a panorama can be captured as: OpenPose projects through a perspective
# or orthographic camera only (scene/pose.py).
PANORAMA_KINDS = ("depth", "canny", "normal", "segmentation", "lineart")


def origin_of(scene: bpy.types.Scene, origin: bpy.types.Object | None, frame: int) -> tuple[float, float, float]:
    """Where the panorama is seen from at `frame`: `origin`'s world position, else the scene
    camera's (following camera markers), evaluated at the frame without changing it."""
    target = origin if origin is not None else resolve_camera(scene, None, frame)
    with evaluated_at(scene, frame, [target]) as evaluated:
        return tuple(evaluated.object(target).matrix_world.translation)


@contextlib.contextmanager
def panorama_camera(position: Iterable[float], clip_start: float = 0.01, clip_end: float = 1000.0
                    ) -> Iterator[bpy.types.Object]:
    """A temporary full-sphere equirectangular camera at `position` (in no scene: a capture
    renders it through its own scene copy), removed when the block ends."""
    data = bpy.data.cameras.new(".scene_diffusion_panorama")
    data.type = 'PANO'
    if hasattr(data, "panorama_type"):
        data.panorama_type = 'EQUIRECTANGULAR'
        data.longitude_min, data.longitude_max = -math.pi, math.pi
        data.latitude_min, data.latitude_max = -math.pi / 2, math.pi / 2
    else:  # Blender 4.x keeps the panorama settings in Cycles' camera settings
        data.cycles.panorama_type = 'EQUIRECTANGULAR'
        data.cycles.longitude_min, data.cycles.longitude_max = -math.pi, math.pi
        data.cycles.latitude_min, data.cycles.latitude_max = -math.pi / 2, math.pi / 2
    data.clip_start, data.clip_end = clip_start, clip_end
    camera = bpy.data.objects.new(".scene_diffusion_panorama", data)
    camera.matrix_world = Matrix.Translation(tuple(position)) @ Euler(WORLD_ROTATION, 'XYZ').to_matrix().to_4x4()
    try:
        yield camera
    finally:
        bpy.data.objects.remove(camera)
        bpy.data.cameras.remove(data)


def capture_panorama(scene: bpy.types.Scene, kinds: Iterable[str], width: int, frame: int,
                     origin: bpy.types.Object | None = None, options: CaptureOptions | None = None,
                     objects: bool = False) -> ViewCapture | None:
    """The `kinds` (any of PANORAMA_KINDS) of the scene around the origin as width x width/2
    panoramas, or None when nothing is around (no geometry in any direction); with `objects`,
    which object each pixel sees too."""
    kinds = set(kinds)
    unknown = kinds - set(PANORAMA_KINDS)
    if unknown:
        raise DiffusionError(f"{', '.join(sorted(unknown))} cannot be captured as a panorama",
                             f"use {', '.join(PANORAMA_KINDS)}")
    if width % 2:
        raise DiffusionError(f"A panorama {width} pixels wide has no whole half for its height",
                             "use an even width")
    camera = scene.camera if origin is None else None
    clip_start = camera.data.clip_start if camera is not None else 0.01
    clip_end = max(camera.data.clip_end if camera is not None else 1000.0, 1000.0)
    with panorama_camera(origin_of(scene, origin, frame), clip_start, clip_end) as pano:
        try:
            return capture_view(scene, kinds, pano, width, width // 2, frame, options or CaptureOptions(),
                                depth=True, objects=objects)
        except NothingInView:
            return None
