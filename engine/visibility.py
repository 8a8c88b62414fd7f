# SPDX-License-Identifier: GPL-3.0-or-later
"""What a view sees: its pixel rays, the depth test against its Z pass, its silhouettes.

Texture projection (engine.texture) asks, for points on a surface, whether the view's Z
pass shows them; the UV view asks which surface each pixel's ray meets first. Both use
the rays of engine.views.CameraView and the same depth tolerance, kept here.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import DiffusionError
from .views import CameraView

__all__ = ["BACKGROUND_DEPTH", "Rays", "check_depth", "foreground", "matches_z_pass", "project_points",
           "silhouette_distance"]

# Cycles writes 1e10 where a ray hits nothing (scene/depth.py reads >= 1e9 as background).
BACKGROUND_DEPTH = 1e9
# A point matches the Z pass within this fraction of its depth (float32 passes and
# positions), plus SLOPE_PIXELS pixels' worth of its own surface's depth slope: it lies
# anywhere inside the pixel whose centre the Z pass sampled.
DEPTH_TOLERANCE = 1e-3
SLOPE_PIXELS = 1.0
# A pixel is a silhouette edge where inverse depth (affine in screen space on a plane)
# bends by more than this fraction of itself between neighbours.
SILHOUETTE_BEND = 0.02
# The silhouette distance of a view with no silhouette (finite: it is interpolated).
NO_SILHOUETTE = 1e6


@functools.lru_cache(maxsize=16)  # views hash by identity (eq=False): a view is kept while cached
def _rays_of(cls: type, view: CameraView) -> Rays:
    rays = cls._made(view)
    rays.start.flags.writeable = rays.step.flags.writeable = False
    return rays


@dataclass(frozen=True, eq=False)
class Rays:
    """A view's pixel rays: the point at depth d seen at pixel p is start(p) + d * step(p),
    d in the view's own depth convention (planar, or along the ray for a panorama).

    For perspective and orthographic views both are affine in p: kept as their value at
    pixel (0, 0) and their change per pixel right (dx) and down (dy), so no ray needs
    `CameraView.unproject`'s solve. Panoramas unproject each pixel.
    """
    view: CameraView
    affine: bool
    start: np.ndarray  # 3x3: at (0, 0), per pixel right, per pixel down (affine only)
    step: np.ndarray

    @classmethod
    def of(cls, view: CameraView) -> Rays:
        """The view's rays, made once per view (every warp band asks for them)."""
        return _rays_of(cls, view)

    @classmethod
    def _made(cls, view: CameraView) -> Rays:
        if view.type == 'PANO':
            return cls(view, False, np.zeros((3, 3)), np.zeros((3, 3)))
        start, step = _unprojected_rays(view, np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        return cls(view, True, np.stack([start[0], start[1] - start[0], start[2] - start[0]]),
                   np.stack([step[0], step[1] - step[0], step[2] - step[0]]))

    @property
    def fixed_start(self) -> bool:
        """Every ray starts at the same point (a perspective view's eye)."""
        return self.affine and not self.start[1:].any()

    def at(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(starts, Nx3 steps) at N continuous pixel coordinates; starts is Nx3, or one
        3-vector when every ray starts at the same point (`fixed_start`)."""
        if not self.affine:
            return _unprojected_rays(self.view, pixels)
        start = self.start[0] if self.fixed_start else self._affine(self.start, pixels)
        return start, self._affine(self.step, pixels)

    def depth_slope(self, points: np.ndarray, normals: np.ndarray, pixels: np.ndarray,
                    depth: np.ndarray) -> np.ndarray:
        """N: how much depth changes on each point's plane (unit normals) one pixel right
        plus one pixel down from where it is seen; inf where a neighbour ray misses it."""
        slope = np.zeros(len(points))
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.affine:
                # P - start(p) = d * step(p), so on the plane through P the neighbour ray
                # start(p) + change_start + d' (step(p) + change_step) meets it at this d'.
                along = np.einsum("nc,nc->n", normals, self._affine(self.step, pixels))
                for change in (1, 2):
                    # einsum, not @: a BLAS matrix-vector product may spread over busy cores.
                    beside = (depth * along - np.einsum("nc,c->n", normals, self.start[change])) / \
                        (along + np.einsum("nc,c->n", normals, self.step[change]))
                    slope += np.abs(beside - depth)
            else:
                for change in ((1.0, 0.0), (0.0, 1.0)):
                    start, step = _unprojected_rays(self.view, pixels + np.array(change))
                    beside = np.einsum("nc,nc->n", normals, points - start) / np.einsum("nc,nc->n", normals, step)
                    slope += np.abs(beside - depth)
        return np.nan_to_num(slope, nan=np.inf)

    @staticmethod
    def _affine(model: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        x, y = pixels[:, 0:1].astype(np.float64), pixels[:, 1:2].astype(np.float64)
        return model[0] + x * model[1] + y * model[2]


def project_points(view: CameraView, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`view.project` for millions of float32 texel positions: (Nx2 pixels, N depths).

    For perspective and orthographic views, one float32 product with the view's own
    matrices composed (four times faster than CameraView's float64 path, and as exact as
    the float32 positions); a panorama goes through CameraView itself.
    """
    if view.type == 'PANO':
        return view.project(points.astype(np.float64))
    camera_from_world = view.camera_from_world
    clip = (view.projection @ camera_from_world).astype(np.float32)
    homogeneous = points @ clip[:, :3].T + clip[:, 3]
    depth = -(points @ camera_from_world[2, :3].astype(np.float32) + np.float32(camera_from_world[2, 3]))
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (homogeneous[:, 0] / homogeneous[:, 3] + 1.0) * np.float32(0.5 * view.width)
        y = (1.0 - homogeneous[:, 1] / homogeneous[:, 3]) * np.float32(0.5 * view.height)
    return np.stack([x, y], axis=1), depth


def _unprojected_rays(view: CameraView, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    start = view.unproject(pixels, np.zeros(len(pixels)))
    return start, view.unproject(pixels, np.ones(len(pixels))) - start


def matches_z_pass(rays: Rays, depth_pass: np.ndarray, points: np.ndarray | Callable[[np.ndarray], np.ndarray],
                   normals: np.ndarray | Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, depth: np.ndarray,
                   slope_bound: np.ndarray | None = None) -> np.ndarray:
    """N bools: the points the Z pass shows. A point at `depth`, seen at `pixels`, on a
    plane with unit `normals`, matches when its depth equals the pass's at the pixel it
    falls in, within a tolerance that grows with its plane's depth slope (grazing
    surfaces), and is not background there.

    points, normals: Nx3, or functions giving the points' positions and normals at some
    indices (only the points the fixed tolerance leaves unsure need them). Points and depths may be float32:
    the fixed test needs no more; the slope is worked out in float64.
    """
    view = rays.view
    row = np.clip(pixels[:, 1].astype(np.int32), 0, view.height - 1)  # in view: >= 0, so truncation floors
    column = np.clip(pixels[:, 0].astype(np.int32), 0, view.width - 1)
    scene = depth_pass[row, column]
    gap = np.abs(depth - scene)
    matches = (scene < BACKGROUND_DEPTH) & (gap <= DEPTH_TOLERANCE * depth)
    # Only the points off by more than the fixed tolerance need their slope (grazing or
    # hidden), and of those only the ones the largest slope they could have would reach
    # (`slope_bound`: hidden points, most of them, are off by far more).
    unsure = ~matches & (scene < BACKGROUND_DEPTH)
    if slope_bound is not None:
        unsure &= gap <= DEPTH_TOLERANCE * depth + SLOPE_PIXELS * slope_bound
    unsure = np.flatnonzero(unsure)
    unsure_normals = normals(unsure) if callable(normals) else normals[unsure]
    unsure_depth = depth[unsure].astype(np.float64)
    unsure_points = points(unsure) if callable(points) else points[unsure]
    slope = rays.depth_slope(np.asarray(unsure_points, np.float64), np.asarray(unsure_normals, np.float64),
                             pixels[unsure], unsure_depth)
    matches[unsure] = gap[unsure] <= DEPTH_TOLERANCE * unsure_depth + SLOPE_PIXELS * slope
    return matches


def silhouette_distance(depth: np.ndarray) -> np.ndarray:
    """HxW float32: each pixel's distance (pixels, centre to centre) to the nearest
    silhouette pixel of a Z pass: background, or either side of a depth discontinuity."""
    import cv2  # lazy: enabling the extension must not import OpenCV
    background = ~foreground(depth)
    inverse = np.where(background, 0.0, 1.0 / np.where(background, 1.0, depth)).astype(np.float64)
    edge = background.copy()
    # Second differences of inverse depth: zero on planes, large across a jump. Only among
    # three surface pixels: against the background, the background pixel is the edge.
    surface = ~background
    bend_x = np.abs(inverse[:, :-2] - 2.0 * inverse[:, 1:-1] + inverse[:, 2:])
    edge[:, 1:-1] |= (bend_x > SILHOUETTE_BEND * inverse[:, 1:-1]) & surface[:, :-2] & surface[:, 2:]
    bend_y = np.abs(inverse[:-2] - 2.0 * inverse[1:-1] + inverse[2:])
    edge[1:-1] |= (bend_y > SILHOUETTE_BEND * inverse[1:-1]) & surface[:-2] & surface[2:]
    if not edge.any():
        return np.full(depth.shape, NO_SILHOUETTE, dtype=np.float32)
    return cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def foreground(depth: np.ndarray) -> np.ndarray:
    """HxW bools: the Z pass's pixels where a ray hit something (NaN and infinities fail
    one of the two comparisons)."""
    hit = np.greater(depth, 0)
    hit &= depth < BACKGROUND_DEPTH
    return hit


def check_depth(view: CameraView, depth: np.ndarray) -> np.ndarray:
    depth = np.asarray(depth)
    if depth.shape != (view.height, view.width):
        raise DiffusionError(f"The Z pass is {depth.shape}, the view '{view.name}' is {view.height} x {view.width}",
                             "capture the depth at the view's own size")
    return depth
