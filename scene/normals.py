# SPDX-License-Identifier: GPL-3.0-or-later
"""Camera-space normals: Cycles' Normal pass (world space) turned by the capture camera.

The Normal pass comes from the shared capture render (scene/render.py): the shading
normal of the first surface each pixel sees, bump and normal maps included, flipped by
Cycles to face the camera. It is in world space, so it is turned by the camera's
orientation at the capture's frame, read from the camera's view at that frame
(scene/camera.py, evaluated through scene/frames.py), because the render itself does not
report its camera.
engine.conditions.normal_to_control then draws it in the convention the normal
ControlNets expect.
"""
from __future__ import annotations

import numpy as np

__all__ = ["to_camera_space"]


def to_camera_space(normals: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """HxWx3 world-space normals -> camera space (x right, y up, z towards the viewer)."""
    # Row vectors: n_camera = R^T n_world, i.e. n_world @ R.
    return (np.asarray(normals, dtype=np.float64) @ rotation).astype(np.float32)
