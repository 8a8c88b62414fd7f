# SPDX-License-Identifier: GPL-3.0-or-later
"""The scene camera: the output size it is rendered at, and its geometry (`CameraView`)."""
from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..engine.errors import DiffusionError
from ..engine.inputs import MAX_SIZE, MIN_SIZE
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

    @classmethod
    def from_evaluated(cls, camera: bpy.types.Object, depsgraph: bpy.types.Depsgraph, width: int, height: int,
                       frame: int, name: str | None = None) -> CameraView:
        """The view of an evaluated camera object (see scene/frames.py) at width x height."""
        data = camera.data
        panorama = None
        if data.type == 'PANO':
            panorama = (data.panorama_type, data.longitude_min, data.longitude_max,
                        data.latitude_min, data.latitude_max)
        projection = camera.calc_matrix_camera(depsgraph, x=width, y=height, scale_x=1.0, scale_y=1.0)
        return cls(name=name or camera.name, type=data.type, width=int(width), height=int(height),
                   world_from_camera=np.array(camera.matrix_world.normalized(), dtype=np.float64),
                   projection=np.array(projection, dtype=np.float64),
                   clip_start=float(data.clip_start), clip_end=float(data.clip_end), frame=int(frame),
                   panorama=panorama)

    @property
    def origin(self) -> np.ndarray:
        return self.world_from_camera[:3, 3].copy()

    @property
    def rotation(self) -> np.ndarray:
        """3x3 camera space -> world space (columns: right, up and backward in world space)."""
        return self.world_from_camera[:3, :3].copy()

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
        xy = np.linalg.solve(p[:2, :2], right)
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


def camera_view(scene: bpy.types.Scene, camera: bpy.types.Object | None = None, width: int | None = None,
                height: int | None = None, frame: int | None = None) -> CameraView:
    """The view of `camera` (default: the scene camera at `frame`, following camera markers)
    at `frame` (default: the current one), changing nothing; the size defaults to the
    scene's output size (with its percentage)."""
    frame = scene.frame_current if frame is None else int(frame)
    camera = resolve_camera(scene, camera, frame)
    width, height = capture_size(scene, width, height)
    with evaluated_at(scene, frame, [camera]) as evaluated:
        return CameraView.from_evaluated(evaluated.object(camera), evaluated.depsgraph, width, height, frame,
                                         name=camera.name)
