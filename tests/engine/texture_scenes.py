# SPDX-License-Identifier: GPL-3.0-or-later
"""Analytic scenes for the texture engine's tests: cameras, meshes and Z passes.

Everything a test compares against is computed here from first principles (a pinhole's
focal length in pixels, ray-plane and ray-box intersections), never through
engine.views.CameraView's own projection, so a wrong projection cannot agree with itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.texture import Surface
from engine.views import CameraView

BACKGROUND = 1e10  # what Cycles writes where a ray hits nothing


@dataclass(frozen=True)
class Pinhole:
    """A camera as a photographer sets it: where it stands, what it looks at, its lens.

    lens and sensor in mm with Blender's AUTO sensor fit (the sensor spans the wider side);
    ortho_scale > 0 makes it orthographic (the wider side spans ortho_scale world units).
    """
    eye: tuple[float, float, float]
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    width: int = 128
    height: int = 128
    lens: float = 50.0
    sensor: float = 36.0
    ortho_scale: float = 0.0
    near: float = 0.1
    far: float = 100.0

    @property
    def rotation(self) -> np.ndarray:
        """Columns: right, up, backward (camera space -> world)."""
        forward = np.subtract(self.target, self.eye).astype(np.float64)
        forward /= np.linalg.norm(forward)
        up = np.array([0.0, 0.0, 1.0]) if abs(forward[2]) < 0.999 else np.array([0.0, 1.0, 0.0])
        right = np.cross(forward, up)
        right /= np.linalg.norm(right)
        return np.stack([right, np.cross(right, forward), -forward], axis=1)

    @property
    def focal_pixels(self) -> float:
        """Pixels per unit of x/depth (perspective) or per world unit (orthographic)."""
        wide = max(self.width, self.height)
        return wide / self.ortho_scale if self.ortho_scale else wide * self.lens / self.sensor

    def view(self) -> CameraView:
        """The CameraView with the projection matrix Blender builds for this camera."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.rotation
        matrix[:3, 3] = self.eye
        p = np.zeros((4, 4))
        # NDC spans 2 over the image: x_ndc = 2 * focal_pixels * x / (width * depth).
        p[0, 0] = 2.0 * self.focal_pixels / self.width
        p[1, 1] = 2.0 * self.focal_pixels / self.height
        if self.ortho_scale:
            p[2, 2] = -2.0 / (self.far - self.near)
            p[2, 3] = -(self.far + self.near) / (self.far - self.near)
            p[3, 3] = 1.0
        else:
            p[2, 2] = -(self.far + self.near) / (self.far - self.near)
            p[2, 3] = -2.0 * self.far * self.near / (self.far - self.near)
            p[3, 2] = -1.0
        return CameraView(name="test", type='ORTHO' if self.ortho_scale else 'PERSP', width=self.width,
                          height=self.height, world_from_camera=matrix, projection=p, clip_start=self.near,
                          clip_end=self.far, frame=1)

    def pixel(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Nx2 continuous pixel coordinates, N planar depths) of world points."""
        eye = (np.asarray(points, np.float64) - self.eye) @ self.rotation
        depth = -eye[:, 2]
        scale = self.focal_pixels / (1.0 if self.ortho_scale else depth)
        x = self.width / 2 + eye[:, 0] * scale
        y = self.height / 2 - eye[:, 1] * scale
        return np.stack([x, y], axis=1), depth

    def rays(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(origins, directions) in world space: origin + d * direction is the point at
        planar depth d seen at each pixel."""
        pixels = np.asarray(pixels, np.float64).reshape(-1, 2)
        x = (pixels[:, 0] - self.width / 2) / self.focal_pixels
        y = -(pixels[:, 1] - self.height / 2) / self.focal_pixels
        if self.ortho_scale:
            origins = self.eye + np.stack([x, y, np.zeros_like(x)], axis=1) @ self.rotation.T
            return origins, np.broadcast_to(-self.rotation[:, 2], origins.shape)
        directions = np.stack([x, y, -np.ones_like(x)], axis=1) @ self.rotation.T
        return np.broadcast_to(np.asarray(self.eye, np.float64), directions.shape), directions

    def centres(self) -> np.ndarray:
        """HWx2 pixel centres, row by row."""
        rows, columns = np.mgrid[0:self.height, 0:self.width]
        return np.stack([columns.ravel() + 0.5, rows.ravel() + 0.5], axis=1)


@dataclass(frozen=True)
class Panorama:
    """An equirectangular camera at `eye`, unrotated (looking down -Z, +Y up), over the
    given longitude and latitude ranges (radians): longitude grows to the right of the
    view axis, latitude upwards, both linearly across the image (Cycles' convention, as
    docs and FACTS.md state it). Depth is the distance along the ray."""
    eye: tuple[float, float, float]
    width: int = 192
    height: int = 112
    longitude: tuple[float, float] = (-1.0, 1.0)
    latitude: tuple[float, float] = (-0.6, 0.6)

    def view(self) -> CameraView:
        matrix = np.eye(4)
        matrix[:3, 3] = self.eye
        return CameraView(name="pano", type='PANO', width=self.width, height=self.height,
                          world_from_camera=matrix, projection=np.eye(4), clip_start=0.1, clip_end=100.0,
                          frame=1, panorama=('EQUIRECTANGULAR', *self.longitude, *self.latitude))

    def pixel(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.asarray(points, np.float64) - self.eye
        distance = np.linalg.norm(d, axis=1)
        longitude = np.arctan2(d[:, 0], -d[:, 2])
        latitude = np.arcsin(d[:, 1] / distance)
        u = (longitude - self.longitude[0]) / (self.longitude[1] - self.longitude[0])
        v = (latitude - self.latitude[0]) / (self.latitude[1] - self.latitude[0])
        return np.stack([u * self.width, (1.0 - v) * self.height], axis=1), distance

    def rays(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pixels = np.asarray(pixels, np.float64).reshape(-1, 2)
        longitude = self.longitude[0] + pixels[:, 0] / self.width * (self.longitude[1] - self.longitude[0])
        latitude = self.latitude[0] + (1.0 - pixels[:, 1] / self.height) * (self.latitude[1] - self.latitude[0])
        directions = np.stack([np.cos(latitude) * np.sin(longitude), np.sin(latitude),
                               -np.cos(latitude) * np.cos(longitude)], axis=1)
        return np.broadcast_to(np.asarray(self.eye, np.float64), directions.shape), directions

    def centres(self) -> np.ndarray:
        rows, columns = np.mgrid[0:self.height, 0:self.width]
        return np.stack([columns.ravel() + 0.5, rows.ravel() + 0.5], axis=1)


@dataclass(frozen=True)
class Rectangle:
    """A flat rectangle: points origin + s * side_u + t * side_v for s, t in 0..1, its UVs
    uv0 + (s, t) * uv_size."""
    origin: tuple[float, float, float]
    side_u: tuple[float, float, float]
    side_v: tuple[float, float, float]
    uv0: tuple[float, float] = (0.0, 0.0)
    uv_size: tuple[float, float] = (1.0, 1.0)

    @property
    def normal(self) -> np.ndarray:
        n = np.cross(self.side_u, self.side_v)
        return n / np.linalg.norm(n)

    def point(self, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        s, t = np.asarray(s, np.float64)[..., None], np.asarray(t, np.float64)[..., None]
        return np.asarray(self.origin) + s * np.asarray(self.side_u) + t * np.asarray(self.side_v)

    def st_of_uv(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ((uv[..., 0] - self.uv0[0]) / self.uv_size[0], (uv[..., 1] - self.uv0[1]) / self.uv_size[1])

    def hit(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(depth, s, t) where each ray meets the rectangle's plane; depth inf off the rectangle."""
        normal = self.normal
        with np.errstate(divide="ignore", invalid="ignore"):
            d = ((np.asarray(self.origin) - origins) @ normal) / (directions @ normal)
        point = origins + d[:, None] * directions - np.asarray(self.origin)
        # Solve point = s * side_u + t * side_v in the plane (least squares is exact here).
        basis = np.stack([self.side_u, self.side_v], axis=1)
        st = np.linalg.lstsq(basis, point.T, rcond=None)[0]
        on = (d > 0) & (st[0] >= 0) & (st[0] <= 1) & (st[1] >= 0) & (st[1] <= 1)
        return np.where(on, d, np.inf), st[0], st[1]

    def triangles(self, divisions: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(corners, normals, uvs) of the rectangle cut into divisions^2 squares of two
        triangles each."""
        steps = np.linspace(0.0, 1.0, divisions + 1)
        corners, uvs = [], []
        for a in range(divisions):
            for b in range(divisions):
                s0, s1, t0, t1 = steps[a], steps[a + 1], steps[b], steps[b + 1]
                for tri in (((s0, t0), (s1, t0), (s1, t1)), ((s0, t0), (s1, t1), (s0, t1))):
                    corners.append([self.point(s, t) for s, t in tri])
                    uvs.append([(self.uv0[0] + s * self.uv_size[0], self.uv0[1] + t * self.uv_size[1])
                                for s, t in tri])
        corners = np.array(corners, np.float64)
        return corners, np.broadcast_to(self.normal, corners.shape).copy(), np.array(uvs, np.float64)

    def surface(self, name: str = "quad", divisions: int = 1) -> Surface:
        corners, normals, uvs = self.triangles(divisions)
        return Surface(name=name, corners=corners, normals=normals, uvs=uvs)


def unit_quad(**uv) -> Rectangle:
    """The 2 x 2 square in the z = 0 plane facing +Z, its UVs the whole 0..1 square."""
    return Rectangle(origin=(-1.0, -1.0, 0.0), side_u=(2.0, 0.0, 0.0), side_v=(0.0, 2.0, 0.0), **uv)


def z_pass(camera: Pinhole | Panorama, rectangles: list[Rectangle]) -> np.ndarray:
    """HxW float32 depth (planar, or along the ray for a panorama) of the nearest rectangle
    at each pixel centre (BACKGROUND elsewhere)."""
    origins, directions = camera.rays(camera.centres())
    depth = np.full(len(origins), np.inf)
    for rectangle in rectangles:
        depth = np.minimum(depth, rectangle.hit(origins, directions)[0])
    depth[~np.isfinite(depth)] = BACKGROUND
    return depth.reshape(camera.height, camera.width).astype(np.float32)


def cube_faces(half: float = 1.0) -> list[Rectangle]:
    """The six faces of an axis-aligned cube, outward normals, UVs in a 3 x 2 grid of cells
    (a small gap between cells): +X, -X, +Y in the top row, -Y, +Z, -Z below."""
    h = half
    faces = [
        ((h, -h, -h), (0, 2 * h, 0), (0, 0, 2 * h)),     # +X
        ((-h, h, -h), (0, -2 * h, 0), (0, 0, 2 * h)),    # -X
        ((h, h, -h), (-2 * h, 0, 0), (0, 0, 2 * h)),     # +Y
        ((-h, -h, -h), (2 * h, 0, 0), (0, 0, 2 * h)),    # -Y
        ((-h, -h, h), (2 * h, 0, 0), (0, 2 * h, 0)),     # +Z
        ((-h, h, -h), (2 * h, 0, 0), (0, -2 * h, 0)),    # -Z
    ]
    cell, gap = 1.0 / 3.0, 0.02
    out = []
    for k, (origin, side_u, side_v) in enumerate(faces):
        column, row = k % 3, 1 - k // 3
        out.append(Rectangle(origin=origin, side_u=side_u, side_v=side_v,
                             uv0=(column * cell + gap, row * 0.5 + gap), uv_size=(cell - 2 * gap, 0.5 - 2 * gap)))
    return out


def merged(name: str, rectangles: list[Rectangle], divisions: int = 1) -> Surface:
    parts = [r.triangles(divisions) for r in rectangles]
    return Surface(name=name, corners=np.concatenate([p[0] for p in parts]),
                   normals=np.concatenate([p[1] for p in parts]), uvs=np.concatenate([p[2] for p in parts]))


def texel_uvs(size: int) -> np.ndarray:
    """size x size x 2: the UV at each texel centre (row 0 is the top, v near 1)."""
    rows, columns = np.mgrid[0:size, 0:size]
    return np.stack([(columns + 0.5) / size, 1.0 - (rows + 0.5) / size], axis=-1)
