# SPDX-License-Identifier: GPL-3.0-or-later
"""A request's inputs, checked before anything is loaded, and fitted to the output size.

Every refusal is a DiffusionError saying what is wrong and what to do. `check_request`
holds every check the request's own settings can fail, so Blender's operators run it on
the main thread before they capture, write or draw a seed; the engine runs it again first
thing. Fitting is the one change the engine makes to inputs: an init image (and its
mask) of another size than the output is resized to it, and the result's notes say so.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import memory, previews, tiling
from .errors import DiffusionError
from .loras import resolve_loras
from .references import check_references
from .regions import check_regions
from .requests import GenerationRequest
from .schedulers import check_scheduler

MIN_SIZE, MAX_SIZE = 64, 4096


def check_request(request: GenerationRequest) -> None:
    """Fail before loading anything when the request cannot work (no torch, no model:
    cheap enough for the main thread)."""
    for name, value in (("width", request.width), ("height", request.height)):
        if not MIN_SIZE <= value <= MAX_SIZE:
            raise DiffusionError(f"The image {name} {value} is outside {MIN_SIZE}..{MAX_SIZE} pixels",
                                 "change the render resolution (Output Properties > Format)")
        if value % 8:
            raise DiffusionError(f"The image {name} {value} is not a multiple of 8",
                                 "round the resolution to a multiple of 8")
    if request.steps < 1:
        raise DiffusionError("Steps must be at least 1", "raise Steps")
    for unit in request.controls:
        image = unit.image
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            found = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise DiffusionError(f"The {unit.kind} condition must be an HxWx3 uint8 image, not {found}",
                                 "capture the condition again")
    if request.mask is not None and request.init_image is None:
        raise DiffusionError("An inpainting mask needs an init image to repaint",
                             "set the init image, or remove the mask to generate from the prompt")
    if request.init_image is not None:
        _check_init_image(request.init_image)
        _check_strength(request.strength, request.steps)
    if request.mask is not None:
        _check_mask(request.mask, request.init_image.shape[:2])
        _check_mask_repaints(request)
    if request.strength_map is not None:
        _check_strength_map(request)
    tiling.check_axes(request.tiling)
    memory.check_options(request.memory, request.tiling)
    previews.check_method(request.preview_method)
    if request.preview_every < 0:
        raise DiffusionError(f"Preview every {request.preview_every} steps is negative", "use 0 for no previews")
    check_scheduler(request.scheduler)
    check_regions(request.regions)
    check_references(request.references)
    resolve_loras(request.loras, request.allow_pickle)  # files exist, are LoRAs, and pickle only if allowed


def _check_init_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        fix = ("drop the alpha channel (image[..., :3])" if getattr(image, "ndim", 0) == 3 and image.shape[2] == 4
               else "pass an HxWx3 RGB image")
        raise DiffusionError(f"The init image must be an HxWx3 array, not {shape}", fix)
    if not np.issubdtype(image.dtype, np.floating):
        raise DiffusionError(f"The init image must hold floats in 0..1, not {image.dtype}",
                             "convert it, e.g. image.astype(np.float32) / 255 for 8-bit pixels")
    _check_range(image, "init image", "clip it to 0..1; a linear HDR image needs converting to display sRGB")


def _check_strength_map(request: GenerationRequest) -> None:
    strength_map = request.strength_map
    if request.init_image is None or request.mask is not None:
        raise DiffusionError("A strength per pixel needs image to image (an init image and no mask)",
                             "give the init image, or leave the strength map out")
    if not isinstance(strength_map, np.ndarray) or strength_map.shape != request.init_image.shape[:2]:
        raise DiffusionError(f"The strength map is {getattr(strength_map, 'shape', None)}, the init image "
                             f"{request.init_image.shape[:2]}", "make it one value per pixel of the init image")
    _check_range(strength_map, "strength map", "clip it to 0..1")
    if float(strength_map.max()) > request.strength + 1e-6:
        raise DiffusionError(f"The strength map reaches {float(strength_map.max()):g}, over the strength "
                             f"{request.strength:g} the generation starts at",
                             "set strength to the map's largest value")


def _check_mask(mask: np.ndarray, init_size: tuple[int, int]) -> None:
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        shape = getattr(mask, "shape", type(mask).__name__)
        raise DiffusionError(f"The inpainting mask must be an HxW array (one channel), not {shape}",
                             "pass one channel of the mask, e.g. mask[..., 0]")
    if not np.issubdtype(mask.dtype, np.floating):
        raise DiffusionError(f"The inpainting mask must hold floats in 0..1, not {mask.dtype}",
                             "convert it, e.g. mask.astype(np.float32) / 255 for 8-bit pixels")
    if mask.shape != init_size:
        raise DiffusionError(f"The inpainting mask is {mask.shape[1]}x{mask.shape[0]} but the init image is "
                             f"{init_size[1]}x{init_size[0]}", "paint the mask at the init image's size")
    _check_range(mask, "inpainting mask", "clip it to 0..1 (1 = repaint)")


def _check_range(array: np.ndarray, what: str, fix: str) -> None:
    low, high = float(np.min(array)), float(np.max(array))
    if not (0.0 <= low and high <= 1.0):  # also False for NaN
        raise DiffusionError(f"The {what} has values from {low:g} to {high:g}, outside 0..1", fix)


def _check_strength(strength: float, steps: int) -> None:
    if not 0.0 < strength <= 1.0:
        raise DiffusionError(f"Strength {strength:g} is outside 0..1 (0 excluded)",
                             "set Strength between 0 (keep the init image) and 1 (redraw it fully)")
    # diffusers runs int(steps x strength) of the steps; none at all is an error there.
    if int(steps * strength) < 1:
        needed = math.ceil(1 / strength)
        while int(needed * strength) < 1:  # float rounding: 3 x 0.3 < 1
            needed += 1
        raise DiffusionError(f"{steps} steps at strength {strength:g} run no denoising step "
                             "(image-to-image runs steps x strength of them)",
                             f"raise Steps to {needed} or more, or raise Strength")


def fit_to_size(request: GenerationRequest) -> tuple[GenerationRequest, tuple[str, ...]]:
    """The request (checked by check_request) with its init image and mask as float32 at
    the output size, and notes on what was changed."""
    if request.init_image is None:
        return request, ()
    size = (request.height, request.width)
    init_image = np.asarray(request.init_image, dtype=np.float32)
    mask = None if request.mask is None else np.asarray(request.mask, dtype=np.float32)
    strength_map = None if request.strength_map is None else np.asarray(request.strength_map, dtype=np.float32)
    notes: tuple[str, ...] = ()
    if init_image.shape[:2] != size:
        old_height, old_width = init_image.shape[:2]
        stretched = old_width * request.height != old_height * request.width
        notes = (f"init image resized from {old_width}x{old_height} to {request.width}x{request.height}"
                 + (" (stretched: another aspect ratio)" if stretched else "")
                 + (", its mask too" if mask is not None else ""),)
        init_image = _resize(init_image, size, "bicubic")
        mask = None if mask is None else _resize(mask[..., None], size, "bilinear")[..., 0]
        if strength_map is not None:
            strength_map = _resize(strength_map[..., None], size, "bilinear")[..., 0]
    return dataclasses.replace(request, init_image=init_image, mask=mask, strength_map=strength_map), notes


def _check_mask_repaints(request: GenerationRequest) -> None:
    """Refuse a mask with nothing to repaint at the output size (diffusers repaints where the
    resized mask is >= 0.5; resizing can only spread or thin what is marked)."""
    mask = np.asarray(request.mask, dtype=np.float32)
    if mask.shape != (request.height, request.width) and (mask >= 0.5).any():
        mask = _resize(mask[..., None], (request.height, request.width), "bilinear")[..., 0]
    if not (mask >= 0.5).any():
        raise DiffusionError("The inpainting mask is empty: no pixel is marked to repaint (values >= 0.5 are)",
                             "paint the area to redraw white in the mask, or remove the mask to redraw "
                             "the whole image (image-to-image)")


def _resize(image: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """HxWxC float32 0..1 -> size, antialiased when shrinking, kept in 0..1."""
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    resized = F.interpolate(tensor, size=size, mode=mode, antialias=True, align_corners=False)
    return resized[0].permute(1, 2, 0).clamp(0.0, 1.0).numpy()
