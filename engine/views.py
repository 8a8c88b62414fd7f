# SPDX-License-Identifier: GPL-3.0-or-later
"""A camera's view as plain numbers: project world points to pixels and back.

The one camera geometry of the add-on: scene/camera.py builds a CameraView from a Blender
camera at a frame (scene/frames.py), and poses, normals, texture projection and frame
warping use it. numpy only, so the engine's projection and warping math can use it too.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .errors import DiffusionError

__all__ = ["CameraView", "affine_inverse"]


@dataclass(frozen=True, eq=False)
class CameraView:
    """One camera's view at one frame and size: the geometry every capture, projection and
    warp shares. Pixels are continuous coordinates, x right and y down from the top-left
    corner of the image (pixel (i, j) covers [j, j+1) x [i, i+1), its centre at +0.5).

    world_from_camera: 4x4, the camera's matrix without scale (a scaled camera sees the
        same); camera space looks down -Z with +Y up and +X right, as in Blender.
    projection: 4x4, Blender's own projection matrix for this size (square pixels, lens
        shift and sensor fit included); unused for panoramic cameras.
    type: 'PERSP', 'ORTHO' or 'PANO'. Depth, as in DepthCapture.z: the planar distance
        along the view axis for PERSP and ORTHO, the distance along the ray for PANO.
    panorama: for PANO, (panorama type, longitude min, longitude max, latitude min,
        latitude max); only 'EQUIRECTANGULAR' projects.
    """
    name: str
    type: str
    width: int
    height: int
    world_from_camera: np.ndarray
    projection: np.ndarray
    clip_start: float
    clip_end: float
    frame: int
    panorama: tuple[str, float, float, float, float] | None = None

    @property
    def origin(self) -> np.ndarray:
        return self.world_from_camera[:3, 3].copy()

    @property
    def rotation(self) -> np.ndarray:
        """3x3 camera space -> world space (columns: right, up and backward in world space)."""
        return self.world_from_camera[:3, :3].copy()

    @functools.cached_property
    def camera_from_world(self) -> np.ndarray:
        """4x4, world space -> camera space: world_from_camera's inverse (made once, read-only:
        every warp band and reprojection asks for it)."""
        inverse = affine_inverse(self.world_from_camera)
        inverse.flags.writeable = False
        return inverse

    @property
    def forward(self) -> np.ndarray:
        """The unit view direction in world space (the camera's -Z)."""
        axis = -self.world_from_camera[:3, 2]
        return axis / np.linalg.norm(axis)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """Nx3 world points -> Nx3 camera-space points."""
        rotation, origin = self.world_from_camera[:3, :3], self.world_from_camera[:3, 3]
        return (np.asarray(points, dtype=np.float64) - origin) @ rotation

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """Nx3 camera-space points -> Nx3 world points."""
        return np.asarray(points, dtype=np.float64) @ self.world_from_camera[:3, :3].T + self.world_from_camera[:3, 3]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nx3 world points -> (Nx2 pixels, N depths). Points behind a perspective camera
        get NaN pixels; use `in_view` for what a render would show."""
        eye = self.to_camera(points)
        if self.type == 'PANO':
            return self._equirectangular(eye), np.linalg.norm(eye, axis=1)
        depth = -eye[:, 2]
        homogeneous = np.concatenate([eye, np.ones((len(eye), 1))], axis=1) @ self.projection.T
        with np.errstate(invalid="ignore", divide="ignore"):
            ndc = homogeneous[:, :2] / homogeneous[:, 3:4]
        if self.type == 'PERSP':
            ndc[depth <= 0] = np.nan
        pixels = np.stack([(ndc[:, 0] + 1.0) * 0.5 * self.width, (1.0 - ndc[:, 1]) * 0.5 * self.height], axis=1)
        return pixels, depth

    def unproject(self, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Nx2 pixels and their N depths -> Nx3 world points (the inverse of `project`)."""
        pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        depth = np.asarray(depth, dtype=np.float64).reshape(-1)
        if self.type == 'PANO':
            return self.to_world(self._equirectangular_rays(pixels) * depth[:, None])
        ndc_x = pixels[:, 0] / self.width * 2.0 - 1.0
        ndc_y = 1.0 - pixels[:, 1] / self.height * 2.0
        p = self.projection
        z = -depth
        w = p[3, 2] * z + p[3, 3]  # depth for a perspective camera, 1 for an orthographic one
        # Solve the projection's first two rows for x and y, z being known.
        right = np.stack([ndc_x * w - p[0, 2] * z - p[0, 3], ndc_y * w - p[1, 2] * z - p[1, 3]], axis=0)
        # By Cramer's rule: LAPACK's solve would wake OpenBLAS's threads (see affine_inverse).
        (a, b), (c, d) = p[:2, :2]
        determinant = a * d - b * c
        xy = np.stack([(d * right[0] - b * right[1]) / determinant, (a * right[1] - c * right[0]) / determinant])
        return self.to_world(np.stack([xy[0], xy[1], z], axis=1))

    def in_view(self, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """N bools: inside the image and within the clip range, as a render would show."""
        with np.errstate(invalid="ignore"):
            return ((depth >= self.clip_start) & (depth <= self.clip_end)
                    & (pixels[:, 0] >= 0) & (pixels[:, 0] < self.width)
                    & (pixels[:, 1] >= 0) & (pixels[:, 1] < self.height))

    def toward(self, point: np.ndarray) -> np.ndarray:
        """Unit direction from a world point to the camera (parallel rays for orthographic)."""
        if self.type == 'ORTHO':
            return -self.forward
        direction = self.origin - np.asarray(point, dtype=np.float64)
        return direction / max(float(np.linalg.norm(direction)), 1e-12)

    def _range(self) -> tuple[float, float, float, float]:
        kind, lon_min, lon_max, lat_min, lat_max = self.panorama
        if kind != 'EQUIRECTANGULAR':
            raise DiffusionError(f"The camera '{self.name}' is a {kind.replace('_', ' ').lower()} panorama",
                                 "use an equirectangular panoramic camera, or a perspective one")
        return lon_min, lon_max, lat_min, lat_max

    def _equirectangular(self, eye: np.ndarray) -> np.ndarray:
        # Cycles' equirectangular camera: longitude grows to the right of the view axis,
        # latitude upwards; the ranges map linearly onto the image.
        lon_min, lon_max, lat_min, lat_max = self._range()
        with np.errstate(invalid="ignore", divide="ignore"):
            longitude = np.arctan2(eye[:, 0], -eye[:, 2])
            latitude = np.arcsin(np.clip(eye[:, 1] / np.linalg.norm(eye, axis=1), -1.0, 1.0))
        u = (longitude - lon_min) / (lon_max - lon_min)
        v = (latitude - lat_min) / (lat_max - lat_min)
        return np.stack([u * self.width, (1.0 - v) * self.height], axis=1)

    def _equirectangular_rays(self, pixels: np.ndarray) -> np.ndarray:
        lon_min, lon_max, lat_min, lat_max = self._range()
        longitude = lon_min + pixels[:, 0] / self.width * (lon_max - lon_min)
        latitude = lat_min + (1.0 - pixels[:, 1] / self.height) * (lat_max - lat_min)
        return np.stack([np.cos(latitude) * np.sin(longitude), np.sin(latitude),
                         -np.cos(latitude) * np.cos(longitude)], axis=1)


def affine_inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 4x4 affine matrix (last row 0 0 0 1), from its 3x3 part's adjugate.

    Not np.linalg.inv: LAPACK's inverse, even of a 4x4, wakes OpenBLAS's threads, which then
    spin for about 0.1 s beside whatever runs next (measured: 25-45 ms of system time and
    thousands of preemptions per animation frame, whose warp inverts a camera matrix)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    rows = matrix[:3, :3]
    # The inverse's columns are the cross products of the rows' pairs, over the determinant.
    adjugate = np.stack([np.cross(rows[1], rows[2]), np.cross(rows[2], rows[0]), np.cross(rows[0], rows[1])], axis=1)
    linear = adjugate / float((rows[0] * adjugate[:, 0]).sum())
    inverse = np.eye(4)
    inverse[:3, :3] = linear
    inverse[:3, 3] = -(linear * matrix[:3, 3]).sum(axis=1)
    return inverse
