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
4. `fill(...)`: texels inside islands that no view saw well are filled in UV space from
   the covered texels of the texture (inpainting), then `pad(...)` grows every island
   outward so bilinear filtering and mipmaps find no black seams.

For sequential texturing, `view_uvs(surfaces, view, depth)` tells, per pixel of a view,
which object and which UV it sees (the same rasterisation in screen space, perspective-
correct, depth-tested against the Z pass), so the texture so far can be shown from the
next view as its init image and its coverage as the inpainting mask (`render_texture`,
`inpaint_mask`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .views import CameraView

__all__ = [
    "Surface", "Texels", "WeightSettings", "Projection", "ViewUVs",
    "texels", "project", "sample", "blend", "fill", "pad", "view_uvs", "render_texture", "inpaint_mask",
]

MIN_TEXTURE, MAX_TEXTURE = 512, 8192


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
    overlapped: how many texels lie on more than one triangle (overlapping UVs share them).
    """
    size: int
    inside: np.ndarray
    positions: np.ndarray
    normals: np.ndarray
    triangle: np.ndarray
    overlapped: int


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
    """One view projected onto one object's texels.

    pixels: HxWx2 float32, where each texel projects in the view (continuous pixel
        coordinates, see CameraView); NaN where not visible.
    weight: HxW float32, 0 where the view does not count.
    """
    pixels: np.ndarray
    weight: np.ndarray

    @property
    def visible(self) -> np.ndarray:
        return self.weight > 0


@dataclass(frozen=True, eq=False)
class ViewUVs:
    """What each pixel of a view sees of the textured objects.

    surface: HxW int32, the index of the Surface seen (-1: background or another object).
    uvs: HxWx2 float32, the UV seen there (0 where surface is -1).
    """
    surface: np.ndarray
    uvs: np.ndarray


def texels(surface: Surface, size: int) -> Texels:
    """Rasterise `surface`'s UV triangles at the centres of a size x size texture."""
    raise NotImplementedError


def project(texels: Texels, view: CameraView, depth: np.ndarray, settings: WeightSettings = WeightSettings()
            ) -> Projection:
    """Where `texels` land in `view` and how much the view counts there.

    depth: the view's Z pass (HxW float32 in the view's depth convention, +inf or >= 1e9
        on background): the scene's nearest surface at each pixel, any object.
    """
    raise NotImplementedError


def sample(image: np.ndarray, projection: Projection) -> np.ndarray:
    """HxWx3 float32 texel colours: `image` (view-sized HxWx3 float 0..1) sampled
    bilinearly where each texel projects (0 where not visible)."""
    raise NotImplementedError


def blend(colours: list[np.ndarray], weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(HxWx3 weighted mean colour, HxW weight sum) of the views' texel colours."""
    raise NotImplementedError


def fill(rgb: np.ndarray, covered: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """`rgb` with the texels inside islands but not `covered` filled from covered ones."""
    raise NotImplementedError


def pad(rgb: np.ndarray, inside: np.ndarray, pixels: int = 8) -> np.ndarray:
    """`rgb` with every island grown outward by at least `pixels` texels (nearest colour)."""
    raise NotImplementedError


def view_uvs(surfaces: list[Surface], view: CameraView, depth: np.ndarray) -> ViewUVs:
    """Per pixel of `view`, the surface and UV it sees (perspective-correct), where the
    surface is the scene's nearest at that pixel (`depth`, the view's Z pass)."""
    raise NotImplementedError


def render_texture(textures: list[np.ndarray], seen: ViewUVs, background: np.ndarray | None = None) -> np.ndarray:
    """The view's image of the textures so far (HxWx3 float32): each pixel samples its
    surface's texture at its UV; other pixels take `background` (default mid grey)."""
    raise NotImplementedError


def inpaint_mask(coverage: list[np.ndarray], seen: ViewUVs, threshold: float = 0.5, grow: int = 4,
                 feather: float = 2.0) -> np.ndarray:
    """HxW float32 0..1, 1 = repaint: the view's pixels whose surface texel has a weight
    sum under `threshold` (and every pixel of no textured surface), grown by `grow` pixels
    and feathered by a blur of `feather` pixels."""
    raise NotImplementedError
