# SPDX-License-Identifier: GPL-3.0-or-later
"""Deforum's 3D camera motion schedules turned into camera placements per frame, so a
Deforum move becomes an ordinary camera animation in Blender (keyed, editable), and the
exact warp follows it like any other camera move.

Deforum moves its camera each frame by `translation_x/y/z` and turns it by
`rotation_3d_x/y/z` degrees, in the camera's own axes, the translation scaled by 1/200
(its TRANSLATION_SCALE for 3D mode): here `scale` Blender units per Deforum unit, 0.005 by
default. Axes, in the camera's frame as Blender has it (it looks down its -Z, +Y up):
translation_x moves right, translation_y up, translation_z forward (into the picture);
rotation_3d_x tilts up, rotation_3d_y turns left, rotation_3d_z rolls counter-clockwise
(as seen through the camera). `fov_schedule` (degrees, the horizontal field of view)
becomes the lens; Deforum's 2D `zoom` is left out (it scales the picture, not the camera).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .schedules import parse_schedule

__all__ = ["MOTION_SCHEDULES", "CameraPlacement", "camera_path"]

MOTION_SCHEDULES = ("translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y",
                    "rotation_3d_z", "fov_schedule")
TRANSLATION_SCALE = 1.0 / 200.0


@dataclass(frozen=True)
class CameraPlacement:
    """world_from_camera: 4x4 (Blender's camera axes); lens in mm for a `sensor` mm wide sensor."""
    frame: int
    world_from_camera: np.ndarray
    lens: float


def _rotation(axis: int, degrees: float) -> np.ndarray:
    angle = math.radians(degrees)
    c, s = math.cos(angle), math.sin(angle)
    matrix = np.eye(3)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def camera_path(schedules: dict[str, str], frame_start: int, count: int, start: np.ndarray, seed: int = -1,
                scale: float = TRANSLATION_SCALE, sensor: float = 36.0) -> list[CameraPlacement]:
    """The camera at each of `count` frames from `frame_start`: the first at `start` (4x4
    world_from_camera), each next one moved and turned by the schedules' values at the
    frame before it (Deforum applies frame t's motion to reach frame t+1)."""
    values = {name: parse_schedule(schedules.get(name, "0:(0)") or "0:(0)", count, seed, name=name)
              for name in MOTION_SCHEDULES if name != "fov_schedule"}
    fov = parse_schedule(schedules.get("fov_schedule", "") or "0:(40)", count, seed, name="fov_schedule")
    placement = np.array(start, dtype=np.float64)
    path = []
    for t in range(count):
        lens = sensor / 2.0 / math.tan(math.radians(min(max(fov[t], 1.0), 170.0)) / 2.0)
        path.append(CameraPlacement(frame_start + t, placement.copy(), lens))
        # In camera axes: right +x, up +y, forward -z.
        move = np.array([values["translation_x"][t], values["translation_y"][t], -values["translation_z"][t]]) * scale
        turn = (_rotation(0, values["rotation_3d_x"][t]) @ _rotation(1, values["rotation_3d_y"][t])
                @ _rotation(2, values["rotation_3d_z"][t]))
        step = np.eye(4)
        step[:3, :3], step[:3, 3] = turn, move
        placement = placement @ step
    return path
