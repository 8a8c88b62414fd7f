# SPDX-License-Identifier: GPL-3.0-or-later
"""Loaded pipelines, kept between generations.

One base model is kept loaded at a time; every pipeline variant (with or without
ControlNets) is made from it with `from_pipe`, which shares the weights instead of
loading them again. `loads` records every folder read from disk, so callers (and tests)
can see that a second generation loaded nothing.
"""
from __future__ import annotations

from .devices import Placement, torch_dtype
from .errors import DiffusionError
from .models import FAMILY_NAMES, ModelSource


class PipelineCache:
    def __init__(self, placement: Placement) -> None:
        self.placement = placement
        self.loads: list[str] = []
        self._base_source: ModelSource | None = None
        self._base = None
        self._controlnets: dict[str, object] = {}
        self._variants: dict[tuple, object] = {}

    @property
    def current_base(self):
        """The loaded base pipeline, or None."""
        return self._base

    def clear(self) -> None:
        self._base_source = None
        self._base = None
        self._controlnets.clear()
        self._variants.clear()

    def base(self, source: ModelSource):
        """The base text-to-image pipeline for `source`, loaded once."""
        if self._base_source != source:
            self.clear()  # free the previous model before loading the next
            from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

            cls = StableDiffusionXLPipeline if source.family == "sdxl" else StableDiffusionPipeline
            extra = {} if source.family == "sdxl" else {"safety_checker": None, "feature_extractor": None,
                                                         "requires_safety_checker": False}
            pipe = cls.from_pretrained(source.path, dtype=torch_dtype(self.placement.dtype),
                                       local_files_only=True, use_safetensors=True, **extra)
            self.loads.append(source.path)
            if self.placement.device != "cpu":  # loaded on the CPU already
                pipe.to(self.placement.device)
            pipe.set_progress_bar_config(disable=True)
            self._base, self._base_source = pipe, source
        return self._base

    def controlnet(self, source: ModelSource, base: ModelSource):
        if source.family != base.family:
            raise DiffusionError(
                f"The ControlNet {source.spec} is for {FAMILY_NAMES[source.family]} but the model "
                f"{base.spec} is {FAMILY_NAMES[base.family]}",
                f"pick a {FAMILY_NAMES[base.family]} ControlNet for this kind in the preferences",
            )
        if source.path not in self._controlnets:
            from diffusers import ControlNetModel

            model = ControlNetModel.from_pretrained(source.path, dtype=torch_dtype(self.placement.dtype),
                                                    local_files_only=True, use_safetensors=True)
            self.loads.append(source.path)
            if self.placement.device != "cpu":
                model.to(self.placement.device)
            self._controlnets[source.path] = model
        return self._controlnets[source.path]

    def pipeline(self, base: ModelSource, controlnets: list[ModelSource]):
        """Text-to-image with zero or more ControlNets, sharing the base pipeline's weights."""
        pipe = self.base(base)
        if not controlnets:
            return pipe
        key = ("txt2img", tuple(c.path for c in controlnets))
        if key not in self._variants:
            models = [self.controlnet(c, base) for c in controlnets]
            from diffusers import (
                StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline,
            )
            from diffusers import MultiControlNetModel

            cls = StableDiffusionXLControlNetPipeline if base.family == "sdxl" else StableDiffusionControlNetPipeline
            controlnet = models[0] if len(models) == 1 else MultiControlNetModel(models)
            variant = cls.from_pipe(pipe, controlnet=controlnet)
            variant.set_progress_bar_config(disable=True)
            self._variants[key] = variant
        return self._variants[key]
