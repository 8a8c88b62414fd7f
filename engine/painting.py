# SPDX-License-Identifier: GPL-3.0-or-later
"""Painting objects' textures view by view: the worker's side of Generate Texture.

A `Painter` holds the textures of several objects while views arrive one by one (each
captured on Blender's main thread: its camera view, Z pass and conditions). For each view
it says what to generate (`request_for`) and takes the generated image in (`add`); at the
end it gives every object's finished texture (`finish`). bpy-free; the math is
engine/texture.py's.

What each view generates:
- the first view, or every view when views are independent: text to image with the
  view's conditions;
- sequentially, each later view: inpainting of what earlier views have not covered well,
  starting from the texture so far seen from this view, so views agree at their borders;
- from the current textures (`start`): image to image of the current textures seen from
  the view, at the request's strength, for every view.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import threading
from dataclasses import dataclass

import numpy as np

from .requests import ControlUnit, GenerationRequest, RegionPrompt
from .texture import (
    GREY, Accumulation, Projection, Surface, Texels, ViewUVs, WeightSettings, fill, inpaint_mask, pad, project,
    render_texture, texels, view_uvs,
)
from .views import CameraView

__all__ = ["TextureView", "PaintSettings", "PaintedTexture", "Painter"]


@dataclass(frozen=True, eq=False)
class TextureView:
    """One view, captured on the main thread.

    depth: HxW float32, the view's Z pass (+inf on background), any object.
    controls: the view's conditions (ControlUnits) at the view's size.
    regions: the region prompts this view sees, with their masks at the view's size.
    """
    name: str
    view: CameraView
    depth: np.ndarray
    controls: tuple[ControlUnit, ...] = ()
    regions: tuple[RegionPrompt, ...] = ()


@dataclass(frozen=True)
class PaintSettings:
    """size: texture width and height. sequential: later views inpaint what earlier ones
    did not cover well (else each view is generated on its own). coverage: the weight sum
    under which a texel counts as not covered well (the inpainting mask). fill: texels no
    view saw at all are filled from the others. grow,
    feather: pixels the inpainting mask is grown and blurred by. padding: texels every
    island is grown outward by."""
    size: int = 2048
    weights: WeightSettings = WeightSettings()
    sequential: bool = True
    fill: bool = True
    coverage: float = 0.1
    grow: int = 4
    feather: float = 2.0
    padding: int = 8


@dataclass(frozen=True, eq=False)
class PaintedTexture:
    """One object's texture: rgb HxWx3 float32 0..1 (rows top-down), coverage HxW float32
    (the views' weight sum per texel), and how many texels lie on overlapping UVs."""
    name: str
    rgb: np.ndarray
    coverage: np.ndarray
    covered: float  # the share of island texels some view saw
    overlapped: int


class Painter:
    """The textures of `surfaces`, painted view by view (call it from one thread; it runs
    geometry of its own on a background thread, see `look_ahead`)."""

    def __init__(self, surfaces: list[Surface], settings: PaintSettings = PaintSettings(),
                 start: list[np.ndarray | None] | None = None) -> None:
        self.surfaces = list(surfaces)
        self.settings = settings
        self.start = list(start) if start is not None else [None] * len(self.surfaces)
        self._texels: list[Texels] | None = None
        self._texels_lock = threading.Lock()
        self._ahead: dict[TextureView, concurrent.futures.Future] = {}
        self._ahead_lock = threading.Lock()  # look_ahead may come from another thread than the painting
        self.sums = [Accumulation.empty(settings.size) for _ in self.surfaces]
        self.views = 0

    @property
    def texels(self) -> list[Texels]:
        """Each surface's texels (rasterised on first use)."""
        with self._texels_lock:
            if self._texels is None:
                self._texels = [texels(surface, self.settings.size) for surface in self.surfaces]
            return self._texels

    def look_ahead(self, views: list[TextureView]) -> None:
        """Start the geometry of `views` on a background thread: the texels, where each view
        lands on them and what each of its pixels sees. None of it needs a generated image,
        so it runs on the other core while the current view diffuses."""
        with self._ahead_lock:
            for view in views:
                if view not in self._ahead:
                    self._ahead[view] = _background().submit(self._geometry, view)

    def settle(self) -> None:
        """Drop the geometry not started yet and wait for what is running (a job that ends
        must leave no thread of its own at work: see `look_ahead`)."""
        with self._ahead_lock:
            pending = list(self._ahead.values())
            self._ahead.clear()
        for future in pending:
            if not future.cancel():
                concurrent.futures.wait([future])

    def _geometry(self, view: TextureView) -> _Geometry:
        seen = None
        if self.settings.sequential or any(texture is not None for texture in self.start):
            seen = view_uvs(self.surfaces, view.view, view.depth)
        projections = [project(cells, view.view, view.depth, self.settings.weights) for cells in self.texels]
        return _Geometry(projections, seen)

    def _geometry_of(self, view: TextureView) -> _Geometry:
        with self._ahead_lock:
            future = self._ahead.get(view)
        if future is None:
            future = concurrent.futures.Future()
            future.set_result(self._geometry(view))
            with self._ahead_lock:
                self._ahead[view] = future
        return future.result()

    def request_for(self, view: TextureView, base: GenerationRequest) -> GenerationRequest | None:
        """The generation of `view`: `base` with the view's size and conditions, and an init
        image and mask when the textures so far (or the current ones) should show; None when
        the view has nothing left to paint (everything it sees is covered well already)."""
        request = dataclasses.replace(base, width=view.view.width, height=view.view.height, controls=view.controls,
                                      regions=view.regions, init_image=None, mask=None)
        if any(texture is not None for texture in self.start):
            seen = self._geometry_of(view).seen
            current = [texture if texture is not None else np.full((1, 1, 3), GREY, np.float32)
                       for texture in self.start]
            return dataclasses.replace(request, init_image=render_texture(current, seen), strength=base.strength)
        if self.views == 0 or not self.settings.sequential:
            return request
        seen = self._geometry_of(view).seen
        mask = inpaint_mask([sums.weight_sum for sums in self.sums], seen, threshold=self.settings.coverage,
                            grow=self.settings.grow, feather=self.settings.feather)
        if not (mask >= 0.5).any():
            return None
        return dataclasses.replace(request, init_image=self._so_far(seen), mask=mask, strength=1.0)

    def _so_far(self, seen: ViewUVs) -> np.ndarray:
        """The textures so far as `seen` shows them (mid grey where nothing is painted yet)."""
        image = np.full(seen.surface.shape + (3,), GREY, dtype=np.float32)
        for index, sums in enumerate(self.sums):
            cells = np.flatnonzero(seen.surface.reshape(-1) == index)
            if cells.size:
                image.reshape(-1, 3)[cells] = sums.mean_at(seen.uvs.reshape(-1, 2)[cells])
        return image

    def add(self, view: TextureView, image: np.ndarray) -> None:
        """Blend the generated image of `view` (HxWx3 float 0..1) into every texture."""
        for projection, sums in zip(self._geometry_of(view).projections, self.sums):
            sums.add_view(image, projection)
        with self._ahead_lock:
            self._ahead.pop(view, None)  # its geometry is used up
        self.views += 1

    def finish(self) -> list[PaintedTexture]:
        """Every object's texture: blended, unseen texels filled (if asked), islands padded."""
        self.settle()
        painted = []
        for surface, cells, sums, start in zip(self.surfaces, self.texels, self.sums, self.start):
            covered = sums.weight_sum > 0
            rgb = sums.mean()
            if start is not None:
                # Starting from a texture: what no view repainted keeps its colour.
                rgb = np.where(covered[..., None], rgb, _fitted(start, self.settings.size))
                covered = cells.inside
            if self.settings.fill:
                rgb = fill(rgb, covered, cells.inside)
            rgb = pad(rgb, cells.inside, self.settings.padding)
            island = int(cells.inside.sum())
            painted.append(PaintedTexture(
                name=surface.name, rgb=np.clip(rgb, 0.0, 1.0).astype(np.float32), coverage=sums.weight_sum,
                covered=float((covered & cells.inside).sum() / island) if island else 0.0,
                overlapped=cells.overlapped))
        return painted


@dataclass(frozen=True, eq=False)
class _Geometry:
    """What a view sees of the textures: its projection onto each surface's texels, and
    (when an init image is made from the textures) what each pixel sees."""
    projections: list[Projection]
    seen: ViewUVs | None


@functools.lru_cache(maxsize=1)
def _background() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="scene-diffusion-geometry")


def _fitted(texture: np.ndarray, size: int) -> np.ndarray:
    """`texture` (HxWx3 float) at size x size (nearest texel: a start texture is resized once)."""
    texture = np.asarray(texture, dtype=np.float32)[..., :3]
    height, width = texture.shape[:2]
    if (height, width) == (size, size):
        return texture
    rows = np.minimum((np.arange(size) + 0.5) * height / size, height - 1).astype(np.int64)
    columns = np.minimum((np.arange(size) + 0.5) * width / size, width - 1).astype(np.int64)
    return texture[rows][:, columns]
