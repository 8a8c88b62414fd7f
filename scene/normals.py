# SPDX-License-Identifier: GPL-3.0-or-later
"""Camera-space normals: Cycles' Normal pass (world space) turned by the capture camera.

The Normal pass comes from the shared capture render (scene/render.py): the shading
normal of the first surface each pixel sees, bump and normal maps included, flipped by
Cycles to face the camera. It is in world space, so it is turned by the camera's
orientation at the capture's frame. That orientation is read from the evaluated camera at
that frame the way scene/pose.py evaluates one (a temporary stand-in at another frame,
animated values put back), because the render itself does not report its camera.
engine.conditions.normal_to_control then draws it in the convention the normal
ControlNets expect.
"""
from __future__ import annotations

import bpy
import numpy as np

from .pose import _evaluated, _view_layer  # one frame-N evaluation path for the whole add-on

__all__ = ["camera_rotation", "to_camera_space"]


def camera_rotation(scene: bpy.types.Scene, camera: bpy.types.Object, frame: int) -> np.ndarray:
    """3x3 rotation from camera space to world space of `camera` evaluated at `frame`
    (columns: the camera's right, up and backward axes in world space). Changes nothing."""
    with _evaluated(scene, _view_layer(scene), frame, [camera], [], geometry=False) as evaluated:
        evaluated_camera = evaluated.stand_ins[camera].evaluated_get(evaluated.depsgraph)
        # normalized(): a scaled camera sees the same; only its orientation turns normals.
        matrix = evaluated_camera.matrix_world.normalized()
        return np.array(matrix.to_3x3(), dtype=np.float64)


def to_camera_space(normals: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """HxWx3 world-space normals -> camera space (x right, y up, z towards the viewer)."""
    # Row vectors: n_camera = R^T n_world, i.e. n_world @ R.
    return (np.asarray(normals, dtype=np.float64) @ rotation).astype(np.float32)
