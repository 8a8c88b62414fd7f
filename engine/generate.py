# SPDX-License-Identifier: GPL-3.0-or-later
"""`Engine.generate`: one request in, images out, exactly what diffusers gives.

The engine adds no math of its own to a generation: it resolves and caches models,
builds the same call a person would write by hand, and reports progress and checks for
cancellation at every step (raising out of the step callback, so no VAE decode is wasted).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np

from . import models
from .devices import Placement, choose_placement
from .errors import Cancelled, DiffusionError
from .pipelines import PipelineCache
from .requests import CancelToken, GenerationRequest, GenerationResult, Progress
from .smoke_model import SMOKE_NOTE

log = logging.getLogger(__name__)

MIN_SIZE, MAX_SIZE = 64, 4096

ProgressCallback = Callable[[Progress], None]


class Engine:
    """Runs generations; keeps models loaded between them. Use it from one thread at a time."""

    def __init__(self, cache_dir: str, device: str | None = None, dtype: str | None = None) -> None:
        self.cache_dir = cache_dir
        self.placement: Placement = choose_placement(device, dtype)
        self.pipelines = PipelineCache(self.placement)

    @property
    def loads(self) -> list[str]:
        """Every model folder read from disk so far, in order."""
        return self.pipelines.loads

    def generate(self, request: GenerationRequest, on_progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None) -> GenerationResult:
        check_request(request)
        started = time.perf_counter()
        if cancel is not None and cancel.cancelled:
            raise Cancelled()
        base = models.resolve_base(request.model, self.cache_dir, request.allow_online)
        controlnets = [models.resolve_controlnet(unit.model, unit.kind, base, self.cache_dir, request.allow_online)
                       for unit in request.controls]
        if base.smoke and base.path not in self.loads:
            log.warning(SMOKE_NOTE)  # once, when it is loaded
        pipe = self.pipelines.pipeline(base, controlnets)
        loaded = time.perf_counter()
        if cancel is not None and cancel.cancelled:
            raise Cancelled()

        reporter = _StepReporter(on_progress, cancel)
        output = pipe(**call_arguments(request), callback_on_step_end=reporter)
        finished = time.perf_counter()
        return GenerationResult(
            images=[np.asarray(image, dtype=np.float32) for image in output.images],
            seed=request.seed,
            model=request.model,
            family=base.family,
            timings={"load": loaded - started, "denoise": finished - loaded, "total": finished - started},
            notes=(SMOKE_NOTE,) if base.smoke else (),
        )


def check_request(request: GenerationRequest) -> None:
    """Fail before loading anything when the request cannot work."""
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
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DiffusionError(f"The {unit.kind} condition must be an HxWx3 uint8 image, not "
                                 f"{image.dtype} {image.shape}", "capture the condition again")


def call_arguments(request: GenerationRequest) -> dict:
    """The keyword arguments of the plain diffusers call that this request stands for."""
    import torch
    from PIL import Image

    arguments = dict(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt or None,
        width=request.width,
        height=request.height,
        num_inference_steps=request.steps,
        guidance_scale=request.guidance,
        num_images_per_prompt=request.num_images,
        # A fresh CPU generator per call: reproducible, and the same on every device.
        generator=torch.Generator(device="cpu").manual_seed(request.seed),
        output_type="np",
    )
    units = request.controls
    if len(units) == 1:
        unit = units[0]
        arguments.update(image=Image.fromarray(unit.image), controlnet_conditioning_scale=unit.scale,
                         control_guidance_start=unit.guidance_start, control_guidance_end=unit.guidance_end)
    elif units:
        arguments.update(
            image=[Image.fromarray(u.image) for u in units],
            controlnet_conditioning_scale=[u.scale for u in units],
            control_guidance_start=[u.guidance_start for u in units],
            control_guidance_end=[u.guidance_end for u in units],
        )
    return arguments


class _StepReporter:
    """The pipeline's step callback: progress out, cancellation in."""

    def __init__(self, on_progress: ProgressCallback | None, cancel: CancelToken | None) -> None:
        self.on_progress = on_progress
        self.cancel = cancel
        self.started = time.perf_counter()

    def __call__(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        if self.cancel is not None and self.cancel.cancelled:
            # Raising here leaves the denoising loop before the VAE decode.
            raise Cancelled()
        if self.on_progress is not None:
            done = step + 1
            total = pipe.num_timesteps
            elapsed = time.perf_counter() - self.started
            eta = elapsed / done * (total - done)
            self.on_progress(Progress(step=done, total=total, elapsed=elapsed, eta=eta))
        return {}
