# SPDX-License-Identifier: GPL-3.0-or-later
"""Textures from views: where each texel lies, what each view sees of it, and the blend.

The math of texturing, bpy-free (scene/ turns Blender's evaluated meshes into `Surface`s
and writes the result back). One object's texture is made like this:

1. `texels(surface, size)`: the UV triangles are rasterised at texel centres; each texel
   inside an island gets its world position and normal (barycentric interpolation of its
   triangle's corners). Row 0 of every texture array is the top of the image (v = 1).
2. Per view, `project(texels, view, depth, settings)`: each texel's point is projected
   through the view's camera (engine.views.CameraView); it is visible when the depth it
   projects at matches the scene's own Z pass there (so anything in front of it, selected
   or not, hides it). Its weight is visibility x |cos θ|^p (θ between the surface normal
   and the direction to the camera) x a feather towards the view's silhouette edges and
   image border, and 0 past the discard angle. Its colour is the view image sampled
   bilinearly at the exact pixel it projects to: perspective-correct by construction.
3. `blend(...)`: per texel, the weighted mean of the views' colours, and the weight sum.
   `Accumulation` does the same one view at a time, so no view's arrays outlive its turn
   (a `Projection` keeps only the texels its view counts at).
4. `fill(...)`: texels inside islands that no view saw well are filled in UV space from
   the covered texels of their own island (pull-push), then `pad(...)` grows every island
   outward so bilinear filtering and mipmaps find no black seams (engine/islands.py).

For sequential texturing, `view_uvs(surfaces, view, depth)` tells, per pixel of a view,
which object and which UV it sees (the same rasterisation in screen space, perspective-
correct, depth-tested against the Z pass), so the texture so far can be shown from the
next view as its init image and its coverage as the inpainting mask (`render_texture`,
`inpaint_mask`).

Only the texture's 0..1 square is rasterised (no UDIM tiles). Both sides of a surface
count, as Blender renders them (|cos θ|): a back face seen directly, like a plane seen
from behind, is painted; one hidden behind its own object's front fails the depth test.

Helpers live beside this module: engine/raster.py (triangles to runs of cells, one
winner per cell), engine/visibility.py (pixel rays, the Z-pass depth test, silhouettes),
engine/sampling.py (exact bilinear sampling), engine/islands.py (fill and pad).
"""
from __future__ import annotations

import concurrent.futures
import functools
import math
import os
from dataclasses import dataclass, field

import numpy as np

from .errors import DiffusionError
from .islands import GREY, fill, pad
from .raster import (
    Runs,
    barycentric_planes,
    best_per_cell,
    box_runs,
    cells_of,
    lowest_claims,
    triangle_runs,
)
from .sampling import bilinear, sample_repeating
from .views import CameraView
from .visibility import Rays, check_depth, matches_z_pass, project_points, silhouette_distance

__all__ = [
    "Surface", "Texels", "WeightSettings", "Projection", "ViewUVs", "Accumulation",
    "texels", "project", "seen_by", "sample", "blend", "fill", "pad", "view_uvs", "render_texture", "inpaint_mask",
]

MIN_TEXTURE, MAX_TEXTURE = 512, 8192

# A UV triangle claims texel centres this far (in texels) outside its edges, so triangles
# sharing an edge leave no crack (a texel centre on the edge goes to the lower-numbered
# triangle); a view's pixel ray meets a triangle this far (in barycentric units) outside.
TEXEL_MARGIN = 1e-6
EDGE_EPSILON = 1e-7
# Pixels: a pixel centre this close to a triangle's picture is tested against it.
PIXEL_MARGIN = 1e-3
# Texels or pixels processed per chunk: bounds the float64 temporaries to ~100 MB.
CHUNK = 1 << 20
# Texels per part of a projection: parts run on a small thread pool.
PROJECT_CHUNK = 1 << 18


@dataclass(frozen=True, eq=False)
class Surface:
    """One object's evaluated mesh as triangles in world space.

    corners: Tx3x3 float64, the world positions of each triangle's three corners.
    normals: Tx3x3 float64, unit world-space normals at each corner (Blender's corner
        normals: equal on a flat-shaded face, smooth across smooth ones).
    uvs: Tx3x2 float64, each corner's UV in the UV map the texture uses (0..1 is the image).
    name: the object's name; uv_map: the UV map's name.
    """
    name: str
    corners: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    uv_map: str = ""


@dataclass(frozen=True, eq=False)
class Texels:
    """Where each texel of one object's size x size texture lies on its surface.

    inside: HxW bool, the texel centre is inside a UV triangle (an island).
    positions: HxWx3 float32 world positions (0 outside islands).
    normals: HxWx3 float32 unit world normals (0 outside islands).
    triangle: HxW int32, the triangle each texel lies on (-1 outside).
    overlapped: how many texels lie inside more than one triangle (overlapping UVs share
        them; a centre on an edge two triangles share does not count).
    face_normals: Tx3 float32, each triangle's geometric unit normal (the plane the Z pass
        sees, for the depth test's slope; 0 for a degenerate triangle).
    """
    size: int
    inside: np.ndarray
    positions: np.ndarray
    normals: np.ndarray
    triangle: np.ndarray
    overlapped: int
    face_normals: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))

    @functools.cached_property
    def island_texels(self) -> np.ndarray:
        """Flat indices of the texels inside islands (int32: 8192² fits), found once."""
        return np.flatnonzero(self.inside.reshape(-1)).astype(np.int32)



@dataclass(frozen=True)
class WeightSettings:
    """How much a view counts at a texel.

    exponent: p in |cos θ|^p (3: views facing the surface win clearly).
    discard_angle: radians; texels seen more obliquely get nothing from the view.
    feather: pixels over which a view's weight fades in from its silhouette edges and
        its image border.
    """
    exponent: float = 3.0
    discard_angle: float = math.radians(80.0)
    feather: float = 8.0


@dataclass(frozen=True, eq=False)
class Projection:
    """One view projected onto one object's texels, kept for the texels the view counts at
    (often a quarter of them or less: a view's arrays stay small however many views).

    size: the texture's size; index: N int64 flat (row-major) indices of those texels;
    at: Nx2 float32, where each projects in the view (continuous pixel coordinates, see
    CameraView); weights: N float32, each > 0; view_shape: the view's (height, width).
    """
    size: int
    index: np.ndarray
    at: np.ndarray
    weights: np.ndarray
    view_shape: tuple[int, int] = (0, 0)

    @property
    def pixels(self) -> np.ndarray:
        """HxWx2 float32 (built on each call): `at` per texel, NaN where not visible."""
        pixels = np.full((self.size * self.size, 2), np.nan, dtype=np.float32)
        pixels[self.index] = self.at
        return pixels.reshape(self.size, self.size, 2)

    @property
    def weight(self) -> np.ndarray:
        """HxW float32 (built on each call), 0 where the view does not count."""
        weight = np.zeros(self.size * self.size, dtype=np.float32)
        weight[self.index] = self.weights
        return weight.reshape(self.size, self.size)

    @property
    def visible(self) -> np.ndarray:
        visible = np.zeros(self.size * self.size, dtype=bool)
        visible[self.index] = True
        return visible.reshape(self.size, self.size)


@dataclass(frozen=True, eq=False)
class ViewUVs:
    """What each pixel of a view sees of the textured objects.

    surface: HxW int32, the index of the Surface seen (-1: background or another object).
    uvs: HxWx2 float32, the UV seen there (0 where surface is -1).
    """
    surface: np.ndarray
    uvs: np.ndarray


# ---------------------------------------------------------------------------------------
# Texels: the UV triangles rasterised at texel centres
# ---------------------------------------------------------------------------------------

def texels(surface: Surface, size: int) -> Texels:
    """Rasterise `surface`'s UV triangles at the centres of a size x size texture.

    Each triangle becomes runs of texels per row (raster.triangle_runs): exact spans, so
    a 100k-triangle mesh at 2048 takes a couple of seconds. Where UVs overlap, a texel
    goes to the lower-numbered triangle.
    """
    _check_surface(surface)
    if not 1 <= size <= MAX_TEXTURE:
        raise DiffusionError(f"A {size} x {size} texture is out of range",
                             f"choose a size from {MIN_TEXTURE} to {MAX_TEXTURE}")
    # Texel (i, j) has its centre at (j + 0.5, i + 0.5): x = u * size, y = (1 - v) * size.
    grid = np.stack([surface.uvs[..., 0] * size, (1.0 - surface.uvs[..., 1]) * size], axis=-1)
    triangle, overlapped = lowest_claims(triangle_runs(grid, size, size, TEXEL_MARGIN), size, size)
    triangle = triangle.reshape(-1)
    face_normals = _face_normals(surface.corners)
    maps = _texel_maps(grid, surface)
    positions = np.zeros((size * size, 3), dtype=np.float32)
    normals = np.zeros((size * size, 3), dtype=np.float32)
    inside = np.flatnonzero(triangle >= 0)

    def interpolate(first: int) -> None:
        # Parts write different texels: they run side by side on the pool.
        chunk = inside[first:first + PROJECT_CHUNK]
        owner = triangle[chunk]
        m = maps[owner]
        dx = ((chunk % size).astype(np.float32) + np.float32(0.5) - m[:, 0])[:, None]
        dy = ((chunk // size).astype(np.float32) + np.float32(0.5) - m[:, 1])[:, None]
        positions[chunk] = m[:, 2:5] + m[:, 5:8] * dx + m[:, 8:11] * dy
        normal = m[:, 11:14] + m[:, 14:17] * dx + m[:, 17:20] * dy
        length = np.sqrt(np.einsum("nc,nc->n", normal, normal))
        degenerate = length <= 1e-12  # opposite corner normals: the face's own
        normal /= np.where(degenerate, 1.0, length)[:, None]
        normal[degenerate] = face_normals[owner[degenerate]]
        normals[chunk] = normal

    list(_pool().map(interpolate, range(0, inside.size, PROJECT_CHUNK)))
    triangle = triangle.reshape(size, size)
    return Texels(size=size, inside=triangle >= 0, positions=positions.reshape(size, size, 3),
                  normals=normals.reshape(size, size, 3), triangle=triangle,
                  overlapped=overlapped, face_normals=face_normals.astype(np.float32))


def _texel_maps(grid: np.ndarray, surface: Surface) -> np.ndarray:
    """Tx20 float32 per triangle: an origin (ox, oy) on the texel grid's integer points, the
    position there and its change per texel right and down, the same for the normal.

    Position and normal are affine in texel coordinates on a triangle. Anchored at an
    integer point near the triangle, a texel's offset from it is exact in float32 and
    small, so float32 arithmetic (half the memory traffic of float64) keeps positions
    as exact as the float32 they are stored in.
    """
    planes = barycentric_planes(grid)
    origin = np.floor(grid[:, 0, :])
    columns = [origin]
    for values in (surface.corners, surface.normals):
        # Sum over corners of the corner's barycentric weight times its value.
        along_x = np.einsum("tk,tkc->tc", planes[:, :, 0], values)
        along_y = np.einsum("tk,tkc->tc", planes[:, :, 1], values)
        at_origin = np.einsum("tk,tkc->tc", planes[:, :, 0] * origin[:, :1] + planes[:, :, 1] * origin[:, 1:]
                              + planes[:, :, 2], values)
        columns += [at_origin, along_x, along_y]
    return np.concatenate(columns, axis=1).astype(np.float32)


def _face_normals(corners: np.ndarray) -> np.ndarray:
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    return np.where(length > 0, normal / np.where(length > 0, length, 1.0), 0.0)


def _chunks(index: np.ndarray, chunk: int = CHUNK):
    for start in range(0, index.size, chunk):
        yield index[start:start + chunk]


def _check_surface(surface: Surface) -> None:
    count = len(surface.corners)
    shapes = {"corners": (surface.corners, (count, 3, 3)), "normals": (surface.normals, (count, 3, 3)),
              "uvs": (surface.uvs, (count, 3, 2))}
    for name, (array, shape) in shapes.items():
        if np.shape(array) != shape:
            raise DiffusionError(f"The mesh of '{surface.name}' has {name} of shape {np.shape(array)}",
                                 f"pass {shape} (three corners per triangle)")


# ---------------------------------------------------------------------------------------
# Projection: where texels land in a view, and how much the view counts there
# ---------------------------------------------------------------------------------------

def project(texels: Texels, view: CameraView, depth: np.ndarray, settings: WeightSettings = WeightSettings()
            ) -> Projection:
    """Where `texels` land in `view` and how much the view counts there.

    depth: the view's Z pass (HxW float32 in the view's depth convention, +inf or >= 1e9
        on background): the scene's nearest surface at each pixel, any object.
    """
    depth = check_depth(view, depth)
    size = texels.size
    rays = Rays.of(view)
    silhouette = silhouette_distance(depth)
    cos_min = max(math.cos(settings.discard_angle), 1e-6)
    index = texels.island_texels
    positions, normals = texels.positions.reshape(-1, 3), texels.normals.reshape(-1, 3)

    def project_part(first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        part = index[first:first + PROJECT_CHUNK]
        # np.take along rows: about twice as fast as fancy indexing for Nx3 gathers.
        points = np.take(positions, part, axis=0)
        # Both sides, as Blender renders them: a back face seen directly (a plane from
        # behind) counts; one hidden behind its own object's front fails the depth test.
        cos = np.abs(_facing(view, points, np.take(normals, part, axis=0)))
        at, distance = project_points(view, points)
        # Grazing texels get nothing; one filter for both tests, copying only what the
        # depth test reads (points are taken again only for the few it is unsure of).
        keep = np.flatnonzero((cos >= cos_min) & view.in_view(at, distance))
        chunk, cos, at, distance = part[keep], cos[keep], np.take(at, keep, axis=0), distance[keep]
        visible = matches_z_pass(rays, depth, lambda unsure, kept=keep: np.take(points, kept[unsure], axis=0),
                                 lambda unsure, chunk=chunk: _plane_normals(texels, chunk[unsure]),
                                 at, distance, _slope_bound(view, distance, cos))
        visible = np.flatnonzero(visible)
        chunk, cos, at = chunk[visible], cos[visible], np.take(at, visible, axis=0)
        w = np.power(cos, settings.exponent) * _feather(view, silhouette, at, settings.feather)
        counts = np.flatnonzero(w > 0)
        return chunk[counts], np.take(at, counts, axis=0).astype(np.float32, copy=False), \
            w[counts].astype(np.float32, copy=False)

    # numpy lets go of the GIL in its array loops: parts run side by side on the cores.
    kept = list(_pool().map(project_part, range(0, index.size, PROJECT_CHUNK)))
    index, at, weights = (np.concatenate(parts) for parts in zip(*kept)) if kept else \
        (np.zeros(0, np.int64), np.zeros((0, 2), np.float32), np.zeros(0, np.float32))
    return Projection(size=size, index=index, at=at, weights=weights, view_shape=(view.height, view.width))


@functools.lru_cache(maxsize=1)
def _pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)),
                                                 thread_name_prefix="scene-diffusion-texture")


def _slope_bound(view: CameraView, distance: np.ndarray, cos: np.ndarray) -> np.ndarray | None:
    """N: more than the depth change across one pixel right plus one down on a surface seen
    at `cos` (with margin), or None for panoramas. One pixel spans `pixel` of the image plane
    at depth 1 (perspective) or in world units (orthographic); on a plane facing the ray at
    cos θ the depth changes by at most that over cos θ, per direction."""
    if view.type == 'PANO':
        return None
    pixel = np.float32(2.0 / (abs(view.projection[0, 0]) * view.width))
    scale = distance * pixel if view.type == 'PERSP' else np.full(len(distance), pixel, np.float32)
    return np.float32(3.0) * scale / np.maximum(cos, np.float32(1e-6))


# Points tried per triangle by `seen_by`: one every this many pixels of its projected size.
SEEN_SPACING = 4.0


def seen_by(surface: Surface, view: CameraView, depth: np.ndarray, settings: WeightSettings = WeightSettings()
            ) -> bool:
    """Whether `view` sees any of `surface` where it would count (facing it within the
    discard angle, shown by the Z pass). Cheap: points inside each triangle every few
    pixels of its size on screen, not every texel."""
    depth = check_depth(view, depth)
    corners = surface.corners
    normals = _face_normals(corners)
    at, distance = view.project(corners.reshape(-1, 3))
    edges = np.nan_to_num(np.linalg.norm(at.reshape(-1, 3, 2) - np.roll(at.reshape(-1, 3, 2), 1, axis=1), axis=2))
    steps = np.clip(np.ceil(edges.max(axis=1) / SEEN_SPACING), 1, 256).astype(np.int64)
    cos_min = max(math.cos(settings.discard_angle), 1e-6)
    rays = Rays.of(view)
    for step in np.unique(steps):
        group = np.flatnonzero(steps == step)
        # Barycentric points strictly inside: (a + 1/3, b + 1/3) / (step + 1) of the two edges.
        a, b = np.nonzero(np.add.outer(np.arange(step), np.arange(step)) < step)
        s, t = (a + 1 / 3) / (step + 1), (b + 1 / 3) / (step + 1)
        origin, edge_u, edge_v = corners[group, 0], corners[group, 1] - corners[group, 0], \
            corners[group, 2] - corners[group, 0]
        points = (origin[:, None] + s[None, :, None] * edge_u[:, None] + t[None, :, None] * edge_v[:, None])
        plane = np.repeat(normals[group], len(s), axis=0)
        points = points.reshape(-1, 3)
        cos = np.abs(_facing(view, points.astype(np.float32), plane.astype(np.float32)))  # both sides, as in project
        pixels, distance = view.project(points)
        shown = view.in_view(pixels, distance) & (cos >= cos_min)
        if shown.any() and matches_z_pass(rays, depth, points[shown], plane[shown], pixels[shown],
                                          distance[shown]).any():
            return True
    return False


def _feather(view: CameraView, silhouette: np.ndarray, at: np.ndarray, feather: float) -> np.ndarray:
    """0..1 per point: distance to the nearest silhouette pixel or the image border, over
    `feather` pixels."""
    if feather <= 0:
        return np.ones(len(at), np.float32)
    distance = bilinear(silhouette[..., None], at)[:, 0]
    border = np.minimum(at[:, 1], np.float32(view.height) - at[:, 1])
    if not _wraps_around(view):
        border = np.minimum(border, np.minimum(at[:, 0], np.float32(view.width) - at[:, 0]))
    return np.clip(np.minimum(distance, border) * np.float32(1.0 / feather), 0.0, 1.0)


def _wraps_around(view: CameraView) -> bool:
    """An equirectangular view spanning 360° has no left or right border."""
    return view.type == 'PANO' and view.panorama is not None and \
        abs(view.panorama[2] - view.panorama[1]) >= 2 * math.pi - 1e-6


def _facing(view: CameraView, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """N cos θ between each (float32) normal and the direction to the camera (0 for a zero
    normal); float32 is plenty for a weight, and twice as fast over millions of texels."""
    if view.type == 'ORTHO':
        return np.einsum("nc,c->n", normals, (-view.forward).astype(np.float32))
    toward = view.origin.astype(np.float32) - points
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.einsum("nc,nc->n", normals, toward) / np.sqrt(np.einsum("nc,nc->n", toward, toward))
    return np.nan_to_num(cos, copy=False)


def _plane_normals(texels: Texels, chunk: np.ndarray) -> np.ndarray:
    """The geometric normal of the triangle each texel lies on (its smooth normal if the
    Texels were made without face normals)."""
    if len(texels.face_normals):
        return texels.face_normals[texels.triangle.reshape(-1)[chunk]].astype(np.float64)
    return texels.normals.reshape(-1, 3)[chunk].astype(np.float64)


# ---------------------------------------------------------------------------------------
# Colours and the blend
# ---------------------------------------------------------------------------------------

def sample(image: np.ndarray, projection: Projection) -> np.ndarray:
    """HxWx3 float32 texel colours: `image` (view-sized HxWx3 float 0..1) sampled
    bilinearly where each texel projects (0 where not visible)."""
    image = _view_image(image, projection)
    colours = np.zeros((projection.size * projection.size, 3), dtype=np.float32)
    for part in _chunks(np.arange(projection.index.size)):
        colours[projection.index[part]] = bilinear(image, projection.at[part])
    return colours.reshape(projection.size, projection.size, 3)


# One float32 RGB row as a single item, for scattering Nx3 rows in one pass.
ROW = np.dtype((np.void, 12))


@dataclass(eq=False)
class Accumulation:
    """The blend of views built one view at a time: only two texture-sized float32 sums
    live across views, whatever their number.

    colour_sum: HxWx3, the weighted sum of colours; weight_sum: HxW, the sum of weights.
    """
    colour_sum: np.ndarray
    weight_sum: np.ndarray

    @classmethod
    def empty(cls, size: int) -> Accumulation:
        return cls(np.zeros((size, size, 3), dtype=np.float32), np.zeros((size, size), dtype=np.float32))

    def add(self, colours: np.ndarray, weight: np.ndarray) -> None:
        """One view's texel colours (HxWx3) and weights (HxW)."""
        self.colour_sum += colours * weight[..., None]
        self.weight_sum += weight

    def add_view(self, image: np.ndarray, projection: Projection) -> None:
        """One view's image, sampled where the projection counts (as `sample`, without a
        texture-sized colour array)."""
        image = _view_image(image, projection)
        colour_sum, weight_sum = self.colour_sum.reshape(-1, 3), self.weight_sum.reshape(-1)
        colour_rows = colour_sum.view(ROW).reshape(-1)

        def add_part(first: int) -> None:
            # A projection holds each texel once: parts touch different texels, side by side.
            part = slice(first, first + PROJECT_CHUNK)
            index, weights = projection.index[part], projection.weights[part]
            # Gather, add, scatter: np.take and a 12-byte-row scatter are about twice as
            # fast as `colour_sum[index] +=` on Nx3 rows.
            colours = np.take(colour_sum, index, axis=0)
            colours += bilinear(image, projection.at[part]) * weights[:, None]
            colour_rows[index] = colours.view(ROW).reshape(-1)
            weight_sum[index] += weights

        list(_pool().map(add_part, range(0, projection.index.size, PROJECT_CHUNK)))

    def mean_at(self, uvs: np.ndarray, empty: float = GREY) -> np.ndarray:
        """Nx3: the weighted mean colour at N UVs (bilinear, repeating), `empty` where no view
        counts. Cheaper than `mean()` when only a view's pixels need it, and around covered
        texels it averages only those."""
        colour = sample_repeating(self.colour_sum, uvs)
        weight = sample_repeating(self.weight_sum[..., None], uvs)
        out = np.full_like(colour, empty)
        return np.divide(colour, weight, out=out, where=weight > 0)

    def mean(self, empty: float = 0.0) -> np.ndarray:
        """HxWx3 float32: the weighted mean colour (`empty` where no view counts)."""
        mean = np.full_like(self.colour_sum, empty)
        weight = self.weight_sum[..., None]
        return np.divide(self.colour_sum, weight, out=mean, where=weight > 0)


def blend(colours: list[np.ndarray], weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(HxWx3 weighted mean colour, HxW weight sum) of the views' texel colours."""
    if not colours or len(colours) != len(weights):
        raise DiffusionError(f"{len(colours)} colour arrays and {len(weights)} weight arrays to blend",
                             "pass one weight array per view's colours")
    total = Accumulation(np.zeros(colours[0].shape, np.float32), np.zeros(weights[0].shape, np.float32))
    for colour, weight in zip(colours, weights):
        total.add(colour, weight)
    return total.mean(), total.weight_sum


def _float_image(image: np.ndarray) -> np.ndarray:
    """HxWx3 float32 0..1 from float colours or 8-bit ones (an alpha channel is dropped)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 3:
        raise DiffusionError(f"An image of shape {image.shape}", "pass HxWx3 colours")
    if image.dtype == np.uint8:
        return image[..., :3].astype(np.float32) / 255.0
    return np.ascontiguousarray(image[..., :3], dtype=np.float32)


def _view_image(image: np.ndarray, projection: Projection) -> np.ndarray:
    image = _float_image(image)
    if projection.view_shape != (0, 0) and image.shape[:2] != projection.view_shape:
        height, width = projection.view_shape
        raise DiffusionError(f"The view's image is {image.shape[1]} x {image.shape[0]}, its view {width} x {height}",
                             "generate each view at its camera's size")
    return image


# ---------------------------------------------------------------------------------------
# Views of the texture: what each pixel sees, the texture so far, where to repaint
# ---------------------------------------------------------------------------------------

def view_uvs(surfaces: list[Surface], view: CameraView, depth: np.ndarray) -> ViewUVs:
    """Per pixel of `view`, the surface and UV it sees (perspective-correct), where the
    surface is the scene's nearest at that pixel (`depth`, the view's Z pass).

    Each pixel's centre ray is intersected with the triangles whose screen box holds it,
    so the UV is that of the exact surface point the pixel sees, whatever the camera.
    """
    depth = check_depth(view, depth)
    for surface in surfaces:
        _check_surface(surface)
    height, width = depth.shape
    surface = np.full(height * width, -1, dtype=np.int32)
    uvs = np.zeros((height * width, 2), dtype=np.float32)
    if not surfaces:
        return ViewUVs(surface=surface.reshape(height, width), uvs=uvs.reshape(height, width, 2))
    rays = Rays.of(view)
    if rays.affine:
        def rays_at(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return rays.at(_centres(cell, width))
    else:
        # A panorama's rays need a solve each: once per pixel, not per candidate.
        starts, steps = rays.at(_centres(np.arange(height * width), width))

        def rays_at(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return starts[cell], steps[cell]
    corners = np.concatenate([s.corners for s in surfaces]).astype(np.float64)
    owner = np.concatenate([np.full(len(s.corners), k, np.int32) for k, s in enumerate(surfaces)])
    planes = _triangle_planes(corners)
    runs = _screen_runs(view, corners)

    nearest = np.full(height * width, np.inf)
    hit = np.full(height * width, -1, dtype=np.int64)
    barycentric = np.zeros((height * width, 2))
    for batch in cells_of(runs):
        cell = batch.y * width + batch.x
        t, u, v = _ray_hits(planes[batch.triangle], *rays_at(cell))
        ok = np.isfinite(t)
        cell, t, u, v, triangle = cell[ok], t[ok], u[ok], v[ok], batch.triangle[ok]
        winners, _ = best_per_cell(cell, t)
        cell, t, u, v, triangle = cell[winners], t[winners], u[winners], v[winners], triangle[winners]
        better = t < nearest[cell]
        cell = cell[better]
        nearest[cell], hit[cell] = t[better], triangle[better]
        barycentric[cell] = np.stack([u[better], v[better]], axis=1)

    cells = np.flatnonzero(hit >= 0)
    triangle = hit[cells]
    start, step = rays_at(cells)
    points = start + nearest[cells, None] * step
    normals = planes[triangle, 0:3] / np.linalg.norm(planes[triangle, 0:3], axis=1, keepdims=True)
    seen = matches_z_pass(rays, depth, points, normals, _centres(cells, width), nearest[cells])
    cells, triangle = cells[seen], triangle[seen]
    u, v = barycentric[cells, 0], barycentric[cells, 1]
    uv = np.concatenate([s.uvs for s in surfaces]).astype(np.float64)[triangle]
    uvs[cells] = (1.0 - u - v)[:, None] * uv[:, 0] + u[:, None] * uv[:, 1] + v[:, None] * uv[:, 2]
    surface[cells] = owner[triangle]
    return ViewUVs(surface=surface.reshape(height, width), uvs=uvs.reshape(height, width, 2))


def _centres(cells: np.ndarray, width: int) -> np.ndarray:
    """Nx2 pixel centres of flat (row-major) pixel indices."""
    return np.stack([cells % width + 0.5, cells // width + 0.5], axis=1)


def _triangle_planes(corners: np.ndarray) -> np.ndarray:
    """Tx12 per triangle: its normal n and n . corner0, then (g, h) twice: the barycentric
    weights of corners 1 and 2 at a point X of its plane are g . X + h. NaN for a triangle
    without area."""
    edge1, edge2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    normal = np.cross(edge1, edge2)
    with np.errstate(divide="ignore", invalid="ignore"):
        area2 = np.einsum("nc,nc->n", normal, normal)[:, None]
        area2 = np.where(area2 > 0, area2, np.nan)
        # X - c0 = u e1 + v e2; dotting with e2 x n (or n x e1) leaves u |n|^2 (or v |n|^2).
        g1 = np.cross(edge2, normal) / area2
        g2 = np.cross(normal, edge1) / area2
    columns = [normal]
    for g in (None, g1, g2):
        # The constant: n . c0 for the plane, -g . c0 for a weight (it is 0 at corner 0).
        columns += [] if g is None else [g]
        columns.append(np.einsum("nc,nc->n", normal if g is None else -g, corners[:, 0])[:, None])
    return np.concatenate(columns, axis=1)


def _ray_hits(planes: np.ndarray, start: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, u, v) where each ray start + t * step (start: Nx3, or one 3-vector for all)
    meets its triangle's plane (Nx12 rows of `_triangle_planes`), at barycentric weights
    u, v of corners 1 and 2; t is inf where the ray misses the triangle (edges count,
    with EDGE_EPSILON of slack so that neighbouring triangles leave no pinholes)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.einsum("nc,c->n" if start.ndim == 1 else "nc,nc->n", planes[:, 0:3], start)
        t = (planes[:, 3] - offset) / np.einsum("nc,nc->n", planes[:, 0:3], step)
        point = start + t[:, None] * step
        u = np.einsum("nc,nc->n", planes[:, 4:7], point) + planes[:, 7]
        v = np.einsum("nc,nc->n", planes[:, 8:11], point) + planes[:, 11]
        hit = (t > 0) & (u >= -EDGE_EPSILON) & (v >= -EDGE_EPSILON) & (u + v <= 1.0 + EDGE_EPSILON)
    return np.where(hit, t, np.inf), u, v


def _screen_runs(view: CameraView, corners: np.ndarray) -> Runs:
    """Per triangle, the runs of pixel centres its picture may cover: exact spans of its
    projected corners (edges are straight in a perspective or orthographic picture), or
    boxes where the projection cannot bound it that way (a triangle crossing the camera
    plane: the whole image; an equirectangular picture: its sampled edges' box, or the
    whole image across the seam or near a pole)."""
    count = len(corners)
    width, height = view.width, view.height
    if view.type == 'PANO':
        # Edges curve in an equirectangular picture: bound points along each, and a pixel more.
        fractions = np.linspace(0.0, 1.0, 9)[:, None, None, None]
        points = (corners[None] + fractions * (np.roll(corners, -1, axis=1) - corners)[None])
        at, distance = view.project(points.transpose(1, 0, 2, 3).reshape(-1, 3))
        at = at.reshape(count, -1, 2)
        x0, y0 = np.floor(at.min(axis=1) - 1.5).T
        x1, y1 = (np.ceil(at.max(axis=1) + 0.5)).T
        whole = ((x1 - x0) > width / 2) | (y0 <= 0) | (y1 >= height)  # across the seam, near a pole
        spans = np.flatnonzero(np.zeros(count, bool))
    else:
        at, distance = view.project(corners.reshape(-1, 3))
        at, distance = at.reshape(count, 3, 2), distance.reshape(count, 3)
        finite = np.isfinite(at).all(axis=(1, 2))
        whole = ~finite & (distance > 0).any(axis=1)  # crosses the camera plane
        spans = np.flatnonzero(finite)
        x0 = y0 = np.zeros(count)
        x1, y1 = np.full(count, float(width)), np.full(count, float(height))
    boxed = np.flatnonzero(whole | (view.type == 'PANO'))
    x0, y0 = np.where(whole, 0, x0)[boxed], np.where(whole, 0, y0)[boxed]
    x1, y1 = np.where(whole, width, x1)[boxed], np.where(whole, height, y1)[boxed]
    boxes = box_runs(boxed, *(np.clip(v, 0, limit).astype(np.int64)
                              for v, limit in ((x0, width), (x1, width), (y0, height), (y1, height))))
    exact = triangle_runs(at[spans] if spans.size else np.zeros((0, 3, 2)), width, height, PIXEL_MARGIN)
    return Runs(*(np.concatenate([getattr(boxes, name), getattr(exact, name) if name != "triangle"
                                  else spans[exact.triangle]])
                  for name in ("triangle", "row", "start", "stop", "inner_start", "inner_stop")))


def render_texture(textures: list[np.ndarray], seen: ViewUVs, background: np.ndarray | None = None) -> np.ndarray:
    """The view's image of the textures so far (HxWx3 float32): each pixel samples its
    surface's texture at its UV; other pixels take `background` (default mid grey).

    Textures repeat outside 0..1, as Blender's Image Texture node does by default;
    `background` may be an HxWx3 image or one colour.
    """
    height, width = seen.surface.shape
    if background is None:
        image = np.full((height, width, 3), GREY, dtype=np.float32)
    else:
        image = np.array(np.broadcast_to(np.asarray(background, np.float32)[..., :3], (height, width, 3)))
    for index, texture in enumerate(textures):
        cells = np.flatnonzero(seen.surface.reshape(-1) == index)
        if cells.size:
            image.reshape(-1, 3)[cells] = sample_repeating(_float_image(texture), seen.uvs.reshape(-1, 2)[cells])
    return image


def inpaint_mask(coverage: list[np.ndarray], seen: ViewUVs, threshold: float = 0.5, grow: int = 4,
                 feather: float = 2.0) -> np.ndarray:
    """HxW float32 0..1, 1 = repaint: the view's pixels whose surface texel has a weight
    sum under `threshold` (and every pixel of no textured surface), grown by `grow` pixels
    and feathered by a blur of `feather` pixels.

    The feather only adds outward: everything to repaint stays 1, and the mask's 0.5 level
    stays on the grown boundary.
    """
    import cv2  # lazy: enabling the extension must not import OpenCV
    repaint = (seen.surface < 0) | (seen.surface >= len(coverage))  # no coverage known: repaint
    for index, weight_sum in enumerate(coverage):
        cells = seen.surface == index
        if not cells.any():
            continue
        size_v, size_u = weight_sum.shape
        uv = seen.uvs[cells].astype(np.float64)
        column = np.floor(uv[:, 0] * size_u).astype(np.int64) % size_u
        row = np.floor((1.0 - uv[:, 1]) * size_v).astype(np.int64) % size_v
        repaint[cells] = weight_sum[row, column] < threshold
    mask = repaint.astype(np.float32)
    if grow > 0:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        mask = cv2.dilate(mask, disc)
    if feather > 0:
        reach = 2 * math.ceil(3 * feather) + 1  # the blur reaches 3 sigma out, no further
        mask = np.maximum(mask, cv2.GaussianBlur(mask, (reach, reach), sigmaX=feather,
                                                 borderType=cv2.BORDER_REPLICATE))
    return mask
