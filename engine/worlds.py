# SPDX-License-Identifier: GPL-3.0-or-later
"""Painting a 360° World panorama: the worker's side of Generate World.

A World is several diffusions ("passes"), each one item of the job:
1. the panorama at the model's own size, wrapping around in x (engine/tiling.py), steered
   by the scene's conditions captured as panoramas; text to image, image to image of the
   current World, or inpainting around a camera picture projected into it ("extend");
2. above the model's size, one pass per window of the enlarged panorama: image to image
   at a low strength on overlapping windows that wrap around in x, blended with feathered
   weights (engine/panorama.py), so no seam shows where windows meet;
3. with `fix_poles`, the zenith and the nadir: equirectangular images smear the poles into
   a pinch, so each cap is taken out as a view straight up (down), its centre repainted
   by inpainting with its ring as context, and put back: the top and bottom rows then
   look at (nearly) one point of the cap, as a sphere's pole must.
bpy-free; the geometry is engine/panorama.py's.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import panorama
from .requests import ControlUnit, GenerationRequest, RegionPrompt

__all__ = ["Pass", "WorldSettings", "WorldPainter", "passes"]

CAP_FOV = 90.0  # degrees: a cube map face
CAP_REPAINT = 70.0  # latitude (degrees) beyond which a cap's centre is repainted
CAP_FROM, CAP_BLEND = 58.0, 8.0  # the cap replaces the panorama beyond CAP_FROM + CAP_BLEND


@dataclass(frozen=True)
class WorldSettings:
    """width, height: the World's size (2:1). base_width: the size the panorama is generated
    at (the model's own: 2 x its native square); larger Worlds are refined in windows of
    `window` pixels overlapping by `overlap` at `refine_strength`. cap_size: the pole views'
    size (the model's native square)."""
    width: int
    height: int
    base_width: int
    window: int = 512
    overlap: int = 128
    refine_strength: float = 0.35
    fix_poles: bool = True
    cap_size: int = 512

    @property
    def base_height(self) -> int:
        return self.base_width // 2

    @property
    def refined(self) -> bool:
        return self.width > self.base_width


@dataclass(frozen=True)
class Pass:
    """One diffusion of a World: "panorama", "window" (with its `window`) or "zenith"/"nadir"."""
    kind: str
    number: int = 0
    window: panorama.Window | None = None

    @property
    def label(self) -> str:
        return f"window {self.number + 1}" if self.kind == "window" else self.kind


def passes(settings: WorldSettings) -> list[Pass]:
    """Every pass of a World, in the order they run."""
    made = [Pass("panorama")]
    if settings.refined:
        made += [Pass("window", index, window) for index, window in enumerate(
            panorama.windows(settings.width, settings.height, settings.window, settings.window, settings.overlap))]
    if settings.fix_poles:
        made += [Pass("zenith"), Pass("nadir")]
    return made


class WorldPainter:
    """The panorama while its passes arrive: `request_for(pass)`, then `add(pass, image)`;
    `result()` at the end.

    controls: the scene's conditions as panoramas at the base size (may be empty).
    regions: region prompts with their masks as panoramas (any size); each pass gets its
        part of them (a window's, a cap's), those it does not see left out.
    start: a panorama to redraw at the base request's strength (image to image), or None.
    extend: (picture panorama at the base size, its repaint mask): inpaint around it; the
        final World keeps the picture where it was seen (`keep`, at the final size).
    """

    def __init__(self, settings: WorldSettings, base: GenerationRequest, controls: tuple[ControlUnit, ...] = (),
                 start: np.ndarray | None = None,
                 extend: tuple[np.ndarray, np.ndarray] | None = None,
                 keep: tuple[np.ndarray, np.ndarray] | None = None,
                 regions: tuple[RegionPrompt, ...] = ()) -> None:
        self.settings, self.base, self.controls, self.regions = settings, base, controls, regions
        self.start, self.extend, self.keep = start, extend, keep
        self.image: np.ndarray | None = None
        self._blend: panorama.Blend | None = None
        self._enlarged: np.ndarray | None = None
        self._enlarged_controls: list[np.ndarray] = []
        self._enlarged_regions: list[np.ndarray] = []
        self._cap_inputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._window_count = sum(step.kind == "window" for step in passes(settings))
        self._windows_added = 0

    # -- what each pass generates ------------------------------------------------------

    def request_for(self, step: Pass) -> GenerationRequest:
        s = self.settings
        seed = self.base.seed + {"panorama": 0, "zenith": 1, "nadir": 2}.get(step.kind, 3 + step.number)
        if step.kind == "panorama":
            changes = dict(width=s.base_width, height=s.base_height, tiling="x", controls=self.controls,
                           regions=self.regions, init_image=None, mask=None)
            if self.extend is not None:
                changes.update(init_image=self.extend[0], mask=self.extend[1], strength=1.0)
            elif self.start is not None:
                changes.update(init_image=self.start)
            return dataclasses.replace(self.base, seed=seed, **changes)
        if step.kind == "window":
            self._enlarge()
            window = step.window
            controls = tuple(dataclasses.replace(unit, image=_to_bytes(panorama.take(enlarged, window)))
                             for unit, enlarged in zip(self.controls, self._enlarged_controls))
            regions = _seen(self.regions, [panorama.take(mask, window)[..., 0] for mask in self._enlarged_regions])
            return dataclasses.replace(
                self.base, seed=seed, width=window.width, height=window.height, tiling="", controls=controls,
                regions=regions, init_image=panorama.take(self._enlarged, window), mask=None,
                strength=s.refine_strength)
        top = step.kind == "zenith"
        cap = panorama.cap_from_panorama(self.current(), top, s.cap_size, CAP_FOV)
        mask = panorama.cap_mask(s.cap_size, CAP_FOV, CAP_REPAINT)
        self._cap_inputs[step.kind] = (cap, mask)
        controls = tuple(dataclasses.replace(unit, image=_to_bytes(panorama.cap_from_panorama(
            _to_float(unit.image), top, s.cap_size, CAP_FOV))) for unit in self.controls)
        regions = _seen(self.regions, [panorama.cap_from_panorama(region.mask[..., None], top, s.cap_size,
                                                                  CAP_FOV)[..., 0] for region in self.regions])
        return dataclasses.replace(self.base, seed=seed, width=s.cap_size, height=s.cap_size, tiling="",
                                   controls=controls, regions=regions, init_image=cap, mask=mask, strength=1.0)

    # -- taking results in ---------------------------------------------------------------

    def add(self, step: Pass, image: np.ndarray) -> np.ndarray:
        """Take a pass's generated image in; returns the panorama so far (for a preview)."""
        image = np.asarray(image, np.float32)
        if step.kind == "panorama":
            self.image = image
        elif step.kind == "window":
            if self._blend is None:
                self._blend = panorama.Blend(self.settings.width, self.settings.height, self.settings.overlap)
            self._blend.add(step.window, image)
            self._windows_added += 1
            if self._windows_added == self._window_count:
                self.image, self._blend, self._enlarged = self._blend.result(), None, None
        else:
            cap, mask = self._cap_inputs.pop(step.kind)
            # Inpainting redraws the whole cap through the VAE: keep the ring as it was.
            cap = cap * (1.0 - mask[..., None]) + image * mask[..., None]
            self.image = panorama.cap_into_panorama(self.current(), cap, step.kind == "zenith", CAP_FOV,
                                                    CAP_FROM, CAP_BLEND)
        return self.current()

    def current(self) -> np.ndarray:
        """The panorama so far at the World's size (the enlarged one while windows run)."""
        if self.image is None:
            raise RuntimeError("no panorama yet: the first pass makes it")
        if self.image.shape[1] != self.settings.width:
            self._enlarge()
            return self._enlarged
        return self.image

    def result(self) -> np.ndarray:
        """The finished World (HxWx3 float32 0..1), the extended picture kept where it was seen."""
        image = self.current()
        if self.settings.fix_poles:
            image = panorama.band_limit_poles(image, CAP_FROM)
        if self.keep is not None:
            picture, weight = self.keep
            image = picture * weight[..., None] + image * (1.0 - weight[..., None])
        return np.clip(image, 0.0, 1.0).astype(np.float32)

    def _enlarge(self) -> None:
        s = self.settings
        if self._enlarged is None or self._enlarged.shape[1] != s.width:
            self._enlarged = panorama.upscale(self.image, s.width, s.height)
            self._enlarged_controls = [panorama.upscale(_to_float(unit.image), s.width, s.height)
                                       for unit in self.controls]
            self._enlarged_regions = [panorama.upscale(region.mask[..., None], s.width, s.height)
                                      for region in self.regions]


def _seen(regions: tuple[RegionPrompt, ...], masks: list[np.ndarray]) -> tuple[RegionPrompt, ...]:
    """The regions with these masks (a part of the panorama each), those that cover none of it left out."""
    return tuple(dataclasses.replace(region, mask=np.clip(mask, 0.0, 1.0).astype(np.float32))
                 for region, mask in zip(regions, masks) if float(mask.max()) >= 0.5)


def _to_float(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, np.float32) / 255.0


def _to_bytes(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
