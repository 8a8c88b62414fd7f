# SPDX-License-Identifier: GPL-3.0-or-later
"""`Engine.generate`: one request in, images out, exactly what diffusers gives.

The engine adds no math of its own to a generation: it resolves and caches models,
picks the pipeline for the request's mode (text-to-image, image-to-image, inpainting,
each with any number of ControlNets), builds the same call a person would write by
hand, and reports progress and checks for cancellation at every step (raising out of
the step callback, so no VAE decode is wasted).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Callable

import numpy as np

from . import memory, models, previews, regions, tiling
from .devices import Placement, choose_placement
from .differential import DifferentialStrength
from .errors import Cancelled
from .inputs import check_request, fit_to_size
from .embeddings import resolve_embeddings
from .loras import few_step_of, resolve_loras
from .references import resolve_adapter
from .pipelines import PipelineCache, Plan, without_vacuous_dtype_warning
from .requests import CancelToken, GenerationRequest, GenerationResult, Progress
from .schedulers import SCHEDULERS, check_scheduler, make_scheduler
from .smoke_model import SMOKE_NOTE

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]


class Engine:
    """Runs generations; keeps models loaded between them. Use it from one thread at a time."""

    def __init__(self, cache_dir: str, device: str | None = None, dtype: str | None = None) -> None:
        self.cache_dir = cache_dir
        self.placement: Placement = choose_placement(device, dtype)
        self.pipelines = PipelineCache(self.placement)
        self.memory = memory.MemoryManager(self.placement.device)
        self.previews = previews.Previews(self.placement.device, self.placement.dtype)

    @property
    def loads(self) -> list[str]:
        """Every model folder or weights file (single-file checkpoint, LoRA) read from disk so far, in order."""
        return self.pipelines.loads

    def plan(self, request: GenerationRequest, on_progress: ProgressCallback | None = None,
             cancel: CancelToken | None = None) -> Plan:
        """The models and pipeline a request needs, found and checked; nothing is loaded.

        Models missing from the cache are downloaded here when the request allows it, with
        progress events ("Downloading owner/name: 1.2 of 4.3 GB", from the download threads).
        """
        check_scheduler(request.scheduler)
        loras = resolve_loras(request.loras, request.allow_pickle)
        base = models.resolve_base(request.model, self.cache_dir, request.allow_online, request.allow_pickle,
                                   request.single_file_configs, on_progress, cancel)
        controlnets = tuple(
            models.resolve_controlnet(unit.model, unit.kind, base, self.cache_dir, request.allow_online,
                                      request.controlnet_overrides, request.allow_pickle, on_progress, cancel)
            for unit in request.controls
        )
        adapter = None
        if request.references:
            adapter = resolve_adapter(request.ip_adapter, base.family, models.context_width(base), self.cache_dir,
                                      request.allow_online, request.allow_pickle, base.smoke, on_progress, cancel)
        return Plan(base, request.mode, controlnets, tuple(unit.kind for unit in request.controls), loras,
                    resolve_embeddings(request.embeddings, request.allow_pickle), adapter, len(request.references))

    def generate(self, request: GenerationRequest, on_progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None) -> GenerationResult:
        check_request(request)
        started = time.perf_counter()
        _stop_if_cancelled(cancel)
        request, notes = fit_to_size(request)
        plan = self.plan(request, on_progress, cancel)
        regions.check_regions(request.regions, plan.base.family)
        request, few_step_notes = few_step_settings(request, plan)
        notes += few_step_notes
        if plan.base.smoke and plan.base.path not in self.loads:
            log.warning(SMOKE_NOTE)  # once, when it is loaded
        previewer = None
        if on_progress is not None and request.preview_every > 0:  # before loading: it may refuse
            previewer = self.previews.previewer(request.preview_method, plan.base.family, request.allow_online)
        if self.pipelines.adapter_changes(plan):
            self.memory.release()  # the processors it saved are about to be replaced
        pipe = self.pipelines.pipeline(plan)
        # Set for every call: variants share the base's scheduler object, and a fresh one per
        # generation carries no state over.
        pipe.scheduler = make_scheduler(request.scheduler, self.pipelines.default_scheduler)
        choice = self.memory.configure(pipe, request.memory, request.width, request.height, request.num_images,
                                       request.guidance, len(request.controls), seamless=bool(request.tiling))
        loaded = time.perf_counter()
        _stop_if_cancelled(cancel)

        reporter = _StepReporter(on_progress, cancel, previewer, request.preview_every)
        output = self._call(pipe, request, plan, reporter, choice)
        finished = time.perf_counter()
        return GenerationResult(
            images=[np.asarray(image, dtype=np.float32) for image in output.images],
            seed=request.seed,
            model=request.model,
            family=plan.base.family,
            mode=plan.mode,
            controlnets=tuple(c.spec for c in plan.controlnets),
            timings={"load": loaded - started, "denoise": finished - loaded, "total": finished - started},
            notes=((SMOKE_NOTE,) if plan.base.smoke else ()) + notes + choice.reasons
            + tuple(filter(None, [tiling.seam_note(pipe, request.tiling, request.width, request.height)])),
        )

    def _call(self, pipe, request: GenerationRequest, plan: Plan, reporter: _StepReporter,
              choice: memory.MemoryChoice):
        """The diffusers call, seamless if asked; running out of memory becomes a DiffusionError."""
        callback = reporter
        arguments = call_arguments(request, plan, pipe)
        if request.references:
            pipe.set_ip_adapter_scale([float(reference.weight) for reference in request.references])
        if request.strength_map is not None and plan.mode == "img2img" and DifferentialStrength.needed(
                request.strength_map, request.strength):
            held = DifferentialStrength(pipe, request.init_image, request.strength_map, request.strength,
                                        request.steps, request.seed)
            arguments["image"] = held.init_latents

            def callback(pipe, step, timestep, callback_kwargs):
                return {**reporter(pipe, step, timestep, callback_kwargs),
                        **held(pipe, step, timestep, callback_kwargs)}
        regional = (regions.regional(pipe, arguments, request.regions, request.width, request.height)
                    if request.regions else contextlib.nullcontext(arguments))
        try:
            with without_vacuous_dtype_warning(), tiling.seamless(pipe, request.tiling), regional as arguments:
                return pipe(**arguments, callback_on_step_end=callback)
        except RuntimeError as error:  # torch.OutOfMemoryError is one; any other goes on up
            if not memory.is_out_of_memory(error):
                raise
            log.warning("Out of memory: %s", error)
            failure = memory.out_of_memory_error(request.width, request.height, choice, self.placement.device)
        # Raised out here, not in the except block: the error (and its traceback's frames,
        # which hold the failed call's tensors) is released before the cache is emptied.
        memory.free_cached(self.placement.device)
        raise failure


def few_step_settings(request: GenerationRequest, plan: Plan) -> tuple[GenerationRequest, tuple[str, ...]]:
    """The request as a few-step LoRA among its LoRAs needs it: that LoRA's scheduler unless
    the request names one, and guidance lowered to what the LoRA was distilled for; with notes."""
    found = few_step_of(plan.loras)
    if found is None:
        return request, ()
    lora, needs = found
    changes, said = {}, []
    if request.scheduler == "default":
        changes["scheduler"] = needs.scheduler
        said.append(f"{SCHEDULERS[needs.scheduler].label} scheduler")
    if request.guidance > needs.max_guidance:
        changes["guidance"] = needs.guidance
        said.append(f"guidance {needs.guidance:g} instead of {request.guidance:g}")
    if not changes:
        return request, ()
    note = f"{needs.label} LoRA {lora.name}: {', '.join(said)}"
    return dataclasses.replace(request, **changes), (note,)


def call_arguments(request: GenerationRequest, plan: Plan, pipe) -> dict:
    """The keyword arguments of the plain diffusers call that this request stands for.

    `request` is already fitted (init image and mask at the output size, float32). Prompts
    with weights or longer than the text encoder's 75 tokens become `pipe`'s embeddings of
    them (engine.text_encoding); others stay text.
    """
    import torch
    from PIL import Image

    from .text_encoding import blended_arguments, text_arguments

    if request.prompt_blend is not None and request.prompt_blend[2] > 0:
        other, other_negative, weight = request.prompt_blend
        text = blended_arguments(pipe, request.prompt, request.negative_prompt, other, other_negative, weight)
    else:
        text = text_arguments(pipe, request.prompt, request.negative_prompt)
    arguments = dict(
        **text,
        width=request.width,
        height=request.height,
        num_inference_steps=request.steps,
        guidance_scale=request.guidance,
        num_images_per_prompt=request.num_images,
        # A fresh CPU generator per call: reproducible, and the same on every device.
        generator=torch.Generator(device="cpu").manual_seed(request.seed),
        output_type="np",
    )
    if request.references:  # one per adapter copy, in order (engine/references.py)
        arguments["ip_adapter_image"] = [Image.fromarray((np.clip(reference.image, 0.0, 1.0) * 255 + 0.5)
                                                         .astype(np.uint8)) for reference in request.references]
    if plan.mode in ("img2img", "inpaint"):
        arguments.update(image=request.init_image, strength=request.strength)
    if plan.mode == "inpaint":
        arguments.update(mask_image=request.mask)

    units = request.controls
    if not units:
        return arguments
    # Text-to-image ControlNet pipelines take the control image as `image`; the others
    # (and every union pipeline) as `control_image`, `image` being the init image there.
    control_key = "image" if plan.mode == "txt2img" and plan.controls == "single" else "control_image"
    # The unit's own scale always: the pipelines' defaults differ (1.0, 0.8, 0.5).
    if len(units) == 1 and plan.controls == "single":
        unit = units[0]
        arguments.update({control_key: Image.fromarray(unit.image)}, controlnet_conditioning_scale=float(unit.scale),
                         control_guidance_start=unit.guidance_start, control_guidance_end=unit.guidance_end)
        return arguments
    arguments.update({control_key: [Image.fromarray(u.image) for u in units]},
                     controlnet_conditioning_scale=[float(u.scale) for u in units],
                     control_guidance_start=[u.guidance_start for u in units],
                     control_guidance_end=[u.guidance_end for u in units])
    if plan.controls == "union":
        arguments.update(control_mode=plan.control_modes)
    return arguments


def _stop_if_cancelled(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.cancelled:
        raise Cancelled()


class _StepReporter:
    """The pipeline's step callback: progress (and every n-th step a preview) out, cancellation in."""

    def __init__(self, on_progress: ProgressCallback | None, cancel: CancelToken | None,
                 previewer: previews.Previewer | None = None, preview_every: int = 0) -> None:
        self.on_progress = on_progress
        self.cancel = cancel
        self.previewer = previewer
        self.preview_every = preview_every
        self.started = time.perf_counter()

    def __call__(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        # Raising here leaves the denoising loop before the VAE decode, in every pipeline.
        _stop_if_cancelled(self.cancel)
        if self.on_progress is not None:
            done = step + 1
            total = pipe.num_timesteps  # the steps that run: fewer than asked in img2img/inpaint
            elapsed = time.perf_counter() - self.started
            eta = elapsed / done * (total - done)
            preview = None
            if self.previewer is not None and done % self.preview_every == 0:
                preview = self.previewer(pipe, callback_kwargs["latents"])
            self.on_progress(Progress(step=done, total=total, elapsed=elapsed, eta=eta, preview=preview))
        return {}
